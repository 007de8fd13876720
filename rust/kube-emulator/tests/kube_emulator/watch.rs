//! Watch semantics: replay from a resourceVersion, 410 Gone beyond the ring, bookmarks,
//! timeoutSeconds, selector transitions, and kube-runtime's watcher.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube_emulator::Options;
use serde_json::json;

use super::support::*;

fn name_of(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap_or_default()
}

#[tokio::test]
async fn watch_replays_from_resource_version() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let a = create_configmap(&client, "a", json!({})).await;
    let rv = a.metadata.resource_version.clone().unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"key": "2"}})),
    )
    .await
    .unwrap();
    create_configmap(&client, "b", json!({})).await;
    let mut stream = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match within(WAIT, "replayed events", stream.try_next())
            .await
            .unwrap()
            .expect("stream open")
        {
            WatchEvent::Added(cm) => seen.push(format!("ADDED {}", name_of(&cm))),
            WatchEvent::Modified(cm) => seen.push(format!("MODIFIED {}", name_of(&cm))),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["MODIFIED a", "ADDED b"]);
    // Live events follow the replay.
    api.delete("b", &Default::default()).await.unwrap();
    match within(WAIT, "live delete", stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Deleted(cm) => assert_eq!(name_of(&cm), "b"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn too_old_resource_version_is_gone() {
    let emu = emulator_with(Options {
        watch_history: 8,
        ready_after: Duration::ZERO,
        ..Options::default()
    })
    .await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..20 {
        create_configmap(&client, &format!("c{i}"), json!({})).await;
    }
    let mut stream = api
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match within(WAIT, "410 event", stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version: 1"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn bookmarks_and_timeout_seconds() {
    let emu = emulator_with(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Options::default()
    })
    .await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let list = api.list(&Default::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .unwrap()
        .boxed();
    match within(WAIT, "a bookmark", stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Bookmark(b) => {
            assert!(
                b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
            );
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // timeoutSeconds=2: the server ends the stream.
    within(WAIT, "the server to end the watch", async {
        while let Some(ev) = stream.next().await {
            ev.expect("events decode");
        }
    })
    .await;
}

#[tokio::test]
async fn selector_watch_turns_relabeling_into_delete() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    create_configmap(&client, "sel", json!({"team": "a"})).await;
    let mut stream = api
        .watch(
            &WatchParams::default().labels("team=a").disable_bookmarks(),
            "0",
        )
        .await
        .unwrap()
        .boxed();
    match within(WAIT, "initial ADDED", stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Added(cm) => assert_eq!(name_of(&cm), "sel"),
        other => panic!("unexpected {other:?}"),
    }
    api.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
    )
    .await
    .unwrap();
    match within(WAIT, "DELETED on relabel", stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Deleted(cm) => assert_eq!(name_of(&cm), "sel"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn runtime_watcher_sees_changes() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    // Initial list completes first.
    within(WAIT, "initial list", async {
        loop {
            if let Some(Ok(watcher::Event::InitDone)) = events.next().await {
                return;
            }
        }
    })
    .await;
    create_configmap(&client, "seen", json!({})).await;
    within(WAIT, "the applied event", async {
        loop {
            if let Some(Ok(watcher::Event::Apply(cm))) = events.next().await
                && name_of(&cm) == "seen"
            {
                return;
            }
        }
    })
    .await;
}
