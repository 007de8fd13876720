//! `restore`: the JetStream state back from a backup, under the deploy lock. Everything is
//! read and checked (the environment's `[backup]`, the backup's files) before NATS is touched.

use fluo_core::exit::Exit;
use fluo_core::ops::{self, Ctx, context};
use fluo_core::report::Level;

use crate::jetstream;

pub async fn run(
    ctx: &Ctx,
    backup: Option<&str>,
    reason: Option<String>,
    force_unlock: bool,
) -> Result<Exit, ops::Error> {
    let file = ctx.config.environment_file.display();
    let Some(settings) = &ctx.config.environment.backup else {
        return Err(ops::Error::Refused(format!(
            "restore needs [backup] in {file} (where backups are and how to reach NATS); nothing changed"
        )));
    };
    let Some(reason) = reason.filter(|r| !r.trim().is_empty()) else {
        return Err(ops::Error::Refused(
            "restore needs --reason; nothing changed".into(),
        ));
    };
    let usage = |e: String| ops::Error::Refused(format!("{e}; nothing changed"));
    let path = jetstream::restore::locate(&settings.dir, backup).map_err(usage)?;
    let (index, messages) = jetstream::restore::read(&path).map_err(usage)?;
    let id = fluo_core::state::store::new_id(chrono::Utc::now());
    let lock = context::take_lock(ctx, &format!("restore-{id}"), force_unlock).await?;
    ctx.reporter.progress(
        "nats",
        Level::Info,
        &format!(
            "restoring JetStream from {} (taken {}; reason: {reason})",
            path.display(),
            index.taken_at.format("%Y-%m-%d %H:%M:%SZ")
        ),
    );
    let result = async {
        let conn = jetstream::connect(settings, &ctx.cluster.client, &ctx.namespace).await?;
        jetstream::restore::restore(&conn, &index, &messages).await
    }
    .await;
    lock.release().await;
    let restored = result.map_err(|e| {
        ops::Error::Failed(format!(
            "restore from {} failed: {e} (streams before the failing one are restored)",
            path.display()
        ))
    })?;
    let mut text = format!("restored JetStream from {}\n", path.display());
    for r in &restored {
        text.push_str(&format!(
            "  stream {}: {} message(s), {} consumer(s)\n",
            r.stream, r.messages, r.consumers
        ));
    }
    let json = serde_json::json!({"backup": path, "reason": reason, "streams": restored});
    ctx.reporter.result(&json, &text);
    Ok(Exit::Ok)
}
