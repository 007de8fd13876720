//! One library call per fluo-deploy command, its result printed as -o says.

use std::io::Write as _;

use fluo_core::cli::Output;
use fluo_core::exit::Exit;
use fluo_core::notify::EventKind;
use fluo_core::ops::deploy::Request;
use fluo_core::ops::deploy::{self, Prepared};
use fluo_core::ops::rollback;
use fluo_core::ops::{self, Ctx, events, incident, progressive};
use fluo_core::report::Level;
use fluo_core::{inspect, logs, teardown};

use crate::cli::{Command, DeployArgs, RotateTarget};

pub async fn dispatch(
    ctx: &Ctx,
    command: Command,
    prepared: Option<Prepared>,
    deployer: &[String],
) -> Result<Exit, ops::Error> {
    if let Command::Deploy(args) = &command {
        let Some(prepared) = prepared else {
            return Err(ops::Error::Failed("deploy was not prepared".into()));
        };
        return deploy_or_plan(ctx, args, &prepared, deployer).await;
    }
    match command {
        // Handled above (it needs the prepared deploy).
        Command::Deploy(_) => Ok(Exit::Ok),
        Command::Rollback {
            component,
            to,
            rollback: args,
        } => {
            let reason = args.reason.unwrap_or_default();
            let report = rollback::rollback(ctx, &component, to, &reason, args.force_unlock).await;
            rollback_finished(ctx, events::Run::Rollback, report, reason).await
        }
        Command::RollbackToPrevious(args) => {
            let reason = args.reason.unwrap_or_default();
            let report = rollback::rollback_to_previous(ctx, &reason, args.force_unlock).await;
            rollback_finished(ctx, events::Run::EmergencyRollback, report, reason).await
        }
        Command::Status { components } => {
            let rows = inspect::status(ctx, &components).await?;
            let rollouts =
                progressive::state::list(&progressive::state::store(&ctx.cluster.client))
                    .await
                    .unwrap_or_default();
            let rollouts: Vec<_> = rollouts
                .into_iter()
                .filter(|r| components.is_empty() || components.contains(&r.component))
                .collect();
            match ops::drill::overdue(ctx, chrono::Utc::now()).await {
                Ok(None) => {}
                Ok(Some(warning)) => ctx.reporter.progress("", Level::Warn, &warning),
                Err(e) => ctx.reporter.progress("", Level::Warn, &e.to_string()),
            }
            if rollouts.is_empty() {
                ctx.reporter.result(&rows, &inspect::status_text(&rows));
            } else {
                let text = format!(
                    "{}\nPROGRESSIVE ROLLOUTS\n{}",
                    inspect::status_text(&rows),
                    progressive::state::text(&rollouts)
                );
                let json = serde_json::json!({"components": rows, "rollouts": rollouts});
                ctx.reporter.result(&json, &text);
            }
            Ok(Exit::Ok)
        }
        Command::Drill { list, force_unlock } => crate::drill::run(ctx, list, force_unlock).await,
        Command::Restore { backup, teardown } => {
            let request = crate::trust::teardown_of(&teardown, deployer);
            crate::restore::run(ctx, backup.as_deref(), &request).await
        }
        Command::Rotate {
            target: RotateTarget::Nats { teardown },
        } => {
            let request = crate::trust::teardown_of(&teardown, deployer);
            crate::rotate::run(ctx, &request).await
        }
        Command::Promote { component } => {
            let done = progressive::gate::promote(ctx, &component).await?;
            ctx.reporter
                .result(&serde_json::json!({"promote": done}), &format!("{done}\n"));
            Ok(Exit::Ok)
        }
        Command::Abort { component } => {
            let done = progressive::gate::abort(ctx, &component).await?;
            ctx.reporter
                .result(&serde_json::json!({"abort": done}), &format!("{done}\n"));
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
            let request = crate::trust::teardown_of(&teardown, deployer);
            let done = teardown::delete(ctx, &components, all, purge_history, &request).await;
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
        Command::Shutdown { teardown } => {
            let request = crate::trust::teardown_of(&teardown, deployer);
            let done = teardown::shutdown(ctx, &request).await;
            let all = ctx.config.graph.sequential_order();
            events::teardown(ctx, EventKind::Shutdown, &all, done.as_ref().err());
            let done = done?;
            ctx.reporter.result(
                &serde_json::json!({"shut_down": done}),
                &format!("shut down: {}\n", done.join(", ")),
            );
            Ok(Exit::Ok)
        }
        Command::Diagnose { component } => {
            let mut diagnosis = ops::diagnose::diagnose(ctx, component.as_deref()).await?;
            if component.as_deref().is_none_or(|c| c == "nats") {
                let observed = crate::jetstream::observe::observe(ctx).await;
                ops::diagnose::jetstream::add(&mut diagnosis, observed);
            }
            ctx.reporter
                .result(&diagnosis, &ops::diagnose::text(&diagnosis));
            Ok(if diagnosis.ok { Exit::Ok } else { Exit::Failed })
        }
        Command::Report { since } => {
            let review = ops::review::report(ctx, since).await?;
            ctx.reporter
                .result(&review, &ops::review::markdown(&review));
            Ok(Exit::Ok)
        }
        Command::Monitor { duration } => Ok(crate::monitor::run(ctx, duration).await),
        Command::Announce(args) => Ok(crate::change::announce(ctx, args).await),
        Command::Incident { action } => Ok(crate::change::incident(ctx, action).await),
        // Printed before connecting (run::print_docs).
        Command::Docs(_) => Ok(Exit::Ok),
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
            let json = ctx.reporter.output() == Output::Json;
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

/// The end of a rollback: its events (an incident when it failed), its report and exit code.
async fn rollback_finished(
    ctx: &Ctx,
    run: events::Run,
    report: ops::Result<ops::RunReport>,
    reason: String,
) -> Result<Exit, ops::Error> {
    let request = Request {
        reason: Some(reason),
        ..Default::default()
    };
    let report = events::after(ctx, run, report, &request).await?;
    ctx.reporter.result(&report, &report.text(ctx));
    Ok(report.exit())
}

/// `deploy`: the plan with --dry-run, else the deploy with the gate and post-deploy checks.
async fn deploy_or_plan(
    ctx: &Ctx,
    args: &DeployArgs,
    prepared: &Prepared,
    deployer: &[String],
) -> Result<Exit, ops::Error> {
    let request = request_of(args, deployer);
    if args.dry_run {
        let plan = crate::plan::plan(ctx, prepared, &request).await?;
        ctx.reporter.result(&plan, &plan.text());
        return Ok(Exit::Ok);
    }
    let hooks = crate::checks::Checks::of(ctx, args.skip.clone(), args.reason.clone());
    let report =
        incident::while_watching(ctx, deploy::deploy(ctx, prepared, &request, &hooks)).await;
    let run = events::Run::Deploy {
        emergency: args.emergency,
    };
    let report = events::after(ctx, run, report, &request).await?;
    ctx.reporter.result(&report, &report.text(ctx));
    Ok(report.exit())
}

/// The library's deploy request for `deploy`'s flags.
pub fn request_of(args: &DeployArgs, deployer: &[String]) -> Request {
    Request {
        components: args.components.clone(),
        all: args.all,
        sequential: args.sequential,
        images: args.images.clone(),
        reason: args.reason.clone(),
        approval: args.approval.of(deployer),
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
