//! What fluo-health and fluo-smoke share on the command line beyond `fluo_core::cli::Global`:
//! the cluster connection the checks may use, and the run that turns a check into a printed
//! report and an exit status.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use fluo_core::cli::{Global, Output};
use fluo_core::config::{AccessMode, Config};
use fluo_core::exit::Exit;

use crate::access::Cluster;
use crate::report::Report;

/// Timeout of each check without `--timeout`.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The help of `--timeout` in fluo-health and fluo-smoke.
pub const TIMEOUT_HELP: &str = "Timeout of each check, e.g. 10s (default: 10s)";

/// The per-check timeout `global` asks for.
pub fn check_timeout(global: &Global) -> Duration {
    global.timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT)
}

/// The cluster, when there is one to reach. A kubeconfig given by flag or KUBECONFIG must
/// work (its errors, an unreachable server included, are configuration errors); without one,
/// the default kubeconfig is used outside `direct` access mode if it connects, else there is no
/// cluster and what needs one (port-forwards, the pods and logs checks) fails saying so.
pub async fn cluster(
    global: &Global,
    config: &Config,
) -> fluo_core::cluster::Result<Option<Cluster>> {
    let connected = match (&global.kubeconfig, config.environment.access.mode) {
        (Some(_), _) => global.connect(config).await?,
        (None, AccessMode::Direct) => return Ok(None),
        (None, _) => match global.connect(config).await {
            Ok(cluster) => cluster,
            Err(err) => {
                tracing::info!("no cluster: {err}");
                return Ok(None);
            }
        },
    };
    Ok(Some(Cluster {
        client: connected.client,
        namespace: global.namespace_for(config),
    }))
}

/// The run of fluo-health and fluo-smoke: the configuration and cluster `global` names, the
/// report `check` makes of them, printed as -o says (colour where stdout takes it). Exit:
/// the report's (Ok or Failed), or Usage when the configuration or the cluster connection is
/// bad (nothing was checked). `binary` prefixes the error message.
pub async fn run_report<F, Fut>(binary: &str, global: &Global, check: F) -> Exit
where
    F: FnOnce(Config, Option<Cluster>) -> Fut,
    Fut: Future<Output = Report>,
{
    let checked = async {
        let config = global.load_config().context("loading the configuration")?;
        let cluster = cluster(global, &config)
            .await
            .context("connecting to the cluster")?;
        anyhow::Ok(check(config, cluster).await)
    };
    let report = match checked.await {
        Ok(report) => report,
        Err(err) => {
            eprintln!("{binary}: {err:#}");
            return Exit::Usage;
        }
    };
    // A closed pipe (`| head`) is not a failed check.
    let _ = match global.output {
        Output::Json => writeln!(std::io::stdout(), "{}", report.to_json()),
        // anstream drops the colour where stdout does not take it (pipe, NO_COLOR).
        Output::Text => write!(anstream::stdout(), "{}", report.to_text(true)),
    };
    report.exit()
}
