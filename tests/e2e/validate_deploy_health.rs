//! The SOP-002 happy path, one binary after the other: the gate passes, the deploy installs both
//! components in dependency order and records them, the mandatory pod health check passes, and
//! the history verifies.

use fluo_e2e::{Checked as _, World};

#[tokio::test(flavor = "multi_thread")]
async fn validate_then_deploy_all_then_health_against_the_emulator() {
    let w = World::start().await;
    let gate = w
        .run(
            "fluo-validate",
            &[
                "--context",
                "kube-emulator",
                "--only",
                "manifests,policy",
                "-o",
                "json",
            ],
        )
        .await;
    gate.code(0);
    assert_eq!(gate.json_value()["passed"], true, "{}", gate.stdout);

    let deploy = w
        .run("fluo-deploy", &["deploy", "--all", "--reason", "e2e"])
        .await;
    deploy.code(0);
    assert!(deploy.stdout.contains("deployed v1"), "{}", deploy.stdout);

    let health = w
        .run("fluo-health", &["--check", "pods", "-o", "json"])
        .await;
    health.code(0);
    assert_eq!(health.json_value()["passed"], true, "{}", health.stdout);

    let status = w.run("fluo-deploy", &["status", "-o", "json"]).await;
    status.code(0);
    for row in status.json_value().as_array().expect("rows") {
        assert_eq!(row["status"], "deployed", "{row}");
        assert_eq!(row["revision"], 1, "{row}");
        assert_eq!(row["drift"], false, "{row}");
    }
    w.run("fluo-deploy", &["history", "--verify"]).await.code(0);
}
