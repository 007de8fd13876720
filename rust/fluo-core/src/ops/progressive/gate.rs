//! The operator's side of a progressive rollout: `promote` and `abort` (requests the running
//! deploy picks up at its next check), and the end of blue's window: after a blue-green switch
//! the deploy waits out `keep_blue`, then (under the deploy lock) prunes blue; a deploy that
//! did not wait leaves it to the next blue-green deploy of the component or to `promote`.

use chrono::Utc;

use super::state::{self, Live, Request};
use crate::history;
use crate::ops::context::{self, Ctx};
use crate::ops::error::{Error, Result};
use crate::ops::rollout;
use crate::report::Level;

/// `fluo-deploy promote <c>`: passes the gate the running rollout waits at; with no rollout
/// running and blue kept, retires blue now.
pub async fn promote(ctx: &Ctx, component: &str) -> Result<String> {
    let live = current(ctx, component).await?;
    if live.active {
        request(ctx, component, Request::Promote).await?;
        return Ok(format!(
            "promote requested for {component} ({}); the running deploy continues",
            live.phase
        ));
    }
    if live.blue.is_some() {
        let deploy_id = context::new_deploy_id();
        let lock = context::take_lock(ctx, &deploy_id, false).await?;
        let done = retire(ctx, component, true).await;
        lock.release().await;
        return done.ok_or_else(|| Error::Failed(format!("blue of {component} was not retired")));
    }
    Err(Error::Refused(format!(
        "no rollout of {component} is waiting and no blue is kept ({}); nothing changed",
        live.phase
    )))
}

/// `fluo-deploy abort <c>`: the running rollout removes its new pods and records `aborted`.
pub async fn abort(ctx: &Ctx, component: &str) -> Result<String> {
    let live = current(ctx, component).await?;
    if !live.active {
        return Err(Error::Refused(format!(
            "no rollout of {component} is running ({}); nothing changed",
            live.phase
        )));
    }
    request(ctx, component, Request::Abort).await?;
    Ok(format!(
        "abort requested for {component} ({}); the running deploy removes the new pods",
        live.phase
    ))
}

async fn current(ctx: &Ctx, component: &str) -> Result<Live> {
    if ctx.config.component(component).is_none() {
        return Err(Error::Refused(format!(
            "unknown component `{component}` (known: {})",
            ctx.config.component_names().join(", ")
        )));
    }
    let store = state::store(&ctx.cluster.client);
    state::get(&store, component)
        .await
        .map_err(|e| Error::Failed(e.to_string()))?
        .map(|v| v.value)
        .ok_or_else(|| {
            Error::Refused(format!(
                "{component} has no progressive rollout (nothing changed)"
            ))
        })
}

async fn request(ctx: &Ctx, component: &str, request: Request) -> Result<()> {
    let by = ctx.identity.user.clone();
    let store = state::store(&ctx.cluster.client);
    state::update(
        &store,
        component,
        || None,
        |l| {
            l.request = Some((request, by.clone()));
        },
    )
    .await
    .map_err(|e| Error::Failed(e.to_string()))?;
    Ok(())
}

/// Prunes `component`'s kept blue once its window ended (or at once with `now`), while the
/// revision that switched away from it is still current (after a rollback blue serves again).
/// The caller holds the deploy lock. Returns what was done.
pub async fn retire(ctx: &Ctx, component: &str, now: bool) -> Option<String> {
    let store = state::store(&ctx.cluster.client);
    let live = state::get(&store, component).await.ok().flatten()?.value;
    let blue = live.blue.clone()?;
    let records = ctx.history.list(Some(component)).await.ok()?;
    let current = history::current(&records)?;
    let say = |level, message: &str| ctx.reporter.progress(component, level, message);
    let switched_back = current.release.revision != blue.green_revision;
    if !switched_back && !now && Utc::now() < blue.until {
        return None;
    }
    let phase = if switched_back {
        format!(
            "blue {} no longer kept: v{} is current",
            blue.deployment, current.release.revision
        )
    } else {
        say(
            Level::Info,
            &format!(
                "blue {} (v{}): window over, removing it",
                blue.deployment, blue.revision
            ),
        );
        if let Err(e) = rollout::prune_undeclared(ctx, component, &current.release.manifests).await
        {
            say(Level::Error, &format!("removing blue: {e}"));
            return None;
        }
        format!(
            "blue {} (v{}) retired at {}",
            blue.deployment,
            blue.revision,
            Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
        )
    };
    say(Level::Ok, &phase);
    let _ = state::update(
        &store,
        component,
        || None,
        |l| {
            l.blue = None;
            l.phase = phase.clone();
        },
    )
    .await;
    Some(phase)
}

/// Returns once `revision` is no longer `component`'s current one (a rollback switched back).
async fn superseded(ctx: &Ctx, component: &str, revision: u32) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Ok(records) = ctx.history.list(Some(component)).await
            && history::current(&records).is_some_and(|r| r.release.revision != revision)
        {
            return;
        }
    }
}

/// After a deploy (lock released): waits out the windows of the blues this run kept, then
/// retires them under the lock. A stop (SIGINT/SIGTERM) leaves them to a later command.
pub async fn hold_blue(ctx: &Ctx, deploy_id: &str) {
    let store = state::store(&ctx.cluster.client);
    let kept: Vec<Live> = match state::list(&store).await {
        Ok(states) => states
            .into_iter()
            .filter(|l| l.deploy_id == deploy_id && l.blue.is_some())
            .collect(),
        Err(_) => return,
    };
    for live in kept {
        let Some(blue) = &live.blue else { continue };
        let wait = (blue.until - Utc::now()).to_std().unwrap_or_default();
        ctx.reporter.progress(
            &live.component,
            Level::Info,
            &format!(
                "keeping blue {} until {} (`fluo-deploy rollback {c}` switches back, `fluo-deploy promote {c}` retires it now)",
                blue.deployment,
                blue.until.format("%H:%M:%S UTC"),
                c = live.component
            ),
        );
        tokio::select! {
            () = ctx.stop.stopped() => {
                ctx.reporter.progress(&live.component, Level::Warn, "stopped: blue is left for the next command");
                return;
            }
            () = tokio::time::sleep(wait) => {}
            () = superseded(ctx, &live.component, blue.green_revision) => {}
        }
        let id = context::new_deploy_id();
        match context::take_lock(ctx, &id, false).await {
            Ok(lock) => {
                retire(ctx, &live.component, false).await;
                lock.release().await;
            }
            Err(e) => ctx.reporter.progress(
                &live.component,
                Level::Warn,
                &format!("blue left for the next command: {e}"),
            ),
        }
    }
}
