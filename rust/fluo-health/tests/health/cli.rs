//! Usage and configuration errors: exit 2 with a message naming what is wrong.

use super::support::{TestInfra, fluo_health, run_checks};

#[tokio::test]
async fn unknown_check_is_a_usage_error() {
    let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
    fluo_health(&infra)
        .args(["--check", "bff,natz"])
        .run()
        .await
        .code(2)
        .stderr_has(
            "unknown check \"natz\" (known: pods, bff, nats, workers, grafana, prometheus, logs, api-auth, nats-auth, nats-tls, rbac, pod-env)",
        );
}

#[tokio::test]
async fn unknown_environment_is_a_configuration_error_that_runs_nothing() {
    let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
    let ran = fluo_health(&infra).args(["--env", "nowhere"]).run().await;
    ran.code(2)
        .stderr_has("fluo-health: loading the configuration: ")
        .stderr_has("nowhere");
    assert_eq!(ran.stdout, "", "nothing was checked");
}

#[tokio::test]
async fn invalid_environment_file_names_the_field() {
    let infra = TestInfra::new(
        "ci",
        "none",
        "[access]\nmode = \"direct\"\n\n[access.urls]\nbff = \"ftp://x\"\n",
    );
    fluo_health(&infra)
        .run()
        .await
        .code(2)
        .stderr_has("access.urls.bff")
        .stderr_has("ftp://x");
}

#[tokio::test]
async fn direct_mode_without_a_url_fails_that_check_naming_the_key() {
    let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
    let ran = run_checks(&infra, "nats").await;
    ran.code(1);
    let evidence = ran.failed_check("nats");
    assert!(
        evidence
            .starts_with("access.mode is \"direct\" but access.urls.nats-monitor is not set in "),
        "{evidence}"
    );
}

#[tokio::test]
async fn a_kubeconfig_flag_naming_a_missing_file_is_a_configuration_error_that_runs_nothing() {
    let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
    let missing = infra.path().join("no-such-kubeconfig");
    let ran = fluo_health(&infra)
        .args(["--kubeconfig", &missing.display().to_string()])
        .run()
        .await;
    ran.code(2)
        .stderr_has("fluo-health: connecting to the cluster: reading kubeconfig ")
        .stderr_has("no-such-kubeconfig");
    assert_eq!(ran.stdout, "", "nothing was checked");
}

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_flags() {
    let infra = TestInfra::direct(&[("bff", "http://127.0.0.1:9".into())]);
    for shell in ["bash", "zsh", "fish"] {
        fluo_health(&infra)
            .args(["--completions", shell])
            .run()
            .await
            .code(0)
            .stdout_has("fluo-health")
            .stdout_has("kubeconfig")
            .stdout_has("check");
    }
    fluo_health(&infra)
        .args(["--man"])
        .run()
        .await
        .code(0)
        .stdout_has(".TH fluo-health 1")
        .stdout_has("\\-\\-timeout");
}
