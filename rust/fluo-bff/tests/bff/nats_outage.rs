use fluo_teststack::{Component, JobsClient, Reply, Stack};
use serde_json::json;

use super::support::JOB_TIMEOUT;

#[tokio::test]
async fn nats_down_means_503_and_recovery_needs_no_restart() {
    let mut stack = Stack::builder().jobs().start().await.unwrap();
    let api = stack.jobs_client();
    let bff_pid = stack.pid(Component::Bff);
    let before = api.run_test_job(JOB_TIMEOUT).await.unwrap();

    stack.stop_nats().await.unwrap();

    let not_ready = until_not_ready(&stack, &api).await;
    assert_eq!(not_ready.body["status"], "unavailable");
    assert!(
        not_ready.body["reason"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{not_ready:?}"
    );
    let refused = api
        .submit("test", json!({"validation": true}))
        .await
        .unwrap();
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.error().contains("NATS"), "{refused:?}");
    assert_eq!(
        api.get(&format!("/api/jobs/{before}"))
            .await
            .unwrap()
            .status,
        503
    );
    // Liveness does not depend on NATS: Kubernetes must not restart the BFF for this.
    api.get("/health").await.unwrap().expect_status(200);

    stack.start_nats().await.unwrap();
    stack.wait_ready(Component::Bff).await.unwrap();
    assert_eq!(stack.pid(Component::Bff), bff_pid, "the BFF was restarted");

    let after = stack
        .eventually("a submission to be accepted again", || async {
            let reply = api.submit("test", json!({"validation": true})).await?;
            Ok::<_, fluo_teststack::Error>(
                (reply.status == 202).then(|| reply.body["id"].as_str().unwrap().to_owned()),
            )
        })
        .await
        .unwrap();
    api.wait_for_status(&after, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
    // The job from before the outage survived it (JetStream file storage).
    api.wait_for_status(&before, "completed", JOB_TIMEOUT)
        .await
        .unwrap();
}

/// SIGTERM while NATS is down: the BFF still stops, cleanly and well inside a pod's grace
/// period (the teststack would SIGKILL it after 60 s, which shows as no exit code).
#[tokio::test]
async fn sigterm_with_nats_down_still_stops_the_bff() {
    let mut stack = Stack::builder().jobs().start().await.unwrap();
    stack.stop_nats().await.unwrap();
    let started = std::time::Instant::now();
    let code = stack.stop_bff().await.unwrap();
    assert_eq!(code, Some(0), "the BFF did not exit by itself on SIGTERM");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "stopping took {:?}",
        started.elapsed()
    );
}

/// With a shutdown delay, SIGTERM first turns readiness off while the API keeps serving (the
/// time Services and Ingresses need to stop sending requests here), then the BFF exits.
#[tokio::test]
async fn sigterm_turns_readiness_off_and_serves_through_the_shutdown_delay() {
    let mut stack = Stack::builder()
        .jobs()
        .bff_env("FLUO_BFF_SHUTDOWN_DELAY", "2s")
        .start()
        .await
        .unwrap();
    let api = stack.jobs_client();
    let pid = stack.pid(Component::Bff).expect("the BFF runs");
    let signalled = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let not_ready = until_not_ready(&stack, &api).await;
    assert!(not_ready.error().contains("shutting down"), "{not_ready:?}");
    let accepted = api
        .submit("test", json!({"validation": true}))
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert_eq!(stack.stop_bff().await.unwrap(), Some(0));
    assert!(
        signalled.elapsed() >= std::time::Duration::from_secs(2),
        "the BFF stopped {:?} after SIGTERM, within its shutdown delay",
        signalled.elapsed()
    );
}

/// The BFF's /ready answer once it is 503.
async fn until_not_ready(stack: &Stack, api: &JobsClient) -> Reply {
    stack
        .eventually("BFF /ready to fail", || async {
            let reply = api.get("/ready").await?;
            Ok::<_, fluo_teststack::Error>((reply.status == 503).then_some(reply))
        })
        .await
        .unwrap()
}
