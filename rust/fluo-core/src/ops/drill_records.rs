//! The rollback drills' records in the cluster and their age: listing, the `status` warning and
//! the deploy gate of `[drill] gate`. Apart from `drill` so that `deploy` can ask the gate
//! without depending on the drill run (which notifies through `events`, which names deploy's
//! types).

use chrono::{DateTime, Utc};

use super::context::Ctx;
use super::error::{Error, Result};
use crate::exit::Exit;
use crate::state::drills::{self, Drill, KIND};
use crate::state::store::{self, Store};

pub(super) fn store(ctx: &Ctx) -> Store {
    Store::new(&ctx.cluster.client, KIND)
}

/// Every recorded drill, oldest first.
pub async fn list(ctx: &Ctx) -> Result<Vec<Drill>> {
    let drills = store(ctx).list::<Drill>().await.map_err(failed)?;
    Ok(drills.into_iter().map(|v| v.value).collect())
}

/// The `status` warning at `now`: None when a successful drill is within the period.
pub async fn overdue(ctx: &Ctx, now: DateTime<Utc>) -> Result<Option<String>> {
    let period = ctx.config.environment.drill.period;
    Ok(drills::overdue(&list(ctx).await?, period, now))
}

/// With `[drill] gate = true`, a stale drill refuses the deploy (exit 5, before anything is
/// applied). The first deploy of an environment passes: there is nothing to drill yet.
pub async fn check_gate(ctx: &Ctx, now: DateTime<Utc>) -> Result<()> {
    if !ctx.config.environment.drill.gate || ctx.history.versions_by_component().await?.is_empty() {
        return Ok(());
    }
    match overdue(ctx, now).await? {
        Some(finding) => Err(Error::Gate(
            Exit::Policy,
            format!(
                "drill: {finding} ([drill] gate = true in {})",
                ctx.config.environment_file.display()
            ),
        )),
        None => Ok(()),
    }
}

pub(super) fn failed(e: store::Error) -> Error {
    Error::Failed(format!("rollback drill records: {e}"))
}
