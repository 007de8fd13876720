//! `fluo-deploy monitor`: the post-deploy watch of fluo-health with the environment's
//! [monitoring] thresholds; a breach rolls the latest deploy back (rollback-to-previous).

use std::time::Duration;

use fluo_core::config::AccessMode;
use fluo_core::exit::Exit;
use fluo_core::ops::{Ctx, events, incident};
use fluo_core::report::Level;
use fluo_health::monitor::{Report, Sample, Verdict};

pub async fn run(ctx: &Ctx, duration: Option<Duration>) -> Exit {
    // In direct access mode the watch reaches URLs only (fluo-health's contract).
    let cluster = (ctx.config.environment.access.mode != AccessMode::Direct).then(|| {
        fluo_health::access::Cluster {
            client: ctx.cluster.client.clone(),
            namespace: ctx.namespace.clone(),
        }
    });
    let progress = |sample: &Sample| ctx.reporter.progress("", Level::Info, &describe(sample));
    let rollback = |breach: fluo_health::monitor::Breach| async move {
        let reason = format!("automatic rollback by fluo-deploy monitor: {breach}");
        ctx.reporter.progress("", Level::Error, &reason);
        match fluo_core::ops::rollback::rollback_to_previous(ctx, &reason, false).await {
            Ok(report) if report.exit() == Exit::Ok => Ok(report.text(ctx)),
            Ok(report) => Err(report.text(ctx)),
            Err(e) => Err(e.to_string()),
        }
    };
    let watch = fluo_health::monitor::run_for(&ctx.config, cluster, duration, progress, rollback);
    // A watching command sends the escalations of open incidents that fall due meanwhile.
    let report = incident::while_watching(ctx, watch).await;
    ctx.reporter.result(&report, &text(&report));
    let rollback = report
        .rollback
        .as_ref()
        .map(|r| if r.ok { Ok(()) } else { Err(r.message.clone()) });
    let verdict = text(&report);
    let healthy = matches!(report.verdict, Verdict::Healthy);
    events::monitoring_finished(ctx, verdict.trim(), healthy, rollback);
    if report.exit_code() == 3 {
        let components = ctx.config.graph.sequential_order();
        let cause = format!(
            "monitor breach could not be rolled back: {}",
            verdict.trim()
        );
        incident::open(ctx, "monitor", &components, &cause, chrono::Utc::now()).await;
    }
    match report.exit_code() {
        0 => Exit::Ok,
        3 => Exit::RollbackFailed,
        _ => Exit::Failed,
    }
}

fn describe(sample: &Sample) -> String {
    if let Some(error) = &sample.error {
        return format!("sample at {}s: {error}", sample.at_ms / 1000);
    }
    let ratio = sample
        .error_ratio
        .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
    let restarts = sample.restarts.map_or("-".to_string(), |r| r.to_string());
    let backlog = sample.backlog.map_or("-".to_string(), |b| b.to_string());
    format!(
        "sample at {}s: 5xx ratio {ratio}, restarts {restarts}, backlog {backlog}, alerts firing {}",
        sample.at_ms / 1000,
        sample.firing_alerts.len()
    )
}

fn text(report: &Report) -> String {
    let verdict = match &report.verdict {
        Verdict::Healthy => format!("healthy: {} samples, no breach\n", report.samples.len()),
        Verdict::Breached { breach } => format!("BREACH: {breach}\n"),
        Verdict::Blind { reason } => format!("monitor blind (counts as failed): {reason}\n"),
    };
    match &report.rollback {
        Some(r) if r.ok => format!("{verdict}rolled back:\n{}", r.message),
        Some(r) => format!("{verdict}ROLLBACK FAILED (escalate):\n{}", r.message),
        None => verdict,
    }
}
