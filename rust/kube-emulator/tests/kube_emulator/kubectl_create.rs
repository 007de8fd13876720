//! `kubectl create <generator>` (kubectl 1.32 sends protobuf bodies) for the objects an operator
//! creates before a deploy: namespaces, secrets, config maps, service accounts.

use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use serde_json::Value;

use super::kubectl_cli::*;
use super::support::*;

/// A throw-away self-signed P-256 pair for `kubectl create secret tls` (kubectl checks that the
/// key matches the certificate; nothing else reads them).
const TLS_CRT: &str = "-----BEGIN CERTIFICATE-----
MIIBkDCCATegAwIBAgIUGgEfWDde59LWDfx18yIjrLPRfsAwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSa3ViZS1lbXVsYXRvci10ZXN0MCAXDTI2MTEyNjA5MDcwOVoY
DzIxMjYxMTAyMDkwNzA5WjAdMRswGQYDVQQDDBJrdWJlLWVtdWxhdG9yLXRlc3Qw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAT3pYxpdXGNTxOQcNbACuBq3szSc81/
Na9nJp0xp2kmBHrp24E1lv74gmXnUKoF0W1jTC10JUNDYQCQiUv9ep/Mo1MwUTAd
BgNVHQ4EFgQUL8RrWvwc8kMP0IPeXVrLVbVE58AwHwYDVR0jBBgwFoAUL8RrWvwc
8kMP0IPeXVrLVbVE58AwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBE
AiA1+HdkuQk3KwA9I3LlzwTwZBwWVaGrcK5Yd0SLk3zq+AIgUqgZK04TfzfrCcTS
sbu017ykt4aIkKX24vwD3VE5iUs=
-----END CERTIFICATE-----
";
const TLS_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIASEZQHXAsmW6RXEzxJTkgCgycwIu+t+6V1rnu1OMtlUoAoGCCqGSM49
AwEHoUQDQgAE96WMaXVxjU8TkHDWwArgat7M0nPNfzWvZyadMadpJgR66duBNZb+
+IJl51CqBdFtY0wtdCVDQ2EAkIlL/XqfzA==
-----END EC PRIVATE KEY-----
";

/// The decoded values of a Secret's `data`, as text.
fn secret_data(secret: &Value) -> Vec<(String, String)> {
    secret["data"]
        .as_object()
        .unwrap_or_else(|| panic!("secret has no data: {secret}"))
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn kubectl_sends_protobuf_and_accepts_the_json_response() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&["create", "namespace", "fluo", "-v=8"])
        .await
        .success()
        .stderr_has("Content-Type: application/vnd.kubernetes.protobuf")
        .stderr_has("Accept: application/vnd.kubernetes.protobuf,application/json")
        .stderr_has("Response Status: 201 Created")
        .stderr_has("Content-Type: application/json");
    let ns: Api<Namespace> = Api::all(emu.client().await);
    let created = ns.get("fluo").await.expect("namespace fluo exists");
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
}

