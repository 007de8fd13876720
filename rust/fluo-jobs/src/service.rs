//! The process lifecycle both services share: flags validated into a config before anything
//! starts, logging, running until SIGTERM/SIGINT, and the exit code (0 clean shutdown,
//! 1 runtime failure, 2 bad flags).

use std::fmt::Display;
use std::process::ExitCode;

/// The body of a service's `main`: `args` (parsed by clap) become the service's config or the
/// process exits 2 naming the bad flag; then logging starts and `run` runs. `name` prefixes the
/// messages.
pub async fn main<A, C, F, Fut>(name: &str, args: A, run: F) -> ExitCode
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
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init();
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "{name} failed");
            ExitCode::from(1)
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
        let code = main("svc", "eighty", |_: Port| async {
            ran.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!(code, ExitCode::from(2));
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_clean_run_exits_0_with_the_validated_config() {
        let seen = std::sync::Mutex::new(None);
        let code = main("svc", "8080", |port: Port| {
            *seen.lock().unwrap() = Some(port.0);
            async { Ok(()) }
        })
        .await;
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(*seen.lock().unwrap(), Some(8080));
    }

    #[tokio::test]
    async fn a_failed_run_exits_1() {
        let code = main("svc", "8080", |_: Port| async {
            Err(anyhow::anyhow!("NATS went away"))
        })
        .await;
        assert_eq!(code, ExitCode::from(1));
    }
}
