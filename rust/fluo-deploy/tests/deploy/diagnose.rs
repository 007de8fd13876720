//! `diagnose` against kube-emulator: nothing on the healthy real infra/ tree, then each planted
//! fault named with its pattern and component (exit 1), and the per-component filter.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::harness::{World, repo_infra};

/// Deploys the real infra/ tree (grafana's admin Secret created first, as an operator would).
pub async fn deploy_real_tree(w: &World) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(w.client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": "fluo"}})).unwrap();
    namespaces.create(&Default::default(), &ns).await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(w.client.clone(), "fluo");
    let admin = serde_json::from_value(json!({
        "metadata": {"name": "grafana-admin"},
        "stringData": {"admin-user": "admin", "admin-password": "s3cret"}
    }))
    .unwrap();
    secrets.create(&Default::default(), &admin).await.unwrap();
    for object in fluo_teststack::security_secrets("fluo") {
        let secret = serde_json::from_value(object).unwrap();
        secrets.create(&Default::default(), &secret).await.unwrap();
    }
    let skips = ["tests", "flake-check", "build", "status"];
    let mut args = vec![
        "--context",
        "kube-emulator",
        "deploy",
        "--all",
        "--no-post-checks",
    ];
    for s in &skips {
        args.extend(["--skip", s]);
    }
    args.extend(["--reason", "diagnose test"]);
    real(w, &args).run().await.code(0);
}

/// A command against the real infra/ tree (the emulator's context).
pub fn real(w: &World, args: &[&str]) -> crate::harness::Cmd {
    let mut cmd = w.cmd(args);
    let infra_arg = cmd.args.iter().position(|a| a == "--infra").unwrap() + 1;
    cmd.args[infra_arg] = repo_infra().display().to_string();
    if !args.contains(&"--context") {
        cmd.args
            .extend(["--context".into(), "kube-emulator".into()]);
    }
    cmd
}

async fn merge<K>(api: &Api<K>, name: &str, patch: serde_json::Value)
where
    K: kube::Resource + Clone + for<'de> k8s_openapi::serde::Deserialize<'de> + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_or_else(|e| panic!("patching {name}: {e}"));
}

