//! Command-line flags (kubectl/helm habits; environment variables where users expect them).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "Exit codes: 0 ok; 1 a check or rollout failed (rolled back where that applies); \
2 usage or configuration error, nothing changed; 3 rollout failed AND automatic rollback failed (escalate); \
4 another deploy holds the lock; 5 refused by policy (window, approval).";

/// Deploy, roll back and inspect the FLUO components (SOP-002).
#[derive(Debug, Parser)]
#[command(name = "fluo-deploy", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kube context (default: the environment's `context`).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// App namespace (default: the environment's `namespace`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Environment: infra/environments/<ENV>.toml.
    #[arg(long = "env", global = true, env = "FLUO_ENV", default_value = "local")]
    pub env: String,
    /// The infra/ directory (default: the nearest infra/ with environments/ here or in a parent directory, else ./infra).
    #[arg(long, global = true, env = "FLUO_INFRA_DIR")]
    pub infra: Option<PathBuf>,
    /// Output format: progress on stderr, result on stdout.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "text")]
    pub output: Output,
    /// Rollout timeout for every component (default: each component's [rollout] timeout).
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// No progress output (errors and the result only).
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// More logging (repeat for more).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How long the deploy lock lives without renewal.
    #[arg(long, global = true, env = "FLUO_LOCK_TTL", default_value = "30s", value_parser = humantime::parse_duration, hide = true)]
    pub lock_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, then deploy components in dependency order (rolls back a failed component).
    Deploy(DeployArgs),
    /// Roll one component back to an earlier revision (a new, recorded revision).
    Rollback {
        component: String,
        /// Revision to restore (default: the last successful one before the current).
        #[arg(long)]
        to: Option<u32>,
        /// Why (recorded; required).
        #[arg(long)]
        reason: Option<String>,
        /// Remove a held deploy lock first (recorded).
        #[arg(long)]
        force_unlock: bool,
    },
    /// Roll every component back to its state before the latest deploy (components it installed
    /// for the first time are left in place and reported; exit 2 if there are only such).
    RollbackToPrevious {
        /// Why (recorded; required).
        #[arg(long)]
        reason: Option<String>,
        /// Remove a held deploy lock first (recorded).
        #[arg(long)]
        force_unlock: bool,
    },
    /// Revision, status, readiness, images, time and commit per component.
    Status { components: Vec<String> },
    /// Release records (all components, or one); --verify checks the hash chain.
    History {
        component: Option<String>,
        /// Check every record against its digest and the chain; exit 1 on tampering.
        #[arg(long)]
        verify: bool,
    },
    /// What a deploy would change (server-side dry-run against the live objects).
    Diff {
        components: Vec<String>,
        /// Image override as in deploy (NAME=REF).
        #[arg(long = "image")]
        images: Vec<String>,
    },
    /// Delete components (dependents first) and wait until they are gone.
    Delete {
        components: Vec<String>,
        #[arg(long, conflicts_with = "components")]
        all: bool,
        /// Also delete the release records.
        #[arg(long)]
        purge_history: bool,
        #[arg(long)]
        force_unlock: bool,
    },
    /// Graceful shutdown: scale everything to zero (dependents first) and wait for pods to end.
    Shutdown {
        #[arg(long)]
        force_unlock: bool,
    },
    /// Watch error ratio, alerts, restarts and backlog against the environment's [monitoring]
    /// thresholds; on a breach roll the latest deploy back (exit 1).
    Monitor {
        /// How long to watch (default: [monitoring].duration).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
    /// Name the cause of failures (startup, connectivity, configuration, state) with evidence and
    /// a fix hint; exit 0 when nothing is wrong, 1 when something is.
    Diagnose { component: Option<String> },
    /// The weekly deployment review from the release records (Markdown; -o json for JSON).
    Report {
        /// The period, ending now (e.g. 7d, 30d).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: Duration,
    },
    /// Logs of a component's pods (all components by default), secrets redacted.
    Logs {
        component: Option<String>,
        /// Only lines newer than this (e.g. 10m).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Last N lines per container.
        #[arg(long)]
        tail: Option<i64>,
        /// Stream new lines until the pods go away or until SIGINT/SIGTERM (exit 0).
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Components to deploy.
    #[arg(required_unless_present = "all")]
    pub components: Vec<String>,
    /// All components.
    #[arg(long, conflicts_with = "components")]
    pub all: bool,
    /// One at a time in SOP-002 order instead of concurrently along the dependency graph.
    #[arg(long)]
    pub sequential: bool,
    /// Image for a logical image name (component.toml [[images]] name), e.g. fluo-bff=reg/fluo-bff:1.2.
    #[arg(long = "image", value_name = "NAME=REF")]
    pub images: Vec<String>,
    /// Why (recorded; also required with --skip).
    #[arg(long)]
    pub reason: Option<String>,
    /// Change ticket (required where the environment demands approvals).
    #[arg(long)]
    pub change_ticket: Option<String>,
    /// Who approved (required where the environment demands approvals).
    #[arg(long)]
    pub approved_by: Option<String>,
    /// Skip a gate step (needs --reason; refused where the environment disallows skipping).
    #[arg(long = "skip", value_name = "STEP")]
    pub skip: Vec<String>,
    /// Do not run the post-deploy health checks and smoke tests.
    #[arg(long)]
    pub no_post_checks: bool,
    /// Remove a held deploy lock first (recorded in the release records).
    #[arg(long)]
    pub force_unlock: bool,
}
