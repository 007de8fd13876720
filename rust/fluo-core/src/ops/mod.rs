//! The operations on a cluster, one room each, over one shared context:
//!
//! - `context`: `Ctx` (config, cluster, history, reporter, identity, stop), `Hooks` (the checks
//!   that live in other crates), `RunInfo`, namespaces and the deploy lock;
//! - `deploy`: the deploy run (prepare once, preflight, gate, lock, graph, post checks);
//! - `schedule`: which component starts, waits or is skipped (pure `Scheduler` + `run_graph`);
//! - `rollout`: one component revision (record, apply, prune, wait, record) and its typed error;
//! - `recover`: automatic rollback (of a failed revision; of a deploy whose checks failed or
//!   that was stopped);
//! - `rollback`: planned and emergency rollbacks (`rollback`, `rollback-to-previous`);
//! - `outcome`: per-component results, the run report, its exit code and text;
//! - `stop`: the one cancellation mechanism (signals and the loss of the deploy lock);
//! - `local_secret`: the local environment's Grafana admin Secret;
//! - `progressive`: canary and blue-green strategies with Prometheus analysis (issue 17);
//! - change management (issue 16): `events` (the notifications of each run), `announce` (the
//!   notice period and the emergency path), `incident` (incidents and the escalation ladder).
//! - `pin`: image tags resolved to digests and pinned before a deploy (`[images.resolve]`);
//! - `drill`: the rollback drill (a marked drill release, `rollback-to-previous`, recorded);
//!   `drill_records`: the drills' records, their age and the deploy gate.
//! - `backup`: the JetStream backup before a deploy that changes the NATS StatefulSet.
//!
//! Dependencies point one way: drill -> events -> deploy -> drill_records, and drill -> rollback
//! -> recover -> rollout -> context.

pub mod announce;
pub mod backup;
pub mod context;
pub mod deploy;
pub mod diagnose;
pub mod drill;
pub mod drill_records;
pub mod error;
pub mod events;
pub mod incident;
pub mod local_secret;
pub mod local_security;
pub mod outcome;
pub mod pin;
pub mod progressive;
pub mod recover;
pub mod review;
pub mod rollback;
pub mod rollout;
pub mod schedule;
pub mod stop;

pub use context::{Ctx, Hooks, RunInfo};
pub use error::{Error, Result};
pub use outcome::{ComponentResult, RunReport};
pub use stop::Stop;
