//! fluo-ops: the wiring of the FLUO operations. fluo-core holds the deploy machinery;
//! fluo-validate (the gate), fluo-health (checks, monitor) and fluo-smoke depend on fluo-core, so
//! they are plugged into it here (docs/adr/0004-wiring-crate-and-shared-cli.md), and the fluo-deploy binary
//! is only `parse -> run -> exit`:
//! - [`cli`]: fluo-deploy's flags (the shared `fluo_core::cli::Global` plus the subcommands);
//! - [`run`]: flags -> validated configuration -> connected context;
//! - [`dispatch`]: one library call per command;
//! - [`checks`]: the deploy's hooks (gate before, health and smoke after, Prometheus for
//!   progressive rollouts' analyses in [`analysis`]);
//! - [`monitor`]: the post-deploy watch with rollback;
//! - [`drill`]: the rollback drill and its records;
//! - [`plan`]: `deploy --dry-run`;
//! - [`interrupt`]: SIGINT/SIGTERM for streaming commands;
//! - [`rotate`]: `rotate nats`, the NATS users replaced on the live cluster;
//! - [`trust`]: what a command needs of the trust machinery (emergency loading, signing, teardown).

pub mod analysis;
pub mod change;
pub mod checks;
pub mod cli;
pub mod dispatch;
pub mod drill;
pub mod interrupt;
pub mod jetstream;
pub mod monitor;
pub mod plan;
pub mod restore;
pub mod rotate;
pub mod run;
pub mod trust;

pub use run::run;
