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
use crate::health::{CheckName, Options};
use crate::report::Report;

/// fluo-health's own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthFlags {
    /// Run only these checks (comma-separated): pods, bff, nats, workers, grafana, prometheus,
    /// logs, api-auth, nats-auth, nats-tls, rbac, pod-env.
    #[arg(long = "check", value_delimiter = ',')]
    pub checks: Vec<CheckName>,
    /// Bearer token for Grafana's search API, when anonymous access is off.
    #[arg(long, env = "FLUO_GRAFANA_TOKEN", hide_env_values = true)]
    pub grafana_token: Option<String>,
    /// File holding the BFF API token (scopes jobs:submit, jobs:read) the workers and api-auth
    /// checks use. Without it the token is read from the Secret fluo-smoke-api-token.
    #[arg(long, env = "FLUO_API_TOKEN_FILE")]
    pub api_token_file: Option<std::path::PathBuf>,
    /// File holding a jobs:read-only BFF API token, which api-auth expects a 403 with. Without
    /// it, key read-token of the Secret fluo-smoke-api-token.
    #[arg(long, env = "FLUO_API_READ_TOKEN_FILE")]
    pub api_read_token_file: Option<std::path::PathBuf>,
    /// PEM file of the CA the NATS server certificate must chain to (nats-tls). Without it,
    /// key ca.crt of the Secret nats-tls.
    #[arg(long, env = "FLUO_NATS_CA_FILE")]
    pub nats_ca_file: Option<std::path::PathBuf>,
}

impl HealthFlags {
    /// The run's options, each check under `timeout`.
    pub fn into_options(self, timeout: Duration) -> Options {
        let mut options = Options::new(timeout);
        options.grafana_token = self.grafana_token;
        options.api_token_file = self.api_token_file;
        options.api_read_token_file = self.api_read_token_file;
        options.nats_ca_file = self.nats_ca_file;
        if !self.checks.is_empty() {
            options.only = Some(self.checks.into_iter().collect());
        }
        options
    }
}

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
