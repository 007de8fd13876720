//! Logging setup shared by the binaries: RUST_LOG if set, else a level from -v (warn by default),
//! to stderr so stdout stays parseable.

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
        .with_writer(std::io::stderr)
        .try_init();
}
