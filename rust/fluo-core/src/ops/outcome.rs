//! What a run did: one result per component, the run's report, its exit code and its text
//! (a table, the post-check cause once, and one escalation block when rollbacks failed).

use std::collections::BTreeMap;

use serde::Serialize;

use super::context::Ctx;
use super::stop::Reason;
use crate::exit::Exit;

/// One component's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum ComponentResult {
    Deployed {
        revision: u32,
        duration_ms: u64,
        /// For a rollback: the earlier revision whose manifests this revision re-applied.
        #[serde(skip_serializing_if = "Option::is_none")]
        restores: Option<u32>,
    },
    /// Failed and was rolled back to `restored` (None: a first install that was removed).
    RolledBack {
        failed_revision: u32,
        message: String,
        restored: Option<u32>,
    },
    RollbackFailed {
        failed_revision: u32,
        message: String,
        rollback_error: String,
    },
    Skipped {
        because: String,
    },
    /// Stopped after the deploy lock was lost, and not rolled back: another run (`by`) wrote a
    /// newer revision of the component, so it is that run's now.
    TakenOver {
        failed_revision: u32,
        message: String,
        by: String,
    },
    /// `rollback-to-previous`: deploy `installed_by` installed the component for the first
    /// time, so there is no earlier release to restore; it stays at `revision` (None: it is not
    /// installed, its first install failed and was removed).
    NoPrevious {
        revision: Option<u32>,
        installed_by: String,
    },
}

impl ComponentResult {
    pub fn succeeded(&self) -> bool {
        matches!(self, ComponentResult::Deployed { .. })
    }

    fn exit(&self) -> Exit {
        match self {
            ComponentResult::Deployed { .. } | ComponentResult::NoPrevious { .. } => Exit::Ok,
            ComponentResult::RolledBack { .. }
            | ComponentResult::Skipped { .. }
            | ComponentResult::TakenOver { .. } => Exit::Failed,
            ComponentResult::RollbackFailed { .. } => Exit::RollbackFailed,
        }
    }

    /// The RESULT and DETAIL cells of the component's row.
    fn cells(&self, component: &str) -> (String, String) {
        match self {
            ComponentResult::Deployed {
                revision,
                duration_ms,
                restores,
            } => (
                deployed_text(*revision, *restores),
                format!("{:.1}s", *duration_ms as f64 / 1000.0),
            ),
            ComponentResult::RolledBack {
                failed_revision,
                message,
                restored,
            } => (
                format!("failed v{failed_revision}, {}", restored_text(*restored)),
                message.clone(),
            ),
            ComponentResult::RollbackFailed {
                failed_revision,
                message,
                rollback_error,
            } => (
                format!("failed v{failed_revision}, ROLLBACK FAILED"),
                format!("{message}; rollback: {rollback_error}"),
            ),
            ComponentResult::Skipped { because } => ("skipped".into(), because.clone()),
            ComponentResult::TakenOver {
                failed_revision,
                message,
                by,
            } => (
                format!("stopped v{failed_revision}, left to the new lock holder"),
                format!("{message}; now {by}"),
            ),
            ComponentResult::NoPrevious {
                revision: Some(n),
                installed_by,
            } => (
                format!("no previous release — left at v{n}"),
                format!(
                    "first installed by deploy {installed_by}; to remove it: fluo-deploy delete {component}"
                ),
            ),
            ComponentResult::NoPrevious {
                revision: None,
                installed_by,
            } => (
                "no previous release — not installed".into(),
                format!("its first install by deploy {installed_by} failed and was removed"),
            ),
        }
    }
}

/// The outcome of a deploy or rollback run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub deploy_id: String,
    pub components: BTreeMap<String, ComponentResult>,
    pub post_checks: Option<std::result::Result<(), String>>,
    pub duration_ms: u64,
    /// Set when a signal or the loss of the deploy lock stopped the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Reason>,
}

impl RunReport {
    /// 3 when a rollback failed; else 4 when the lock was lost; else 1 when anything failed.
    pub fn exit(&self) -> Exit {
        let worst = self
            .components
            .values()
            .map(ComponentResult::exit)
            .max()
            .unwrap_or(Exit::Ok);
        match (&self.stopped, worst) {
            (_, Exit::RollbackFailed) => Exit::RollbackFailed,
            (Some(Reason::LockLost { .. }), _) => Exit::Locked,
            (Some(Reason::Interrupted { .. }), _) => Exit::Failed,
            (None, Exit::Ok) if matches!(self.post_checks, Some(Err(_))) => Exit::Failed,
            (None, worst) => worst,
        }
    }

    /// Text summary for the run's namespace and environment (see `text_for`).
    pub fn text(&self, ctx: &Ctx) -> String {
        self.text_for(&ctx.namespace, ctx.environment())
    }

    /// Text summary: one row per component, what stopped the run, the post-check cause once,
    /// and (after failed rollbacks) one block of manual escalation steps.
    pub fn text_for(&self, namespace: &str, environment: &str) -> String {
        let rows: Vec<Vec<String>> = self
            .components
            .iter()
            .map(|(c, r)| {
                let (result, detail) = r.cells(c);
                vec![c.clone(), result, detail]
            })
            .collect();
        let mut out = crate::report::table(&["COMPONENT", "RESULT", "DETAIL"], &rows);
        if let Some(reason) = &self.stopped {
            out.push_str(&format!("stopped: {reason}\n"));
        }
        if let Some(Err(e)) = &self.post_checks {
            out.push_str(&format!("post-deploy checks failed: {e}\n"));
        }
        let failed: Vec<&str> = self
            .components
            .iter()
            .filter(|(_, r)| matches!(r, ComponentResult::RollbackFailed { .. }))
            .map(|(c, _)| c.as_str())
            .collect();
        if !failed.is_empty() {
            out.push_str(&escalation_steps(namespace, environment, &failed));
        }
        out
    }
}

