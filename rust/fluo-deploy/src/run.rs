//! From parsed flags to a library call and an exit code.

use std::io::Write as _;

use anyhow::Context as _;
use fluo_core::config::Config;
use fluo_core::exit::Exit;
use fluo_core::notify::EventKind;
use fluo_core::ops::deploy::{self, Prepared, Request};
use fluo_core::ops::{self, Ctx, events, incident};
use fluo_core::report::{Format, Level, Reporter};
use fluo_core::{
    cluster::Cluster, history::History, identity::Identity, inspect, logs, ops::rollback, teardown,
};

use crate::cli::{Cli, Command, Output};

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
    let config = match Config::load(&infra, &cli.global.env) {
        Ok(c) => c,
        Err(e) => {
            reporter.progress(
                "",
                Level::Error,
                &format!("configuration error (nothing changed): {e}"),
            );
            return Exit::Usage;
        }
    };
    // Deploy-time checks that need no cluster run before connecting (once per deploy).
    let prepared = match &cli.command {
        Command::Deploy(args) => match deploy::prepare(&config, &request_of(args)) {
            Ok(p) => Some(p),
            Err(e) => {
                reporter.progress("", Level::Error, &format!("{e} (nothing changed)"));
                return e.exit();
            }
        },
        _ => None,
    };
    let ctx = match connect(&cli, config, reporter).await {
        Ok(ctx) => ctx,
        Err((reporter, e)) => {
            reporter.progress("", Level::Error, &format!("{e:#}"));
            return Exit::Usage;
        }
    };
    // Deploys and rollbacks stop cleanly on SIGINT/SIGTERM (fluo_core::ops::stop).
    let signals = match &cli.command {
        Command::Deploy(_) | Command::Rollback { .. } | Command::RollbackToPrevious { .. } => {
            ctx.stop.on_signals().ok()
        }
        _ => None,
    };
    let exit = dispatch(&ctx, cli.command, prepared).await;
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
    // Waits (bounded) for the notifications still queued; never changes the exit code.
    events::flush(&ctx).await;
    exit
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

fn request_of(args: &crate::cli::DeployArgs) -> Request {
    Request {
        components: args.components.clone(),
        all: args.all,
        sequential: args.sequential,
        images: args.images.clone(),
        reason: args.reason.clone(),
        approval: fluo_core::policy::Approval {
            change_ticket: args.change_ticket.clone(),
            approved_by: args.approved_by.clone(),
        },
        skipped_checks: args
            .skip
            .iter()
            .map(|s| format!("{s}: {}", args.reason.clone().unwrap_or_default()))
            .collect(),
        post_checks: !args.no_post_checks,
        force_unlock: args.force_unlock,
        emergency: args.emergency,
    }
}

/// `infra/` of the enclosing git checkout, else `./infra`.
async fn connect(
    cli: &Cli,
    config: Config,
    reporter: Reporter,
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
    Ok(Ctx {
        history: History::new(&cluster.client),
        identity: Identity::detect(&config.infra_dir),
        cluster,
        reporter,
        namespace,
        timeout: cli.global.timeout,
        lock_ttl: cli.global.lock_ttl,
        kubeconfig: cli.global.kubeconfig.clone(),
        notifier: fluo_core::notify::Notifier::from_config(&config.environment.notifications),
        config,
        stop: ops::Stop::new(),
    })
}

async fn dispatch(
    ctx: &Ctx,
    command: Command,
    prepared: Option<Prepared>,
) -> Result<Exit, ops::Error> {
    match command {
        Command::Deploy(args) => {
            let Some(prepared) = prepared else {
                return Err(ops::Error::Failed("deploy was not prepared".into()));
            };
            let request = request_of(&args);
            let hooks = crate::gate::Checks {
                skipped: args.skip.clone(),
                reason: args.reason.clone(),
                client: ctx.cluster.client.clone(),
                context: ctx.cluster.context.clone(),
                namespace: ctx.namespace.clone(),
            };
            let report =
                incident::while_watching(ctx, deploy::deploy(ctx, &prepared, &request, &hooks))
                    .await;
            let run = events::Run::Deploy {
                emergency: args.emergency,
            };
            let report = events::after(ctx, run, report, &request).await?;
            ctx.reporter.result(&report, &report.text(ctx));
            Ok(report.exit())
        }
        Command::Rollback {
            component,
            to,
            reason,
            force_unlock,
        } => {
            let reason = reason.unwrap_or_default();
            let report = rollback::rollback(ctx, &component, to, &reason, force_unlock).await;
            let request = Request {
                reason: Some(reason),
                ..Default::default()
            };
            let report = events::after(ctx, events::Run::Rollback, report, &request).await?;
            ctx.reporter.result(&report, &report.text(ctx));
            Ok(report.exit())
        }
        Command::RollbackToPrevious {
            reason,
            force_unlock,
        } => {
            let reason = reason.unwrap_or_default();
            let report = rollback::rollback_to_previous(ctx, &reason, force_unlock).await;
            let request = Request {
                reason: Some(reason),
                ..Default::default()
            };
            let report =
                events::after(ctx, events::Run::EmergencyRollback, report, &request).await?;
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
                let problems = inspect::verify(ctx, component.as_deref()).await?;
                let text = if problems.is_empty() {
                    "history verified: every record matches its digest and the chain is intact\n"
                        .to_string()
                } else {
                    format!("history TAMPERED:\n{}\n", problems.join("\n"))
                };
                ctx.reporter.result(
                    &serde_json::json!({"ok": problems.is_empty(), "problems": problems}),
                    &text,
                );
                return Ok(if problems.is_empty() {
                    Exit::Ok
                } else {
                    Exit::Failed
                });
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
            force_unlock,
        } => {
            let done = teardown::delete(ctx, &components, all, purge_history, force_unlock).await;
            let named = if all {
                ctx.config.graph.sequential_order()
            } else {
                components
            };
            events::teardown(ctx, EventKind::Delete, &named, done.as_ref().err());
            let done = done?;
            ctx.reporter.result(
                &serde_json::json!({"deleted": done}),
                &format!("deleted: {}\n", done.join(", ")),
            );
            Ok(Exit::Ok)
        }
        Command::Shutdown { force_unlock } => {
            let done = teardown::shutdown(ctx, force_unlock).await;
            let all = ctx.config.graph.sequential_order();
            events::teardown(ctx, EventKind::Shutdown, &all, done.as_ref().err());
            let done = done?;
            ctx.reporter.result(
                &serde_json::json!({"shut_down": done}),
                &format!("shut down: {}\n", done.join(", ")),
            );
            Ok(Exit::Ok)
        }
        Command::Monitor { duration } => Ok(crate::monitor::run(ctx, duration).await),
        Command::Announce(args) => Ok(crate::change::announce(ctx, args).await),
        Command::Incident { action } => Ok(crate::change::incident(ctx, action).await),
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
            // A closed stdout (e.g. `| head`) is not an error.
            let mut print = |line: &str| {
                let _ = writeln!(std::io::stdout(), "{line}");
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
