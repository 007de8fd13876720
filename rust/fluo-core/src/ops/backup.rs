//! The JetStream backup before a deploy that changes the NATS StatefulSet (SOP-002: "always
//! backup before schema changes"). What counts as a change: the component `nats` has a deployed
//! revision and a StatefulSet of this deploy differs from (or is missing in) that revision's
//! applied manifests. The backup itself talks NATS and lives behind `Hooks::backup`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::context::{Ctx, Hooks};
use super::error::{Error, Result};
use crate::render::Rendered;
use crate::report::Level;

/// The component whose StatefulSet holds the JetStream state.
pub const NATS: &str = "nats";

/// Takes the backup when this deploy changes the NATS StatefulSet; Err (nothing changed yet)
/// when the backup fails. Without `[backup]` it warns and goes on.
pub async fn before_deploy(
    ctx: &Ctx,
    rendered: &BTreeMap<String, Rendered>,
    hooks: &dyn Hooks,
) -> Result<()> {
    let Some(nats) = rendered.get(NATS) else {
        return Ok(());
    };
    let records = ctx.history.list(Some(NATS)).await?;
    let Some(current) = crate::history::current(&records) else {
        return Ok(());
    };
    let changed = changed_stateful_sets(&nats.to_objects(), &current.release.manifests);
    if changed.is_empty() {
        return Ok(());
    }
    let what = changed.join(", ");
    let file = ctx.config.environment_file.display();
    let task = match &ctx.config.environment.backup {
        Some(_) => hooks.backup(&ctx.config, &ctx.namespace),
        None => None,
    };
    let Some(task) = task else {
        ctx.reporter.progress(
            NATS,
            Level::Warn,
            &format!("this deploy changes {what} WITHOUT a JetStream backup: {file} has no [backup] (docs/operations.md)"),
        );
        return Ok(());
    };
    ctx.reporter.progress(
        NATS,
        Level::Info,
        &format!("backing up JetStream before changing {what}"),
    );
    match task.await {
        Ok(location) => {
            ctx.reporter.progress(
                NATS,
                Level::Info,
                &format!("JetStream backed up to {location} (`fluo-deploy restore {location}` brings it back)"),
            );
            Ok(())
        }
        Err(e) => Err(Error::Failed(format!(
            "the JetStream backup before changing {what} failed: {e}; nothing was applied (fix [backup] in {file} or NATS, then deploy again)"
        ))),
    }
}

/// `StatefulSet/<name>` of each StatefulSet in `planned` that differs from the one in
/// `deployed` (or is new).
pub fn changed_stateful_sets(planned: &[Value], deployed: &[Value]) -> Vec<String> {
    let name = |o: &Value| {
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let sets = |objects: &[Value]| -> BTreeMap<String, Value> {
        objects
            .iter()
            .filter(|o| o["kind"] == "StatefulSet")
            .map(|o| (name(o), o.clone()))
            .collect()
    };
    let before = sets(deployed);
    sets(planned)
        .into_iter()
        .filter(|(n, o)| before.get(n) != Some(o))
        .map(|(n, _)| format!("StatefulSet/{n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_changed_or_new_statefulset_counts() {
        let set = |image: &str| {
            json!({"kind": "StatefulSet", "metadata": {"name": "nats"},
                   "spec": {"template": {"spec": {"containers": [{"image": image}]}}}})
        };
        let cm =
            |v: &str| json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"v": v}});
        let deployed = [set("nats:2.10"), cm("a")];
        assert!(changed_stateful_sets(&[set("nats:2.10"), cm("b")], &deployed).is_empty());
        assert_eq!(
            changed_stateful_sets(&[set("nats:2.11"), cm("a")], &deployed),
            ["StatefulSet/nats"]
        );
        assert_eq!(
            changed_stateful_sets(&[set("nats:2.10")], &[cm("a")]),
            ["StatefulSet/nats"]
        );
    }
}
