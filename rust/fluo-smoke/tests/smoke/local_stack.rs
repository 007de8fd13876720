//! The smoke tests against the real BFF and worker behind the ingress stand-in.

use fluo_teststack::Stack;

use super::support::{INGRESS_HOST, IngressStandIn, TestInfra, smoke};

async fn stack() -> Stack {
    Stack::builder()
        .nats()
        .bff()
        .worker()
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting nats-server, the BFF and a worker: {e}"))
}

#[tokio::test]
async fn smoke_tests_pass_through_the_ingress() {
    let stack = stack().await;
    let ingress = IngressStandIn::start(&stack.bff_url()).await;
    let infra = TestInfra::ingress(ingress.url(), INGRESS_HOST);

    let ran = smoke(&infra, &["-o", "json"]).await;
    ran.code(0);
    assert_eq!(
        ran.check("bff-health"),
        (
            "pass".into(),
            "GET /health 200 (ingress Host fluo-api.localhost)".into()
        )
    );
    let (_, submitted) = ran.check("job-submit");
    assert!(
        submitted.starts_with("POST /api/jobs 202, job "),
        "{submitted}"
    );
    let (_, completed) = ran.check("job-complete");
    assert!(completed.contains(" completed, result "), "{completed}");
    assert!(
        completed.contains(&stack.worker_id()),
        "the result names the worker that ran it: {completed}"
    );
    let (verdict, refused) = ran.check("bad-payload-refused");
    assert_eq!(verdict, "pass");
    assert!(refused.starts_with("malformed JSON -> 4"), "{refused}");

    let text = smoke(&infra, &[]).await;
    text.code(0);
    assert!(
        text.stdout.ends_with("smoke ci: 4 of 4 checks passed\n"),
        "{}",
        text.stdout
    );
}

#[tokio::test]
async fn worker_stopped_fails_job_completion_only() {
    let mut stack = stack().await;
    stack.stop_worker().await.unwrap();
    let ingress = IngressStandIn::start(&stack.bff_url()).await;
    let infra = TestInfra::ingress(ingress.url(), INGRESS_HOST);

    let ran = smoke(&infra, &["--timeout", "3s", "-o", "json"]).await;
    ran.code(1);
    assert_eq!(ran.check("job-submit").0, "pass");
    assert_eq!(
        ran.check("job-complete"),
        ("fail".into(), "timed out after 3s".into())
    );
    assert_eq!(ran.check("bff-health").0, "pass");
}

#[tokio::test]
async fn bff_stopped_fails_every_step_and_job_completion_is_not_attempted() {
    let mut stack = stack().await;
    let ingress = IngressStandIn::start(&stack.bff_url()).await;
    let infra = TestInfra::ingress(ingress.url(), INGRESS_HOST);
    stack.stop_bff().await.unwrap();

    let ran = smoke(&infra, &["-o", "json"]).await;
    ran.code(1);
    let evidence = ran.failed_check("bff-health");
    assert!(
        evidence
            .starts_with("GET /health answered 502 Bad Gateway (ingress Host fluo-api.localhost)"),
        "{evidence}"
    );
    assert_eq!(
        ran.check("job-complete"),
        (
            "fail".into(),
            "not attempted: the test job was not submitted (see job-submit)".into()
        )
    );
}
