//! Post-deploy checks (fluo-health + fluo-smoke): a failure is a failed rollout.

use crate::harness::{LOCAL_ENV, World};
use crate::image_of;

#[tokio::test(flavor = "multi_thread")]
async fn failing_post_checks_roll_the_deploy_back_and_exit_1() {
    let w = World::start().await;
    // Direct access: the bff URL points at the discard port, where nothing answers.
    w.infra.write(
        "environments/local.toml",
        &LOCAL_ENV.replace("post_deploy_checks = false", "post_deploy_checks = true"),
    );
    w.cmd(["deploy", "--all", "--no-post-checks"])
        .run()
        .await
        .code(0);
    let run = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await;
    run.code(1)
        .stderr_has("running post-deploy checks")
        .stderr_has("post-deploy checks failed")
        .stderr_has("smoke bff-health: GET http://127.0.0.1:9/health")
        .stdout_has("failed v2");
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev"),
        "bff is back on its image before the deploy"
    );
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    history.code(0);
    let entries = history.json();
    let by_revision = |n: u64| {
        entries
            .as_array()
            .expect("array")
            .iter()
            .find(|e| e["revision"] == n)
            .unwrap_or_else(|| panic!("no revision {n} in {entries}"))
            .clone()
    };
    assert_eq!(by_revision(2)["status"], "rolled-back", "{entries}");
    let v3 = by_revision(3);
    assert_eq!(v3["status"], "deployed", "{entries}");
    assert_eq!(v3["action"]["type"], "rollback", "{entries}");
    assert!(
        v3["reason"]
            .as_str()
            .is_some_and(|r| r.contains("post-deploy checks failed")),
        "{entries}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_post_checks_with_nothing_to_roll_back_to_escalate_with_exit_3() {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &LOCAL_ENV.replace("post_deploy_checks = false", "post_deploy_checks = true"),
    );
    // A first install: the post-deploy rollback has no earlier revision to return to.
    let run = w.cmd(["deploy", "--all"]).run().await;
    run.code(3)
        .stderr_has("post-deploy checks failed")
        .stdout_has("ROLLBACK FAILED")
        .stdout_has("ESCALATE: automatic rollback of bff failed. Manual steps:")
        .stdout_has("rollback bff --to <N> --reason");
}
