//! The FLUO background worker: pulls jobs from the durable JetStream consumer shared by all
//! replicas, runs them and records the outcome in the job-state bucket before acking
//! (see [`process`] for the exactly-once-visible rules).

pub mod config;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::http::HttpState;
use crate::metrics::Metrics;
use crate::process::Processor;

/// How long one pull request waits for jobs before the loop checks for shutdown again.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// Runs until SIGTERM or SIGINT, then stops fetching, finishes in-flight jobs and exits.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let client = fluo_jobs::connect::connect(
        format!("fluo-worker {}", config.worker_id),
        &config.nats_url,
        &config.nats_auth,
    )
    .await
    .with_context(|| format!("connecting to NATS at {}", config.nats_url))?;
    let metrics = Metrics::new(&config.version, &config.commit, &config.worker_id);
    let http_state = Arc::new(HttpState {
        config: config.clone(),
        metrics: metrics.clone(),
        client: client.clone(),
        consuming: AtomicBool::new(false),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    tracing::info!(listen = %config.listen, nats = %config.nats_url, nats_auth = %fluo_jobs::connect::describe(&config.nats_auth), worker = %config.worker_id, concurrency = config.concurrency, "fluo-worker starting");

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let http_shutdown = shutdown_rx.clone();
    let http = tokio::spawn(
        axum::serve(listener, http::router(http_state.clone()))
            .with_graceful_shutdown(wait_for(http_shutdown))
            .into_future(),
    );
    let signals = tokio::spawn(async move {
        fluo_jobs::service::shutdown_signal().await;
        tracing::info!("shutdown requested: no new jobs, finishing in-flight jobs");
        let _ = shutdown_tx.send(true);
    });

    consume(&config, client.clone(), metrics, &http_state, shutdown_rx).await;

    http_state.consuming.store(false, Ordering::Relaxed);
    if let Err(err) = client.flush().await {
        tracing::warn!(error = %err, "could not flush the NATS connection on shutdown");
    }
    signals.abort();
    http.await
        .context("joining the HTTP server")?
        .context("serving HTTP")?;
    tracing::info!("fluo-worker stopped");
    Ok(())
}

/// The fetch loop: open the consumer (retrying until NATS has it), pull as many jobs as there
/// are free slots, run each in its own task. On shutdown, stop pulling, hand jobs already
/// delivered but not started back to NATS, and wait for running jobs.
async fn consume(
    config: &Config,
    client: async_nats::Client,
    metrics: Metrics,
    http_state: &HttpState,
    mut shutdown: watch::Receiver<bool>,
) {
    let js = jetstream::new(client);
    let Some((consumer, store)) = open(&js, config, &mut shutdown).await else {
        return;
    };
    http_state.consuming.store(true, Ordering::Relaxed);
    let processor = Arc::new(Processor {
        store,
        worker_id: config.worker_id.clone(),
        ack_wait: config.ack_wait,
        metrics: metrics.clone(),
    });
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut tasks = JoinSet::new();
    let mut open_batch: Option<consumer::pull::Batch> = None;
    'pull: while !*shutdown.borrow() {
        // Wait for at least one free slot, then ask for as many jobs as there are free slots.
        drop(
            slots
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed"),
        );
        let wanted = slots.available_permits().max(1);
        let pulled = consumer
            .batch()
            .max_messages(wanted)
            .expires(PULL_EXPIRES)
            .messages()
            .await;
        let batch = match pulled {
            Ok(batch) => open_batch.insert(batch),
            Err(err) => {
                tracing::warn!(error = %err, "could not pull jobs; retrying");
                metrics.failures.with_label_values(&["fetch"]).inc();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => break 'pull,
                next = batch.next() => match next {
                    None => break,
                    Some(Ok(message)) => {
                        let slot = slots.clone().acquire_owned().await.expect("semaphore is never closed");
                        let processor = processor.clone();
                        tasks.spawn(async move {
                            processor.handle(message).await;
                            drop(slot);
                        });
                        while tasks.try_join_next().is_some() {}
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "pulling jobs failed; retrying");
                        metrics.failures.with_label_values(&["fetch"]).inc();
                        break;
                    }
                },
            }
        }
        open_batch = None;
    }
    // Jobs the open pull request still delivers go straight back to NATS for another worker
    // instead of waiting out the ack wait.
    if let Some(mut batch) = open_batch {
        let give_back = async {
            while let Some(Ok(message)) = batch.next().await {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
        };
        let _ = tokio::time::timeout(PULL_EXPIRES, give_back).await;
    }
    let running = tasks.len();
    if running > 0 {
        tracing::info!(running, "waiting for in-flight jobs");
    }
    while tasks.join_next().await.is_some() {}
}

/// Opens the consumer and the job-state bucket, creating them if missing, retrying until NATS
/// answers. None if shutdown came first.
async fn open(
    js: &jetstream::Context,
    config: &Config,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(
    consumer::Consumer<consumer::pull::Config>,
    jetstream::kv::Store,
)> {
    loop {
        let attempt = async {
            let consumer = fluo_jobs::provision::ensure_consumer(js, config.ack_wait).await?;
            let store = fluo_jobs::provision::ensure_bucket(js).await?;
            Ok::<_, fluo_jobs::provision::Error>((consumer, store))
        };
        match attempt.await {
            Ok(opened) => {
                tracing::info!(consumer = fluo_jobs::names::CONSUMER, "consuming jobs");
                return Some(opened);
            }
            Err(err) => tracing::warn!(error = %err, "NATS not ready for the worker yet; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return None,
        }
    }
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