#[tokio::test]
async fn create_namespace_then_secret_generic_in_it() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&["create", "namespace", "fluo"])
        .await
        .success()
        .stdout_is("namespace/fluo created");
    k.run(&[
        "create",
        "secret",
        "generic",
        "grafana-admin",
        "--from-literal=a=b",
        "--from-literal=c=d",
        "-n",
        "fluo",
    ])
    .await
    .success()
    .stdout_is("secret/grafana-admin created");
    let ns = k.get(&["namespace", "fluo"]).await;
    assert_eq!(
        ns["metadata"]["labels"],
        serde_json::json!({"kubernetes.io/metadata.name": "fluo"})
    );
    let secret = k.get(&["secret", "grafana-admin", "-n", "fluo"]).await;
    assert_eq!(secret_data(&secret), pairs(&[("a", "b"), ("c", "d")]));
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["namespace"], "fluo");
    assert!(secret["metadata"].get("labels").is_none(), "{secret}");
    // The fieldManager kubectl sends reaches the managed fields like on the JSON path.
    let managed = k
        .get(&[
            "secret",
            "grafana-admin",
            "-n",
            "fluo",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(
        managed["metadata"]["managedFields"][0]["manager"],
        "kubectl-create"
    );
}

#[tokio::test]
async fn create_configmap_from_literal_and_files() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let text = k.write("settings.ini", b"mode = fast\nlevel = 2\n");
    let binary = k.write("blob.bin", [0, 159, 146, 150, 255]);
    k.run(&[
        "create",
        "configmap",
        "grafana-config",
        "--from-literal=k=v",
        &format!("--from-file={text}"),
        &format!("--from-file={binary}"),
    ])
    .await
    .success()
    .stdout_is("configmap/grafana-config created");
    let cm = k.get(&["configmap", "grafana-config"]).await;
    assert_eq!(
        cm["data"],
        serde_json::json!({"k": "v", "settings.ini": "mode = fast\nlevel = 2\n"})
    );
    assert_eq!(
        cm["binaryData"],
        serde_json::json!({"blob.bin": base64::engine::general_purpose::STANDARD
            .encode([0, 159, 146, 150, 255])})
    );
}

#[tokio::test]
async fn create_serviceaccount() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&["create", "serviceaccount", "deployer"])
        .await
        .success()
        .stdout_is("serviceaccount/deployer created");
    let sa = k.get(&["serviceaccount", "deployer"]).await;
    assert_eq!(sa["metadata"]["name"], "deployer");
    assert_eq!(sa["metadata"]["namespace"], "default");
    assert!(
        sa["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
}

#[tokio::test]
async fn create_secret_docker_registry() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=registry.example.com",
        "--docker-username=robot",
        "--docker-password=s3cret",
    ])
    .await
    .success()
    .stdout_is("secret/regcred created");
    let secret = k.get(&["secret", "regcred"]).await;
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let data = secret_data(&secret);
    assert_eq!(data.len(), 1, "{data:?}");
    assert_eq!(data[0].0, ".dockerconfigjson");
    let config: Value = serde_json::from_str(&data[0].1).unwrap();
    let auth = &config["auths"]["registry.example.com"];
    assert_eq!(auth["username"], "robot");
    assert_eq!(auth["password"], "s3cret");
    assert_eq!(
        auth["auth"],
        base64::engine::general_purpose::STANDARD.encode("robot:s3cret")
    );
}

#[tokio::test]
async fn create_secret_tls() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let cert = k.write("tls.crt", TLS_CRT.as_bytes());
    let key = k.write("tls.key", TLS_KEY.as_bytes());
    k.run(&[
        "create",
        "secret",
        "tls",
        "grafana-tls",
        &format!("--cert={cert}"),
        &format!("--key={key}"),
    ])
    .await
    .success()
    .stdout_is("secret/grafana-tls created");
    let secret = k.get(&["secret", "grafana-tls"]).await;
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(
        secret_data(&secret),
        pairs(&[("tls.crt", TLS_CRT), ("tls.key", TLS_KEY)])
    );
}

#[tokio::test]
async fn dry_run_server_creates_nothing() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&["create", "namespace", "rehearsal", "--dry-run=server"])
        .await
        .success()
        .stdout_is("namespace/rehearsal created (server dry run)");
    k.run(&[
        "create",
        "secret",
        "generic",
        "probe",
        "--from-literal=a=b",
        "--dry-run=server",
    ])
    .await
    .success()
    .stdout_is("secret/probe created (server dry run)");
    let ns: Api<Namespace> = Api::all(emu.client().await);
    assert!(ns.get_opt("rehearsal").await.unwrap().is_none());
    let secrets: Api<Secret> = Api::default_namespaced(emu.client().await);
    assert!(secrets.get_opt("probe").await.unwrap().is_none());
}

