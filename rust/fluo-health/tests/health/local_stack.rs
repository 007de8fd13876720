//! Against the real local stack: every check passes when healthy, and each fails with the
//! right evidence when its target is broken.

use std::time::Duration;

use fluo_teststack::eventually;

use super::support::{
    GrafanaStandIn, TestInfra, fluo_health, healthy_stack, run_checks, secured_flags,
    secured_healthy_stack, stack_urls,
};

#[tokio::test]
async fn all_checks_pass_against_the_healthy_secured_stack() {
    let stack = secured_healthy_stack().await;
    let grafana = GrafanaStandIn::start("ok").await;
    let mut urls = stack_urls(&stack, &grafana);
    urls.push(("nats", stack.nats_url()));
    let infra = TestInfra::direct(&urls);

    let ran = fluo_health(&infra)
        .args(["-o", "json"])
        .args(secured_flags(&stack))
        .run()
        .await;
    ran.code(0);
    let json = ran.json();
    assert_eq!(json["passed"], true);
    let names: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bff",
            "nats",
            "workers",
            "grafana",
            "prometheus",
            "api-auth",
            "nats-auth",
            "nats-tls"
        ]
    );
    assert!(
        ran.check("bff")
            .1
            .starts_with("GET /health 200, GET /ready 200")
    );
    assert!(
        ran.check("nats").1.contains("JetStream enabled"),
        "{:?}",
        ran.check("nats")
    );
    assert!(
        ran.check("workers").1.contains("completed"),
        "{:?}",
        ran.check("workers")
    );
    assert!(ran.check("grafana").1.contains("\"FLUO Overview\""));
    assert!(
        ran.check("prometheus").1.contains("2 target(s) up"),
        "{:?}",
        ran.check("prometheus")
    );
    // Direct access has no cluster: the cluster checks are reported as not run, not hidden.
    assert!(
        json["not_run"]["pods"]
            .as_str()
            .unwrap()
            .contains("no cluster access")
    );
    assert!(json["not_run"]["logs"].is_string());

    let text = fluo_health(&infra).args(secured_flags(&stack)).run().await;
    text.code(0)
        .stdout_has("health ci: 8 of 8 checks passed\n")
        .stdout_has("pods        NOT RUN");
}

#[tokio::test]
async fn bff_stopped_fails_the_bff_and_worker_checks() {
    let mut stack = healthy_stack().await;
    let grafana = GrafanaStandIn::start("ok").await;
    let infra = TestInfra::direct(&stack_urls(&stack, &grafana));
    stack.stop_bff().await.unwrap();

    let ran = run_checks(&infra, "bff,workers,nats").await;
    ran.code(1);
    let evidence = ran.failed_check("bff");
    assert!(
        evidence.starts_with(&format!("GET {}/health (direct): ", stack.bff_url())),
        "{evidence}"
    );
    assert!(evidence.to_lowercase().contains("refused"), "{evidence}");
    assert_eq!(ran.check("workers").0, "fail");
    assert_eq!(ran.check("nats").0, "pass", "only the BFF's checks fail");
}

#[tokio::test]
async fn nats_monitoring_down_fails_the_nats_check() {
    let mut stack = healthy_stack().await;
    let grafana = GrafanaStandIn::start("ok").await;
    let infra = TestInfra::direct(&stack_urls(&stack, &grafana));
    stack.stop_nats().await.unwrap();

    let ran = run_checks(&infra, "nats").await;
    ran.code(1);
    let evidence = ran.failed_check("nats");
    assert!(
        evidence.starts_with(&format!("GET {}/varz", stack.nats_monitor_url())),
        "{evidence}"
    );
}

#[tokio::test]
async fn worker_stopped_leaves_the_test_job_queued_and_fails() {
    let mut stack = healthy_stack().await;
    let grafana = GrafanaStandIn::start("ok").await;
    let infra = TestInfra::direct(&stack_urls(&stack, &grafana));
    stack.stop_worker().await.unwrap();

    let ran = fluo_health(&infra)
        .args(["--check", "workers", "--timeout", "3s", "-o", "json"])
        .run()
        .await;
    ran.code(1);
    let evidence = ran.failed_check("workers");
    // The job gets 90% of the check's timeout, so its last state is reported, not a bare timeout.
    assert!(
        evidence.contains(" still queued after 2s 700ms (is a worker consuming?)"),
        "{evidence}"
    );
}

#[tokio::test]
async fn prometheus_target_down_fails_the_prometheus_check() {
    let mut stack = healthy_stack().await;
    let grafana = GrafanaStandIn::start("ok").await;
    let infra = TestInfra::direct(&stack_urls(&stack, &grafana));
    stack.stop_worker().await.unwrap();
    eventually(
        "prometheus to see the worker down",
        Duration::from_secs(60),
        || async {
            let down = stack
                .query_prometheus("up{job=\"fluo-worker\"} == 0")
                .await?;
            Ok::<_, fluo_teststack::Error>((!down.is_empty()).then_some(()))
        },
    )
    .await
    .unwrap();

    let ran = run_checks(&infra, "prometheus").await;
    ran.code(1);
    let evidence = ran.failed_check("prometheus");
    assert!(
        evidence.starts_with("target(s) not up: fluo-worker http://127.0.0.1:"),
        "{evidence}"
    );
    assert!(evidence.contains("is down"), "{evidence}");
}

#[tokio::test]
async fn grafana_stand_in_answering_unhealthy_fails_the_grafana_check() {
    let grafana = GrafanaStandIn::start("failing").await;
    let infra = TestInfra::direct(&[("grafana", grafana.url())]);

    let ran = fluo_health(&infra).args(["--check", "grafana"]).run().await;
    ran.code(1)
        .stdout_has("/api/health answered 503 Service Unavailable: database \"failing\"")
        .stdout_has("health ci: 0 of 1 checks passed - FAILED");
}
