//! The FLUO API layer (BFF): accepts jobs over HTTP, queues them on NATS JetStream and reports
//! their state from the JetStream key-value bucket, so any replica can answer for any job.
//! The job model and NATS names are shared with the worker through `fluo-jobs`.

pub mod api;
pub mod auth;
pub mod backend;
pub mod config;
pub mod error;
pub mod fault;
pub mod limiter;
pub mod metrics;
pub mod middleware;
pub mod state;
pub mod token_store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use fluo_jobs::MAX_BODY_BYTES;
use fluo_jobs::tokens::Scope;

use crate::backend::Backend;
use crate::config::Config;
use crate::state::AppState;

/// The routes with their middleware: metrics outermost so injected faults are counted too.
/// /metrics is here only when there is no separate metrics listener ([`metrics_router`]).
pub fn router(state: AppState) -> Router {
    let scoped =
        |scope: Scope| axum::middleware::from_fn_with_state((state.clone(), scope), auth::require);
    let mut routes = Router::new()
        .route("/health", get(api::health))
        .route("/ready", get(api::ready))
        .route(
            "/api/jobs",
            post(api::submit).route_layer(scoped(Scope::JobsSubmit)),
        )
        .route(
            "/api/jobs/{id}",
            get(api::get_job).route_layer(scoped(Scope::JobsRead)),
        );
    if state.config.metrics_listen.is_none() {
        routes = routes.route("/metrics", get(api::metrics));
    }
    routes
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

/// The monitoring listener's routes: /metrics only (see docs/adr/0006-bff-api-tokens.md).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics))
        .fallback(api::not_found)
        .with_state(state)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}

/// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight requests finish and
/// flushes NATS.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let tokens = match &config.auth_tokens_file {
        Some(path) => Some(Arc::new(auth::TokenStore::load(path.clone())?)),
        None => {
            tracing::warn!(
                "AUTHENTICATION OFF: anyone can submit and read jobs (--insecure-no-auth)"
            );
            None
        }
    };
    let backend = Backend::connect(&config.nats_url, &config.nats_auth)
        .await
        .with_context(|| format!("connecting to NATS at {}", config.nats_url))?;
    let listener = bind(config.listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    if config.fault_5xx_ratio > 0.0 {
        tracing::warn!(
            ratio = config.fault_5xx_ratio,
            "FAULT INJECTION ON: a share of requests will get 500 (FLUO_BFF_FAULT_5XX_RATIO)"
        );
    }
    tracing::info!(listen = %config.listen, nats = %config.nats_url, nats_auth = %fluo_jobs::connect::describe(&config.nats_auth), version = %config.version, commit = %config.commit, "fluo-bff starting");
    let state = AppState::new(config, backend, tokens.clone());
    let provisioner = tokio::spawn(keep_provisioned(state.clone()));
    let reloader = tokens.map(|store| tokio::spawn(auth::keep_reloading(store)));
    let metrics_server = metrics_listener.map(|listener| {
        tokio::spawn(axum::serve(listener, metrics_router(state.clone())).into_future())
    });
    let shutdown_state = state.clone();
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            fluo_jobs::service::shutdown_signal().await;
            shutdown_state.shutting_down.store(true, Ordering::Relaxed);
            let delay = shutdown_state.config.shutdown_delay;
            if !delay.is_zero() {
                tracing::info!(?delay, "shutdown requested: not ready any more, serving on while load balancers stop sending here");
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutting down: no new connections, draining in-flight requests");
        })
        .await
        .context("serving HTTP")?;
    provisioner.abort();
    if let Some(task) = reloader {
        task.abort();
    }
    if let Some(task) = metrics_server {
        task.abort();
    }
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
