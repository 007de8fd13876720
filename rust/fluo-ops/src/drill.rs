//! `drill`: the rollback drill (fluo-core's `ops::drill`) with the real post-deploy checks,
//! and `drill --list`, the recorded drills.

use fluo_core::exit::Exit;
use fluo_core::ops::{self, Ctx, drill};
use fluo_core::report::Level;
use fluo_core::report::table;
use fluo_core::state::drills::Drill;

pub async fn run(ctx: &Ctx, list: bool, force_unlock: bool) -> Result<Exit, ops::Error> {
    if list {
        let drills = drill::list(ctx).await?;
        let mut text = list_text(&drills);
        if let Some(warning) = drill::overdue(ctx, chrono::Utc::now()).await? {
            ctx.reporter.progress("", Level::Warn, &warning);
            text.push_str(&format!("\nWARNING: {warning}\n"));
        }
        ctx.reporter.result(&drills, &text);
        return Ok(Exit::Ok);
    }
    let hooks = crate::checks::Checks::of(ctx, vec![], None);
    let outcome = drill::drill(ctx, &hooks, force_unlock).await?;
    let d = &outcome.drill;
    let text = match &d.failed_stage {
        None => format!(
            "rollback drill {} passed: rolled back in {} ({} in all); recorded\n",
            d.id,
            seconds(d.rollback_ms),
            seconds(Some(d.total_ms))
        ),
        Some(stage) => format!(
            "rollback drill {} FAILED at {stage}: {}; recorded\n",
            d.id,
            d.message.as_deref().unwrap_or("")
        ),
    };
    ctx.reporter.result(d, &text);
    Ok(outcome.exit)
}

fn seconds(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0))
}

fn list_text(drills: &[Drill]) -> String {
    if drills.is_empty() {
        return "no rollback drills recorded\n".into();
    }
    let rows: Vec<Vec<String>> = drills
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.started_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                d.by.clone(),
                match &d.failed_stage {
                    None => "passed".into(),
                    Some(stage) => format!("failed ({stage})"),
                },
                seconds(d.rollback_ms),
                seconds(Some(d.total_ms)),
                d.components.join(","),
            ]
        })
        .collect();
    table(
        &[
            "DRILL",
            "STARTED",
            "BY",
            "RESULT",
            "ROLLBACK",
            "TOTAL",
            "COMPONENTS",
        ],
        &rows,
    )
}
