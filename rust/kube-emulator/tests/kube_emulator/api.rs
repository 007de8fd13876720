//! Verbs and object semantics through kube-rs.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::core::Status;
use serde_json::json;

use super::support::*;

fn api_error(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn status_code(e: kube::Error) -> (u16, String) {
    let s = api_error(e);
    (s.code, s.reason)
}

#[tokio::test]
async fn create_get_update_delete_with_metadata_and_conflicts() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let created = create_configmap(&client, "settings", json!({"app": "web"})).await;
    let meta = &created.metadata;
    assert!(meta.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    let rv1: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let again = api
        .create(&PostParams::default(), &configmap("settings", json!({})))
        .await
        .unwrap_err();
    assert_eq!(status_code(again), (409, "AlreadyExists".into()));

    let mut changed = created.clone();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("key".into(), "other".into());
    let updated = api
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    // Replaying the first version is a stale write.
    let stale = api
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    let s = api_error(stale);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("the object has been modified"),
        "{}",
        s.message
    );

    api.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api.get("settings").await.unwrap_err();
    let s = api_error(gone);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "configmaps \"settings\" not found")
    );
}

#[tokio::test]
async fn namespaced_objects_need_their_namespace() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "missing");
    let e = api
        .create(&PostParams::default(), &configmap("c", json!({})))
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!(
        (s.code, s.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    for n in ["default", "kube-system", "kube-public"] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    namespaces
        .create(
            &PostParams::default(),
            &from_json(json!({"metadata": {"name": "missing"}})),
        )
        .await
        .unwrap();
    api.create(&PostParams::default(), &configmap("c", json!({})))
        .await
        .unwrap();
    // Deleting the namespace removes what it contained.
    namespaces
        .delete("missing", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("c").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn label_and_field_selectors_and_pagination() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    create_configmap(&client, "a", json!({"tier": "front", "app": "web"})).await;
    create_configmap(&client, "b", json!({"tier": "back", "app": "web"})).await;
    create_configmap(&client, "c", json!({"tier": "cache"})).await;
    let names = |items: Vec<ConfigMap>| -> Vec<String> {
        items.into_iter().filter_map(|c| c.metadata.name).collect()
    };
    let l = api
        .list(&ListParams::default().labels("app=web,tier!=back"))
        .await
        .unwrap();
    assert_eq!(names(l.items), vec!["a"]);
    let l = api
        .list(&ListParams::default().labels("tier in (back,cache)"))
        .await
        .unwrap();
    assert_eq!(names(l.items), vec!["b", "c"]);
    let l = api
        .list(&ListParams::default().labels("!app"))
        .await
        .unwrap();
    assert_eq!(names(l.items), vec!["c"]);
    let l = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(names(l.items), vec!["b"]);
    let l = api
        .list(&ListParams::default().fields("metadata.namespace=default,metadata.name!=a"))
        .await
        .unwrap();
    assert_eq!(names(l.items), vec!["b", "c"]);

    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(first.items), vec!["a", "b"]);
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let rest = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(rest.items), vec!["c"]);
    assert!(rest.metadata.continue_.is_none());
    assert!(
        first
            .metadata
            .resource_version
            .as_deref()
            .is_some_and(|rv| rv.parse::<u64>().is_ok())
    );
}

