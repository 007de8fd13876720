//! `restore`: the JetStream state back from a backup. Everything is read and checked first (the
//! environment's `[backup]`, the backup's files), then gated like a deploy (reason, windows,
//! approvals, confirmation), then done under the deploy lock and recorded in the history of
//! the component `nats` (who, reason, approval, which backup, outcome), failed or not.

use fluo_core::exit::Exit;
use fluo_core::ops::{self, Ctx, context};
use fluo_core::release::Action;
use fluo_core::report::Level;
use fluo_core::teardown::{self, Teardown};

use crate::jetstream;

/// The component whose history records restores (it holds JetStream's volume).
const COMPONENT: &str = "nats";

pub async fn run(ctx: &Ctx, backup: Option<&str>, request: &Teardown) -> Result<Exit, ops::Error> {
    let file = ctx.config.environment_file.display();
    let Some(settings) = &ctx.config.environment.backup else {
        return Err(ops::Error::Refused(format!(
            "restore needs [backup] in {file} (where backups are and how to reach NATS); nothing changed"
        )));
    };
    let usage = |e: String| ops::Error::Refused(format!("{e}; nothing changed"));
    let path = jetstream::restore::locate(&settings.dir, backup).map_err(usage)?;
    let (index, messages) = jetstream::restore::read(&path).map_err(usage)?;
    teardown::gate(ctx, request, "restore", false)?;
    let reason = request.reason.clone().unwrap_or_default();
    let id = fluo_core::state::store::new_id(chrono::Utc::now());
    let deploy_id = format!("restore-{id}");
    let lock = context::take_lock(ctx, &deploy_id, request.force_unlock).await?;
    ctx.reporter.progress(
        COMPONENT,
        Level::Info,
        &format!(
            "restoring JetStream from {} (taken {}; reason: {reason})",
            path.display(),
            index.taken_at.format("%Y-%m-%d %H:%M:%SZ")
        ),
    );
    let started = std::time::Instant::now();
    let result = async {
        let conn = jetstream::connect(settings, &ctx.cluster.client, &ctx.namespace).await?;
        jetstream::restore::restore(&conn, &index, &messages).await
    }
    .await;
    let recorded = record(ctx, request, &index.id, &deploy_id, started, &result).await;
    lock.release().await;
    let restored = result.map_err(|e| {
        ops::Error::Failed(format!(
            "restore from {} failed: {e} (streams before the failing one are restored)",
            path.display()
        ))
    })?;
    let revision = recorded?;
    let mut text = format!(
        "restored JetStream from {} (recorded as {COMPONENT} v{revision})\n",
        path.display()
    );
    for r in &restored {
        text.push_str(&format!(
            "  stream {}: {} message(s), {} consumer(s)\n",
            r.stream, r.messages, r.consumers
        ));
    }
    let json = serde_json::json!({
        "backup": path, "reason": reason, "streams": restored, "revision": revision,
    });
    ctx.reporter.result(&json, &text);
    Ok(Exit::Ok)
}

/// The restore's record in the nats component's history; its revision.
async fn record<T>(
    ctx: &Ctx,
    request: &Teardown,
    backup: &str,
    deploy_id: &str,
    started: std::time::Instant,
    result: &Result<T, String>,
) -> Result<u32, ops::Error> {
    let action = Action::Restore {
        backup: backup.to_owned(),
    };
    teardown::record_operation(ctx, COMPONENT, action, request, deploy_id, started, result).await
}
