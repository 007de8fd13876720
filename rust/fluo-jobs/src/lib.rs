//! What `fluo-bff` and `fluo-worker` share: the job model, and the plumbing of a FLUO service.
//!
//! Both services must agree on where jobs live in NATS and what a job record looks like, so
//! the names ([`names`]), the record and its state machine ([`model`]), the validation of a
//! submission ([`submission`]) and the idempotent provisioning of the JetStream stream, key-value
//! bucket and consumer ([`provision`]) live here, once.
//!
//! How a job flows:
//! 1. The BFF validates `{"type", "data"}`, creates the record `queued` in the KV bucket
//!    [`names::KV_BUCKET`] (create fails if the key exists), then publishes `{"id","type"}` to
//!    `fluo.jobs.<type>` on the stream [`names::STREAM`] with `Nats-Msg-Id = id` and waits for
//!    the stream's ack before answering 202.
//! 2. A worker pulls from the durable consumer [`names::CONSUMER`], moves the record to
//!    `running` with a compare-and-set on the KV revision, runs the job, writes `completed` or
//!    `failed` with another compare-and-set, and only then acks the message.
//! 3. A record already `completed`/`failed` is never touched again, so a redelivery after a
//!    crash between "state written" and "ack" is acked without running the job twice.
//!
//! Both are also run the same way: [`service`] is the process lifecycle (config, logging, exit
//! code, shutdown signal), [`flags`] validates the flags they share, [`telemetry`] sets up
//! logging and [`metrics`] exposes their Prometheus registries.

pub mod connect;
pub mod flags;
pub mod metrics;
pub mod model;
pub mod names;
pub mod provision;
pub mod service;
pub mod submission;
pub mod telemetry;
pub mod tokens;

pub use model::{JobId, JobMessage, JobRecord, JobStatus, JobType, TransitionError};
pub use submission::{MAX_BODY_BYTES, NewJob, SubmissionError};
