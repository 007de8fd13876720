//! SIGINT during a deploy (while applying, while waiting, during the post-deploy checks): the
//! deploy stops, rolls back, finishes its records and releases the lock; the cluster ends at
//! the revision before the deploy.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_emulator::Faults;
use tokio::io::AsyncBufReadExt;

use crate::harness::{LOCAL_ENV, World};
use crate::{assert_untouched, image_of, records};

/// Starts `deploy bff --image fluo-bff=fluo/fluo-bff:2` (after a first install of bff and its
/// dependency), sends SIGINT when stderr shows `when`, and checks the end state.
async fn interrupt_when(w: &World, when: &str) -> String {
    let mut child = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .command()
        .spawn()
        .expect("spawn the deploy");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let mut sent = false;
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            seen.push_str(&line);
            seen.push('\n');
            if !sent && line.contains(when) {
                let pid = child.id().expect("running").to_string();
                let kill = tokio::process::Command::new("kill")
                    .args(["-INT", &pid])
                    .status()
                    .await
                    .expect("kill runs");
                assert!(kill.success());
                sent = true;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the deploy ends within 120s");
    let status = child.wait().await.unwrap();
    assert!(sent, "never saw {when:?}:\n{seen}");
    assert_eq!(status.code(), Some(1), "{seen}");
    assert!(seen.contains("interrupted by SIGINT"), "{seen}");
    // Back at the revision before the deploy, the lock free, every record final.
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev"),
        "{seen}"
    );
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "fluo-system");
    assert!(
        leases.get_opt("fluo-deploy").await.unwrap().is_none(),
        "lock left held:\n{seen}"
    );
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    let entries = history.json();
    let statuses: Vec<(u64, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["revision"].as_u64().unwrap(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (1, "superseded".to_string()),
            (2, "rolled-back".to_string()),
            (3, "deployed".to_string())
        ],
        "{seen}"
    );
    seen
}

async fn installed(ready_after: Duration) -> World {
    let w = World::with(crate::harness::Infra::standard(), ready_after).await;
    w.cmd(["deploy", "nats", "bff"]).run().await.code(0);
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_while_applying_rolls_back_and_frees_the_lock() {
    let w = installed(Duration::from_millis(100)).await;
    // Slow requests: the apply of bff's objects takes a while.
    w.emulator
        .set_faults(Faults {
            latency: Duration::from_millis(150),
            ..Faults::default()
        })
        .unwrap();
    let seen = interrupt_when(&w, "bff: deploying revision 2").await;
    assert!(!seen.contains("bff: revision 2 ready"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_while_waiting_rolls_back_and_frees_the_lock() {
    let w = installed(Duration::from_secs(3)).await;
    let seen = interrupt_when(&w, "bff: applied Deployment/bff").await;
    assert!(!seen.contains("bff: revision 2 ready"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_post_checks_rolls_the_deploy_back_and_frees_the_lock() {
    let w = installed(Duration::from_millis(100)).await;
    // An endpoint that accepts connections and never answers: the checks hang until SIGINT.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    w.infra.write(
        "environments/local.toml",
        &LOCAL_ENV
            .replace("post_deploy_checks = false", "post_deploy_checks = true")
            .replace("http://127.0.0.1:9", &url),
    );
    let seen = interrupt_when(&w, "running post-deploy checks").await;
    assert!(seen.contains("bff: revision 2 ready"), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_timeout_is_refused_before_anything_changes() {
    let w = World::start().await;
    w.cmd(["deploy", "--all", "--timeout", "0s"])
        .run()
        .await
        .code(2)
        .stderr_has("invalid value '0s' for '--timeout <DURATION>': `0s` is zero");
    assert_untouched(&w.client).await;
    assert_eq!(records(&w.client).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_live_images_beside_recorded_ones_and_flags_drift() {
    let w = World::start().await;
    w.cmd(["deploy", "nats", "bff"]).run().await.code(0);
    let clean = w.cmd(["status", "bff", "-o", "json"]).run().await;
    clean.code(0);
    let row = clean.json()[0].clone();
    assert_eq!(row["drift"], false, "{row}");
    assert_eq!(row["live_images"], serde_json::json!(["fluo/fluo-bff:dev"]));
    // Someone changes the image behind fluo's back.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(w.client.clone(), "fluo");
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "evil/fluo-bff:latest"}
    ]}}}});
    deployments
        .patch(
            "bff",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .expect("patch the live Deployment");
    let drifted = w.cmd(["status", "bff", "-o", "json"]).run().await;
    let row = drifted.json()[0].clone();
    assert_eq!(row["drift"], true, "{row}");
    assert_eq!(row["images"]["fluo-bff"], "fluo/fluo-bff:dev", "{row}");
    assert_eq!(
        row["live_images"],
        serde_json::json!(["evil/fluo-bff:latest"])
    );
    w.cmd(["status", "bff"])
        .run()
        .await
        .code(0)
        .stdout_has("evil/fluo-bff:latest DRIFT");
}
