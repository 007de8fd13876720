use fluo_teststack::Stack;
use serde_json::json;

use super::support::{JOB_TIMEOUT, wait_until_running};

#[tokio::test]
async fn sigterm_finishes_the_job_in_flight_then_exits_0() {
    let mut stack = Stack::builder().jobs().start().await.unwrap();
    let api = stack.jobs_client();
    let id = api
        .submit_ok("test", json!({"validation": true, "duration_ms": 3000}))
        .await
        .unwrap();
    wait_until_running(&api, &id).await;
    let worker = stack.worker_id();

    assert_eq!(stack.stop_worker().await.unwrap(), Some(0));

    // Finished by the worker that was stopped, on its first attempt: no redelivery needed.
    let job = api
        .wait_for_status(&id, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["result"]["worker"], worker.as_str());

    // Jobs submitted while no worker runs wait in the stream and run when one returns.
    let queued = api.submit_ok("echo", json!({"x": 1})).await.unwrap();
    let record = api.get(&format!("/api/jobs/{queued}")).await.unwrap();
    assert_eq!(record.body["status"], "queued");
    stack.start_worker().await.unwrap();
    api.wait_for_status(&queued, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
}

#[tokio::test]
async fn worker_health_and_readiness() {
    let mut stack = Stack::builder().worker().start().await.unwrap();
    let http = fluo_teststack::http_client();
    let health = http
        .get(format!("{}/health", stack.worker_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["worker"], stack.worker_id().as_str());
    let ready = http
        .get(format!("{}/ready", stack.worker_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "not ready without NATS");

    stack.start_nats().await.unwrap();
    let url = format!("{}/ready", stack.worker_url());
    stack
        .eventually("worker /ready", || async {
            let status = http.get(&url).send().await?.status();
            Ok::<_, reqwest::Error>((status == 200).then_some(()))
        })
        .await
        .unwrap();
    let metrics = http
        .get(format!("{}/metrics", stack.worker_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fluo_worker_jobs_in_flight 0"),
        "{metrics}"
    );
}
