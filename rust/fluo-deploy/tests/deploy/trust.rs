//! Trust (issue 13): what runs is what was checked, records that cannot be rewritten quietly,
//! gated and recorded destructive commands, emergency commands without a checkout, retention
//! that keeps the last good revision, and logs during an incident. Where a command is refused,
//! nothing in the cluster changes: every declared kind, the release records and the anchors are
//! compared before and after (a failing list call fails the test).

use std::io::{Read, Write};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{LOCAL_ENV, World};
use crate::{assert_images, image_of};

/// Everything a refused command must leave alone: objects of every kind the fixtures declare
/// (with their resourceVersion), the release records and the anchors on fluo-system.
pub(crate) async fn snapshot(client: &kube::Client) -> Vec<String> {
    async fn names<K>(api: Api<K>, kind: &str) -> Vec<String>
    where
        K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let list = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing {kind}s failed: {e}"));
        list.items
            .iter()
            .map(|o| {
                let meta = o.meta();
                format!(
                    "{kind}/{}@{}",
                    meta.name.clone().unwrap_or_default(),
                    meta.resource_version.clone().unwrap_or_default()
                )
            })
            .collect()
    }
    let mut out = Vec::new();
    out.extend(names::<Deployment>(Api::namespaced(client.clone(), "fluo"), "Deployment").await);
    out.extend(names::<Service>(Api::namespaced(client.clone(), "fluo"), "Service").await);
    out.extend(
        names::<NetworkPolicy>(Api::namespaced(client.clone(), "fluo"), "NetworkPolicy").await,
    );
    out.extend(names::<ConfigMap>(Api::namespaced(client.clone(), "fluo"), "ConfigMap").await);
    out.extend(names::<Secret>(Api::namespaced(client.clone(), "fluo"), "Secret").await);
    out.extend(names::<Secret>(Api::namespaced(client.clone(), "fluo-system"), "Record").await);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Some(ns) = namespaces
        .get_opt("fluo-system")
        .await
        .expect("reading namespace fluo-system")
    {
        for (k, v) in ns.metadata.annotations.unwrap_or_default() {
            out.push(format!("annotation {k}={v}"));
        }
    }
    out.sort();
    out
}

/// Runs `check` and asserts the cluster is exactly as before.
pub(crate) async fn unchanged<F: std::future::Future<Output = ()>>(w: &World, check: F) {
    let before = snapshot(&w.client).await;
    check.await;
    assert_eq!(snapshot(&w.client).await, before, "the cluster changed");
}

/// The local environment with a deployment window that is never now (twelve hours away, an
/// hour long) and `approvals` as the [approvals] table.
fn closed_window(approvals: &str) -> String {
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 12)
        % 24;
    let days = r#"["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]"#;
    env(&[
        (
            "[approvals]",
            &format!(
                "[[windows]]\ndays = {days}\nstart = \"{hour:02}:00\"\nend = \"{hour:02}:59\"\n[approvals]"
            ),
        ),
        ("required = false", approvals),
    ])
}

/// The local fixture environment with `patch` applied (pairs of old -> new text).
pub(crate) fn env(patch: &[(&str, &str)]) -> String {
    let mut text = LOCAL_ENV.to_string();
    for (old, new) in patch {
        assert!(text.contains(old), "fixture environment lacks {old:?}");
        text = text.replacen(old, new, 1);
    }
    text
}

fn records_api(w: &World) -> Api<Secret> {
    Api::namespaced(w.client.clone(), "fluo-system")
}

/// A record's payload as JSON.
pub(crate) async fn payload(w: &World, name: &str) -> Value {
    let secret = records_api(w).get(name).await.expect("record exists");
    let bytes = &secret.data.unwrap()["release"].0;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut json)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// Rewrites a record's payload; with `fresh_digest` also its digest annotation (as an
