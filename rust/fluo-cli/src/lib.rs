//! The command-line pieces every fluo binary shares that need nothing of the cluster: the exit
//! codes ([`exit::Exit`], the return type of every `main`), the one duration syntax
//! ([`duration`]) and completions and man pages from the clap definitions ([`docs`]).
//!
//! They live below fluo-core (which re-exports them as `fluo_core::exit` and
//! `fluo_core::cli::{duration, docs}`) so that the binaries fluo-core itself depends on
//! (fluo-secrets) and the services (fluo-bff, fluo-worker) share the same table; docs/adr/0004.

pub mod docs;
pub mod duration;
pub mod exit;

pub use exit::Exit;
