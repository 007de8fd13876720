use fluo_teststack::Stack;
use serde_json::json;

use super::support::JOB_TIMEOUT;

#[tokio::test]
async fn a_test_job_completes_through_nats_and_a_worker() {
    let stack = Stack::builder().jobs().start().await.unwrap();
    let api = stack.jobs_client();

    let accepted = api
        .submit("test", json!({"validation": true}))
        .await
        .unwrap();
    let body = accepted.expect_status(202);
    assert_eq!(body["status"], "queued");
    let id = body["id"].as_str().expect("an id").to_owned();

    let job = api
        .wait_for_status(&id, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["type"], "test");
    assert_eq!(job["result"]["validated"], true);
    assert_eq!(job["result"]["worker"], stack.worker_id());
    assert_eq!(job["attempts"], 1);
    for stamp in ["created_at", "started_at", "finished_at"] {
        assert!(job[stamp].is_string(), "{stamp} missing in {job}");
    }
}

#[tokio::test]
async fn an_echo_job_returns_its_data_and_a_failing_job_is_reported_failed() {
    let stack = Stack::builder().jobs().start().await.unwrap();
    let api = stack.jobs_client();

    let echo = api
        .submit_ok("echo", json!({"hello": ["world", 1]}))
        .await
        .unwrap();
    let job = api
        .wait_for_status(&echo, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job["result"], json!({"hello": ["world", 1]}));

    let bad = api
        .submit_ok("test", json!({"validation": false}))
        .await
        .unwrap();
    let job = api
        .wait_for_status(&bad, "failed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        job["error"],
        "test job needs data.validation = true, got false"
    );
    assert!(job.get("result").is_none());
}

#[tokio::test]
async fn health_reports_version_and_commit() {
    let stack = Stack::builder()
        .nats()
        .bff()
        .bff_env("FLUO_COMMIT", "0123abc")
        .start()
        .await
        .unwrap();
    let api = stack.jobs_client();
    let health = api.get("/health").await.unwrap();
    assert_eq!(
        health.expect_status(200),
        &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "commit": "0123abc"})
    );
    api.get("/ready").await.unwrap().expect_status(200);
}

#[tokio::test]
async fn start_order_does_not_matter() {
    // BFF and worker first, NATS last: both provision the stream and bucket when it appears.
    let mut stack = Stack::builder().bff().worker().start().await.unwrap();
    let api = stack.jobs_client();
    let ready = api.get("/ready").await.unwrap();
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(
        ready.body["reason"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{ready:?}"
    );

    stack.start_nats().await.unwrap();
    stack
        .wait_ready(fluo_teststack::Component::Bff)
        .await
        .unwrap();
    api.run_test_job(JOB_TIMEOUT).await.unwrap();
}