/// (pattern, component) of every finding.
fn named(json: &serde_json::Value) -> BTreeSet<(String, String)> {
    json["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| {
            (
                f["pattern"].as_str().unwrap().to_string(),
                f["component"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn diagnose_names_each_planted_fault_and_nothing_on_a_healthy_stack() {
    let w = World::start().await;
    deploy_real_tree(&w).await;
    let healthy = real(&w, &["diagnose", "-o", "json"]).run().await;
    healthy.code(0);
    assert_eq!(healthy.json()["findings"], json!([]), "{}", healthy.stdout);
    real(&w, &["diagnose"])
        .run()
        .await
        .code(0)
        .stdout_has("no problems found");

    let deployments: Api<Deployment> = Api::namespaced(w.client.clone(), "fluo");
    let services: Api<Service> = Api::namespaced(w.client.clone(), "fluo");
    let policies: Api<NetworkPolicy> = Api::namespaced(w.client.clone(), "fluo");
    // Startup: a missing image (bff) and a crash loop with its log (workers).
    let bff = deployments.get("fluo-bff").await.unwrap();
    let mut bff_containers =
        serde_json::to_value(&bff.spec.template.spec.unwrap().containers).unwrap();
    bff_containers[0]["image"] = json!("fluo/fluo-bff-does-not-exist:dev");
    merge(
        &deployments,
        "fluo-bff",
        json!({"spec": {"template": {"spec": {"containers": bff_containers}}}}),
    )
    .await;
    let workers = deployments.get("fluo-worker").await.unwrap();
    let mut worker_containers =
        serde_json::to_value(&workers.spec.template.spec.unwrap().containers).unwrap();
    worker_containers[0]["image"] = json!("fluo/fluo-worker:crashloop");
    // Connectivity: a host name that is no Service.
    worker_containers[0]["env"]
        .as_array_mut()
        .expect("worker env")
        .push(json!({"name": "BACKUP_URL", "value": "nats://nats-backup:4222"}));
    merge(
        &deployments,
        "fluo-worker",
        json!({"spec": {"template": {
            "metadata": {"annotations": {"kube-emulator.fluo.dev/log": "error: cannot open job store"}},
            "spec": {"containers": worker_containers}}}}),
    )
    .await;
    // Configuration: a key reference to a ConfigMap that does not exist (grafana).
    let grafana = deployments.get("grafana").await.unwrap();
    let mut grafana_containers =
        serde_json::to_value(&grafana.spec.template.spec.unwrap().containers).unwrap();
    grafana_containers[0]["env"]
        .as_array_mut()
        .expect("grafana env")
        .push(json!({"name": "GF_FEATURE", "valueFrom": {"configMapKeyRef": {"name": "grafana-extra", "key": "feature"}}}));
    merge(
        &deployments,
        "grafana",
        json!({"spec": {"template": {"spec": {"containers": grafana_containers}}}}),
    )
    .await;
    // Connectivity: a selector that matches nothing (prometheus), a targetPort nobody declares
    // (nats monitor port) and a policy that no longer admits the BFF to NATS.
    merge(
        &services,
        "prometheus",
        json!({"spec": {"selector": {"app.kubernetes.io/name": "prometheus-typo"}}}),
    )
    .await;
    merge(
        &services,
        "nats",
        json!({"spec": {"ports": [
        {"name": "client", "port": 4222, "targetPort": "client", "protocol": "TCP"},
        {"name": "monitor", "port": 8222, "targetPort": 8223, "protocol": "TCP"}]}}),
    )
    .await;
    merge(
        &policies,
        "nats",
        json!({"spec": {"ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "fluo-worker"}}}],
         "ports": [{"port": 4222, "protocol": "TCP"}]},
        {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
         "ports": [{"port": 7777, "protocol": "TCP"}]}]}}),
    )
    .await;

    // Wait (bounded) until the kubelet shows the pull error and the crash loop.
    let mut last = None;
    for _ in 0..60 {
        let run = real(&w, &["diagnose", "-o", "json"]).run().await;
        let found = named(&run.json());
        let want = [
            ("image-pull", "bff"),
            ("crash-loop", "workers"),
            ("unresolved-host", "workers"),
            ("missing-reference", "grafana"),
            ("selector-matches-nothing", "prometheus"),
            ("target-port-not-exposed", "nats"),
            ("network-policy-denies", "nats"),
        ];
        if want
            .iter()
            .all(|(p, c)| found.contains(&(p.to_string(), c.to_string())))
        {
            last = Some(run);
            break;
        }
        last = Some(run);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let run = last.expect("diagnose ran");
    run.code(1);
    let json = run.json();
    let found = named(&json);
    for (p, c) in [
        ("image-pull", "bff"),
        ("crash-loop", "workers"),
        ("unresolved-host", "workers"),
        ("missing-reference", "grafana"),
        ("selector-matches-nothing", "prometheus"),
        ("target-port-not-exposed", "nats"),
        ("network-policy-denies", "nats"),
    ] {
        assert!(
            found.contains(&(p.into(), c.into())),
            "{p} of {c} not named:\n{}",
            run.stdout
        );
    }
    // Nothing else than the planted faults and their consequences (not-ready pods behind Services).
    let allowed: BTreeSet<&str> = [
        "image-pull",
        "crash-loop",
        "unresolved-host",
        "missing-reference",
        "selector-matches-nothing",
        "target-port-not-exposed",
        "network-policy-denies",
        "no-ready-endpoints",
    ]
    .into();
    for (p, c) in &found {
        assert!(
            allowed.contains(p.as_str()),
            "unexpected finding {p} of {c}:\n{}",
            run.stdout
        );
    }
    let findings = json["findings"].as_array().unwrap();
    let text_of = |pattern: &str| {
        findings
            .iter()
            .find(|f| f["pattern"] == pattern)
            .map(|f| f["evidence"].to_string())
            .unwrap()
    };
    assert!(
        text_of("crash-loop").contains("exited with code 1"),
        "{}",
        run.stdout
    );
    assert!(
        text_of("crash-loop").contains("error: cannot open job store"),
        "{}",
        run.stdout
    );
    assert!(
        text_of("network-policy-denies").contains("bff -> nats"),
        "{}",
        run.stdout
    );
    assert!(
        !text_of("network-policy-denies").contains("workers -> nats"),
        "{}",
        run.stdout
    );
    assert!(
        text_of("target-port-not-exposed").contains("8223"),
        "{}",
        run.stdout
    );
    assert!(
        text_of("unresolved-host").contains("nats-backup"),
        "{}",
        run.stdout
    );
    assert!(
        text_of("missing-reference").contains("grafana-extra"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("s3cret"));
    // The filter keeps one component's findings; the text names pattern, evidence and fix.
    let nats = real(&w, &["diagnose", "nats", "-o", "json"]).run().await;
    nats.code(1);
    assert!(
        named(&nats.json()).iter().all(|(_, c)| c == "nats"),
        "{}",
        nats.stdout
    );
    real(&w, &["diagnose", "workers"])
        .run()
        .await
        .code(1)
        .stdout_has("crash-loop Pod/")
        .stdout_has("fix: ");
}

/// JetStream checks against a real nats-server (Debian's, JetStream on, loopback) reached as
/// `[access]` says: the platform's streams missing while the BFF is deployed are named; once
/// they exist nothing is reported; an unreachable monitor is listed as not checked.
#[tokio::test(flavor = "multi_thread")]
async fn jetstream_streams_are_checked_through_the_monitoring_endpoint() {
    use async_nats::jetstream::{self, stream};
    let stack = fluo_teststack::Stack::builder()
        .nats()
        .start()
        .await
        .expect("nats-server with JetStream (apt-get install nats-server)");
    let infra = crate::harness::Infra::standard();
    let env = crate::harness::LOCAL_ENV.replacen(
        "nats-monitor = \"http://127.0.0.1:9\"",
        &format!("nats-monitor = \"{}\"", stack.nats_monitor_url()),
        1,
    );
    assert_ne!(env, crate::harness::LOCAL_ENV);
    infra.write("environments/local.toml", &env);
    let w = World::with(infra, std::time::Duration::ZERO).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let run = w.cmd(["diagnose", "nats", "-o", "json"]).run().await;
    run.code(1);
    let json = run.json();
    let missing: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["pattern"] == "stream-missing")
        .map(|f| f["object"].as_str().unwrap())
        .collect();
    assert_eq!(
        missing,
        ["Stream/FLUO_JOBS", "Stream/KV_fluo-jobs"],
        "{json}"
    );
    let js = jetstream::new(async_nats::connect(stack.nats_url()).await.unwrap());
    for (name, subject) in [
        ("FLUO_JOBS", "fluo.jobs.>"),
        ("KV_fluo-jobs", "$KV.fluo-jobs.>"),
    ] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    w.cmd(["diagnose", "nats"])
        .run()
        .await
        .code(0)
        .stdout_has("no problems found");
    // Without the monitor: not checked, said so.
    drop(stack);
    w.cmd(["diagnose", "nats"])
        .run()
        .await
        .stdout_has("not checked: JetStream stream health and free space");
}
