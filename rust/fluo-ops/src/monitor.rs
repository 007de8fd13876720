//! `fluo-deploy monitor`: the post-deploy watch of fluo-health with the environment's
//! [monitoring] thresholds; a breach rolls the latest deploy back (rollback-to-previous).
//! The queries and thresholds are printed once, then one compact line per sample.

use std::time::Duration;

use fluo_core::config::AccessMode;
use fluo_core::exit::Exit;
use fluo_core::ops::{Ctx, events, incident};
use fluo_core::report::Level;
use fluo_health::monitor::{self, Breach, Sample};

pub async fn run(ctx: &Ctx, duration: Option<Duration>) -> Exit {
    // In direct access mode the watch reaches URLs only (fluo-health's contract).
    let cluster = (ctx.config.environment.access.mode != AccessMode::Direct).then(|| {
        fluo_health::access::Cluster {
            client: ctx.cluster.client.clone(),
            namespace: ctx.namespace.clone(),
        }
    });
    let mut watch = monitor::Config::from_environment(&ctx.config.environment.monitoring);
    if let Some(duration) = duration {
        watch.duration = duration;
    }
    for line in watch.describe() {
        ctx.reporter.progress("", Level::Info, &line);
    }
    let mut taken = 0;
    let progress = |sample: &Sample| {
        taken += 1;
        let level = if sample.error.is_some() {
            Level::Warn
        } else {
            Level::Info
        };
        ctx.reporter.progress("", level, &sample.summary(taken));
    };
    let rollback = |breach: Breach| async move {
        let reason = format!("automatic rollback by fluo-deploy monitor: {breach}");
        ctx.reporter.progress("", Level::Error, &reason);
        match fluo_core::ops::rollback::rollback_to_previous(ctx, &reason, false).await {
            Ok(report) if report.exit() == Exit::Ok => Ok(report.text(ctx)),
            Ok(report) => Err(report.text(ctx)),
            Err(e) => Err(e.to_string()),
        }
    };
    let watching = monitor::run_for(&ctx.config, cluster, &watch, progress, rollback);
    // A watching command sends the escalations of open incidents that fall due meanwhile.
    let report = incident::while_watching(ctx, watching).await;
    ctx.reporter.result(&report, &report.text());
    let verdict = report.text();
    let rolled_back = report
        .rollback
        .as_ref()
        .map(|r| if r.ok { Ok(()) } else { Err(r.message.clone()) });
    let healthy = matches!(report.verdict, monitor::Verdict::Healthy);
    events::monitoring_finished(ctx, verdict.trim(), healthy, rolled_back);
    if report.exit() == Exit::RollbackFailed {
        let components = ctx.config.graph.sequential_order();
        let cause = format!(
            "monitor breach could not be rolled back: {}",
            verdict.trim()
        );
        incident::open(ctx, "monitor", &components, &cause, chrono::Utc::now()).await;
    }
    report.exit()
}