#[tokio::test]
async fn creating_twice_is_already_exists() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    let create = [
        "create",
        "secret",
        "generic",
        "once",
        "--from-literal=a=first",
    ];
    k.run(&create).await.success();
    k.run(&[
        "create",
        "secret",
        "generic",
        "once",
        "--from-literal=a=second",
    ])
    .await
    .failure()
    // kubectl's secret generator words it itself: "failed to create secret <server error>".
    .stderr_has("error: failed to create secret secrets \"once\" already exists");
    let secret = k.get(&["secret", "once"]).await;
    assert_eq!(secret_data(&secret), pairs(&[("a", "first")]));
    k.run(&["create", "namespace", "twice"]).await.success();
    k.run(&["create", "namespace", "twice"])
        .await
        .failure()
        .stderr_has("Error from server (AlreadyExists): namespaces \"twice\" already exists");
}

#[tokio::test]
async fn create_into_a_missing_namespace_is_not_found() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&[
        "create",
        "configmap",
        "c",
        "--from-literal=k=v",
        "-n",
        "nowhere",
    ])
    .await
    .failure()
    .stderr_has("namespaces \"nowhere\" not found");
    let ns: Api<Namespace> = Api::all(emu.client().await);
    assert!(ns.get_opt("nowhere").await.unwrap().is_none());
}

#[tokio::test]
async fn invalid_name_is_rejected_by_the_same_validation() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&["create", "namespace", "Bad_Name"])
        .await
        .failure()
        .stderr_has("The Namespace \"Bad_Name\" is invalid: metadata.name: Invalid value");
    let list = k.get(&["namespaces"]).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"Bad_Name"), "{names:?}");
}

#[tokio::test]
async fn unsupported_kind_gets_415_naming_it_and_nothing_is_created() {
    let emu = emulator().await;
    let k = Kubectl::new(&emu);
    k.run(&["create", "deployment", "x", "--image=y"])
        .await
        .failure()
        .stderr_has("not apps/v1 Deployment")
        .stderr_has("kubectl apply -f");
    let deployments: Api<Deployment> = Api::default_namespaced(emu.client().await);
    assert!(deployments.get_opt("x").await.unwrap().is_none());
    // The status kubectl got is a 415.
    let body = "k8s\0\n\x15\n\x07apps/v1\x12\nDeployment\x12\x05\n\x03\n\x01x";
    let resp = raw(
        &emu,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/vnd.kubernetes.protobuf",
        "application/json",
        body,
    )
    .await;
    assert_eq!(resp.status, 415, "{}", resp.body);
    assert_eq!(resp.json()["reason"], "UnsupportedMediaType");
    assert!(deployments.get_opt("x").await.unwrap().is_none());
}

#[tokio::test]
async fn malformed_protobuf_body_is_400_and_nothing_is_stored() {
    let emu = emulator().await;
    // runtime.Unknown{typeMeta{v1, Namespace}, raw: claims 48 bytes, 10 follow}.
    let truncated = "k8s\0\n\x0f\n\x02v1\x12\tNamespace\x12\x30\n\x08\n\x06broken";
    let resp = raw(
        &emu,
        "POST",
        "/api/v1/namespaces",
        "application/vnd.kubernetes.protobuf",
        "application/json",
        truncated,
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    let status = resp.json();
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "the protobuf request body is malformed: runtime.Unknown field 2 at byte 21: needs 48 bytes but only 10 remain"
    );
    // Without the prefix it is not a Kubernetes protobuf body at all.
    let resp = raw(
        &emu,
        "POST",
        "/api/v1/namespaces",
        "application/vnd.kubernetes.protobuf",
        "application/json",
        "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"broken\"}}",
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(
        resp.json()["message"]
            .as_str()
            .unwrap()
            .contains("does not start with the Kubernetes protobuf prefix"),
        "{}",
        resp.body
    );
    let ns: Api<Namespace> = Api::all(emu.client().await);
    assert!(ns.get_opt("broken").await.unwrap().is_none());
}
