//! status, history --verify (and tampering), diff, prune, delete, shutdown, logs.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

use crate::harness::{World, workload};
use crate::{app_objects, image_of, records};

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_revision_readiness_images_and_commit() {
    let w = World::start().await;
    w.cmd(["status"])
        .run()
        .await
        .code(0)
        .stdout_has("not deployed");
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let text = w.cmd(["status"]).run().await;
    text.code(0)
        .stdout_has("COMPONENT")
        .stdout_has("fluo/fluo-bff:dev")
        .stdout_has("0123456789ab-dirty");
    let json = w.cmd(["status", "bff", "-o", "json"]).run().await.json();
    assert_eq!(json[0]["component"], "bff");
    assert_eq!(json[0]["revision"], 1);
    assert_eq!(json[0]["status"], "deployed");
    assert_eq!(json[0]["ready"], 2);
    assert_eq!(json[0]["desired"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_verify_detects_a_tampered_record() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    w.cmd(["deploy", "nats", "--image", "nats=fluo/nats:2.11"])
        .run()
        .await
        .code(0);
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(0)
        .stdout_has("history verified");
    // Rewrite v1's payload with a forged one (valid gzip JSON, different image).
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "fluo-system");
    let v1 = secrets.get("fluo.release.nats.v1").await.unwrap();
    let bytes = v1.data.unwrap()["release"].0.clone();
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut json).unwrap();
    let forged = String::from_utf8(json)
        .unwrap()
        .replace("fluo/nats:2.10", "evil/nats:1");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, forged.as_bytes()).unwrap();
    let encoded = base64_encode(&gz.finish().unwrap());
    secrets
        .patch(
            "fluo.release.nats.v1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"release": encoded}})),
        )
        .await
        .unwrap();
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(1)
        .stdout_has("fluo.release.nats.v1: payload does not match its recorded digest");
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_no_longer_declared_are_pruned_and_diff_shows_it_first() {
    let w = World::start().await;
    let two = format!(
        "{}---\n{}",
        workload("bff", "fluo/fluo-bff:dev"),
        workload("bff-extra", "fluo/fluo-bff:dev")
    );
    w.infra.write("components/bff/manifests/bff.yaml", &two);
    w.cmd(["deploy", "nats", "bff"]).run().await.code(0);
    assert!(
        app_objects(&w.client)
            .await
            .contains(&"Deployment/bff-extra".to_string())
    );
    w.infra.write(
        "components/bff/manifests/bff.yaml",
        &workload("bff", "fluo/fluo-bff:dev"),
    );
    let diff = w
        .cmd(["diff", "bff", "--image", "fluo-bff=fluo/fluo-bff:v2"])
        .run()
        .await;
    diff.code(0)
        .stdout_has("- bff: Deployment/bff-extra (prune)")
        .stdout_has("~ bff: Deployment/bff (change)")
        .stdout_has("/spec/template/spec/containers/0/image");
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev"),
        "diff changed nothing"
    );
    w.cmd(["deploy", "bff"])
        .run()
        .await
        .code(0)
        .stderr_has("pruning Deployment/bff-extra");
    let objects = app_objects(&w.client).await;
    assert!(
        !objects.contains(&"Deployment/bff-extra".to_string()),
        "{objects:?}"
    );
    assert!(
        !objects.contains(&"Service/bff-extra".to_string()),
        "{objects:?}"
    );
    assert!(objects.contains(&"Deployment/bff".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_all_removes_everything_in_reverse_order_and_keeps_history_unless_purged() {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let run = w
        .cmd(["delete", "--all", "--reason", "decommission", "--yes"])
        .run()
        .await;
    run.code(0);
    assert!(run.line_of("workers: deleting") < run.line_of("bff: deleting"));
    assert!(run.line_of("bff: deleting") < run.line_of("nats: deleting"));
    assert!(app_objects(&w.client).await.is_empty());
    assert_eq!(
        records(&w.client).await.len(),
        8,
        "history kept, plus one delete record per component"
    );
    w.cmd(["deploy", "--all"]).run().await.code(0);
    w.cmd([
        "delete",
        "--all",
        "--purge-history",
        "--reason",
        "reset",
        "--yes",
    ])
    .run()
    .await
    .code(0);
    assert!(app_objects(&w.client).await.is_empty());
    assert_eq!(
        records(&w.client).await,
        [
            "fluo.release.bff.v4",
            "fluo.release.nats.v4",
            "fluo.release.prometheus.v4",
            "fluo.release.workers.v4"
        ],
        "history purged: only the purge records remain"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_scales_to_zero_and_next_deploy_restores_replicas() {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let run = w
        .cmd(["shutdown", "--reason", "maintenance", "--yes"])
        .run()
        .await;
    run.code(0)
        .stderr_has("shut down (pods terminated, recorded as v2)");
    assert!(run.line_of("workers: scaled") < run.line_of("nats: scaled"));
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(w.client.clone(), "fluo");
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "pods left after shutdown"
    );
    let status = w.cmd(["status", "bff", "-o", "json"]).run().await.json();
    assert_eq!(status[0]["status"], "shut down");
    assert_eq!(status[0]["desired"], 0);
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let status = w.cmd(["status", "-o", "json"]).run().await.json();
    let bff = status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["component"] == "bff")
        .unwrap()
        .clone();
    assert_eq!(bff["desired"], 2);
    assert_eq!(bff["ready"], 2);
    assert_eq!(bff["status"], "deployed");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_show_lines_of_the_component_pods() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let run = w.cmd(["logs", "nats", "--tail", "5"]).run().await;
    run.code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(!lines.is_empty(), "no log lines:\n{}", run.stderr);
    assert!(
        lines.iter().all(|l| l.starts_with("nats/nats-")),
        "{lines:?}"
    );
    w.cmd(["logs", "natz"]).run().await.code(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_keeps_the_last_ten_successful_records_and_still_verifies() {
    let w = World::start().await;
    for i in 0..22 {
        w.cmd([
            "deploy",
            "nats",
            "--image",
            &format!("nats=fluo/nats:2.{i}"),
        ])
        .run()
        .await
        .code(0);
    }
    let kept = records(&w.client).await;
    // [retention] successful = 10 (the default), counted before each new revision is written:
    // the ten before it plus the new one.
    let expected: Vec<String> = (12..=22)
        .map(|v| format!("fluo.release.nats.v{v}"))
        .collect();
    let mut kept_sorted = kept.clone();
    kept_sorted.sort_by_key(|n| n.rsplit('v').next().unwrap().parse::<u32>().unwrap());
    assert_eq!(
        kept_sorted, expected,
        "the oldest records are the ones removed"
    );
    w.cmd(["history", "--verify"])
        .run()
        .await
        .code(0)
        .stdout_has("history verified");
}
