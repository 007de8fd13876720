//! `rotate nats` refuses, changing nothing, whatever its checks find wrong: no Secrets, Secrets
//! that do not belong together, no Deployment using them, no way to reload NATS (the simulated
//! runtime has no exec). The rotation itself runs on the process runtime (e2e `rotation`).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::PostParams;

use super::harness::{Infra, World, workload};

fn secret(name: &str, data: &std::collections::BTreeMap<String, String>) -> Secret {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "fluo"},
        "stringData": data,
    }))
    .unwrap()
}

async fn versions(client: &kube::Client) -> Vec<Option<String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "fluo");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "fluo");
    let mut out = Vec::new();
    for name in ["nats-auth", "nats-credentials"] {
        out.push(secrets.get(name).await.unwrap().metadata.resource_version);
    }
    for d in deployments.list(&Default::default()).await.unwrap() {
        out.push(d.metadata.resource_version);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_nats_refuses_what_its_checks_find_wrong_and_changes_nothing() {
    let infra = Infra::standard();
    infra.write(
        "components/nats/manifests/nats.yaml",
        &workload("nats", "fluo/nats:2.10").replace("app: nats", "app.kubernetes.io/name: nats"),
    );
    infra.write(
        "components/bff/manifests/bff.yaml",
        &workload("bff", "fluo/fluo-bff:dev").replace(
            "      containers:\n",
            "      volumes: [{name: creds, secret: {secretName: nats-credentials, optional: true}}]\n      containers:\n",
        ),
    );
    let w = World::with(infra, Duration::from_millis(100)).await;
    let rotate = || w.cmd(["rotate", "nats", "--reason", "test", "--yes"]);

    rotate()
        .run()
        .await
        .code(2)
        .stderr_has("Secret fluo/nats-auth not found")
        .stderr_has("nothing changed");

    // The Secrets of two different `fluo-secrets` runs.
    let namespaces: Api<Namespace> = Api::all(w.client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": "fluo"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let ours = fluo_secrets::bundle::local("fluo").unwrap();
    let theirs = fluo_secrets::bundle::local("fluo").unwrap();
    let data = |set: &[fluo_secrets::bundle::Secret], name: &str| {
        set.iter().find(|(n, _)| *n == name).unwrap().1.clone()
    };
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), "fluo");
    for (name, set) in [
        ("nats-auth", &theirs),
        ("nats-credentials", &ours),
        ("nats-tls", &ours),
    ] {
        let s = secret(name, &data(set, name));
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    let before = versions(&w.client).await;
    let refused = rotate().run().await;
    refused
        .code(2)
        .stderr_has("does not list nats-credentials' user bff with its password")
        .stderr_has("nothing changed");
    for (_, value) in data(&ours, "nats-credentials")
        .iter()
        .chain(&data(&theirs, "nats-credentials"))
    {
        assert!(
            !refused.stderr.contains(value.as_str()) || value.len() < 8,
            "a value was printed"
        );
    }
    assert_eq!(versions(&w.client).await, before);

    // Matching Secrets, but nothing deployed that uses them.
    let mut auth = secrets.get("nats-auth").await.unwrap();
    auth.data = None;
    auth.string_data = Some(data(&ours, "nats-auth"));
    secrets
        .replace("nats-auth", &PostParams::default(), &auth)
        .await
        .unwrap();
    rotate()
        .run()
        .await
        .code(2)
        .stderr_has("no Deployment in fluo mounts the Secret nats-credentials");

    // Deployed, but NATS cannot be reloaded (no exec on the simulated runtime).
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let history = |w: &World| {
        let cmd = w.cmd(["history", "nats", "-o", "json"]);
        async move { cmd.run().await.code(0).json() }
    };
    let recorded = history(&w).await;
    let before = versions(&w.client).await;
    rotate()
        .run()
        .await
        .code(2)
        .stderr_has("`nats-server --version` in pod nats-")
        .stderr_has("exec needs real processes")
        .stderr_has("nothing changed");
    assert_eq!(versions(&w.client).await, before);
    assert_eq!(
        history(&w).await,
        recorded,
        "a refused rotation is not recorded"
    );
}
