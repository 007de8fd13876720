//! Graph scheduling: which components of a run start now, which wait, which are skipped. A
//! component starts when its selected dependencies succeeded (all at once with the parallel
//! order, one at a time in SOP order with the sequential one); dependents of a failed
//! component are skipped, and nothing new starts once the run is stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures::stream::{FuturesUnordered, StreamExt};

use super::context::Ctx;
use super::outcome::ComponentResult;
use crate::config::Order;
use crate::plan::Graph;
use crate::report::Level;

/// What the scheduler decided for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start(String),
    Skip { component: String, because: String },
}

/// The pure state machine behind `run_graph`.
pub struct Scheduler<'g> {
    graph: &'g Graph,
    order: Order,
    selected: BTreeSet<String>,
    /// Not yet started or skipped, in SOP order.
    pending: Vec<String>,
}

impl<'g> Scheduler<'g> {
    pub fn new(graph: &'g Graph, order: Order, components: &[String]) -> Scheduler<'g> {
        let selected: BTreeSet<String> = components.iter().cloned().collect();
        let pending = graph
            .sequential_order()
            .into_iter()
            .filter(|c| selected.contains(c))
            .collect();
        Scheduler {
            graph,
            order,
            selected,
            pending,
        }
    }

    /// Decisions given the results so far (`succeeded` per finished component), how many are
    /// running, and `stopped` (why nothing new may start). Decided components leave `pending`.
    pub fn next(
        &mut self,
        finished: &BTreeMap<String, bool>,
        mut running: usize,
        stopped: Option<&str>,
    ) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut failed: BTreeSet<String> = finished
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(c, _)| c.clone())
            .collect();
        let mut still_pending = Vec::new();
        for c in std::mem::take(&mut self.pending) {
            if let Some(why) = stopped {
                decisions.push(Decision::Skip {
                    component: c.clone(),
                    because: format!("not started: {why}"),
                });
                continue;
            }
            let deps: Vec<&String> = self
                .graph
                .dependencies(&c)
                .iter()
                .filter(|d| self.selected.contains(*d))
                .collect();
            if let Some(bad) = deps.iter().find(|d| failed.contains(**d)) {
                decisions.push(Decision::Skip {
                    component: c.clone(),
                    because: format!("dependency {bad} did not deploy"),
                });
                failed.insert(c);
                continue;
            }
            let deps_done = deps.iter().all(|d| finished.contains_key(*d));
            let slot_free = self.order == Order::Parallel || running == 0;
            if deps_done && slot_free {
                running += 1;
                decisions.push(Decision::Start(c));
            } else {
                still_pending.push(c);
            }
        }
        self.pending = still_pending;
        decisions
    }
}

/// When a run stops starting components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// At the first stop request (a deploy).
    OnStop,
    /// Only when aborted (a rollback, which restores a known state and should finish).
    OnAbort,
}

/// Runs `step` for every component of `components` along the graph (see `Scheduler`).
pub async fn run_graph<F, Fut>(
    ctx: &Ctx,
    components: &[String],
    order: Order,
    halt: Halt,
    step: F,
) -> BTreeMap<String, ComponentResult>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ComponentResult>,
{
    let mut scheduler = Scheduler::new(&ctx.config.graph, order, components);
    let mut results: BTreeMap<String, ComponentResult> = BTreeMap::new();
    let mut running = FuturesUnordered::new();
    loop {
        let finished: BTreeMap<String, bool> = results
            .iter()
            .map(|(c, r)| (c.clone(), r.succeeded()))
            .collect();
        let stopped = match halt {
            Halt::OnStop => ctx.stop.reason().map(ToString::to_string),
            Halt::OnAbort if ctx.stop.is_aborted() => Some("aborted by a second signal".into()),
            Halt::OnAbort => None,
        };
        for decision in scheduler.next(&finished, running.len(), stopped.as_deref()) {
            match decision {
                Decision::Start(c) => {
                    let run = step(c.clone());
                    running.push(async move { (c, run.await) });
                }
                Decision::Skip { component, because } => {
                    ctx.reporter
                        .progress(&component, Level::Warn, &format!("skipped: {because}"));
                    results.insert(component, ComponentResult::Skipped { because });
                }
            }
        }
        let Some((component, result)) = running.next().await else {
            break;
        };
        results.insert(component, result);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::fluo;

    fn all() -> Vec<String> {
        ["nats", "prometheus", "grafana", "bff", "workers"]
            .map(String::from)
            .to_vec()
    }

    fn started(decisions: &[Decision]) -> Vec<&str> {
        decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start(c) => Some(c.as_str()),
                Decision::Skip { .. } => None,
            })
            .collect()
    }

    fn done(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
        pairs.iter().map(|(c, ok)| (c.to_string(), *ok)).collect()
    }

    #[test]
    fn parallel_starts_every_root_then_dependents_as_their_dependencies_finish() {
        let g = fluo();
        let mut s = Scheduler::new(&g, Order::Parallel, &all());
        assert_eq!(
            started(&s.next(&done(&[]), 0, None)),
            ["nats", "prometheus"]
        );
        assert_eq!(started(&s.next(&done(&[("nats", true)]), 1, None)), ["bff"]);
        let after = done(&[("nats", true), ("prometheus", true)]);
        assert_eq!(started(&s.next(&after, 1, None)), ["grafana"]);
        assert!(s.next(&after, 2, None).is_empty(), "workers waits for bff");
    }

    #[test]
    fn sequential_starts_one_at_a_time_in_sop_order() {
        let g = fluo();
        let mut s = Scheduler::new(&g, Order::Sequential, &all());
        assert_eq!(started(&s.next(&done(&[]), 0, None)), ["nats"]);
        assert!(s.next(&done(&[]), 1, None).is_empty());
        assert_eq!(
            started(&s.next(&done(&[("nats", true)]), 0, None)),
            ["prometheus"]
        );
    }

    #[test]
    fn dependents_of_a_failure_are_skipped_transitively() {
        let g = fluo();
        let mut s = Scheduler::new(&g, Order::Parallel, &all());
        s.next(&done(&[]), 0, None);
        let decisions = s.next(&done(&[("nats", false)]), 1, None);
        assert_eq!(
            decisions,
            [
                Decision::Skip {
                    component: "bff".into(),
                    because: "dependency nats did not deploy".into()
                },
                Decision::Skip {
                    component: "workers".into(),
                    because: "dependency bff did not deploy".into()
                },
            ]
        );
    }

    #[test]
    fn unselected_dependencies_do_not_hold_a_component_back() {
        let g = fluo();
        let mut s = Scheduler::new(&g, Order::Parallel, &["workers".to_string()]);
        assert_eq!(started(&s.next(&done(&[]), 0, None)), ["workers"]);
    }

    #[test]
    fn a_stopped_run_starts_nothing_new() {
        let g = fluo();
        let mut s = Scheduler::new(&g, Order::Parallel, &all());
        s.next(&done(&[]), 0, None);
        let decisions = s.next(&done(&[]), 2, Some("interrupted by SIGINT"));
        assert_eq!(decisions.len(), 3);
        assert!(decisions.iter().all(|d| matches!(
            d,
            Decision::Skip { because, .. } if because == "not started: interrupted by SIGINT"
        )));
    }
}
