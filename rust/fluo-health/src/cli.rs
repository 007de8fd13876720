//! What fluo-health and fluo-smoke share on the command line: the global flags every fluo-*
//! binary takes, loading the configuration they name, the cluster connection, and the `main`
//! that turns them into a printed report and an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use fluo_core::config::{AccessMode, Config};

use crate::access::Cluster;
use crate::report::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Global flags (kubectl/helm habits).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file.
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Kube context to use (default: the environment's `context`).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace of the FLUO components (default: the environment's `namespace`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Environment name: infra/environments/<ENV>.toml.
    #[arg(long = "env", env = "FLUO_ENV", default_value = "local", global = true)]
    pub env: String,
    /// The infra/ directory (default: the nearest infra/ with environments/ here or in a parent directory, else ./infra).
    #[arg(long, env = "FLUO_INFRA_DIR", global = true)]
    pub infra: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text", global = true)]
    pub output: Output,
    /// Timeout of each check (e.g. "10s").
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short = 'v', long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] fluo_core::config::Error),
    #[error(transparent)]
    Cluster(#[from] fluo_core::cluster::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl GlobalArgs {
    /// The infra directory: `--infra`, else `infra/` in the nearest ancestor that has one.
    pub fn infra_dir(&self) -> PathBuf {
        self.infra
            .clone()
            .unwrap_or_else(fluo_core::config::default_infra_dir)
    }

    pub fn load_config(&self) -> Result<Config> {
        Ok(Config::load(&self.infra_dir(), &self.env)?)
    }

    /// The cluster, when there is one to reach. A kubeconfig given by flag or KUBECONFIG must
    /// work (its errors are configuration errors); without one, the default kubeconfig is used
    /// outside `direct` access mode if it loads, else there is no cluster and what needs one
    /// (port-forwards, the pods and logs checks) fails saying so.
    pub async fn cluster(&self, config: &Config) -> Result<Option<Cluster>> {
        let env = &config.environment;
        let context = self
            .context
            .clone()
            .unwrap_or_else(|| env.environment.context.clone());
        let client = match (&self.kubeconfig, env.access.mode) {
            (Some(path), _) => connect(Some(path), &context).await?,
            (None, AccessMode::Direct) => return Ok(None),
            (None, _) => match connect(None, &context).await {
                Ok(client) => client,
                Err(err) => {
                    tracing::info!("no cluster: {err}");
                    return Ok(None);
                }
            },
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| env.environment.namespace.clone());
        Ok(Some(Cluster { client, namespace }))
    }

    /// Colour only on a terminal and without NO_COLOR.
    pub fn color(&self) -> bool {
        std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
    }
}

/// A kube client for `context` of the kubeconfig at `path` (or the default kubeconfig).
async fn connect(path: Option<&std::path::Path>, context: &str) -> Result<kube::Client> {
    let cluster = fluo_core::cluster::Cluster::connect(path, context).await?;
    Ok(cluster.client)
}

/// The body of `main` for fluo-health and fluo-smoke: logging (-v), the TLS provider, then the
/// configuration and cluster `global` names, the report `check` makes of them, printed as
/// --output says. Exit code: the report's (0 passed, 1 failed), or 2 when the configuration or
/// the cluster connection is bad (nothing was checked). `binary` prefixes the error message.
pub fn run_report<F, Fut>(binary: &str, global: &GlobalArgs, check: F) -> ExitCode
where
    F: FnOnce(Config, Option<Cluster>) -> Fut,
    Fut: Future<Output = Report>,
{
    fluo_core::telemetry::init(global.verbose);
    fluo_core::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    let checked = runtime.block_on(async {
        let config = global.load_config().context("loading the configuration")?;
        let cluster = global
            .cluster(&config)
            .await
            .context("connecting to the cluster")?;
        anyhow::Ok(check(config, cluster).await)
    });
    let report = match checked {
        Ok(report) => report,
        Err(err) => {
            eprintln!("{binary}: {err:#}");
            return ExitCode::from(2);
        }
    };
    match global.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Text => print!("{}", report.to_text(global.color())),
    }
    ExitCode::from(u8::try_from(report.exit_code()).unwrap_or(1))
}
