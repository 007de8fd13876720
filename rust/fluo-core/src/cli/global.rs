//! The flags every fluo binary takes (kubectl/helm habits), declared once and flattened into
//! each binary's parser with `#[command(flatten)] global: Global`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::cli::Output;
use crate::cli::duration;
use crate::cluster::{self, Cluster};
use crate::config::{self, Config};
use crate::report::Reporter;

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kube context (default: the environment's `context`).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace of the FLUO components (default: the environment's `namespace`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Environment: infra/environments/<ENV>.toml.
    #[arg(long = "env", global = true, env = "FLUO_ENV", default_value = "local")]
    pub env: String,
    /// The infra/ directory (default: the nearest infra/ with environments/ here or in a parent
    /// directory, else ./infra).
    #[arg(long, global = true, env = "FLUO_INFRA_DIR", value_name = "DIR")]
    pub infra: Option<PathBuf>,
    /// Output format: progress on stderr, the result on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Upper bound of the command's waits, e.g. 90s, 5m (what it bounds: see the command's help).
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration::positive)]
    pub timeout: Option<Duration>,
    /// No progress output (errors and the result only).
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// More logging (-v info, -vv debug, -vvv trace; RUST_LOG wins when set).
    #[arg(short = 'v', long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    /// `--infra`, else `infra/` in the nearest ancestor that has one.
    pub fn infra_dir(&self) -> PathBuf {
        self.infra.clone().unwrap_or_else(config::default_infra_dir)
    }

    /// The components and the environment `--env` names.
    pub fn load_config(&self) -> config::Result<Config> {
        Config::load(&self.infra_dir(), &self.env)
    }

    /// `--context`, else the environment's.
    pub fn context_for(&self, config: &Config) -> String {
        self.context
            .clone()
            .unwrap_or_else(|| config.environment.environment.context.clone())
    }

    /// `-n`, else the environment's app namespace.
    pub fn namespace_for(&self, config: &Config) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| config.environment.environment.namespace.clone())
    }

    /// The cluster of [`Global::context_for`] in `--kubeconfig` (or KUBECONFIG, ~/.kube/config).
    pub async fn connect(&self, config: &Config) -> cluster::Result<Cluster> {
        Cluster::connect(self.kubeconfig.as_deref(), &self.context_for(config)).await
    }

    /// Progress and results as `-o` and `-q` say.
    pub fn reporter(&self) -> Reporter {
        Reporter::new(self.output, self.quiet)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        global: Global,
    }

    #[test]
    fn flags_parse_with_kubectl_spellings() {
        let p = Probe::try_parse_from([
            "x",
            "-n",
            "apps",
            "--context",
            "ctx",
            "-o",
            "json",
            "--timeout",
            "90s",
            "-vv",
            "-q",
        ])
        .unwrap();
        assert_eq!(p.global.namespace.as_deref(), Some("apps"));
        assert_eq!(p.global.context.as_deref(), Some("ctx"));
        assert_eq!(p.global.output, Output::Json);
        assert_eq!(p.global.timeout, Some(Duration::from_secs(90)));
        assert_eq!((p.global.verbose, p.global.quiet), (2, true));
    }

    #[test]
    fn a_bad_duration_names_the_flag_and_the_value() {
        let err = Probe::try_parse_from(["x", "--timeout", "0s"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--timeout"), "{err}");
        assert!(err.contains("`0s` is zero"), "{err}");
        let err = Probe::try_parse_from(["x", "--timeout", "soon"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--timeout") && err.contains("`soon` is not a duration"),
            "{err}"
        );
    }
}
