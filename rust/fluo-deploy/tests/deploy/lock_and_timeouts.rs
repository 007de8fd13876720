//! The deploy engine when things go wrong mid-run: the lock taken by another deploy, a
//! component that never becomes ready.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use crate::harness::{Infra, World, workload};
use crate::{image_of, records};

/// Reads `child`'s stderr lines until one contains `needle`; returns what it read.
async fn stderr_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> String {
    let mut seen = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(needle) {
                return;
            }
        }
        panic!("stderr ended before {needle:?}");
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} within 60s"));
    seen
}

async fn history_of(w: &World, component: &str) -> Vec<serde_json::Value> {
    let run = w.cmd(["history", component, "-o", "json"]).run().await;
    run.code(0);
    run.json().as_array().expect("array").clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_that_loses_its_lock_stops_rolls_back_exits_4_and_leaves_the_new_holder_alone() {
    // Pods become ready 4 s after they start; the first deploy renews its 3 s lease every 1 s,
    // so it sees the takeover long before nats could become ready.
    let w = World::with(Infra::standard(), Duration::from_secs(4)).await;
    let mut first = w
        .cmd(["deploy", "nats"])
        .env("FLUO_LOCK_TTL", "3s")
        .command()
        .spawn()
        .expect("spawn the first deploy");
    let mut lines = tokio::io::BufReader::new(first.stderr.take().unwrap()).lines();
    let mut seen = stderr_until(&mut lines, "applied Deployment/nats").await;
    let mut second = w
        .cmd(["deploy", "prometheus", "--force-unlock"])
        .command()
        .spawn()
        .expect("spawn the second deploy");
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(60), first.wait())
        .await
        .expect("the first deploy ends")
        .unwrap();
    assert_eq!(status.code(), Some(4), "{seen}");
    assert!(
        seen.contains("deploy lock lost: lease fluo-system/fluo-deploy is now held by `tester@"),
        "{seen}"
    );
    assert!(
        !seen.contains("nats: revision 1 ready"),
        "the first deploy went on after losing the lock:\n{seen}"
    );
    assert!(seen.contains("first install failed; removing it"), "{seen}");
    // The second deploy still holds its lease: the first never touched it.
    let leases: Api<Lease> = Api::namespaced(w.client.clone(), "fluo-system");
    let lease = leases
        .get("fluo-deploy")
        .await
        .expect("the second deploy's lease is still there");
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    let named = seen
        .split("now held by `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_default();
    assert_eq!(
        holder, named,
        "the lease is the second deploy's, as reported"
    );
    let mut second_err = String::new();
    let mut second_stderr = second.stderr.take().unwrap();
    let read = second_stderr.read_to_string(&mut second_err);
    let (read, status) = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::join!(read, second.wait())
    })
    .await
    .expect("the second deploy ends");
    read.unwrap();
    assert_eq!(status.unwrap().code(), Some(0), "{second_err}");
    // The first deploy's records are final; the second's deploy is intact.
    let nats = history_of(&w, "nats").await;
    assert_eq!(nats.len(), 1, "{nats:?}");
    assert_eq!(nats[0]["status"], "rolled-back", "{nats:?}");
    assert!(
        nats[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("deploy lock lost")),
        "{nats:?}"
    );
    assert_eq!(image_of(&w.client, "nats").await, None, "nats was removed");
    let prometheus = history_of(&w, "prometheus").await;
    assert_eq!(prometheus[0]["status"], "deployed", "{prometheus:?}");
    assert_eq!(
        image_of(&w.client, "prometheus").await.as_deref(),
        Some("fluo/prometheus:2.53")
    );
    assert!(
        leases.get_opt("fluo-deploy").await.unwrap().is_none(),
        "the lock is free at the end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_that_never_becomes_ready_is_rolled_back_at_its_timeout() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let never_ready = workload("nats", "fluo/nats:2.11").replace(
        "      labels: {app: nats}\n",
        "      labels: {app: nats}\n      annotations: {kube-emulator.fluo.dev/never-ready: \"true\"}\n",
    );
    assert!(never_ready.contains("never-ready"));
    w.infra
        .write("components/nats/manifests/nats.yaml", &never_ready);
    let run = w.cmd(["deploy", "nats", "--timeout", "2s"]).run().await;
    run.code(1)
        .stderr_has("revision 2 failed: timed out after 2s: Deployment/nats: ")
        .stderr_has("rolled back to v1 (as revision 3)");
    assert!(!run.stdout.contains("ESCALATE"), "{}", run.stdout);
    assert_eq!(
        image_of(&w.client, "nats").await.as_deref(),
        Some("fluo/nats:2.10")
    );
    let history = history_of(&w, "nats").await;
    let summary: Vec<(u64, &str, &str)> = history
        .iter()
        .map(|e| {
            (
                e["revision"].as_u64().unwrap(),
                e["status"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "superseded", "succeeded"),
            (2, "rolled-back", "failed"),
            (3, "deployed", "succeeded")
        ]
    );
    let message = history[1]["message"].as_str().unwrap();
    assert!(
        message.starts_with("timed out after 2s: Deployment/nats: "),
        "the last observed state is in the record: {message}"
    );
    assert_eq!(
        records(&w.client).await,
        [
            "fluo.release.nats.v1",
            "fluo.release.nats.v2",
            "fluo.release.nats.v3"
        ]
    );
}
