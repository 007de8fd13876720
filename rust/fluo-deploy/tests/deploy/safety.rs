//! Bad input changes nothing (exit 2), policy refusals (exit 5), the deploy lock (exit 4,
//! takeover after expiry, --force-unlock).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::io::AsyncBufReadExt;

use crate::harness::{Infra, World};
use crate::{app_objects, records};

async fn assert_untouched(w: &World) {
    crate::assert_untouched(&w.client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_yaml_cycle_and_unknown_component_exit_2_and_change_nothing() {
    let w = World::start().await;
    /// (what, how to break a fresh tree, arguments, expected message).
    type Case<'a> = (&'a str, Box<dyn Fn(&Infra)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unknown key in component.toml",
            Box::new(|i: &Infra| {
                i.write(
                    "components/bff/component.toml",
                    &crate::harness::BFF.replace("[rollout]", "colour = \"red\"\n[rollout]"),
                )
            }),
            vec!["deploy", "--all"],
            "colour",
        ),
        (
            "bad YAML",
            Box::new(|i: &Infra| {
                i.write(
                    "components/workers/manifests/extra.yaml",
                    "kind: ConfigMap\nmetadata: [unclosed\n",
                )
            }),
            vec!["deploy", "--all"],
            "extra.yaml:3: invalid YAML",
        ),
        (
            "dependency cycle",
            Box::new(|i: &Infra| {
                i.write(
                    "components/nats/component.toml",
                    &crate::harness::NATS.replace("depends_on = []", "depends_on = [\"workers\"]"),
                )
            }),
            vec!["deploy", "--all"],
            "dependency cycle",
        ),
        (
            "unknown component",
            Box::new(|_: &Infra| {}),
            vec!["deploy", "natz"],
            "unknown component `natz`",
        ),
        (
            "unknown image name",
            Box::new(|_: &Infra| {}),
            vec!["deploy", "bff", "--image", "nope=x:1"],
            "nope",
        ),
    ];
    for (what, break_it, args, needle) in cases {
        let fresh = Infra::standard();
        break_it(&fresh);
        let mut cmd = w.cmd(args.clone());
        let infra_arg = cmd.args.iter().position(|a| a == "--infra").unwrap() + 1;
        cmd.args[infra_arg] = fresh.path().display().to_string();
        let run = cmd.run().await;
        assert_eq!(run.code, Some(2), "{what}: {}", run.stderr);
        run.stderr_has(needle);
        assert_untouched(&w).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn production_policy_refuses_without_approval_and_outside_windows() {
    let w = World::start().await;
    let prod = crate::harness::LOCAL_ENV
        .replace("name = \"local\"", "name = \"production\"")
        .replace(
            "[approvals]\nrequired = false",
            "[approvals]\nrequired = true\nchange_ticket_pattern = \"^CHG-[0-9]+$\"",
        )
        .replace("allow_skip = true", "allow_skip = false");
    w.infra.write("environments/production.toml", &prod);
    w.cmd(["--env", "production", "deploy", "nats"])
        .run()
        .await
        .code(5)
        .stderr_has("--change-ticket");
    w.cmd([
        "--env",
        "production",
        "deploy",
        "nats",
        "--change-ticket",
        "JIRA-1",
        "--approved-by",
        "bob",
    ])
    .run()
    .await
    .code(5)
    .stderr_has("does not match");
    let closed = prod.replace(
        "[approvals]",
        "[[windows]]\ndays = [\"Mon\"]\nstart = \"00:00\"\nend = \"00:01\"\n[approvals]",
    );
    w.infra.write("environments/production.toml", &closed);
    w.cmd([
        "--env",
        "production",
        "deploy",
        "nats",
        "--change-ticket",
        "CHG-1",
        "--approved-by",
        "bob",
    ])
    .run()
    .await
    .code(5)
    .stderr_has("outside the deployment windows");
    assert_untouched(&w).await;
    w.infra.write("environments/production.toml", &prod);
    w.cmd([
        "--env",
        "production",
        "deploy",
        "nats",
        "--change-ticket",
        "CHG-1",
        "--approved-by",
        "bob",
        "--skip",
        "tests",
        "--reason",
        "hurry",
    ])
    .run()
    .await
    .code(5)
    .stderr_has("[validation].allow_skip = false), so --skip tests is not allowed");
    w.cmd(["--env", "production", "deploy", "nats", "--skip", "tests"])
        .run()
        .await
        .code(2)
        .stderr_has("--skip needs --reason");
    assert!(app_objects(&w.client).await.is_empty());
    w.cmd([
        "--env",
        "production",
        "deploy",
        "nats",
        "--change-ticket",
        "CHG-1",
        "--approved-by",
        "bob",
    ])
    .run()
    .await
    .code(0);
    let h = w
        .cmd(["--env", "production", "history", "nats", "-o", "json"])
        .run()
        .await;
    assert_eq!(h.json()[0]["change_ticket"], "CHG-1");
    assert_eq!(h.json()[0]["approved_by"], "bob");
}

async fn hold_lock(w: &World, holder: &str, ttl: i32) {
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("fluo-system".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let _ = namespaces.create(&PostParams::default(), &ns).await;
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "fluo-system");
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("fluo-deploy".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(ttl),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create lease");
}

#[tokio::test(flavor = "multi_thread")]
async fn held_lock_exits_4_naming_the_holder_and_force_unlock_is_recorded() {
    let w = World::start().await;
    hold_lock(&w, "alice@laptop (d-1)", 3600).await;
    w.cmd(["deploy", "nats"])
        .run()
        .await
        .code(4)
        .stderr_has("held by `alice@laptop (d-1)` for ")
        .stderr_has("expires unless renewed within 3600s");
    assert!(
        app_objects(&w.client).await.is_empty(),
        "a refused deploy applied something"
    );
    w.cmd(["deploy", "nats", "--force-unlock"])
        .run()
        .await
        .code(0)
        .stderr_has("removed with --force-unlock");
    let h = w.cmd(["history", "nats", "-o", "json"]).run().await;
    assert_eq!(h.json()[0]["forced_unlock"], "alice@laptop (d-1)");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_lock_is_taken_over() {
    let w = World::start().await;
    hold_lock(&w, "ghost", 1).await;
    // The lease expires one second after its renew time; retry until it has (no fixed sleep).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = w.cmd(["deploy", "nats"]).run().await;
        if run.code == Some(0) {
            run.stderr_has("expired, taken over");
            break;
        }
        run.code(4);
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_deploys_one_proceeds_the_other_exits_4() {
    let w = World::with(Infra::standard(), Duration::from_secs(2)).await;
    let mut first = w.cmd(["deploy", "--all"]).command().spawn().expect("spawn");
    // Start the second once the first holds the lock (it is applying).
    let stderr = first.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut seen = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("applied") {
            break;
        }
    }
    let second = w.cmd(["deploy", "--all"]).run().await;
    second.code(4).stderr_has("another deploy holds the lock");
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = first.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{seen}");
    assert_eq!(
        records(&w.client).await.len(),
        4,
        "only the first deploy wrote records"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_killed_mid_way_next_run_takes_the_expired_lock_and_converges() {
    let w = World::with(Infra::standard(), Duration::from_secs(2)).await;
    let mut first = w
        .cmd(["deploy", "--all"])
        .env("FLUO_LOCK_TTL", "2s")
        .command()
        .spawn()
        .expect("spawn");
    let stderr = first.stderr.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("applied") {
            break;
        }
    }
    first.start_kill().expect("SIGKILL");
    first.wait().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let run = w
            .cmd(["deploy", "--all"])
            .env("FLUO_LOCK_TTL", "2s")
            .run()
            .await;
        if run.code == Some(0) {
            run.stderr_has("expired, taken over")
                .stderr_has("was interrupted; marked failed");
            break;
        }
        run.code(4);
        assert!(tokio::time::Instant::now() < deadline, "lock never expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = w.cmd(["status", "-o", "json"]).run().await;
    for row in status.json().as_array().unwrap() {
        assert_eq!(row["status"], "deployed", "{row}");
        assert_eq!(row["ready"], row["desired"], "{row}");
    }
}
