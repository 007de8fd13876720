//! What fluo-health and fluo-smoke share on the command line: the global flags every fluo-*
//! binary takes, loading the configuration they name, and the cluster connection.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use fluo_core::config::{AccessMode, Config};

use crate::access::Cluster;

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
    /// The infra/ directory (default: infra/ of the enclosing checkout, or ./infra).
    #[arg(long, env = "FLUO_INFRA_DIR", global = true)]
    pub infra: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text", global = true)]
    pub output: Output,
    /// Timeout of each check (e.g. "10s").
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
    /// More logging (-v info, -vv debug).
    #[arg(short = 'v', long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] fluo_core::config::Error),
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("connecting with context {context:?}: {message}")]
    Client { context: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl GlobalArgs {
    /// The infra directory: `--infra`, else `infra/` in the nearest ancestor that has one.
    pub fn infra_dir(&self) -> PathBuf {
        if let Some(dir) = &self.infra {
            return dir.clone();
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        cwd.ancestors()
            .map(|d| d.join("infra"))
            .find(|d| d.join("environments").is_dir())
            .unwrap_or_else(|| PathBuf::from("infra"))
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
            (Some(path), _) => client(Some(path), &context).await?,
            (None, AccessMode::Direct) => return Ok(None),
            (None, _) => match client(None, &context).await {
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

    pub fn init_logging(&self) {
        let fallback = match self.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(fallback));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// A kube client for `context` of the kubeconfig at `path` (or the default kubeconfig).
pub async fn client(path: Option<&Path>, context: &str) -> Result<kube::Client> {
    let shown = path.map_or_else(|| "(default)".to_owned(), |p| p.display().to_string());
    let kubeconfig = match path {
        Some(p) => kube::config::Kubeconfig::read_from(p),
        None => kube::config::Kubeconfig::read(),
    }
    .map_err(|e| Error::Kubeconfig {
        path: shown,
        message: e.to_string(),
    })?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let failed = |message: String| Error::Client {
        context: context.to_owned(),
        message,
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| failed(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| failed(e.to_string()))
}
