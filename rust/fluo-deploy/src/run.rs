//! From parsed flags to a library call and an exit code.

use std::io::Write as _;

use anyhow::Context as _;
use fluo_core::config::{Config, EmergencyConfig, Error as ConfigError};
use fluo_core::exit::Exit;
use fluo_core::ops::deploy::{self, Prepared, Request};
use fluo_core::ops::{self, Ctx};
use fluo_core::report::{Format, Level, Reporter};
use fluo_core::state::session::Session;
use fluo_core::{cluster::Cluster, inspect, logs, ops::rollback, teardown};

use crate::cli::{Cli, Command, Output, TeardownArgs};

pub async fn run(cli: Cli) -> Exit {
    fluo_core::telemetry::init(cli.global.verbose);
    let format = match cli.global.output {
        Output::Text => Format::Text,
        Output::Json => Format::Json,
    };
    let reporter = Reporter::new(format, cli.global.quiet);
    // Checks on flags alone come first: they change nothing.
    if let Some(message) = flag_error(&cli.command) {
        reporter.progress("", Level::Error, &message);
        return Exit::Usage;
    }
    let infra = cli
        .global
        .infra
        .clone()
        .unwrap_or_else(fluo_core::config::default_infra_dir);
    let loaded = match load_config(&cli, &infra) {
        Ok(l) => l,
        Err(e) => {
            reporter.progress(
                "",
                Level::Error,
                &format!("configuration error (nothing changed): {e}"),
            );
            return Exit::Usage;
        }
    };
    if let Some(warning) = &loaded.warning {
        reporter.progress("", Level::Warn, warning);
    }
    let config = loaded.config;
    let session = match Session::open(
        &config,
        writes_records(&cli.command),
        loaded.environment_read,
        accept_unverified(&cli.command),
    ) {
        Ok(s) => s,
        Err(e) => {
            reporter.progress("", Level::Error, &format!("{e} (nothing changed)"));
            return Exit::Usage;
        }
    };
    for warning in session.warnings() {
        reporter.progress("", Level::Warn, warning);
    }
    let deployer = session.deployer();
    // Deploy-time checks that need no cluster run before connecting (once per deploy).
    let prepared = match &cli.command {
        Command::Deploy(args) => match deploy::prepare(&config, &request_of(args, &deployer)) {
            Ok(p) => Some(p),
            Err(e) => {
                reporter.progress("", Level::Error, &format!("{e} (nothing changed)"));
                return e.exit();
            }
        },
        _ => None,
    };
    let mut ctx = match connect(&cli, config, reporter, session).await {
        Ok(ctx) => ctx,
        Err((reporter, e)) => {
            reporter.progress("", Level::Error, &format!("{e:#}"));
            return Exit::Usage;
        }
    };
    if loaded.graph_from_records {
        match ctx.history.list(None).await {
            Ok(records) => ctx
                .config
                .components_from_records(records.iter().map(|r| r.release.component.as_str())),
            Err(e) => {
                ctx.reporter.progress("", Level::Error, &e.to_string());
                return Exit::Failed;
            }
        }
    }
    // Deploys and rollbacks stop cleanly on SIGINT/SIGTERM (fluo_core::ops::stop).
    let signals = match &cli.command {
        Command::Deploy(_) | Command::Rollback { .. } | Command::RollbackToPrevious { .. } => {
            ctx.stop.on_signals().ok()
        }
        _ => None,
    };
    let exit = dispatch(&ctx, cli.command, prepared, &deployer).await;
    if let Some(signals) = signals {
        signals.abort();
    }
    let exit = match exit {
        Ok(exit) => exit,
        Err(e) => {
            ctx.reporter.progress("", Level::Error, &e.to_string());
            e.exit()
        }
    };
    // The chain tips this run wrote, so that CI logs keep them (see `history --verify`).
    for line in ctx.history.anchor_lines() {
        ctx.reporter.progress("", Level::Info, &line);
    }
    exit
}

/// The emergency commands read only the environment and component files and work on from
/// the records when even those are broken; the others need the whole checkout.
fn load_config(cli: &Cli, infra: &std::path::Path) -> Result<EmergencyConfig, ConfigError> {
    let emergency = matches!(
        cli.command,
        Command::Rollback { .. }
            | Command::RollbackToPrevious { .. }
            | Command::History { .. }
            | Command::Status { .. }
            | Command::Logs { .. }
    );
    if emergency {
        return fluo_core::config::load_for_emergency(
            infra,
            &cli.global.env,
            cli.global.context.as_deref(),
            cli.global.namespace.as_deref(),
        );
    }
    Ok(EmergencyConfig {
        config: Config::load(infra, &cli.global.env)?,
        warning: None,
        graph_from_records: false,
        environment_read: true,
    })
}

