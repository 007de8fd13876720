//! fluo-deploy's command line (kubectl/helm habits): the shared global flags of
//! `fluo_core::cli::Global`, the subcommands and their flags. Turning them into library calls is
//! the job of the `run` and `dispatch` modules.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fluo_core::cli::docs::DocsCommand;
use fluo_core::cli::{Global, duration};
use fluo_core::exit::EXIT_CODES;

/// Deploy, roll back and inspect the FLUO components (SOP-002).
#[derive(Debug, Parser)]
#[command(
    name = "fluo-deploy",
    version,
    after_help = EXIT_CODES,
    mut_arg("timeout", |a| a.help(
        "Rollout timeout for every component, e.g. 5m (default: each component's [rollout] timeout)"
    ))
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// How long the deploy lock lives without renewal.
    #[arg(long, global = true, env = "FLUO_LOCK_TTL", default_value = "30s", value_parser = duration::positive, hide = true)]
    pub lock_ttl: Duration,
    #[command(subcommand)]
    pub command: Command,
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
        #[command(flatten)]
        rollback: RollbackArgs,
    },
    /// Roll every component back to its state before the latest deploy (components it installed
    /// for the first time are left in place and reported; exit 2 if there are only such).
    RollbackToPrevious(RollbackArgs),
    /// The rollback drill: deploy the deployed release again (marked drill), verify, roll it
    /// back as `rollback-to-previous` does, verify, and record the drill (time to roll back,
    /// result, who, when). Exit 0 passed, 1 failed, 3 its rollback failed (escalate).
    Drill {
        /// List the recorded drills instead (and whether one is overdue).
        #[arg(long, conflicts_with = "force_unlock")]
        list: bool,
        /// Remove a held deploy lock first (recorded).
        #[arg(long)]
        force_unlock: bool,
    },
    /// Restore the JetStream state from a backup (`[backup]`; one is taken before every deploy
    /// that changes the NATS StatefulSet): each stream in it is emptied and refilled with its
    /// messages and consumers. BACKUP is a backup directory or id (default: the newest).
    /// Gated like a deploy (windows, approvals, --reason, confirmation), under the deploy lock,
    /// and recorded in the nats component's history (who, reason, which backup, outcome).
    Restore {
        backup: Option<String>,
        #[command(flatten)]
        teardown: TeardownArgs,
    },
    /// Rotate credentials on the live cluster without a failed request, gated like a deploy
    /// (windows, approvals, --reason, confirmation), under the deploy lock, recorded in the
    /// component's history; after a failure the same command resumes where it stopped.
    Rotate {
        #[command(subcommand)]
        target: RotateTarget,
    },
    /// Pass the manual gate a canary or blue-green rollout of COMPONENT waits at; with no
    /// rollout running and blue kept after a switch, remove blue now.
    Promote { component: String },
    /// Stop the running canary or blue-green rollout of COMPONENT: its new pods are removed,
    /// the stable revision stays, the revision is recorded `aborted`.
    Abort { component: String },
    /// Revision, status, readiness, images, time and commit per component, and the step and
    /// analysis of progressive rollouts.
    Status { components: Vec<String> },
    /// Release records (all components, or one); --verify checks that nothing was rewritten.
    History {
        component: Option<String>,
        /// Check every record (digest, signature, chain, anchored tip); exit 1 naming what fails.
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
        /// Also delete the release records (where the environment allows it; recorded).
        #[arg(long)]
        purge_history: bool,
        #[command(flatten)]
        teardown: TeardownArgs,
    },
    /// Graceful shutdown: scale everything to zero (dependents first) and wait for pods to end.
    Shutdown {
        #[command(flatten)]
        teardown: TeardownArgs,
    },
    /// Watch error ratio, alerts, restarts and backlog against the environment's [monitoring]
    /// thresholds; on a breach roll the latest deploy back (exit 1).
    Monitor {
        /// How long to watch, e.g. 30m (default: [monitoring].duration).
        #[arg(long, value_name = "DURATION", value_parser = duration::positive)]
        duration: Option<Duration>,
    },
    /// Name the cause of failures (startup, connectivity, configuration, state) with evidence and
    /// a fix hint; exit 0 when nothing is wrong, 1 when something is.
    Diagnose { component: Option<String> },
    /// The weekly deployment review from the release records (Markdown; -o json for JSON).
    Report {
        /// The period, ending now (e.g. 7d, 30d).
        #[arg(long, default_value = "7d", value_parser = duration::positive)]
        since: Duration,
    },
    /// Announce a planned deploy (recorded in the cluster, notified); environments with a
    /// [notice] period refuse deploys no announcement covers. --list shows them, --cancel ID
    /// withdraws one.
    Announce(AnnounceArgs),
    /// Open incidents (an automatic rollback failed) and their escalation ladder.
    Incident {
        #[command(subcommand)]
        action: Option<IncidentAction>,
    },
    /// Logs of a component's pods (all components by default), secrets redacted.
    Logs {
        component: Option<String>,
        /// Only lines newer than this (e.g. 10m).
        #[arg(long, value_name = "DURATION", value_parser = duration::positive)]
        since: Option<Duration>,
        /// Last N lines per container.
        #[arg(long)]
        tail: Option<i64>,
        /// Stream new lines until the pods go away or until SIGINT/SIGTERM (exit 0).
        #[arg(short = 'f', long)]
        follow: bool,
    },
    #[command(flatten)]
    Docs(DocsCommand),
}

