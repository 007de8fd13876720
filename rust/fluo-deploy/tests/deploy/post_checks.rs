//! Post-deploy checks (fluo-health + fluo-smoke): a failure is a failed rollout.

use crate::harness::{LOCAL_ENV, World};
use crate::image_of;

/// Everything installed (v1, checks skipped), then post-deploy checks turned on, so the next
/// deploy's checks fail and have a previous revision to roll back to.
async fn installed_with_failing_post_checks() -> World {
    let w = World::start().await;
    w.cmd(["deploy", "--all", "--no-post-checks"])
        .run()
        .await
        .code(0);
    enable_post_checks(&w);
    w
}

/// Turns post-deploy checks on in the fixture environment (its bff URL is the discard port,
/// where nothing answers, so the checks fail).
fn enable_post_checks(w: &World) {
    w.infra.write(
        "environments/local.toml",
        &LOCAL_ENV.replace("post_deploy_checks = false", "post_deploy_checks = true"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_post_checks_roll_the_deploy_back_and_exit_1() {
    let w = installed_with_failing_post_checks().await;
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

/// The cause of a post-check failure, as the fixture environment produces it.
const CAUSE: &str = "smoke bff-health: GET http://127.0.0.1:9/health";

#[tokio::test(flavor = "multi_thread")]
async fn post_check_failure_cause_is_printed_once_and_component_rows_stay_short() {
    let w = installed_with_failing_post_checks().await;
    let run = w
        .cmd(["deploy", "--all", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await;
    run.code(1);
    // Once in the result (under the table), once in the progress (when the checks fail).
    assert_eq!(run.stdout.matches(CAUSE).count(), 1, "{}", run.stdout);
    assert_eq!(run.stderr.matches(CAUSE).count(), 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let last = lines.last().expect("a result");
    assert!(
        last.starts_with("post-deploy checks failed: ") && last.contains(CAUSE),
        "{}",
        run.stdout
    );
    // One short row per component: what happened to it, not why the checks failed.
    for c in ["bff", "nats", "prometheus", "workers"] {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(c))
            .unwrap_or_else(|| panic!("no row for {c}:\n{}", run.stdout));
        let cells: Vec<&str> = row
            .split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(
            cells,
            [
                c,
                "failed v2, rolled back to v1",
                "post-deploy checks failed"
            ],
            "{}",
            run.stdout
        );
    }
    assert_eq!(
        lines.len(),
        6,
        "header, four rows, the cause:\n{}",
        run.stdout
    );
    // The records keep the whole cause (audit trail).
    let history = w.cmd(["history", "nats", "-o", "json"]).run().await;
    let v3 = history.json()[2].clone();
    assert_eq!(v3["action"]["to"], 1, "{v3}");
    assert!(
        v3["reason"].as_str().is_some_and(|r| r.contains(CAUSE)),
        "{v3}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_post_checks_of_a_first_install_remove_it_exit_1_and_say_so_in_its_records() {
    let w = World::start().await;
    enable_post_checks(&w);
    // A first install: the checks judged it unhealthy and there is nothing earlier to go back
    // to, so it is removed like a first install whose rollout failed (no false ESCALATE).
    let run = w.cmd(["deploy", "--all"]).run().await;
    run.code(1).stderr_has("post-deploy checks failed");
    assert!(!run.stdout.contains("ESCALATE"), "{}", run.stdout);
    assert_eq!(run.stdout.matches(CAUSE).count(), 1, "{}", run.stdout);
    assert_eq!(
        run.stdout
            .matches("failed v1, first install removed  post-deploy checks failed")
            .count(),
        4,
        "{}",
        run.stdout
    );
    assert_eq!(crate::app_objects(&w.client).await, Vec::<String>::new());
    // Each record says what happened: rolled back (removed) after its checks failed.
    let history = w.cmd(["history", "-o", "json"]).run().await;
    let entries = history.json();
    let entries = entries.as_array().expect("array");
    assert_eq!(entries.len(), 4, "{entries:?}");
    for e in entries {
        assert_eq!(e["status"], "rolled-back", "{e}");
    }
}