/// Commands that write release records (and so sign them).
fn writes_records(command: &Command) -> bool {
    !matches!(
        command,
        Command::Status { .. }
            | Command::History { .. }
            | Command::Diff { .. }
            | Command::Logs { .. }
    )
}

fn accept_unverified(command: &Command) -> Option<String> {
    match command {
        Command::Rollback {
            accept_unverified, ..
        }
        | Command::RollbackToPrevious {
            accept_unverified, ..
        } => accept_unverified.clone(),
        _ => None,
    }
}

fn teardown_of(args: &TeardownArgs, deployer: &[String]) -> teardown::Teardown {
    teardown::Teardown {
        reason: args.reason.clone(),
        approval: fluo_core::policy::Approval {
            change_ticket: args.change_ticket.clone(),
            approved_by: args.approved_by.clone(),
            deployer: deployer.to_vec(),
        },
        yes: args.yes,
        force_unlock: args.force_unlock,
    }
}

/// Flag combinations clap cannot express.
fn flag_error(command: &Command) -> Option<String> {
    match command {
        Command::Rollback { reason: None, .. }
        | Command::RollbackToPrevious { reason: None, .. } => Some(
            "a rollback needs --reason (it is recorded with the new revision); nothing changed"
                .into(),
        ),
        Command::Deploy(a) if !a.skip.is_empty() && a.reason.is_none() => {
            Some("--skip needs --reason (it is recorded); nothing changed".into())
        }
        Command::Delete {
            components,
            all: false,
            ..
        } if components.is_empty() => {
            Some("name components to delete or pass --all; nothing changed".into())
        }
        _ => None,
    }
}

fn request_of(args: &crate::cli::DeployArgs, deployer: &[String]) -> Request {
    Request {
        components: args.components.clone(),
        all: args.all,
        sequential: args.sequential,
        images: args.images.clone(),
        reason: args.reason.clone(),
        approval: fluo_core::policy::Approval {
            change_ticket: args.change_ticket.clone(),
            approved_by: args.approved_by.clone(),
            deployer: deployer.to_vec(),
        },
        skipped_checks: args
            .skip
            .iter()
            .map(|s| format!("{s}: {}", args.reason.clone().unwrap_or_default()))
            .collect(),
        post_checks: !args.no_post_checks,
        force_unlock: args.force_unlock,
    }
}

/// `infra/` of the enclosing git checkout, else `./infra`.
async fn connect(
    cli: &Cli,
    config: Config,
    reporter: Reporter,
    session: Session,
) -> Result<Ctx, (Reporter, anyhow::Error)> {
    let env_context = config.environment.environment.context.clone();
    let context = cli.global.context.clone().unwrap_or(env_context.clone());
    if context != env_context {
        reporter.progress(
            "",
            Level::Warn,
            &format!(
                "using --context {context} instead of the environment's context {env_context}"
            ),
        );
    }
    let cluster = match Cluster::connect(cli.global.kubeconfig.as_deref(), &context)
        .await
        .with_context(|| {
            format!(
                "connecting to the cluster of environment `{}`",
                config.environment.environment.name
            )
        }) {
        Ok(c) => c,
        Err(e) => return Err((reporter, e)),
    };
    let namespace = cli
        .global
        .namespace
        .clone()
        .unwrap_or_else(|| config.environment.environment.namespace.clone());
    let (identity, history) = session.into_parts(&cluster.client, &config);
    Ok(Ctx {
        history,
        identity,
        cluster,
        reporter,
        namespace,
        timeout: cli.global.timeout,
        lock_ttl: cli.global.lock_ttl,
        kubeconfig: cli.global.kubeconfig.clone(),
        config,
        stop: ops::Stop::new(),
    })
}

