//! Blue-green: the new revision (green) runs in full in the slot not serving, reachable through
//! `<service>-preview`; after readiness, the post-deploy checks that reach the component
//! (through the previews: green takes no production request before its switch), the analysis
//! of green (against blue as baseline) and, if configured, a manual gate, the converge switches
//! the Services' slot selector to green. Any failure deletes green and leaves blue serving.
//! Blue stays scaled for `keep_blue`, so `rollback` within it re-applies blue's record:
//! a selector switch, no new pods; then it is pruned (`gate::retire`). A blue from a rolling
//! revision has no slot, so green would share its Services' selector: they are pinned to
//! blue's pods until the switch (`split::pin`).

use futures::future::BoxFuture;
use serde_json::Value;

use super::state::Blue;
use super::{Run, aborted, gate, split, workload};
use crate::history;
use crate::ops::context::RunInfo;
use crate::ops::outcome::ComponentResult;
use crate::ops::recover;
use crate::ops::rollout::{self, Phase, Planned};
use crate::report::Level;

/// Rolls `planned` out into the free slot; see the module documentation.
pub async fn roll_out_or_back(run: &Run<'_>, planned: &Planned, info: &RunInfo) -> ComponentResult {
    let ctx = run.ctx;
    let c = run.component.as_str();
    // We hold the deploy lock: a blue whose window has ended goes first.
    gate::retire(ctx, c, false).await;
    let records = ctx.history.list(Some(c)).await.unwrap_or_default();
    let current = history::current(&records);
    let blue = current.and_then(|r| workload::deployment(&r.release.manifests).cloned());
    let slot = workload::next_slot(current.and_then(|r| workload::live_slot(&r.release.manifests)));
    let mut planned = planned.clone();
    planned.manifests = workload::slotted(&planned.manifests, slot);
    let unslotted = current
        .filter(|r| workload::live_slot(&r.release.manifests).is_none())
        .map(|r| r.release.manifests.clone());
    let phase = BlueGreen {
        run,
        slot,
        blue: blue.clone(),
        unslotted,
    };
    let result = recover::roll_out_or_back_phased(ctx, &planned, info, Some(&phase)).await;
    if let (ComponentResult::Deployed { revision, .. }, Some(blue), Some(current)) =
        (&result, &blue, current)
    {
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(run.strategy.keep_blue).unwrap_or_default();
        let kept = Blue {
            revision: current.release.revision,
            green_revision: *revision,
            deployment: workload::name_of(blue).to_string(),
            until,
        };
        run.say(
            Level::Ok,
            &format!(
                "switched to {slot}; blue {} (v{}) kept until {} (rollback within it is a selector switch)",
                kept.deployment,
                kept.revision,
                until.format("%H:%M:%S UTC")
            ),
        );
        run.set(|l| {
            l.phase = format!("switched to {slot} (v{revision})");
            l.active = false;
            l.blue = Some(kept.clone());
        })
        .await;
    }
    result
}

struct BlueGreen<'a> {
    run: &'a Run<'a>,
    slot: &'static str,
    /// The serving revision's Deployment (None: first install).
    blue: Option<Value>,
    /// The serving revision's objects when they have no slot (a rolling revision before).
    unslotted: Option<Vec<Value>>,
}

impl Phase for BlueGreen<'_> {
    fn run<'a>(
        &'a self,
        revision: u32,
        manifests: &'a [Value],
    ) -> BoxFuture<'a, rollout::Result<Vec<String>>> {
        Box::pin(self.green(revision, manifests))
    }

    fn keeps_previous(&self) -> bool {
        true
    }
}

