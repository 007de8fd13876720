//! The release records' store (`fluo_core::history`) on the emulator: records are listed a page
//! at a time and come back complete and in order; the anchor annotations on fluo-system are
//! updated with one patch against the namespace as last seen, and a write by anyone else in
//! between is never overwritten with a stale view.

use fluo_core::history::History;
use fluo_core::release::{Release, Status};
use fluo_core::state::anchor::{Anchor, Pruned, annotation_key};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::harness::World;

/// An emulator with nats deployed once, the records' store, and that deploy's release.
async fn nats_deployed() -> (World, History, Release) {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let history = History::new(&w.client);
    let release = history.list(Some("nats")).await.unwrap()[0].release.clone();
    (w, history, release)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anchor_update_after_another_writer_keeps_what_that_writer_added() {
    let (w, history, mut release) = nats_deployed().await;
    // This process moves the anchor and keeps the namespace as it saw it.
    release.revision = 5;
    history.anchor_tip(&release).await.unwrap();
    // Another writer (another process, a retention run) adds a pruned entry meanwhile.
    let mut theirs = Anchor::new(6, "d6");
    theirs.pruned.push(Pruned {
        revision: 3,
        digest: "d3".into(),
        prev_digest: None,
    });
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    namespaces
        .patch(
            "fluo-system",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                annotation_key("nats"): theirs.to_text()}}})),
        )
        .await
        .unwrap();
    release.revision = 7;
    history.anchor_tip(&release).await.unwrap();
    let (anchors, unreadable) = History::new(&w.client).anchors().await.unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    let nats = &anchors["nats"];
    assert_eq!(nats.revision, 7);
    assert_eq!(
        nats.pruned.iter().map(|p| p.revision).collect::<Vec<_>>(),
        [3],
        "the other writer's pruned entry was lost: {nats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_beyond_one_list_page_all_come_back_in_revision_order() {
    let (w, history, mut release) = nats_deployed().await;
    // Two and a half pages of 100, written newest first so the store's order is not the answer.
    for revision in (2..=250).rev() {
        release.revision = revision;
        history.create(&release, Status::Superseded).await.unwrap();
    }
    let lists_before = list_requests(&w).await;
    let revisions: Vec<u32> = history
        .list(Some("nats"))
        .await
        .unwrap()
        .iter()
        .map(|r| r.release.revision)
        .collect();
    assert_eq!(revisions, (1..=250).collect::<Vec<_>>());
    assert_eq!(list_requests(&w).await - lists_before, 3, "pages of 100");
    let versions = history.versions_by_component().await.unwrap();
    assert_eq!(versions["nats"].len(), 250);
    assert!(
        versions["nats"]
            .iter()
            .all(|r| r.release.manifests.is_empty())
    );
}

/// List requests the emulator has served so far (every client).
async fn list_requests(w: &World) -> u64 {
    let request = http::Request::get("/debug/kube-emulator/requests")
        .body(Vec::new())
        .unwrap();
    let counts: serde_json::Value =
        serde_json::from_str(&w.client.request_text(request).await.unwrap()).unwrap();
    counts["clients"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|c| c["list"].as_u64())
        .sum()
}
