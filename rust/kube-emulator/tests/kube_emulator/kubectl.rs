//! kubectl 1.32 against the emulator, with its default `--validate=strict` and a per-test cache.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use kube_emulator::Emulator;

use super::kubectl_cli::*;
use super::support::*;

fn deployment_yaml(name: &str, image: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 2
{extra_spec}  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: {image}
        ports: [{{containerPort: 8080}}]
"#
    )
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n";
const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config}\ndata: {mode: fast}\n";

fn manifests(k: &Kubectl, image: &str) -> String {
    k.write("app/deploy.yaml", deployment_yaml("web", image, ""));
    k.write("app/service.yaml", SERVICE);
    k.write("app/config.yaml", CONFIG);
    k.path("app")
}

async fn deployment(emu: &Emulator, name: &str) -> Option<Deployment> {
    let api: Api<Deployment> = Api::default_namespaced(emu.client().await);
    api.get_opt(name).await.unwrap()
}

#[tokio::test]
async fn apply_directory_client_side_then_get_and_rollout_status() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let dir = manifests(&k, "nginx:1.27");
    k.run(&["apply", "-f", &dir])
        .await
        .success()
        .stdout_has("deployment.apps/web created")
        .stdout_has("service/web created")
        .stdout_has("configmap/web-config created");
    k.run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await
        .success()
        .stdout_has("deployment \"web\" successfully rolled out");
    let get = k.run(&["get", "deploy"]).await.success();
    let header: Vec<&str> = get
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    let row: Vec<&str> = get
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["web", "2/2", "2", "2"]);
    let pods = k.run(&["get", "pods"]).await.success();
    assert!(
        pods.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]),
        "{}",
        pods.stdout
    );
    assert!(pods.stdout.contains("Running"));
    // Re-applying unchanged manifests changes nothing; a changed image configures.
    k.run(&["apply", "-f", &dir])
        .await
        .success()
        .stdout_has("deployment.apps/web unchanged");
    k.write("app/deploy.yaml", deployment_yaml("web", "nginx:1.28", ""));
    k.run(&["apply", "-f", &dir])
        .await
        .success()
        .stdout_has("deployment.apps/web configured");
    k.run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await
        .success();
    let d = deployment(&emu, "web").await.unwrap();
    assert_eq!(
        d.spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.28")
    );
}

#[tokio::test]
async fn apply_server_side_and_dry_runs() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let dir = manifests(&k, "nginx:1.27");
    k.run(&["apply", "-f", &dir, "--dry-run=client"])
        .await
        .success()
        .stdout_has("deployment.apps/web created (dry run)");
    k.run(&["apply", "-f", &dir, "--dry-run=server"])
        .await
        .success()
        .stdout_has("deployment.apps/web created (server dry run)");
    assert!(
        deployment(&emu, "web").await.is_none(),
        "a dry run created the deployment"
    );
    k.run(&["apply", "--server-side", "-f", &dir])
        .await
        .success()
        .stdout_has("deployment.apps/web serverside-applied");
    let d = deployment(&emu, "web").await.unwrap();
    let managers: Vec<String> = d
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"kubectl".to_string()), "{managers:?}");
    k.run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await
        .success();
    // Another manager owning a field makes a plain server-side apply conflict.
    k.run(&["scale", "deploy/web", "--replicas=3"])
        .await
        .success();
    k.run(&["apply", "--server-side", "-f", &dir])
        .await
        .failure()
        .stderr_has("conflict");
    k.run(&["apply", "--server-side", "--force-conflicts", "-f", &dir])
        .await
        .success();
    assert_eq!(
        deployment(&emu, "web").await.unwrap().spec.replicas,
        Some(2)
    );
}

#[tokio::test]
async fn strict_validation_rejects_unknown_fields_without_validate_false() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let bad = deployment_yaml("typo", "nginx:1", "").replace("image: nginx:1", "imagee: nginx:1");
    let f = k.write("typo.yaml", &bad);
    k.run(&["apply", "-f", &f]).await.failure().stderr_has(
        "strict decoding error: unknown field \"spec.template.spec.containers[0].imagee\"",
    );
    assert!(deployment(&emu, "typo").await.is_none());
}

#[tokio::test]
async fn rollout_status_fails_on_progress_deadline_for_crashloop() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let f = k.write(
        "crash.yaml",
        deployment_yaml(
            "crash",
            "registry.local/app:crashloop",
            "  progressDeadlineSeconds: 2\n",
        ),
    );
    k.run(&["apply", "-f", &f]).await.success();
    k.run(&["rollout", "status", "deploy/crash", "--timeout=60s"])
        .await
        .failure()
        .stderr_has("deployment \"crash\" exceeded its progress deadline");
    let pods = k.run(&["get", "pods", "-l", "app=crash"]).await.success();
    assert!(
        pods.stdout.contains("CrashLoopBackOff") || pods.stdout.contains("Error"),
        "{}",
        pods.stdout
    );
}