/// SOP-002 escalation: what a human does when automatic rollbacks failed (one block for all
/// the components concerned).
pub fn escalation_steps(namespace: &str, environment: &str, components: &[&str]) -> String {
    let (who, selector, each) = match components {
        [one] => (
            format!("of {one} failed"),
            format!("fluo.dev/component={one}"),
            one.to_string(),
        ),
        many => (
            format!("failed for {}", many.join(", ")),
            format!("'fluo.dev/component in ({})'", many.join(",")),
            "<component>".to_string(),
        ),
    };
    let ns = namespace;
    let env = environment;
    let for_each = if components.len() > 1 {
        format!("   (for each of {})", components.join(", "))
    } else {
        String::new()
    };
    format!(
        "\nESCALATE: automatic rollback {who}. Manual steps:\n\
         1. Inspect: kubectl -n {ns} get all -l {selector}; kubectl -n {ns} describe pods -l {selector}\n\
         2. Logs: fluo-deploy --env {env} logs {each} --since 15m{for_each}\n\
         3. History: fluo-deploy --env {env} history {each}   (find the last revision with outcome succeeded)\n\
         4. Retry the rollback: fluo-deploy --env {env} rollback {each} --to <N> --reason \"manual after failed auto-rollback\"\n\
         5. If the lock is stuck: fluo-deploy --env {env} deploy {each} --force-unlock ... (recorded)\n\
         6. Notify the on-call lead and open an incident (SOP-002 failure handling).\n"
    )
}

/// A deployed revision in words: `deployed v7`, or `rolled back to v5 (as v7)`.
pub(super) fn deployed_text(revision: u32, restores: Option<u32>) -> String {
    match restores {
        Some(to) => format!("rolled back to v{to} (as v{revision})"),
        None => format!("deployed v{revision}"),
    }
}

/// What an automatic rollback restored, in words.
pub(super) fn restored_text(restored: Option<u32>) -> String {
    restored.map_or("first install removed".into(), |r| {
        format!("rolled back to v{r}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(revision: u32) -> ComponentResult {
        ComponentResult::RollbackFailed {
            failed_revision: revision,
            message: "post-deploy checks failed".into(),
            rollback_error: "no revision before this deploy to go back to".into(),
        }
    }

    fn report(components: Vec<(&str, ComponentResult)>) -> RunReport {
        RunReport {
            deploy_id: "d-1".into(),
            components: components
                .into_iter()
                .map(|(c, r)| (c.to_string(), r))
                .collect(),
            post_checks: None,
            duration_ms: 10,
            stopped: None,
        }
    }

    #[test]
    fn many_failed_rollbacks_print_one_escalation_block() {
        let r = report(vec![("bff", failed(1)), ("nats", failed(1))]);
        let text = r.text_for("fluo", "local");
        assert_eq!(text.matches("ESCALATE").count(), 1, "{text}");
        assert!(text.contains("ESCALATE: automatic rollback failed for bff, nats. Manual steps:"));
        assert!(
            text.contains("-l 'fluo.dev/component in (bff,nats)'"),
            "{text}"
        );
        assert!(text.contains("rollback <component> --to <N>"), "{text}");
        assert_eq!(text.matches("\n6. ").count(), 1);
        assert_eq!(r.exit(), Exit::RollbackFailed);
    }

    #[test]
    fn one_failed_rollback_names_the_component_in_every_step() {
        let text = escalation_steps("fluo", "staging", &["bff"]);
        assert!(text.contains("ESCALATE: automatic rollback of bff failed. Manual steps:"));
        assert!(text.contains("kubectl -n fluo get all -l fluo.dev/component=bff;"));
        assert!(text.contains("fluo-deploy --env staging rollback bff --to <N> --reason"));
        assert!(!text.contains("for each of"));
    }

    #[test]
    fn exit_codes_rank_rollback_failure_over_lock_loss_over_failure() {
        let rolled_back = ComponentResult::RolledBack {
            failed_revision: 2,
            message: "x".into(),
            restored: Some(1),
        };
        let mut r = report(vec![("bff", rolled_back.clone())]);
        assert_eq!(r.exit(), Exit::Failed);
        r.stopped = Some(Reason::LockLost {
            detail: "taken".into(),
        });
        assert_eq!(r.exit(), Exit::Locked);
        assert!(
            r.text_for("fluo", "local")
                .contains("stopped: deploy lock lost: taken")
        );
        r.components.insert("nats".into(), failed(3));
        assert_eq!(r.exit(), Exit::RollbackFailed);
        let mut ok = report(vec![(
            "bff",
            ComponentResult::Deployed {
                revision: 1,
                duration_ms: 5,
                restores: None,
            },
        )]);
        assert_eq!(ok.exit(), Exit::Ok);
        ok.post_checks = Some(Err("smoke failed".into()));
        assert_eq!(ok.exit(), Exit::Failed);
        ok.post_checks = None;
        ok.stopped = Some(Reason::Interrupted {
            signal: "SIGINT".into(),
        });
        assert_eq!(ok.exit(), Exit::Failed);
    }
}