#[tokio::test]
async fn generation_moves_only_on_spec_changes_and_status_is_separate() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let d = api
        .create(&PostParams::default(), &deployment("gen", "nginx:1.27", 1))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(1));
    let pp = PatchParams::default();
    let labelled = api
        .patch(
            "gen",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(1));
    let scaled = api
        .patch("gen", &pp, &Patch::Merge(json!({"spec": {"replicas": 2}})))
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    // Writing status through the main resource is ignored; through /status it sticks and spec is kept.
    let ignored = api
        .patch(
            "gen",
            &pp,
            &Patch::Merge(json!({"status": {"collisionCount": 7}})),
        )
        .await
        .unwrap();
    assert_ne!(ignored.status.and_then(|s| s.collision_count), Some(7));
    let st = api
        .patch_status(
            "gen",
            &pp,
            &Patch::Merge(json!({"status": {"collisionCount": 7}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().collision_count, Some(7));
    assert_eq!(st.spec.replicas, Some(2));
    assert_eq!(st.metadata.generation, Some(2));
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    let mut d = deployment("p", "nginx:1", 1);
    let spec = d.spec.template.spec.as_mut().unwrap();
    spec.containers
        .push(from_json(json!({"name": "side", "image": "busybox:1"})));
    api.create(&PostParams::default(), &d).await.unwrap();
    let pp = PatchParams::default();
    // Strategic: containers merge by name.
    let sm = api.patch("p", &pp, &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:2"}]}}}}))).await.unwrap();
    let cs = sm.spec.template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("nginx:1"));
    assert_eq!(cs[1].image.as_deref(), Some("busybox:2"));
    // Merge: lists are replaced.
    let mp = api.patch("p", &pp, &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}}))).await.unwrap();
    assert_eq!(mp.spec.template.spec.unwrap().containers.len(), 1);
    // JSON patch, including a failing test op that changes nothing.
    let path = "/apis/apps/v1/namespaces/default/deployments/p";
    let ct = "application/json-patch+json";
    let r = raw(
        &emu,
        "PATCH",
        path,
        ct,
        "",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["spec"]["replicas"], 3);
    let r = raw(&emu, "PATCH", path, ct, "",
        r#"[{"op":"test","path":"/spec/replicas","value":5},{"op":"replace","path":"/spec/replicas","value":4}]"#).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(api.get("p").await.unwrap().spec.replicas, Some(3));
    // Patching a missing object is 404.
    let e = api
        .patch("nope", &pp, &Patch::Merge(json!({})))
        .await
        .unwrap_err();
    assert_eq!(api_error(e).code, 404);
}

