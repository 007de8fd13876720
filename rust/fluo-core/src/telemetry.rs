//! Logging setup shared by the binaries: RUST_LOG if set, else a level from -v (warn by default),
//! to stderr so stdout stays parseable. Colour only where stderr takes it: a terminal, no
//! NO_COLOR, or CLICOLOR_FORCE (anstream's rules, the same as clap's and the reporter's), so
//! redirected WARN/ERROR lines carry no escape codes.

/// Installs the global subscriber (a second call is a no-op).
pub fn init(verbosity: u8) {
    let fallback = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(fallback));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(stderr_takes_colour())
        // anstream strips what is left (e.g. a colour a dependency wrote into a message).
        .with_writer(anstream::stderr)
        .try_init();
}

/// Whether escape codes may go to stderr.
pub fn stderr_takes_colour() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}
