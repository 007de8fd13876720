use std::time::Duration;

use fluo_teststack::{NatsProbe, Stack};
use serde_json::json;

use super::support::{JOB_TIMEOUT, completions, wait_until_running};

#[tokio::test]
async fn a_worker_killed_mid_job_has_its_job_redelivered_and_completed_once() {
    let mut stack = Stack::builder()
        .jobs()
        .worker_ack_wait(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    let api = stack.jobs_client();
    let probe = NatsProbe::connect(&stack.nats_url()).await.unwrap();

    let id = api
        .submit_ok("test", json!({"validation": true, "duration_ms": 4000}))
        .await
        .unwrap();
    let running = wait_until_running(&api, &id).await;
    let first_worker = stack.worker_id();
    assert_eq!(running["worker"], first_worker.as_str());

    stack.kill_worker().await.unwrap();
    stack.start_worker().await.unwrap();
    let second_worker = stack.worker_id();
    assert_ne!(first_worker, second_worker);

    let job = api
        .wait_for_status(&id, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(job["result"]["worker"], second_worker.as_str());
    assert_eq!(job["result"]["attempt"], 2);
    assert_eq!(completions(&probe, &id).await, 1);
    // The message left the work queue: nothing will run it again.
    stack
        .eventually("the job stream to be empty", || async {
            Ok::<_, fluo_teststack::Error>((probe.job_stream().await?.messages == 0).then_some(()))
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_job_that_keeps_killing_workers_fails_after_bounded_attempts() {
    let mut stack = Stack::builder()
        .jobs()
        .worker_ack_wait(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let api = stack.jobs_client();
    let id = api
        .submit_ok("test", json!({"validation": true, "duration_ms": 600000}))
        .await
        .unwrap();
    let max_attempts = u64::from(fluo_jobs::names::MAX_ATTEMPTS);
    for attempt in 1..=max_attempts {
        let job = stack
            .eventually(&format!("attempt {attempt} to start"), || async {
                let reply = api.get(&format!("/api/jobs/{id}")).await?;
                Ok::<_, fluo_teststack::Error>(
                    (reply.body["status"] == "running" && reply.body["attempts"] == attempt)
                        .then_some(reply.body),
                )
            })
            .await
            .unwrap();
        assert_eq!(job["worker"], stack.worker_id().as_str());
        stack.kill_worker().await.unwrap();
        stack.start_worker().await.unwrap();
    }
    let job = api
        .wait_for_status(&id, "failed", JOB_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(job["attempts"], max_attempts);
    assert_eq!(
        job["error"],
        format!("gave up after {max_attempts} attempts that did not finish")
    );
}
