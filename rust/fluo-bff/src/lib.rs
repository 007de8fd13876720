//! The FLUO API layer (BFF): accepts jobs over HTTP, queues them on NATS JetStream and reports
//! their state from the JetStream key-value bucket, so any replica can answer for any job.
//! The job model and NATS names are shared with the worker through `fluo-jobs`.

pub mod api;
pub mod backend;
pub mod config;
pub mod fault;
pub mod metrics;
pub mod middleware;
pub mod state;

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use fluo_jobs::MAX_BODY_BYTES;

use crate::backend::Backend;
use crate::config::Config;
use crate::state::AppState;

/// The routes with their middleware: metrics outermost so injected faults are counted too.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route("/metrics", get(api::metrics))
        .route("/api/jobs", post(api::submit))
        .route("/api/jobs/{id}", get(api::get_job))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::inject_faults,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::track,
        ))
        .with_state(state)
}

/// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish and
/// flushes NATS.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let backend = Backend::connect(&config.nats_url)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats_url))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    if config.fault_5xx_ratio > 0.0 {
        tracing::warn!(
            ratio = config.fault_5xx_ratio,
            "FAULT INJECTION ON: a share of requests will get 500 (FLUO_BFF_FAULT_5XX_RATIO)"
        );
    }
    tracing::info!(listen = %config.listen, nats = %config.nats_url, version = %config.version, commit = %config.commit, "fluo-bff starting");
    let state = AppState::new(config, backend);
    let provisioner = tokio::spawn(keep_provisioned(state.clone()));
    let shutdown_state = state.clone();
    axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(async move {
            fluo_jobs::service::shutdown_signal().await;
            shutdown_state.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!("shutdown requested: no new connections, draining in-flight requests");
        })
        .await
        .context("serving HTTP")?;
    provisioner.abort();
    state.backend.flush().await;
    tracing::info!("fluo-bff stopped");
    Ok(())
}

/// Keeps the stream and bucket in place: quickly while NATS is missing them, then a light
/// check every few seconds (so a wiped NATS is re-provisioned without a BFF restart).
async fn keep_provisioned(state: AppState) {
    let mut was_ok = false;
    loop {
        let ok = if state.backend.is_connected() {
            match state.backend.provision().await {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(error = %err, "NATS not provisioned yet");
                    false
                }
            }
        } else {
            false
        };
        if ok != was_ok {
            tracing::info!(provisioned = ok, "job stream and bucket state changed");
            was_ok = ok;
        }
        tokio::time::sleep(if ok {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        })
        .await;
    }
}
