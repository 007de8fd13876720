//! The HTTP surface: the listener, routing, discovery and OpenAPI documents, Table rendering,
//! fault injection, the pod subresources that stream (log, port-forward), and the
//! SelfSubjectRulesReview.

pub mod connection;
pub mod discovery;
pub mod exec;
pub mod faults;
pub mod logs;
pub mod openapi;
pub mod params;
pub mod portforward;
pub mod request_count;
pub mod routes;
pub mod rules_review;
pub mod server;
pub mod table;