#[tokio::test]
async fn rollout_undo_restores_the_previous_template_and_delete_removes_everything() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let dir = manifests(&k, "nginx:1.27");
    k.run(&["apply", "-f", &dir]).await.success();
    k.run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await
        .success();
    k.write("app/deploy.yaml", deployment_yaml("web", "nginx:1.28", ""));
    k.run(&["apply", "-f", &dir]).await.success();
    k.run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await
        .success();
    k.run(&["rollout", "undo", "deploy/web"])
        .await
        .success()
        .stdout_has("deployment.apps/web rolled back");
    k.run(&["rollout", "status", "deploy/web", "--timeout=60s"])
        .await
        .success();
    let d = deployment(&emu, "web").await.unwrap();
    assert_eq!(
        d.spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.27")
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    k.run(&["rollout", "history", "deploy/web"])
        .await
        .success()
        .stdout_has("REVISION");

    k.run(&["delete", "-f", &dir])
        .await
        .success()
        .stdout_has("deployment.apps \"web\" deleted")
        .stdout_has("service \"web\" deleted");
    eventually("everything of the app deleted", || async {
        let all = k
            .run(&[
                "get",
                "deploy,rs,pods,svc,cm",
                "-l",
                "app=web",
                "-o",
                "name",
            ])
            .await
            .success();
        all.stdout.trim().is_empty().then_some(())
    })
    .await;
    assert!(deployment(&emu, "web").await.is_none());
}

#[tokio::test]
async fn get_logs_explain_and_namespaces() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let ns = k.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    );
    k.run(&["apply", "-f", &ns]).await.success();
    // Typed generators send protobuf: decoded for namespaces, secrets, config maps and service
    // accounts (see kubectl_create.rs), a clear 415 for other kinds.
    k.run(&["create", "deployment", "other", "--image=nginx"])
        .await
        .failure()
        .stderr_has("not apps/v1 Deployment");
    let cm = k.write("cm.yaml", CONFIG);
    k.run(&["apply", "-n", "team", "-f", &cm]).await.success();
    k.run(&[
        "get",
        "cm",
        "-n",
        "team",
        "web-config",
        "-o",
        "jsonpath={.data.mode}",
    ])
    .await
    .success()
    .stdout_has("fast");
    k.run(&["get", "cm", "-n", "nowhere"]).await.success();
    k.run(&["get", "deploy", "missing"])
        .await
        .failure()
        .stderr_has("deployments.apps \"missing\" not found");
    k.run(&["explain", "deployment.spec.replicas"])
        .await
        .success()
        .stdout_has("replicas");
    k.run(&["api-resources"])
        .await
        .success()
        .stdout_has("deployments")
        .stdout_has("deploy");
    let f = k.write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: talk\n  annotations: {kube-emulator.fluo.dev/log: \"hello from annotation\"}\nspec:\n  containers: [{name: app, image: \"app:1\"}]\n");
    k.run(&["apply", "-f", &f]).await.success();
    k.run(&["wait", "--for=condition=Ready", "pod/talk", "--timeout=60s"])
        .await
        .success();
    k.run(&["logs", "talk"])
        .await
        .success()
        .stdout_has("hello from annotation");
}

/// The repository's own manifests (infra/) are plain Kubernetes YAML: kubectl accepts every
/// file with strict validation, client-side and server-side, and the dry runs create nothing.
#[tokio::test]
async fn repository_manifests_pass_kubectl_dry_runs() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let infra = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra");
    let namespace = k.write(
        "namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fluo\n",
    );
    k.run(&["apply", "-f", &namespace]).await.success();
    // Cluster-wide objects for real (fluo-system must exist for their namespaced objects). Some
    // name fluo-system themselves, so no -n here: kubectl refuses a conflicting one.
    let cluster = infra.join("k8s/manifests").display().to_string();
    k.run(&["apply", "-f", &cluster])
        .await
        .success()
        .stdout_has("namespace/fluo-system created");
    for component in ["nats", "prometheus", "grafana", "bff", "workers"] {
        let dir = infra
            .join("components")
            .join(component)
            .join("manifests")
            .display()
            .to_string();
        for mode in ["--dry-run=client", "--dry-run=server"] {
            let run = k
                .run(&["apply", "-n", "fluo", mode, "-f", &dir])
                .await
                .success();
            assert!(
                run.stdout.lines().count() >= 4 && run.stdout.contains("dry run"),
                "{component} {mode}: {}",
                run.stdout
            );
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(emu.client().await, "fluo");
    let listed = deployments.list(&Default::default()).await.unwrap();
    assert!(listed.items.is_empty(), "a dry run created a Deployment");
}
