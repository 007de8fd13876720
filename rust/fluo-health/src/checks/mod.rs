//! The probes behind each health check. Each takes what it needs (an HTTP client and an
//! [`Endpoint`](crate::endpoint::Endpoint), or a Kubernetes client) and returns a
//! [`ProbeResult`](crate::check::ProbeResult) with evidence.

pub mod bff;
pub mod grafana;
pub mod logs;
pub mod nats;
pub mod pods;
pub mod prometheus;
pub mod worker;