async fn dispatch(
    ctx: &Ctx,
    command: Command,
    prepared: Option<Prepared>,
    deployer: &[String],
) -> Result<Exit, ops::Error> {
    match command {
        Command::Deploy(args) => {
            let Some(prepared) = prepared else {
                return Err(ops::Error::Failed("deploy was not prepared".into()));
            };
            let request = request_of(&args, deployer);
            let hooks = crate::gate::Checks {
                skipped: args.skip.clone(),
                reason: args.reason.clone(),
                client: ctx.cluster.client.clone(),
                context: ctx.cluster.context.clone(),
                namespace: ctx.namespace.clone(),
            };
            let report = deploy::deploy(ctx, &prepared, &request, &hooks).await?;
            ctx.reporter.result(&report, &report.text(ctx));
            Ok(report.exit())
        }
        Command::Rollback {
            component,
            to,
            reason,
            force_unlock,
            ..
        } => {
            let reason = reason.unwrap_or_default();
            let report = rollback::rollback(ctx, &component, to, &reason, force_unlock).await?;
            ctx.reporter.result(&report, &report.text(ctx));
            Ok(report.exit())
        }
        Command::RollbackToPrevious {
            reason,
            force_unlock,
            ..
        } => {
            let reason = reason.unwrap_or_default();
            let report = rollback::rollback_to_previous(ctx, &reason, force_unlock).await?;
            ctx.reporter.result(&report, &report.text(ctx));
            Ok(report.exit())
        }
        Command::Status { components } => {
            let rows = inspect::status(ctx, &components).await?;
            ctx.reporter.result(&rows, &inspect::status_text(&rows));
            Ok(Exit::Ok)
        }
        Command::History { component, verify } => {
            if verify {
                let verdicts = inspect::verify(ctx, component.as_deref()).await?;
                let ok = verdicts.iter().all(|v| v.ok());
                ctx.reporter.result(
                    &serde_json::json!({"ok": ok, "components": verdicts}),
                    &fluo_core::state::verify::report_text(&verdicts),
                );
                return Ok(if ok { Exit::Ok } else { Exit::Failed });
            }
            let entries = inspect::history(ctx, component.as_deref()).await?;
            ctx.reporter
                .result(&entries, &inspect::history_text(&entries));
            Ok(Exit::Ok)
        }
        Command::Diff { components, images } => {
            let diffs = inspect::diff(ctx, &components, &images).await?;
            ctx.reporter.result(&diffs, &inspect::diff_text(&diffs));
            Ok(Exit::Ok)
        }
        Command::Delete {
            components,
            all,
            purge_history,
            teardown,
        } => {
            let request = teardown_of(&teardown, deployer);
            let done = teardown::delete(ctx, &components, all, purge_history, &request).await?;
            ctx.reporter.result(
                &serde_json::json!({"deleted": done}),
                &format!("deleted: {}\n", done.join(", ")),
            );
            Ok(Exit::Ok)
        }
        Command::Shutdown { teardown } => {
            let done = teardown::shutdown(ctx, &teardown_of(&teardown, deployer)).await?;
            ctx.reporter.result(
                &serde_json::json!({"shut_down": done}),
                &format!("shut down: {}\n", done.join(", ")),
            );
            Ok(Exit::Ok)
        }
        Command::Monitor { duration } => Ok(crate::monitor::run(ctx, duration).await),
        Command::Logs {
            component,
            since,
            tail,
            follow,
        } => {
            let options = logs::LogOptions {
                since,
                tail,
                follow,
            };
            // A closed stdout (e.g. `| head`) is not an error. -o json: one JSON object a line.
            let json = ctx.reporter.format() == Format::Json;
            let mut print = |line: &logs::LogLine| {
                let text = if json { line.json() } else { line.text() };
                let _ = writeln!(std::io::stdout(), "{text}");
            };
            if !follow {
                logs::logs(ctx, component.as_deref(), &options, &mut print).await?;
                return Ok(Exit::Ok);
            }
            // Following ends when every followed container's stream ends, or on SIGINT/SIGTERM:
            // both are a normal end (exit 0).
            let mut stop = crate::interrupt::Stop::install().map_err(|e| {
                ops::Error::Failed(format!("installing the SIGINT/SIGTERM handlers: {e}"))
            })?;
            tokio::select! {
                result = logs::logs(ctx, component.as_deref(), &options, &mut print) => result?,
                signal = stop.wait() => ctx.reporter.progress(
                    "",
                    Level::Info,
                    &format!("{signal} received: stopped following logs"),
                ),
            }
            Ok(Exit::Ok)
        }
    }
}
