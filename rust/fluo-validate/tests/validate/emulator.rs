//! Online checks against kube-emulator: the server-side dry run of the repository's manifests,
//! the external Secret check, and the target context rule.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};

use super::support::{Cli, Infra, step_status};

async fn emulator(context: &str) -> kube_emulator::Emulator {
    fluo_core::tls::install_crypto_provider();
    kube_emulator::Emulator::start(kube_emulator::Options {
        context: context.to_string(),
        ..Default::default()
    })
    .await
    .expect("kube-emulator starts")
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Runs the CLI off the async runtime (the emulator serves on it meanwhile).
async fn run(cli: Cli) -> super::support::Run {
    tokio::task::spawn_blocking(move || cli.run())
        .await
        .unwrap()
}

fn online(emu: &kube_emulator::Emulator, infra: &Infra) -> Cli {
    Cli::new()
        .infra(infra)
        .args(["--kubeconfig".as_ref(), emu.kubeconfig_path().as_os_str()])
        .args(["-o", "json"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_passes_and_external_secrets_must_exist() {
    let emu = emulator("docker-desktop").await;
    let client = emu.client().await;
    create_namespace(&client, "fluo").await;
    let infra = Infra::copy_of_repo();

    let missing = run(online(&emu, &infra).args(["--only", "manifests,status"]))
        .await
        .code(1);
    let report = missing.json();
    assert_eq!(report["failed_step"], "manifests", "{report:#}");
    let findings = report["steps"][3]["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .all(|f| f["rule"] == "cluster.external-secret"),
        "only the external Secret should be missing: {findings:#?}"
    );
    for name in [
        "grafana-admin",
        "nats-auth",
        "nats-tls",
        "nats-credentials",
        "fluo-bff-api-tokens",
    ] {
        assert!(
            findings
                .iter()
                .any(|f| f["message"].as_str().unwrap().contains(name)),
            "{name}: {findings:#?}"
        );
    }

    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "grafana-admin"},
        "stringData": {"admin-user": "admin", "admin-password": "x"}
    }))
    .unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), "fluo");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    for object in fluo_teststack::security_secrets("fluo") {
        let secret: Secret = serde_json::from_value(object).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let passed = run(online(&emu, &infra).args(["--only", "manifests,status"]))
        .await
        .code(0);
    let report = passed.json();
    assert_eq!(step_status(&report, "manifests"), "passed");
    assert_eq!(step_status(&report, "status"), "passed");
    // The dry run changed nothing: no Deployment exists afterwards.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client, "fluo");
    assert!(
        deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_context_must_be_the_environments() {
    let emu = emulator("some-other-cluster").await;
    let infra = Infra::copy_of_repo();
    let run = run(online(&emu, &infra).args(["--only", "status"]))
        .await
        .code(1);
    let report = run.json();
    assert_eq!(report["failed_step"], "status");
    let finding = &report["steps"][5]["findings"][0];
    assert_eq!(finding["rule"], "env.context", "{report:#}");
    assert!(
        finding["message"]
            .as_str()
            .unwrap()
            .contains("some-other-cluster")
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_fails_the_status_step() {
    let emu = emulator("docker-desktop").await;
    let infra = Infra::copy_of_repo();
    let kubeconfig = emu.kubeconfig_path().to_path_buf();
    let kubeconfig_copy = infra.root().join("kubeconfig");
    std::fs::copy(&kubeconfig, &kubeconfig_copy).unwrap();
    emu.shutdown().await;
    let run = run(Cli::new()
        .infra(&infra)
        .args(["--kubeconfig".as_ref(), kubeconfig_copy.as_os_str()])
        .args(["--only", "status", "-o", "json", "--timeout", "30s"]))
    .await
    .code(1);
    let report = run.json();
    assert_eq!(
        report["steps"][5]["findings"][0]["rule"], "cluster.reachable",
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_server_rejects_is_a_dry_run_finding() {
    let emu = emulator("docker-desktop").await;
    create_namespace(&emu.client().await, "fluo").await;
    let infra = Infra::copy_of_repo();
    // Valid for the schema (data is a string map) but not for the API server (key syntax).
    infra.write(
        "components/bff/manifests/zz-bad-key.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-key\ndata:\n  \"no spaces allowed\": x\n",
    );
    let run = run(online(&emu, &infra).args(["--only", "manifests"]))
        .await
        .code(1);
    let report = run.json();
    let findings = report["steps"][3]["findings"].as_array().unwrap();
    let rejected = findings
        .iter()
        .find(|f| f["rule"] == "cluster.dry-run")
        .unwrap_or_else(|| panic!("no dry-run finding: {findings:#?}"));
    assert!(
        rejected["message"]
            .as_str()
            .unwrap()
            .contains("ConfigMap/bad-key"),
        "{rejected:#}"
    );
    assert!(
        rejected["location"]["file"]
            .as_str()
            .unwrap()
            .ends_with("zz-bad-key.yaml")
    );
    emu.shutdown().await;
}

/// ConfigMaps named `{prefix}-{i}`; `bad` ones have a key the API server rejects.
fn config_maps(prefix: &str, n: usize, bad: bool) -> Vec<fluo_validate::Document> {
    let key = if bad { "no spaces allowed" } else { "fine" };
    (0..n)
        .flat_map(|i| {
            let yaml = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {prefix}-{i}\ndata:\n  \"{key}\": x\n"
            );
            fluo_core::manifest::parse_str(std::path::Path::new("cm.yaml"), &yaml).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_covers_the_applied_components_and_keeps_the_set_order() {
    use fluo_validate::manifests::ManifestSet;
    use fluo_validate::online::dry_run;
    let emu = emulator("docker-desktop").await;
    let client = emu.client().await;
    create_namespace(&client, "fluo").await;
    // More rejected objects than requests in flight, so the concurrent dry run must reorder.
    let set = ManifestSet::new(
        "fluo",
        vec![
            ("good".to_string(), config_maps("good", 3, false)),
            ("bad".to_string(), config_maps("bad", 40, true)),
        ],
    );
    let only_good = std::collections::BTreeSet::from(["good".to_string()]);
    let (findings, notes) = dry_run(&client, &set, Some(&only_good)).await;
    assert!(findings.is_empty(), "{findings:#?}");
    assert!(notes.is_empty(), "{notes:?}");

    let (findings, _) = dry_run(&client, &set, None).await;
    let rejected: Vec<String> = findings.iter().map(|f| f.message.clone()).collect();
    assert_eq!(rejected.len(), 40, "{rejected:#?}");
    for (i, message) in rejected.iter().enumerate() {
        assert!(
            message.contains(&format!("ConfigMap/bad-{i} rejected")),
            "finding {i} out of order: {message}"
        );
    }
    // A dry run creates nothing.
    let maps = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client, "fluo");
    assert!(
        maps.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    emu.shutdown().await;
}
