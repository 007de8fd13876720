//! The probes behind each health check. Each takes what it needs (an HTTP client and an
//! [`Endpoint`](crate::endpoint::Endpoint), or a Kubernetes client) and returns a
//! [`ProbeResult`](crate::check::ProbeResult) with evidence. The security checks (SOP-002
//! "Security"): `api_auth`, `nats_security`, `rbac`, `pod_env`, and `logs` (the Secrets' values
//! they look for come from the crate root's `secret_values`).

pub mod api_auth;
pub mod bff;
pub mod grafana;
pub mod logs;
pub mod nats;
pub mod nats_security;
pub mod pod_env;
pub mod pods;
pub mod prometheus;
pub mod rbac;
pub mod worker;
