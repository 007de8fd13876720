//! core/v1 Events written by the controllers, the scheduler and the kubelet: reasons, messages,
//! involvedObject, de-duplication into `count`, field selectors, and kubectl describe/get events.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::kubectl_cli::*;
use super::support::*;

fn pod(name: &str, image: &str, annotations: serde_json::Value) -> Pod {
    from_json(
        json!({"metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": image}]}}),
    )
}

/// Events whose involvedObject has this name (through the field selector, as kubectl does).
async fn events_of(client: &Client, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::default_namespaced(client.clone());
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .expect("list events")
        .items
}

/// Waits until `name` has an event with this reason whose message contains `text`.
async fn wait_event(client: &Client, name: &str, reason: &str, text: &str) -> Event {
    eventually(
        &format!("{reason} event on {name} with {text:?}"),
        || async {
            events_of(client, name).await.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.contains(text))
            })
        },
    )
    .await
}

fn component(e: &Event) -> &str {
    e.source
        .as_ref()
        .and_then(|s| s.component.as_deref())
        .unwrap_or("")
}

#[tokio::test]
async fn a_rollout_records_controller_scheduler_and_kubelet_events() {
    let emu = emulator().await;
    let client = emu.client().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let d = deploys
        .create(&PostParams::default(), &deployment("web", "nginx:1.27", 2))
        .await
        .unwrap();

    let scaled = wait_event(&client, "web", "ScalingReplicaSet", "from 0 to").await;
    let rs_name = eventually("the ReplicaSet", || async {
        let rss: Api<ReplicaSet> = Api::default_namespaced(client.clone());
        rss.list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .first()
            .map(|rs| rs.name_any())
    })
    .await;
    assert_eq!(
        scaled.message.as_deref(),
        Some(format!("Scaled up replica set {rs_name} from 0 to 2").as_str())
    );
    assert_eq!(scaled.type_.as_deref(), Some("Normal"));
    assert_eq!(component(&scaled), "deployment-controller");
    let involved = &scaled.involved_object;
    assert_eq!(involved.kind.as_deref(), Some("Deployment"));
    assert_eq!(involved.api_version.as_deref(), Some("apps/v1"));
    assert_eq!(involved.namespace.as_deref(), Some("default"));
    assert_eq!(involved.uid, d.metadata.uid);
    assert!(
        scaled.name_any().starts_with("web."),
        "{}",
        scaled.name_any()
    );
    assert_eq!(scaled.count, Some(1));

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod_names = eventually("two pods", || async {
        let names: Vec<String> = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    for p in &pod_names {
        let created = wait_event(&client, &rs_name, "SuccessfulCreate", p).await;
        assert_eq!(created.message, Some(format!("Created pod: {p}")));
        assert_eq!(component(&created), "replicaset-controller");
        assert_eq!(created.involved_object.kind.as_deref(), Some("ReplicaSet"));

        let started = wait_event(&client, p, "Started", "Started container app").await;
        assert_eq!(component(&started), "kubelet");
        assert_eq!(
            started.source.as_ref().and_then(|s| s.host.as_deref()),
            Some("kube-emulator-node")
        );
        assert_eq!(
            started.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(started.involved_object.kind.as_deref(), Some("Pod"));
        let uid = pods.get(p).await.unwrap().metadata.uid;
        assert_eq!(started.involved_object.uid, uid);

        let all = events_of(&client, p).await;
        let message = |reason: &str| {
            all.iter()
                .find(|e| e.reason.as_deref() == Some(reason))
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| panic!("no {reason} event for {p}: {all:?}"))
        };
        assert_eq!(
            message("Scheduled"),
            format!("Successfully assigned default/{p} to kube-emulator-node")
        );
        assert_eq!(message("Pulling"), "Pulling image \"nginx:1.27\"");
        assert!(message("Pulled").starts_with("Successfully pulled image \"nginx:1.27\" in "));
        assert_eq!(message("Created"), "Created container app");
        let reasons: Vec<&str> = all.iter().filter_map(|e| e.reason.as_deref()).collect();
        assert_eq!(reasons.len(), 5, "one event per transition: {reasons:?}");
        assert!(all.iter().all(|e| e.count == Some(1)), "{all:?}");
    }

    // Deleting a running pod: the kubelet stops its container, the ReplicaSet replaces it.
    pods.delete(&pod_names[0], &DeleteParams::default())
        .await
        .unwrap();
    wait_event(&client, &pod_names[0], "Killing", "Stopping container app").await;
    eventually("a replacement pod's SuccessfulCreate", || async {
        let all = events_of(&client, &rs_name).await;
        (all.iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .count()
            == 3)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_crash_loop_counts_back_offs_on_a_bounded_set_of_events() {
    let emu = emulator().await;
    let client = emu.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let created = pods
        .create(
            &PostParams::default(),
            &pod(
                "crash",
                "registry.local/app:crashloop",
                json!({"kube-emulator.fluo.dev/crash-period": "100ms"}),
            ),
        )
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let first = wait_event(&client, "crash", "BackOff", "Back-off restarting").await;
    assert_eq!(first.type_.as_deref(), Some("Warning"));
    assert_eq!(
        first.message,
        Some(format!(
            "Back-off restarting failed container app in pod crash_default({uid})"
        ))
    );
    let grown = eventually("BackOff counted several times", || async {
        events_of(&client, "crash")
            .await
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("BackOff") && e.count.unwrap_or(0) >= 5)
    })
    .await;
    assert!(grown.last_timestamp >= first.last_timestamp);
    assert_eq!(grown.first_timestamp, first.first_timestamp);
    assert_eq!(grown.name_any(), first.name_any());

    // Restarts re-run Pulled (already present), Created and Started: counted, not new objects.
    let all = events_of(&client, "crash").await;
    let restarts = pods
        .get("crash")
        .await
        .unwrap()
        .status
        .unwrap()
        .container_statuses
        .unwrap()[0]
        .restart_count;
    assert!(restarts >= 5, "restartCount {restarts}");
    let mut reasons: Vec<(String, String)> = all
        .iter()
        .map(|e| {
            (
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    assert_eq!(reasons.len(), all.len(), "one Event per reason+message");
    assert!(all.len() <= 7, "bounded: {reasons:?}");
    let started = all
        .iter()
        .find(|e| e.reason.as_deref() == Some("Started"))
        .unwrap();
    assert!(started.count.unwrap_or(0) >= 2, "{started:?}");
    assert!(all.iter().any(|e| e.reason.as_deref() == Some("Pulled")
        && e.message.as_deref()
            == Some(
                "Container image \"registry.local/app:crashloop\" already present on machine"
            )));
}

#[tokio::test]
async fn a_missing_image_records_failed_pulls_then_back_off() {
    let emu = emulator().await;
    let client = emu.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let image = "ghcr.io/acme/does-not-exist:1";
    pods.create(&PostParams::default(), &pod("pull", image, json!({})))
        .await
        .unwrap();
    let failed = wait_event(&client, "pull", "Failed", "Failed to pull image").await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed.message,
        Some(format!(
            "Failed to pull image \"{image}\": failed to pull and unpack image \"{image}\": not found"
        ))
    );
    assert_eq!(
        failed.involved_object.field_path.as_deref(),
        Some("spec.containers{app}")
    );
    wait_event(&client, "pull", "Failed", "Error: ErrImagePull").await;
    wait_event(&client, "pull", "Failed", "Error: ImagePullBackOff").await;
    let backoff = wait_event(&client, "pull", "BackOff", "Back-off pulling image").await;
    assert_eq!(backoff.type_.as_deref(), Some("Normal"));
    let all = events_of(&client, "pull").await;
    assert!(
        !all.iter().any(|e| e.reason.as_deref() == Some("Started")),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_missing_config_map_key_records_create_container_config_error() {
    let emu = emulator().await;
    let client = emu.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": "settings"}, "data": {"other": "x"}})),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p: Pod = from_json(
        json!({"metadata": {"name": "cfg"}, "spec": {"containers": [{"name": "app", "image": "app:1",
        "env": [{"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "url"}}}]}]}}),
    );
    pods.create(&PostParams::default(), &p).await.unwrap();
    let failed = wait_event(&client, "cfg", "Failed", "Error: ").await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Error: couldn't find key url in ConfigMap default/settings")
    );
    // Once the key exists the container starts.
    cms.replace(
        "settings",
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": "settings"}, "data": {"url": "x"}})),
    )
    .await
    .unwrap();
    wait_event(&client, "cfg", "Started", "Started container app").await;
}

#[tokio::test]
async fn jobs_and_stateful_sets_record_their_controllers_events() {
    let emu = emulator().await;
    let client = emu.client().await;
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    jobs.create(
        &PostParams::default(),
        &from_yaml(
            "metadata: {name: migrate}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: 'migrate:1'}]\n",
        ),
    )
    .await
    .unwrap();
    let done = wait_event(&client, "migrate", "Completed", "Job completed").await;
    assert_eq!(component(&done), "job-controller");
    assert_eq!(done.involved_object.kind.as_deref(), Some("Job"));
    wait_event(
        &client,
        "migrate",
        "SuccessfulCreate",
        "Created pod: migrate-",
    )
    .await;

    let sts: Api<StatefulSet> = Api::default_namespaced(client.clone());
    sts.create(
        &PostParams::default(),
        &from_yaml(
            "metadata: {name: db}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec: {containers: [{name: db, image: 'db:1'}]}\n",
        ),
    )
    .await
    .unwrap();
    for i in 0..2 {
        let e = wait_event(
            &client,
            "db",
            "SuccessfulCreate",
            &format!("create Pod db-{i} in StatefulSet db successful"),
        )
        .await;
        assert_eq!(component(&e), "statefulset-controller");
    }
}

#[tokio::test]
async fn kubectl_describe_and_get_events_show_a_pods_events() {
    let emu = emulator().await;
    let client = emu.client().await;
    let k = Kubectl::new(&emu);
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    pods.create(
        &PostParams::default(),
        &pod("crash", "registry.local/app:crashloop", json!({})),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("ok", "nginx:1.27", json!({})))
        .await
        .unwrap();
    wait_event(&client, "crash", "BackOff", "Back-off restarting").await;
    wait_event(&client, "ok", "Started", "Started container app").await;

    let described = k.run(&["describe", "pod", "crash"]).await.success();
    let events_section = described
        .stdout
        .split_once("Events:")
        .unwrap_or_else(|| panic!("no Events section:\n{}", described.stdout))
        .1
        .to_string();
    for reason in [
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "BackOff",
    ] {
        assert!(
            events_section.contains(reason),
            "describe lacks {reason}:\n{events_section}"
        );
    }
    assert!(
        events_section.contains("default-scheduler"),
        "{events_section}"
    );
    assert!(
        events_section.contains("Back-off restarting failed container app in pod crash_default("),
        "{events_section}"
    );
    assert!(!events_section.contains("<none>"), "{events_section}");

    // Same-second events are listed in the order they happened.
    let ok = k.run(&["describe", "pod", "ok"]).await.success().stdout;
    let section = ok.split_once("Events:").expect("Events section").1;
    let order: Vec<usize> = ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
        .iter()
        .map(|r| {
            section
                .find(&format!(" {r} "))
                .unwrap_or_else(|| panic!("no {r}:\n{section}"))
        })
        .collect();
    assert!(order.is_sorted(), "{section}");

    let listed = k
        .get(&["events", "--field-selector", "involvedObject.name=crash"])
        .await;
    let items = listed["items"].as_array().unwrap();
    assert!(items.len() >= 6, "{listed}");
    assert!(items.iter().all(|e| e["involvedObject"]["name"] == "crash"));
    let warnings = k
        .get(&[
            "events",
            "--field-selector",
            "involvedObject.name=crash,type=Warning,source=kubelet",
        ])
        .await;
    let reasons: Vec<&str> = warnings["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["BackOff"]);
    let ok_events = k
        .get(&[
            "events",
            "--field-selector",
            "involvedObject.name=ok,reason=Started",
        ])
        .await;
    assert_eq!(
        ok_events["items"].as_array().unwrap().len(),
        1,
        "{ok_events}"
    );

    // The table kubectl prints: the event printer's columns, one row per Event.
    let table = k
        .run(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=ok,reason=Started",
        ])
        .await
        .success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{}",
        table.stdout
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row[1..5],
        ["Normal", "Started", "pod/ok", "Started"],
        "{}",
        table.stdout
    );
    let wide = k
        .run(&[
            "get",
            "events",
            "-o",
            "wide",
            "--field-selector",
            "involvedObject.name=ok,reason=Started",
        ])
        .await
        .success();
    assert!(
        wide.stdout.contains("spec.containers{app}")
            && wide.stdout.contains("kubelet, kube-emulator-node"),
        "{}",
        wide.stdout
    );

    k.run(&["get", "events", "--field-selector", "spec.foo=bar"])
        .await
        .failure()
        .stderr_has("field label not supported: spec.foo");
}
