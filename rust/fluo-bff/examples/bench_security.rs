//! Benchmark (issue 21): what the platform's security costs, on the real services.
//!
//!     cargo build --release -p fluo-bff -p fluo-worker
//!     FLUO_BFF_BIN=target/release/fluo-bff FLUO_WORKER_BIN=target/release/fluo-worker \
//!         cargo run -p fluo-bff --example bench_security [-- ROUNDS [REQUESTS [JOBS]]]
//!
//! 1. BFF latency with and without authentication at the same load: C concurrent clients send
//!    N requests each, `POST /api/jobs` with an empty payload, to a BFF with an API tokens file
//!    (presenting a valid token) and to one with `--insecure-no-auth`. Validation answers 400
//!    before NATS is touched, so the only difference is the token check (hash + constant-time
//!    compare + scope). Each client alternates between the two BFFs request by request (half
//!    of them starting with each), so both sides are measured at the same moments, under the
//!    same machine load; p50 / p99 per round.
//! 2. Job throughput with NATS TLS and users against plaintext anonymous NATS: J `test` jobs
//!    submitted through the BFF (C in flight) until one worker has completed all of them.
//!
//! Defaults: 5 rounds, 2000 requests per client, 1000 jobs per round. Needs nats-server
//! (Debian). Without the two variables the services are the debug builds.

use std::time::{Duration, Instant};

use fluo_teststack::{JobsClient, Stack};

const CLIENTS: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> anyhow::Result<usize> {
        Ok(std::env::args().nth(i).map_or(Ok(default), |n| n.parse())?)
    };
    let (rounds, requests, jobs) = (arg(1, 5)?, arg(2, 2000)?, arg(3, 1000)?);
    let plain = Stack::builder().jobs().start().await?;
    let secured = Stack::builder().jobs().secured().start().await?;
    let (open, authed) = (plain.jobs_client(), secured.jobs_client());

    println!(
        "BFF POST /api/jobs (400 after the auth check), {CLIENTS} clients x {requests} requests"
    );
    let mut p99 = (Vec::new(), Vec::new());
    let mut higher = 0;
    for round in 1..=rounds {
        let (without, with) = latencies(&open, &authed, requests).await?;
        println!(
            "round {round}: without auth p50 {:>7.3} ms p99 {:>7.3} ms | with auth p50 {:>7.3} ms p99 {:>7.3} ms",
            pct(&without, 50.0),
            pct(&without, 99.0),
            pct(&with, 50.0),
            pct(&with, 99.0)
        );
        higher += usize::from(pct(&with, 99.0) > pct(&without, 99.0));
        p99.0.push(pct(&without, 99.0));
        p99.1.push(pct(&with, 99.0));
    }
    println!("with-auth p99 higher in {higher} of {rounds} rounds");
    let (without, with) = (median(&mut p99.0), median(&mut p99.1));
    println!(
        "median p99: without auth {without:.3} ms, with auth {with:.3} ms, difference {:+.3} ms (target <= +1 ms)",
        with - without
    );

    println!("job throughput, {jobs} test jobs, {CLIENTS} in flight, one worker");
    let mut rates = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let plain_rate = throughput(&open, jobs).await?;
        let tls_rate = throughput(&authed, jobs).await?;
        println!(
            "round {round}: plaintext anonymous NATS {plain_rate:.1} jobs/s | TLS + users (+ API tokens) {tls_rate:.1} jobs/s"
        );
        rates.0.push(plain_rate);
        rates.1.push(tls_rate);
    }
    let (plain_rate, tls_rate) = (median(&mut rates.0), median(&mut rates.1));
    println!(
        "median: plaintext {plain_rate:.1} jobs/s, TLS {tls_rate:.1} jobs/s, cost {:.1}% (target < 20%)",
        (1.0 - tls_rate / plain_rate) * 100.0
    );
    Ok(())
}

/// Milliseconds of every request of `CLIENTS` concurrent clients, `requests` to each side,
/// each client alternating between `open` and `authed`: (without auth, with auth), sorted.
async fn latencies(
    open: &JobsClient,
    authed: &JobsClient,
    requests: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let sides = [open.clone(), authed.clone()];
            tokio::spawn(async move {
                let mut times = [Vec::with_capacity(requests), Vec::with_capacity(requests)];
                for i in 0..2 * requests {
                    let side = (i + n) % 2;
                    let started = Instant::now();
                    let reply = sides[side]
                        .submit_raw(b"{}".to_vec(), Some("application/json"))
                        .await?;
                    anyhow::ensure!(reply.status == 400, "want 400, got {}", reply.status);
                    times[side].push(started.elapsed().as_secs_f64() * 1000.0);
                }
                anyhow::Ok(times)
            })
        })
        .collect();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for task in tasks {
        let [open, authed] = task.await??;
        without.extend(open);
        with.extend(authed);
    }
    without.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    Ok((without, with))
}

/// Jobs per second: `jobs` submitted with `CLIENTS` in flight, until all are completed.
async fn throughput(client: &JobsClient, jobs: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_client = jobs / CLIENTS;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    ids.push(
                        client
                            .submit_ok("test", serde_json::json!({"validation": true}))
                            .await?,
                    );
                }
                for id in &ids {
                    client
                        .wait_for_status(id, "completed", Duration::from_secs(120))
                        .await?;
                }
                anyhow::Ok(ids.len())
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
