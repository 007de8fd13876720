//! What a command needs of the trust machinery before it connects: the configuration (the
//! emergency commands read only what they need of the checkout), whether it writes and so signs
//! release records, `--accept-unverified`, and the request of `delete`/`shutdown`.

use fluo_core::cli::Global;
use fluo_core::config::{Config, EmergencyConfig, Error as ConfigError};
use fluo_core::teardown::Teardown;

use crate::cli::{Command, TeardownArgs};

/// The emergency commands (rollback, rollback-to-previous, history, status, logs) read only the
/// environment and component files and work on from the records when even those are broken;
/// the others need the whole checkout.
pub fn load_config(global: &Global, command: &Command) -> Result<EmergencyConfig, ConfigError> {
    let emergency = matches!(
        command,
        Command::Rollback { .. }
            | Command::RollbackToPrevious(_)
            | Command::History { .. }
            | Command::Status { .. }
            | Command::Logs { .. }
    );
    if emergency {
        return fluo_core::config::load_for_emergency(
            &global.infra_dir(),
            &global.env,
            global.context.as_deref(),
            global.namespace.as_deref(),
        );
    }
    Ok(EmergencyConfig {
        config: Config::load(&global.infra_dir(), &global.env)?,
        warning: None,
        graph_from_records: false,
        environment_read: true,
    })
}

/// Commands that write release records (and so sign them). A dry run writes nothing.
pub fn writes_records(command: &Command) -> bool {
    match command {
        Command::Deploy(args) => !args.dry_run,
        Command::Rollback { .. }
        | Command::RollbackToPrevious(_)
        | Command::Delete { .. }
        | Command::Shutdown { .. }
        | Command::Rotate { .. }
        | Command::Monitor { .. } => true,
        Command::Drill { list, .. } => !list,
        // Progressive rollout state only (the deploy that runs the rollout writes its record).
        Command::Promote { .. } | Command::Abort { .. } => false,
        // JetStream state, not release records.
        Command::Restore { .. } => false,
        Command::Status { .. }
        | Command::History { .. }
        | Command::Diff { .. }
        | Command::Diagnose { .. }
        | Command::Report { .. }
        | Command::Announce(_)
        | Command::Incident { .. }
        | Command::Logs { .. }
        | Command::Docs(_) => false,
    }
}

/// `--accept-unverified REASON` of the rollbacks.
pub fn accept_unverified(command: &Command) -> Option<String> {
    match command {
        Command::Rollback { rollback: args, .. } | Command::RollbackToPrevious(args) => {
            args.accept_unverified.clone()
        }
        _ => None,
    }
}

/// The library's request for `delete`/`shutdown`: windows and approvals like a deploy.
pub fn teardown_of(args: &TeardownArgs, deployer: &[String]) -> Teardown {
    Teardown {
        reason: args.reason.clone(),
        approval: args.approval.of(deployer),
        yes: args.yes,
        force_unlock: args.force_unlock,
    }
}
