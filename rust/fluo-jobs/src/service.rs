//! The process lifecycle both services share: flags validated into a config before anything
//! starts, logging, running until SIGTERM/SIGINT, and the exit code (0 clean shutdown,
//! 1 runtime failure, 2 bad flags). `--check-config` stops after the validation.

use std::fmt::Display;

/// The exit status of the services' `main` (the table every fluo binary shares).
pub use fluo_cli::exit::Exit;

/// How much `--check-config` validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckMode {
    /// Flags, environment and the files they name (what the service reads at start).
    Full,
    /// Flags and environment only: the files are mounted later (a rendered manifest checked
    /// before a deploy).
    Values,
}

/// The `--check-config` flag both services take.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckArgs {
    /// Validate the configuration this process would run with and exit without starting:
    /// 0 valid, 2 not (naming the flag, its variable and the value). `--check-config=values`
    /// leaves out the files it names (mounted Secrets), for rendered manifests before a deploy.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "full")]
    pub check_config: Option<CheckMode>,
}

impl CheckArgs {
    /// Whether files named by the configuration are left unread.
    pub fn values_only(&self) -> bool {
        self.check_config == Some(CheckMode::Values)
    }
}

/// The body of a service's `main`: `args` (parsed by clap) become the service's config or the
/// process exits 2 naming the bad flag; with `check` set it then exits 0, else logging starts
/// and `run` runs. `name` prefixes the messages.
pub async fn main<A, C, F, Fut>(name: &str, args: A, check: Option<CheckMode>, run: F) -> Exit
where
    C: TryFrom<A>,
    C::Error: Display,
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match C::try_from(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{name}: {err}");
            return Exit::Usage;
        }
    };
    if let Some(mode) = check {
        let what = match mode {
            CheckMode::Full => "flags, environment and the files they name",
            CheckMode::Values => "flags and environment; files not read",
        };
        println!("{name}: configuration is valid ({what})");
        return Exit::Ok;
    }
    crate::telemetry::init();
    match run(config).await {
        Ok(()) => Exit::Ok,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{name} failed");
            Exit::Failed
        }
    }
}

/// Resolves at the first SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A config with one flag that must be a port number.
    struct Port(u16);

    impl TryFrom<&str> for Port {
        type Error = String;

        fn try_from(value: &str) -> Result<Self, String> {
            value
                .parse()
                .map(Port)
                .map_err(|_| format!("--port {value:?} is not a port number"))
        }
    }

    #[tokio::test]
    async fn a_bad_flag_exits_2_and_runs_nothing() {
        let ran = AtomicBool::new(false);
        let code = main("svc", "eighty", None, |_: Port| async {
            ran.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!(code, Exit::Usage);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_clean_run_exits_0_with_the_validated_config() {
        let seen = std::sync::Mutex::new(None);
        let code = main("svc", "8080", None, |port: Port| {
            *seen.lock().unwrap() = Some(port.0);
            async { Ok(()) }
        })
        .await;
        assert_eq!(code, Exit::Ok);
        assert_eq!(*seen.lock().unwrap(), Some(8080));
    }

    #[tokio::test]
    async fn a_config_check_validates_and_runs_nothing() {
        let ran = AtomicBool::new(false);
        let run = |_: Port| async {
            ran.store(true, Ordering::SeqCst);
            Ok(())
        };
        assert_eq!(
            main("svc", "8080", Some(CheckMode::Full), run).await,
            Exit::Ok
        );
        assert_eq!(
            main("svc", "x", Some(CheckMode::Values), run).await,
            Exit::Usage
        );
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_failed_run_exits_1() {
        let code = main("svc", "8080", None, |_: Port| async {
            Err(anyhow::anyhow!("NATS went away"))
        })
        .await;
        assert_eq!(code, Exit::Failed);
    }
}