/// attacker who knows the format would).
async fn rewrite(w: &World, name: &str, edit: impl FnOnce(&mut Value), fresh_digest: bool) {
    let api = records_api(w);
    let mut secret = api.get(name).await.unwrap();
    let mut value = payload(w, name).await;
    edit(&mut value);
    let json = serde_json::to_vec(&value).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).unwrap();
    secret
        .data
        .as_mut()
        .unwrap()
        .insert("release".into(), ByteString(gz.finish().unwrap()));
    if fresh_digest {
        secret.metadata.annotations.as_mut().unwrap().insert(
            "fluo.dev/digest".into(),
            fluo_core::release::digest_of_json(&json),
        );
    }
    api.replace(name, &PostParams::default(), &secret)
        .await
        .unwrap();
}

async fn delete_record(w: &World, name: &str) {
    records_api(w)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

/// bff at v1 (:dev), v2 (:2), v3 (:3).
async fn three_revisions() -> World {
    let w = World::start().await;
    w.cmd(["deploy", "bff"]).run().await.code(0);
    for tag in ["2", "3"] {
        w.cmd([
            "deploy",
            "bff",
            "--image",
            &format!("fluo-bff=fluo/fluo-bff:{tag}"),
        ])
        .run()
        .await
        .code(0);
    }
    w.cmd(["history", "--verify"]).run().await.code(0);
    w
}

/// `rollback bff --to 2` and `history --verify` refuse, naming `record`; nothing changes.
async fn refused_everywhere(w: &World, record: &str, to: &str) {
    let verify = w.cmd(["history", "--verify"]).run().await;
    verify.code(1).stdout_has("TAMPERED").stdout_has(record);
    unchanged(w, async {
        w.cmd(["rollback", "bff", "--to", to, "--reason", "incident"])
            .run()
            .await
            .code(1)
            .stderr_has("failed verification")
            .stderr_has(record);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn evil_or_invalid_image_overrides_are_refused_before_anything_is_applied() {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &env(&[(
            "registry = \"\"",
            "registry = \"registry.fluo.example/fluo\"\nallowed_registries = [\"registry.fluo.example/fluo\"]",
        )]),
    );
    w.cmd(["deploy", "--all"]).run().await.code(0);
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("registry.fluo.example/fluo/fluo-bff:dev")
    );
    for (flag, message) in [
        (
            "fluo-bff=evil/fluo-bff:latest",
            "not from an allowed registry",
        ),
        ("fluo-bff=Fluo/BFF:Upper", "must be lowercase"),
    ] {
        unchanged(&w, async {
            w.cmd(["deploy", "bff", "--image", flag])
                .run()
                .await
                .code(2)
                .stderr_has(message)
                .stderr_has("nothing changed");
        })
        .await;
    }
    // A digest in the reference is applied and kept in the record.
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = format!("registry.fluo.example/fluo/fluo-bff:1.2@{digest}");
    w.cmd(["deploy", "bff", "--image", &format!("fluo-bff={pinned}")])
        .run()
        .await
        .code(0);
    assert_eq!(
        payload(&w, "fluo.release.bff.v2").await["images"]["fluo-bff"],
        json!(pinned)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_checks_the_rendered_image_not_the_manifest() {
    let w = World::start().await;
    unchanged(&w, async {
        w.cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:latest"])
            .run()
            .await
            .code(1)
            .stderr_has("image.pinned")
            .stderr_has("fluo/fluo-bff:latest");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_commit_comes_from_git_and_fluo_commit_cannot_bypass_clean_git() {
    let w = World::start().await;
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(w.infra.path())
            .output()
            .expect("git runs (apt-get install git)");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    w.infra.write(
        "environments/local.toml",
        &env(&[(
            "allow_commit_override = true",
            "allow_commit_override = false",
        )]),
    );
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "infra"]);
    let head = git(&["rev-parse", "HEAD"]);
    w.cmd(["deploy", "nats"])
        .env("FLUO_COMMIT", "deadbeef")
        .run()
        .await
        .code(0)
        .stderr_has("FLUO_COMMIT=deadbeef ignored");
    let record = payload(&w, "fluo.release.nats.v1").await;
    assert_eq!(record["commit"], json!(head), "the commit is git's");
    assert_eq!(record["dirty"], json!(false));
    assert!(record.get("overrides").is_none(), "{record}");
    // Where the environment allows the override, it is used and recorded as one.
    w.infra.write("environments/local.toml", LOCAL_ENV);
    w.cmd(["deploy", "nats"])
        .env("FLUO_COMMIT", "deadbeef")
        .run()
        .await
        .code(0);
    let record = payload(&w, "fluo.release.nats.v2").await;
    assert_eq!(record["commit"], json!("deadbeef"));
    let overrides = record["overrides"].to_string();
    assert!(overrides.contains("taken from FLUO_COMMIT"), "{overrides}");
    // A clean-git rule is not satisfied by FLUO_COMMIT claiming a clean tree.
    w.infra.write(
        "environments/local.toml",
        &env(&[("require_clean_git = false", "require_clean_git = true")]),
    );
    unchanged(&w, async {
        w.cmd(["deploy", "nats"])
            .env("FLUO_COMMIT", "deadbeef")
            .run()
            .await
            .code(1)
            .stderr_has("env.clean-git");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployer_cannot_approve_their_own_change_and_approvers_are_listed() {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &env(&[(
            "required = false",
            "required = true\ndistinct_approver = true\napprovers = [\"alice\", \"bob\"]",
        )]),
    );
    for (approver, message) in [
        ("tester", "cannot approve their own change"),
        ("mallory", "may not approve"),
    ] {
        unchanged(&w, async {
            w.cmd([
                "deploy",
                "nats",
                "--change-ticket",
                "CHG-1",
                "--approved-by",
                approver,
            ])
            .run()
            .await
            .code(5)
            .stderr_has(message);
        })
        .await;
    }
    w.cmd([
        "deploy",
        "nats",
        "--change-ticket",
        "CHG-1",
        "--approved-by",
        "alice",
    ])
    .run()
    .await
    .code(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn edited_record_data_is_detected_and_rollback_refuses_it_unless_overridden() {
    let w = three_revisions().await;
    rewrite(
        &w,
        "fluo.release.bff.v2",
        |r| r["manifests"][1]["spec"]["replicas"] = json!(9),
        false,
    )
    .await;
    refused_everywhere(&w, "fluo.release.bff.v2", "2").await;
    // The override is explicit and recorded.
    w.cmd([
        "rollback",
        "bff",
        "--to",
        "2",
        "--reason",
        "incident",
        "--accept-unverified",
        "INC-7: v2 edited by the on-call",
    ])
    .run()
    .await
    .code(0)
    .stderr_has("used despite failed verification");
    let record = payload(&w, "fluo.release.bff.v4").await;
    assert!(
        record["overrides"].to_string().contains("INC-7"),
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn newest_record_rewritten_with_a_recomputed_digest_is_detected() {
    let w = three_revisions().await;
    rewrite(
        &w,
        "fluo.release.bff.v3",
        |r| r["images"]["fluo-bff"] = json!("evil/fluo-bff:latest"),
        true,
    )
    .await;
    refused_everywhere(&w, "fluo.release.bff.v3", "2").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_newest_record_is_detected() {
    let w = three_revisions().await;
    delete_record(&w, "fluo.release.bff.v3").await;
    refused_everywhere(&w, "fluo.release.bff.v3", "1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_component_history_is_detected() {
    let w = three_revisions().await;
    for v in 1..=3 {
        delete_record(&w, &format!("fluo.release.bff.v{v}")).await;
    }
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(1)
        .stdout_has("bff: history deleted");
    unchanged(&w, async {
        w.cmd(["rollback", "bff", "--reason", "incident"])
            .run()
            .await
            .code(1)
            .stderr_has("history deleted");
        w.cmd(["rollback-to-previous", "--reason", "incident"])
            .run()
            .await
            .code(1)
            .stderr_has("history deleted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_environments_need_a_trusted_key_and_catch_rewrites() {
    use base64::Engine as _;
    let w = World::start().await;
    let key = fluo_core::state::signing::Signer::from_seed([7; 32], "ci");
    let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    w.infra.write(
        "environments/local.toml",
        &format!(
            "{}\n[signing]\naccept_unsigned = false\n[signing.keys]\nci = {:?}\n",
            LOCAL_ENV,
            key.public_key()
        ),
    );
    unchanged(&w, async {
        w.cmd(["deploy", "nats"])
            .run()
            .await
            .code(2)
            .stderr_has("accepts only signed release records");
        let stranger = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        w.cmd(["deploy", "nats"])
            .env("FLUO_SIGNING_KEY", &stranger)
            .run()
            .await
            .code(2)
            .stderr_has("is not trusted by environment `local`");
    })
    .await;
    for tag in ["1", "2"] {
        let run = w
            .cmd([
                "deploy",
                "nats",
                "--image",
                &format!("nats=fluo/nats:{tag}"),
            ])
            .env("FLUO_SIGNING_KEY", &seed)
            .run()
            .await;
        run.code(0)
            .stderr_has(&format!("anchor nats v{tag} sha256:"));
        // The private key never reaches the output.
        assert!(
            !run.stdout.contains(&seed) && !run.stderr.contains(&seed),
            "the signing key was printed"
        );
    }
    let secret = records_api(&w).get("fluo.release.nats.v2").await.unwrap();
    let signature = &secret.metadata.annotations.unwrap()["fluo.dev/signature"];
    assert!(signature.starts_with("ed25519:ci:"), "{signature}");
    w.cmd(["history", "--verify"]).run().await.code(0);
    rewrite(
        &w,
        "fluo.release.nats.v1",
        |r| r["reason"] = json!("nothing to see"),
        true,
    )
    .await;
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(1)
        .stdout_has("fluo.release.nats.v1: signature by `ci` does not match");
}

#[tokio::test(flavor = "multi_thread")]
async fn destructive_commands_obey_policy_need_reason_and_confirmation_and_are_recorded() {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    w.infra.write(
        "environments/local.toml",
        &closed_window("required = false"),
    );
    let purge_all = [
        "delete",
        "--all",
        "--purge-history",
        "--reason",
        "cleanup",
        "--yes",
    ];
    unchanged(&w, async {
        w.cmd(purge_all)
            .run()
            .await
            .code(5)
            .stderr_has("outside the deployment windows");
        w.cmd(["shutdown", "--reason", "night", "--yes"])
            .run()
            .await
            .code(5);
    })
    .await;
    w.infra.write(
        "environments/local.toml",
        &env(&[("allow_purge_history = true", "allow_purge_history = false")]),
    );
    unchanged(&w, async {
        w.cmd(purge_all)
            .run()
            .await
            .code(5)
            .stderr_has("does not allow purging");
        w.cmd(["delete", "bff", "--yes"])
            .run()
            .await
            .code(2)
            .stderr_has("needs --reason");
        w.cmd(["delete", "bff", "--reason", "cleanup"])
            .run()
            .await
            .code(2)
            .stderr_has("pass --yes");
        w.cmd(["shutdown", "--reason", "night"])
            .run()
            .await
            .code(2)
            .stderr_has("pass --yes");
    })
    .await;
    // The approver rules of a deploy hold for teardown too (issue 16).
    w.infra.write(
        "environments/local.toml",
        &env(&[(
            "required = false",
            "required = true\ndistinct_approver = true\napprovers = [\"alice\"]",
        )]),
    );
    let shutdown = ["shutdown", "--reason", "night", "--yes"];
    let ticket = ["--change-ticket", "CHG-3"];
    unchanged(&w, async {
        w.cmd(shutdown)
            .run()
            .await
            .code(5)
            .stderr_has("requires --change-ticket and --approved-by");
        w.cmd([&shutdown[..], &ticket, &["--approved-by", "tester"]].concat())
            .run()
            .await
            .code(5)
            .stderr_has("cannot approve their own change");
        w.cmd([&shutdown[..], &ticket, &["--approved-by", "mallory"]].concat())
            .run()
            .await
            .code(5)
            .stderr_has("may not approve");
    })
    .await;
    w.cmd([&shutdown[..], &ticket, &["--approved-by", "alice"]].concat())
        .run()
        .await
        .code(0);
    let record = payload(&w, "fluo.release.nats.v2").await;
    assert_eq!(record["action"]["type"], "shutdown");
    assert_eq!(record["approved_by"], "alice");
    w.infra.write("environments/local.toml", LOCAL_ENV);
    w.cmd(["delete", "workers", "--reason", "retire", "--yes"])
        .run()
        .await
        .code(0);
    let record = payload(&w, "fluo.release.workers.v3").await;
    assert_eq!(record["action"]["type"], "delete");
    assert_eq!(record["reason"], "retire");
    w.cmd([
        "delete",
        "bff",
        "--purge-history",
        "--reason",
        "reset",
        "--yes",
    ])
    .run()
    .await
    .code(0);
    assert_eq!(
        payload(&w, "fluo.release.bff.v3").await["action"]["type"],
        "purge"
    );
    assert!(
        records_api(&w)
            .get_opt("fluo.release.bff.v2")
            .await
            .unwrap()
            .is_none(),
        "v1 and v2 purged"
    );
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(0)
        .stdout_has("fluo.release.bff.v3: history purged (v1..v2 removed) by tester");
}

/// v1 of everything, then bff at :2 (the deploy rollback-to-previous undoes).
async fn deployed_twice() -> World {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    w.cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await
        .code(0);
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_previous_works_with_a_broken_infra_and_with_none() {
    let w = deployed_twice().await;
    w.infra
        .write("components/bff/manifests/broken.yaml", "kind: [unclosed\n");
    w.infra.write(
        "components/nats/component.toml",
        &crate::harness::NATS.replace("depends_on = []", "depends_on = [\"workers\"]"),
    );
    w.cmd(["deploy", "bff"]).run().await.code(2);
    w.cmd(["rollback-to-previous", "--reason", "2am"])
        .run()
        .await
        .code(0)
        .stderr_has("checkout is broken or missing");
    assert_images(&w.client, &[("bff", "fluo/fluo-bff:dev")]).await;
    // The other emergency commands work from the records and the cluster too.
    for command in [
        &["history", "bff"][..],
        &["status"],
        &["logs", "bff", "--tail", "1"],
    ] {
        w.cmd(command)
            .run()
            .await
            .code(0)
            .stderr_has("checkout is broken or missing");
    }
    w.cmd(["rollback", "bff", "--to", "2", "--reason", "2am"])
        .run()
        .await
        .code(0);
    assert_images(&w.client, &[("bff", "fluo/fluo-bff:2")]).await;

    let w = deployed_twice().await;
    let mut run = w.cmd(["rollback-to-previous", "--reason", "2am"]);
    let at = run.args.iter().position(|a| a == "--infra").unwrap();
    run.args[at + 1] = w.infra.path().join("gone").display().to_string();
    run.args
        .extend(["--context".to_string(), "kube-emulator".to_string()]);
    run.run()
        .await
        .code(0)
        .stderr_has("checkout is broken or missing");
    assert_images(&w.client, &[("bff", "fluo/fluo-bff:dev")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_attempts_do_not_push_the_last_good_revision_out() {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &format!("{LOCAL_ENV}\n[retention]\nsuccessful = 1\nothers = 2\n"),
    );
    w.cmd(["deploy", "nats"]).run().await.code(0);
    for _ in 0..5 {
        w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:crashloop"])
            .run()
            .await
            .code(1);
    }
    let names = crate::records(&w.client).await;
    assert!(
        names.contains(&"fluo.release.nats.v1".to_string()),
        "the last good deploy (target of the latest rollback) is kept: {names:?}"
    );
    assert!(names.len() <= 5, "retention bounds the history: {names:?}");
    w.cmd(["history", "--verify"]).run().await.code(0);
    assert_images(&w.client, &[("nats", "fluo/nats:2.10")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_show_running_lines_and_the_reason_a_container_waits() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), "fluo");
    let stuck: Pod = serde_json::from_value(json!({
        "metadata": {"name": "nats-stuck", "labels": {
            "app.kubernetes.io/managed-by": "fluo", "fluo.dev/component": "nats"}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "main", "image": "fluo/does-not-exist:1",
                "securityContext": {"allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &stuck).await.unwrap();
    let mut waiting = false;
    for _ in 0..100 {
        let pod = pods.get("nats-stuck").await.unwrap();
        waiting = pod
            .status
            .and_then(|s| s.container_statuses)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_some()))
            });
        if waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waiting, "the emulator never reported the pull failure");
    let run = w.cmd(["logs", "nats"]).run().await;
    run.code(0)
        .stdout_has("nats/nats-stuck/main: [waiting: ")
        .stdout_has("started (image fluo/nats:2.10)");
    assert!(!run.stdout.contains("ErrorResponse"), "{}", run.stdout);
    let run = w.cmd(["logs", "nats", "-o", "json"]).run().await;
    run.code(0);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "waiting" && l["pod"] == "nats-stuck"),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l["type"] == "log"), "{lines:?}");
}

/// Issue 16: `--emergency` waives the window but never the approvals (a ticket, an approver who
/// is not the deployer and is on the list); the record carries a signed `emergency` flag that
/// `history`, the weekly report and `history --verify` all see.
#[tokio::test(flavor = "multi_thread")]
async fn an_emergency_deploy_waives_windows_never_approvals_and_is_flagged_in_the_record() {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &closed_window("required = true\ndistinct_approver = true\napprovers = [\"alice\"]"),
    );
    let emergency = ["deploy", "bff", "--emergency", "--reason", "outage fix"];
    let ticket = ["--change-ticket", "CHG-9"];
    unchanged(&w, async {
        w.cmd([
            "deploy",
            "bff",
            "--change-ticket",
            "CHG-9",
            "--approved-by",
            "alice",
        ])
        .run()
        .await
        .code(5)
        .stderr_has("outside the deployment windows");
        w.cmd(emergency)
            .run()
            .await
            .code(5)
            .stderr_has("requires --change-ticket and --approved-by");
        w.cmd([&emergency[..], &ticket, &["--approved-by", "tester"]].concat())
            .run()
            .await
            .code(5)
            .stderr_has("cannot approve their own change");
        w.cmd([&emergency[..], &ticket, &["--approved-by", "mallory"]].concat())
            .run()
            .await
            .code(5)
            .stderr_has("may not approve");
    })
    .await;
    w.cmd([&emergency[..], &ticket, &["--approved-by", "alice"]].concat())
        .run()
        .await
        .code(0);
    let record = payload(&w, "fluo.release.bff.v1").await;
    assert_eq!(record["emergency"], true, "{record}");
    assert_eq!(record["reason"], "outage fix", "{record}");
    assert_eq!(record["approved_by"], "alice", "{record}");
    w.cmd(["history", "bff"])
        .run()
        .await
        .code(0)
        .stdout_has("EMERGENCY: outage fix");
    let history = w.cmd(["-o", "json", "history", "bff"]).run().await;
    assert_eq!(history.code(0).json()[0]["emergency"], true);
    let report = w.cmd(["-o", "json", "report"]).run().await;
    assert_eq!(report.code(0).json()["overall"]["emergency_deploys"], 1);
    // Dropping the flag, even with a recomputed digest, is tampering.
    rewrite(
        &w,
        "fluo.release.bff.v1",
        |r| {
            r.as_object_mut().unwrap().remove("emergency");
        },
        true,
    )
    .await;
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(1)
        .stdout_has("TAMPERED")
        .stdout_has("fluo.release.bff.v1");
}
