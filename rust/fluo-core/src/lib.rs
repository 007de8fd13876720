//! fluo-core: the library behind every FLUO deployment command.
//!
//! Configuration and planning (`config`, `manifest`, `plan`) are pure; the Kubernetes
//! operations talk to the API server with kube-rs.

pub mod config;
pub mod manifest;
pub mod plan;

/// Namespace holding release records and the deploy lock.
pub const SYSTEM_NAMESPACE: &str = "fluo-system";
pub mod apply;
pub mod cli;
pub mod cluster;
pub mod durable;
/// The exit-code table every binary shares (lives in fluo-cli, below this crate).
pub use fluo_cli::exit;
pub mod history;
pub mod identity;
pub mod image_ref;
pub mod inspect;
pub mod lock;
pub mod logs;
pub mod notify;
pub mod ops;
pub mod policy;
pub mod portforward;
pub mod read_error;
pub mod readiness;
pub mod registry;
pub mod release;
pub mod render;
pub mod report;
pub mod retry;
pub mod secrets;
pub mod session;
pub mod state;
pub mod teardown;
pub mod telemetry;
pub mod tls;
pub mod wait;