impl BlueGreen<'_> {
    async fn green(&self, revision: u32, manifests: &[Value]) -> rollout::Result<Vec<String>> {
        let run = self.run;
        let Some(green) = workload::deployment(manifests) else {
            return Err(aborted("no Deployment to run green from".into(), vec![]));
        };
        run.begin(revision, None).await;
        let previews = workload::previews(manifests);
        let mut created = vec![green.clone()];
        created.extend(previews.iter().cloned());
        let slot = self.slot;
        run.phase(&format!(
            "green: v{revision} in slot {slot} ({}), preview {}",
            workload::name_of(green),
            previews
                .iter()
                .map(|p| workload::name_of(p).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await;
        let mut steps = vec![format!("green: v{revision} in slot {slot}")];
        let pinned = match (&self.unslotted, &self.blue) {
            (Some(serving), Some(blue)) => match split::pin(run, serving, blue).await {
                Ok(unpin) => unpin,
                Err(e) => {
                    let reason = format!("pinning the Services to blue: {e}");
                    return Err(self.abort(&[], &[], reason, steps).await);
                }
            },
            _ => vec![],
        };
        let abort =
            |reason: String, steps: Vec<String>| self.abort(&created, &pinned, reason, steps);
        if let Err(e) = run.apply_and_wait(&created).await {
            return Err(abort(format!("green not ready: {e}"), steps).await);
        }
        if let Some(reason) = run.pause(run.strategy.pause).await {
            return Err(abort(reason, steps).await);
        }
        match self.check_through_previews(manifests).await {
            Ok(Some(passed)) => steps.push(format!(
                "green: checks through the preview passed: {passed}"
            )),
            Ok(None) => {}
            Err(failed) => {
                let reason = format!("green: checks through the preview failed: {failed}");
                steps.push(reason.clone());
                return Err(abort(reason, steps).await);
            }
        }
        let new = run.pods_of(green, None).await;
        let baseline = match &self.blue {
            Some(blue) => run.pods_of(blue, None).await,
            None => Vec::new(),
        };
        match run.analyse("green", new, baseline).await {
            Ok(summary) => steps.push(format!("green: {summary}")),
            Err(evidence) => {
                let reason = format!(
                    "green: analysis failed: {}",
                    evidence.last().cloned().unwrap_or_default()
                );
                steps.extend(evidence.into_iter().map(|e| format!("green: {e}")));
                return Err(abort(reason, steps).await);
            }
        }
        if run.strategy.manual_switch
            && let Some(reason) = run.gate("green ready").await
        {
            return Err(abort(reason, steps).await);
        }
        if let Err(e) = run.remove(&previews).await {
            run.say(Level::Warn, &format!("removing the preview Service: {e}"));
        }
        run.phase(&format!("switching the Service selector to {slot}"))
            .await;
        steps.push(format!("switched to slot {slot}"));
        Ok(steps)
    }

    /// The post-deploy checks that reach this component, through its preview Services (None:
    /// no checks in this run, or none reach the component).
    async fn check_through_previews(&self, manifests: &[Value]) -> Result<Option<String>, String> {
        let run = self.run;
        let Some(checks) = run.checks else {
            return Ok(None);
        };
        let previews = workload::preview_pairs(manifests);
        let ctx = run.ctx;
        let Some(running) =
            checks.preview_checks(&ctx.config, &ctx.namespace, &run.component, &previews)
        else {
            return Ok(None);
        };
        let names: Vec<&str> = previews.iter().map(|(_, p)| p.as_str()).collect();
        run.phase(&format!(
            "green: health and smoke checks through {}",
            names.join(", ")
        ))
        .await;
        let result = running.await;
        let level = if result.is_ok() {
            Level::Ok
        } else {
            Level::Error
        };
        let line = match &result {
            Ok(passed) => format!("checks through the preview passed: {passed}"),
            Err(failed) => format!("checks through the preview failed: {failed}"),
        };
        run.say(level, &line);
        run.set(|l| l.analysis.push(line.clone())).await;
        result.map(Some)
    }

    /// Deletes green and its previews, unpins blue's Services (blue keeps serving throughout)
    /// and returns the abort error.
    async fn abort(
        &self,
        created: &[Value],
        pinned: &[Value],
        reason: String,
        steps: Vec<String>,
    ) -> rollout::Error {
        let run = self.run;
        run.say(Level::Error, &format!("green aborted: {reason}"));
        if let Err(e) = run.remove(created).await {
            run.say(Level::Error, &format!("removing green: {e}"));
        }
        if !pinned.is_empty() {
            split::unpin(run, pinned).await;
        }
        run.set(|l| {
            l.phase = format!("aborted: {reason}");
            l.active = false;
        })
        .await;
        aborted(reason, steps)
    }
}