#[tokio::test]
async fn server_side_apply_tracks_managers_and_conflicts() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cfg = |v: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"shared": v, "mine": "1"}});
    let alice = PatchParams::apply("alice");
    let created = api
        .patch("ssa", &alice, &Patch::Apply(cfg("a")))
        .await
        .unwrap();
    let mf = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&mf[0].fields_v1).unwrap();
    assert!(fields["f:data"].get("f:shared").is_some(), "{fields}");

    let bob_cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"shared": "b"}});
    let e = api
        .patch(
            "ssa",
            &PatchParams::apply("bob"),
            &Patch::Apply(bob_cfg.clone()),
        )
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.contains("conflict with \"alice\"") && s.message.contains(".data.shared"),
        "{}",
        s.message
    );
    assert_eq!(api.get("ssa").await.unwrap().data.unwrap()["shared"], "a");

    let forced = api
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(bob_cfg),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["shared"], "b");
    // Alice stops applying "mine": it is removed since nobody else owns it.
    let smaller =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {}});
    let after = api
        .patch("ssa", &alice, &Patch::Apply(smaller))
        .await
        .unwrap();
    let data = after.data.unwrap_or_default();
    assert!(!data.contains_key("mine"), "{data:?}");
    assert_eq!(data["shared"], "b");
    // Apply needs a field manager.
    let r = raw(
        &emu,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/ssa",
        "application/apply-patch+yaml",
        "",
        "{}",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("fieldManager"));
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let rv_before = emu.store().lock().current_rv();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = api
        .create(&dry, &configmap("dry", json!({})))
        .await
        .unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    assert_eq!(api_error(api.get("dry").await.unwrap_err()).code, 404);
    create_configmap(&client, "real", json!({})).await;
    let rv_mid = emu.store().lock().current_rv();
    assert!(rv_mid > rv_before);
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let patched = api
        .patch(
            "real",
            &pp,
            &Patch::Merge(json!({"data": {"key": "changed"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["key"], "changed");
    let applied = api.patch("real", &PatchParams { dry_run: true, ..PatchParams::apply("x") },
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "real"}, "data": {"z": "1"}}))).await.unwrap();
    assert_eq!(applied.data.unwrap()["z"], "1");
    api.delete(
        "real",
        &DeleteParams {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(api.get("real").await.unwrap().data.unwrap()["key"], "value");
    assert_eq!(
        emu.store().lock().current_rv(),
        rv_mid,
        "a dry run wrote to the store"
    );
}

#[tokio::test]
async fn strict_field_validation_names_the_unknown_field() {
    let emu = emulator().await;
    let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "strict"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i:1", "imagee": "typo"}]}}}}).to_string();
    let r = raw(
        &emu,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict",
        "application/json",
        "",
        &body,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let s = r.json();
    assert_eq!(s["reason"], "BadRequest");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.template.spec.containers[0].imagee\""),
        "{}",
        s["message"]
    );
    let api: Api<Deployment> = Api::default_namespaced(emu.client().await);
    assert_eq!(api_error(api.get("strict").await.unwrap_err()).code, 404);
    // Warn (the default) accepts, drops the field and says so in a Warning header.
    let r = raw(
        &emu,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        "",
        &body,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let warning = r
        .headers
        .get("warning")
        .expect("warning header")
        .to_str()
        .unwrap()
        .to_string();
    assert!(warning.contains("unknown field"), "{warning}");
    assert!(
        r.json()["spec"]["template"]["spec"]["containers"][0]
            .get("imagee")
            .is_none()
    );
    // Strict on patch too.
    let pp = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..Default::default()
    };
    let e = api
        .patch("strict", &pp, &Patch::Merge(json!({"spec": {"bogus": 1}})))
        .await
        .unwrap_err();
    let s = api_error(e);
    assert_eq!(s.code, 400);
    assert!(
        s.message.contains("unknown field \"spec.bogus\""),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn invalid_objects_get_422_with_causes() {
    let emu = emulator().await;
    let api: Api<Deployment> = Api::default_namespaced(emu.client().await);
    let mut d = deployment("bad", "nginx:1", 1);
    d.spec.selector.match_labels = Some([("app".to_string(), "other".to_string())].into());
    let s = api_error(api.create(&PostParams::default(), &d).await.unwrap_err());
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message
            .starts_with("Deployment.apps \"bad\" is invalid: spec.template.metadata.labels"),
        "{}",
        s.message
    );
    assert_eq!(api_error(api.get("bad").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn cascade_and_orphan_deletion_follow_owner_references() {
    let emu = emulator().await;
    let client = emu.client().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::default_namespaced(client.clone());
    for name in ["cascade", "orphan"] {
        deployments
            .create(&PostParams::default(), &deployment(name, "nginx:1", 2))
            .await
            .unwrap();
    }
    let count = |items: usize| items;
    eventually("pods of both deployments", || async {
        let n = pods.list(&ListParams::default()).await.unwrap().items.len();
        (count(n) == 4).then_some(())
    })
    .await;
    deployments
        .delete("cascade", &DeleteParams::background())
        .await
        .unwrap();
    eventually("cascade deletion of ReplicaSet and pods", || async {
        let rs_left = rs
            .list(&ListParams::default().labels("app=cascade"))
            .await
            .unwrap()
            .items
            .len();
        let pods_left = pods
            .list(&ListParams::default().labels("app=cascade"))
            .await
            .unwrap()
            .items
            .len();
        (rs_left == 0 && pods_left == 0).then_some(())
    })
    .await;
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    deployments.delete("orphan", &orphan).await.unwrap();
    let left = rs
        .list(&ListParams::default().labels("app=orphan"))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 1);
    assert!(left[0].metadata.owner_references.is_none());
    assert_eq!(
        pods.list(&ListParams::default().labels("app=orphan"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let emu = emulator().await;
    let client = emu.client().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut cm = configmap("fin", json!({}));
    cm.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = api.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("fin").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn discovery_reports_scope_and_aggregated_format() {
    let emu = emulator().await;
    let client = emu.client().await;
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Deployment")
        .expect("deployments discovered");
    assert_eq!(
        (ar.group.as_str(), ar.plural.as_str()),
        ("apps", "deployments")
    );
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let (_, ns_caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Namespace")
        .unwrap();
    assert_eq!(ns_caps.scope, kube::discovery::Scope::Cluster);
    for kind in [
        "Lease",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ClusterRoleBinding",
        "Job",
        "Ingress",
    ] {
        assert!(
            discovery
                .groups()
                .flat_map(|g| g.recommended_resources())
                .any(|(ar, _)| ar.kind == kind),
            "{kind} missing"
        );
    }
    let agg = raw(
        &emu,
        "GET",
        "/apis",
        "",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        "",
    )
    .await;
    assert!(
        agg.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("as=APIGroupDiscoveryList")
    );
    let v = agg.json();
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    let plain = raw(&emu, "GET", "/apis", "", "application/json", "")
        .await
        .json();
    assert_eq!(plain["kind"], "APIGroupList");
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );
}
