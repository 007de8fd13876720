//! End-to-end job latency: submit jobs at a fixed rate to a running BFF (with a worker), wait
//! until all are completed and report submit latency (client side) and submit -> completed
//! latency (the record's `finished_at - created_at`, both stamped on this machine).
//!
//!     cargo run --release -p fluo-bff --example e2e_latency -- http://127.0.0.1:PORT 2000 500
//!     (BFF URL, number of jobs, jobs per second)

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fluo_teststack::JobsClient;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    let jobs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let rate: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(500);
    let api = JobsClient::new(url);

    let interval = Duration::from_micros(1_000_000 / rate.max(1));
    let mut ticker = tokio::time::interval(interval);
    let mut submits = Vec::with_capacity(jobs);
    let mut handles = Vec::with_capacity(jobs);
    let started = Instant::now();
    for _ in 0..jobs {
        ticker.tick().await;
        let api = api.clone();
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let id = api.submit_ok("test", json!({"validation": true})).await;
            (id, t.elapsed())
        }));
    }
    let mut ids = Vec::with_capacity(jobs);
    for handle in handles {
        let (id, took) = handle.await?;
        ids.push(id?);
        submits.push(took);
    }
    let offered = started.elapsed();

    let mut e2e = Vec::with_capacity(jobs);
    for id in &ids {
        let job = api
            .wait_for_status(id, "completed", Duration::from_secs(120))
            .await?;
        let created: DateTime<Utc> = job["created_at"].as_str().unwrap_or_default().parse()?;
        let finished: DateTime<Utc> = job["finished_at"].as_str().unwrap_or_default().parse()?;
        e2e.push((finished - created).to_std().unwrap_or_default());
    }
    println!(
        "{jobs} jobs offered at {rate}/s in {:.1}s",
        offered.as_secs_f64()
    );
    report("submit (POST /api/jobs, client side)", &mut submits);
    report("end to end (created_at -> finished_at)", &mut e2e);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}
