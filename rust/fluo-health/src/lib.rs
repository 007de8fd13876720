//! fluo-health: SOP-002's mandatory health checks, the shared pieces of the smoke tests, and
//! the post-deploy monitor.
//!
//! - [`check`]: the check model (name, verdict, evidence, duration, timeout) and concurrency;
//! - [`report`]: text table and JSON output;
//! - [`access`] and [`endpoint`]: reaching services through ingress, port-forward or URLs;
//! - [`checks`]: one probe per component; [`health`]: selecting and running them;
//! - [`jobs`]: the BFF jobs API (test job submit + wait), shared with fluo-smoke;
//! - [`promapi`]: Prometheus HTTP API; [`monitor`]: the post-deploy watch;
//! - [`secrets`]: secrets leaked into logs, found and redacted by `fluo_core::secrets`;
//! - [`natswire`]: the NATS client handshake the NATS security checks judge;
//! - [`cli`]: global flags, configuration and cluster connection for the binaries.

pub mod access;
pub mod api_token;
pub mod check;
pub mod checks;
pub mod cli;
pub mod endpoint;
pub mod health;
pub mod jobs;
pub mod monitor;
pub mod natswire;
pub mod promapi;
pub mod report;
pub mod secret_values;
pub mod secrets;
