//! The anchor annotations on fluo-system are updated with one patch against the namespace as
//! last seen; a write by anyone else in between is never overwritten with a stale view.

use fluo_core::history::History;
use fluo_core::state::anchor::{Anchor, Pruned, annotation_key};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::harness::World;

#[tokio::test(flavor = "multi_thread")]
async fn an_anchor_update_after_another_writer_keeps_what_that_writer_added() {
    let w = World::start().await;
    w.cmd(["deploy", "nats"]).run().await.code(0);
    let history = History::new(&w.client);
    let mut release = history.list(Some("nats")).await.unwrap()[0].release.clone();
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
