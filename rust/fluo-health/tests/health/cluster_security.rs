//! The cluster-side security checks through kube-emulator: `rbac` (SelfSubjectRulesReview of
//! the identity the checks run as, against the deployer roles in infra/k8s/manifests), and
//! `pod-env` and `logs` finding a Secret's bare value in a container's environment or log.

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, PostParams};
use kube_emulator::Emulator;
use serde_json::{Value, json};

use super::emulator::{emulator, port_forward_env, wait_ready};
use super::support::fluo_health;

/// A NATS password as `fluo-secrets` makes them: random hex that matches no secret pattern.
const PASSWORD: &str = "9c1f0e7d2b3a4c5d6e7f8091a2b3c4d5";

async fn create<K>(api: Api<K>, object: Value)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: K =
        serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{object}: {e}"));
    api.create(&PostParams::default(), &typed)
        .await
        .unwrap_or_else(|e| panic!("creating {object}: {e}"));
}

/// The deployer RBAC of the repository's infra/k8s/manifests, as a cluster admin applies it.
async fn apply_deployer_rbac(client: &kube::Client) {
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "fluo-system"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let dir = fluo_teststack::repo_infra().join("k8s/manifests");
    for file in [
        "rbac-deployer-app.yaml",
        "rbac-deployer-cluster.yaml",
        "rbac-deployer-state.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let object: Value = serde::Deserialize::deserialize(doc).unwrap();
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("fluo")
                .to_owned();
            match object["kind"].as_str() {
                Some("ClusterRole") => {
                    create(Api::<ClusterRole>::all(client.clone()), object).await
                }
                Some("ClusterRoleBinding") => {
                    create(Api::<ClusterRoleBinding>::all(client.clone()), object).await;
                }
                Some("RoleBinding") => {
                    create(
                        Api::<RoleBinding>::namespaced(client.clone(), &namespace),
                        object,
                    )
                    .await;
                }
                other => panic!("unexpected kind {other:?} in {file}"),
            }
        }
    }
}

/// The emulator's kubeconfig, acting as a member of the deployers group (kubeconfig `as`).
fn deployer_kubeconfig(emulator: &Emulator, dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(emulator.kubeconfig_path()).unwrap();
    let impersonating = text.replace(
        "  user: {}\n",
        "  user:\n    as: fluo-deployer\n    as-groups: [\"fluo:deployers\"]\n",
    );
    assert_ne!(
        text, impersonating,
        "the emulator kubeconfig has an empty user"
    );
    let path = dir.join("deployer.kubeconfig");
    std::fs::write(&path, impersonating).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn rbac_passes_for_the_documented_deployer_and_names_every_extra_grant() {
    let (emulator, client) = emulator().await;
    apply_deployer_rbac(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let deployer = deployer_kubeconfig(&emulator, dir.path());
    let infra = port_forward_env();
    let rbac = |kubeconfig: String| {
        fluo_health(&infra).args(["--kubeconfig", &kubeconfig, "--check", "rbac", "-o", "json"])
    };

    let ran = rbac(deployer.clone()).run().await;
    ran.code(0);
    let (_, evidence) = ran.check("rbac");
    assert!(
        evidence.starts_with(
            "SelfSubjectRulesReview within the documented fluo-deployer* roles (fluo: "
        ) && evidence.contains("fluo-system: "),
        "{evidence}"
    );
    assert!(!evidence.contains("fluo: 0 rule(s)"), "{evidence}");

    // The emulator's admin (no impersonation) may do anything: that is named.
    let admin = emulator.kubeconfig_path().display().to_string();
    let ran = rbac(admin).run().await;
    ran.code(1);
    assert!(
        ran.failed_check("rbac")
            .contains("grant(s) beyond the documented deployer roles: * */* (any name)"),
        "{}",
        ran.failed_check("rbac")
    );

    // A grant beyond the documented roles, bound to the deployers group.
    create(
        Api::<ClusterRole>::all(client.clone()),
        json!({"metadata": {"name": "secret-reader"}, "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
        ]}),
    )
    .await;
    create(
        Api::<RoleBinding>::namespaced(client.clone(), "fluo"),
        json!({"metadata": {"name": "secret-reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "fluo:deployers"}]}),
    )
    .await;
    let ran = rbac(deployer).run().await;
    ran.code(1);
    assert_eq!(
        ran.failed_check("rbac"),
        "in fluo, 2 grant(s) beyond the documented deployer roles: get core/secrets (any name), list core/secrets (any name)"
    );
}

async fn pod(client: &kube::Client, name: &str, env: Value, log: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"kube-emulator.fluo.dev/log": log}},
        "spec": {"containers": [{"name": "main", "image": "fluo/fluo-bff:dev", "env": env}]}
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "fluo")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    wait_ready(client, name).await;
}

#[tokio::test]
async fn a_secret_value_in_a_container_env_or_log_fails_pod_env_and_logs_without_showing_it() {
    let (emulator, client) = emulator().await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "nats-credentials"},
        "stringData": {"bff.password": PASSWORD}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "fluo")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    pod(
        &client,
        "bff-0",
        json!([
            {"name": "NATS_PASSWORD_FILE", "value": "/etc/fluo/nats-credentials/password"},
            {"name": "NATS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "nats-credentials", "key": "bff.password"}}}
        ]),
        "INFO connected to NATS as bff",
    )
    .await;
    let infra = port_forward_env();
    let kubeconfig = emulator.kubeconfig_path().display().to_string();
    let checks = || {
        fluo_health(&infra).args([
            "--kubeconfig",
            &kubeconfig,
            "--check",
            "pod-env,logs",
            "-o",
            "json",
        ])
    };

    let ran = checks().run().await;
    ran.code(0);
    let (_, evidence) = ran.check("pod-env");
    assert!(
        evidence
            .starts_with("no credential in the literal environment of 1 container(s) in 1 pod(s)"),
        "{evidence}"
    );

    pod(
        &client,
        "leaky-0",
        json!([{"name": "NATS_PASS", "value": PASSWORD}]),
        &format!("INFO start\nDEBUG connecting with {PASSWORD}"),
    )
    .await;
    let ran = checks().run().await;
    ran.code(1).stdout_lacks(PASSWORD);
    assert_eq!(
        ran.failed_check("pod-env"),
        "1 credential(s) in container environments: leaky-0/main env NATS_PASS: holds the value of \
         Secret nats-credentials key bff.password (mount it as a file or use secretKeyRef)"
    );
    let logs = ran.failed_check("logs");
    assert!(
        logs.contains("leaky-0/main line ")
            && logs.contains(": value of Secret nats-credentials key bff.password: DEBUG connecting with [REDACTED]"),
        "{logs}"
    );
}