#[derive(Debug, Subcommand)]
pub enum RotateTarget {
    /// The NATS users (Secrets nats-auth and nats-credentials): a new user per service beside
    /// the current one and a NATS reload, then the BFF and workers restarted onto it, then the
    /// old users dropped and NATS reloaded again until it refuses them. Checked first: a
    /// refusal changes nothing (exit 2). No password is printed.
    Nats {
        #[command(flatten)]
        teardown: TeardownArgs,
    },
}

// What both rollbacks take (a plain comment: a doc comment would become their help text).
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Why (recorded; required).
    #[arg(long)]
    pub reason: Option<String>,
    /// Remove a held deploy lock first (recorded).
    #[arg(long)]
    pub force_unlock: bool,
    /// Use release records that fail `history --verify` anyway (the reason is recorded).
    #[arg(long, value_name = "REASON")]
    pub accept_unverified: Option<String>,
}

// The approval flags of the commands that obey approvals (deploy, delete, shutdown); a plain
// comment, as on RollbackArgs.
#[derive(Debug, Args)]
pub struct ApprovalArgs {
    /// Change ticket (required where the environment demands approvals).
    #[arg(long)]
    pub change_ticket: Option<String>,
    /// Who approved (required where the environment demands approvals).
    #[arg(long)]
    pub approved_by: Option<String>,
}

impl ApprovalArgs {
    /// The library's approval of a run by `deployer` (user and signing key id).
    pub fn of(&self, deployer: &[String]) -> fluo_core::policy::Approval {
        fluo_core::policy::Approval {
            change_ticket: self.change_ticket.clone(),
            approved_by: self.approved_by.clone(),
            deployer: deployer.to_vec(),
        }
    }
}

/// What `delete` and `shutdown` need besides their targets: they obey windows and approvals
/// like a deploy and are recorded.
#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Why (recorded; required).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub approval: ApprovalArgs,
    /// Confirm without typing the environment name (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Remove a held deploy lock first (recorded).
    #[arg(long)]
    pub force_unlock: bool,
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
    #[command(flatten)]
    pub approval: ApprovalArgs,
    /// Skip a gate step (needs --reason; refused where the environment disallows skipping).
    #[arg(long = "skip", value_name = "STEP")]
    pub skip: Vec<String>,
    /// Do not run the post-deploy health checks and smoke tests.
    #[arg(long)]
    pub no_post_checks: bool,
    /// Remove a held deploy lock first (recorded in the release records).
    #[arg(long)]
    pub force_unlock: bool,
    /// Emergency deploy: waives the notice period and deployment windows (never approvals),
    /// needs --reason, notifies at once and is marked in the records.
    #[arg(long)]
    pub emergency: bool,
    /// Print the plan (graph order, versions from -> to, the diff against the live cluster)
    /// and exit without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// Components the deploy will touch (default: all).
    pub components: Vec<String>,
    /// Window start, UTC (RFC 3339 or "YYYY-MM-DD HH:MM").
    #[arg(long, value_parser = parse_time, required_unless_present_any = ["list", "cancel"])]
    pub start: Option<chrono::DateTime<chrono::Utc>>,
    /// Window end, UTC (default: start + 4h).
    #[arg(long, value_parser = parse_time, conflicts_with = "duration")]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// Window length instead of --end (e.g. 2h).
    #[arg(long, value_parser = duration::positive)]
    pub duration: Option<Duration>,
    /// Change ticket of the planned deploy.
    #[arg(long)]
    pub change_ticket: Option<String>,
    /// What the deploy is for (required).
    #[arg(long)]
    pub reason: Option<String>,
    /// List this environment's announcements.
    #[arg(long, conflicts_with_all = ["cancel", "start"])]
    pub list: bool,
    /// Cancel announcement ID (recorded, notified).
    #[arg(long, value_name = "ID")]
    pub cancel: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum IncidentAction {
    /// Open incidents (the default).
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
    },
    /// Send due escalations until no open incident has steps left.
    Watch,
    /// Close an incident (recorded, notified): no further escalation.
    Resolve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// RFC 3339, or "YYYY-MM-DD HH:MM" in UTC.
fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").map(|t| t.and_utc())
        })
        .map_err(|_| format!("{text:?} is not a time; use RFC 3339 or \"YYYY-MM-DD HH:MM\" (UTC)"))
}
