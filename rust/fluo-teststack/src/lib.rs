//! A real local FLUO stack for tests and developers.
//!
//! [`Stack::start`] runs, on free loopback ports and in a temp dir:
//! - `nats-server` with JetStream (Debian package `nats-server`),
//! - the BFF (`fluo-bff`) and one worker (`fluo-worker`), built from this workspace,
//! - `prometheus` (Debian package `prometheus`) scraping the BFF and the worker like the
//!   cluster's Prometheus does (jobs [`BFF_JOB`] and [`WORKER_JOB`], 1 s interval).
//!
//! It waits until each piece is ready and kills everything on drop. Pieces can be stopped
//! (SIGTERM), killed (SIGKILL) and started again on the same ports and data dir, which is what
//! failure tests need:
//!
//! ```no_run
//! use fluo_teststack::{Component, Stack};
//! # async fn demo() -> fluo_teststack::Result<()> {
//! let mut stack = Stack::builder().nats().bff().worker().start().await?;
//! let health = reqwest::get(format!("{}/health", stack.bff_url())).await;
//! stack.stop_nats().await?;
//! stack.start_nats().await?;
//! stack.wait_ready(Component::Bff).await?;
//! # Ok(()) }
//! ```
//!
//! [`JobsClient`] talks to the BFF like a user; [`NatsProbe`] reads the job stream and the
//! job-state bucket straight from NATS (backlog, sequences, a job's revision history).
//! [`Cli`] runs a binary to completion and asserts on its exit code and output; [`TestInfra`]
//! is a temp copy of infra/ with a test environment for the fluo-* tools; [`StandIn`] serves a
//! small axum app in place of a service that cannot run locally. [`Registry`] is a real OCI
//! registry (Debian's `docker-registry`) on loopback that tests push images to.
//!
//! A missing `nats-server` or `prometheus` is an error saying
//! `apt-get install nats-server prometheus`. The services are built with `cargo build` into the
//! running executable's target dir unless `FLUO_BFF_BIN` / `FLUO_WORKER_BIN` point at binaries;
//! `NATS_SERVER_BIN` / `PROMETHEUS_BIN` override the system programs.

mod binaries;
mod cli;
mod client;
mod error;
mod http_client;
mod infra;
pub mod local_stack;
mod ports;
mod process;
mod prometheus_config;
mod registry;
mod secured;
mod stack;
mod stand_in;
mod wait;

pub use binaries::{Service, service_binary, system_binary};
pub use cli::{Cli, Ran};
pub use client::{JobsClient, NatsProbe, Reply, StreamCounts};
pub use error::{Error, INSTALL_HINT, Result};
pub use http_client::{http_client, install_crypto_provider};
pub use infra::{TestInfra, copy_dir, repo_infra};
pub use prometheus_config::{BFF_JOB, WORKER_JOB};
pub use registry::{REGISTRY_HINT, Registry, sha256_digest};
pub use secured::{Secured, security_secrets};
pub use stack::{Component, Sample, Stack, StackBuilder};
pub use stand_in::StandIn;
pub use wait::eventually;
