//! Authentication and authorization of the jobs API on a secured stack (NATS users and TLS,
//! API tokens from the tokens file), with the real BFF, worker and nats-server.

use std::time::Duration;

use fluo_jobs::tokens::Scope;
use fluo_teststack::{Component, JobsClient, Stack};
use serde_json::json;

use super::support::JOB_TIMEOUT;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn secured_jobs(metrics_port: u16) -> Stack {
    Stack::builder()
        .jobs()
        .secured()
        .bff_env(
            "FLUO_BFF_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .start()
        .await
        .expect("a secured stack (apt-get install nats-server)")
}

async fn post(stack: &Stack, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/jobs", stack.bff_url()))
        .json(&json!({"type": "echo", "data": {}}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn tokens_and_scopes_decide_and_health_stays_open() {
    let metrics_port = free_port();
    let stack = secured_jobs(metrics_port).await;
    let secured = stack.secured().unwrap();

    // The full path works with the `tests` token, over NATS users and TLS.
    let jobs = stack.jobs_client();
    let id = jobs
        .run_test_job(JOB_TIMEOUT)
        .await
        .expect("a test job completes");

    let anonymous = JobsClient::new(stack.bff_url());
    for path in ["/health", "/ready"] {
        anonymous.get(path).await.unwrap().expect_status(200);
    }
    let missing = post(&stack, None).await;
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"fluo\""
    );
    let planted = fluo_jobs::tokens::mint();
    let invalid = post(&stack, Some(&planted)).await;
    assert_eq!(invalid.status(), 401);
    assert!(
        invalid.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let reply = anonymous.get(&format!("/api/jobs/{id}")).await.unwrap();
    assert_eq!(reply.status, 401, "{reply:?}");

    // `reader` has jobs:read only.
    let reader = secured.token("reader");
    let forbidden = post(&stack, Some(&reader)).await;
    assert_eq!(forbidden.status(), 403);
    assert!(
        forbidden.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"jobs:submit\"")
    );
    let record = JobsClient::new(stack.bff_url())
        .with_token(&reader)
        .get(&format!("/api/jobs/{id}"))
        .await
        .unwrap();
    assert_eq!(record.expect_status(200)["status"], "completed");

    // /metrics lives on the monitoring listener only, and counts the refusals.
    anonymous.get("/metrics").await.unwrap().expect_status(404);
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("fluo_bff_auth_refusals_total{reason=\"scope\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fluo_bff_auth_refusals_total{reason=\"missing\"} 2"),
        "{metrics}"
    );

    // No token, good or planted, reaches the BFF's log.
    let log = std::fs::read_to_string(stack.log_path(Component::Bff)).unwrap();
    assert!(log.contains("lacks the scope"), "{log}");
    for token in [planted, reader, secured.token("tests")] {
        assert!(!log.contains(&token), "a token is in the BFF log");
    }
    // Nor anything the post-deploy log scan reads as one (a token's name in a `token` field).
    let findings = fluo_core::secrets::find(&log);
    assert!(
        findings.is_empty(),
        "{:?} in {log}",
        findings.first().map(|f| f.kind)
    );
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_limited() {
    let stack = secured_jobs(free_port()).await;
    for _ in 0..fluo_bff::auth::MAX_FAILURES {
        assert_eq!(post(&stack, Some("fluo_wrong")).await.status(), 401);
    }
    let limited = post(&stack, Some("fluo_wrong")).await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Health checks are never limited.
    JobsClient::new(stack.bff_url())
        .get("/health")
        .await
        .unwrap()
        .expect_status(200);
}

#[tokio::test]
async fn a_rotation_under_steady_load_fails_no_request() {
    let stack = secured_jobs(free_port()).await;
    let secured = stack.secured().unwrap().clone();
    let tokens_file = secured.dir.join("tokens.toml");
    let old = secured.token("tests");
    let old_id = fluo_jobs::tokens::hash(&old)[..12].to_owned();
    let current = std::sync::Arc::new(std::sync::Mutex::new(old.clone()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = stack.bff_url();
    let load = {
        let (current, stop) = (current.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0u32, Vec::new());
            let http = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let token = current.lock().unwrap().clone();
                let status = http
                    .post(format!("{url}/api/jobs"))
                    .bearer_auth(token)
                    .json(&json!({"type": "echo", "data": {}}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                sent += 1;
                if status.as_ref().ok() != Some(&202) {
                    failed.push(status);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (sent, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 1. Add the new token: both are accepted once the BFF re-reads the file.
    let new_file = secured.dir.join("tests-new.token");
    fluo_secrets::api_tokens::add(&tokens_file, "tests", &Scope::ALL, &new_file).unwrap();
    let new = std::fs::read_to_string(&new_file)
        .unwrap()
        .trim()
        .to_owned();
    let with_new = JobsClient::new(stack.bff_url()).with_token(&new);
    wait_until(|| async { with_new.submit("echo", json!({})).await.unwrap().status == 202 }).await;
    // 2. Clients move to the new token, 3. the old one is removed and then refused.
    *current.lock().unwrap() = new.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fluo_secrets::api_tokens::remove(&tokens_file, &old_id).unwrap();
    let with_old = JobsClient::new(stack.bff_url()).with_token(&old);
    wait_until(|| async { with_old.submit("echo", json!({})).await.unwrap().status == 401 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = load.await.unwrap();
    assert!(sent > 50, "only {sent} requests in the load");
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed: {failed:?}",
        failed.len()
    );
}

async fn wait_until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not reached within 10 s (the BFF re-reads the tokens file every 2 s)");
}
