//! The cluster network with real pods (`--runtime process`): a client pod reaches a Deployment's
//! replicas through the Service name (cluster DNS + VIP, round robin), and the API with kubectl's
//! in-cluster config from the service-account volume and env the kubelet gave it; the host
//! reaches the replicas through the Ingress.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams, PostParams};
use kube_emulator::kubelet::process::{ImageMap, ProcessOptions};
use kube_emulator::network::IngressListen;
use kube_emulator::{Options, Runtime};
use serde_json::json;
use tokio::process::Command;

use super::network_support::require_root;
use super::support::{emulator_with, eventually, from_json};

/// Answers every GET with the pod's name.
const WHOAMI: &str = concat!(
    "import http.server, os\n",
    "class H(http.server.BaseHTTPRequestHandler):\n",
    "    def do_GET(self):\n",
    "        body = os.environ['POD_NAME'].encode()\n",
    "        self.send_response(200)\n",
    "        self.send_header('Content-Length', str(len(body)))\n",
    "        self.end_headers()\n",
    "        self.wfile.write(body)\n",
    "http.server.HTTPServer(('', 8080), H).serve_forever()\n",
);

/// What the client pod prints: the Service name's address, six answers through it, the
/// Endpoints read with curl and the pods listed by kubectl, both with in-cluster credentials.
const CLIENT: &str = "SA=/var/run/secrets/kubernetes.io/serviceaccount\n\
getent ahostsv4 web | head -n1\n\
for i in 1 2 3 4 5 6; do echo \"answer=$(curl -s -m 3 http://web/)\"; done\n\
curl -s -m 5 --cacert $SA/ca.crt -H \"Authorization: Bearer $(cat $SA/token)\" \
  https://kubernetes.default.svc/api/v1/namespaces/default/endpoints/web | head -c 300; echo\n\
kubectl get pods -o name\n\
echo done\n\
sleep 3600\n";

#[tokio::test]
async fn pods_use_service_names_the_vip_and_the_in_cluster_api_and_the_host_uses_the_ingress() {
    require_root("the process runtime needs root and namespaces");
    let images = "[images.\"test/python\"]\ncommand = \"/usr/bin/python3\"\n\
                  [images.\"test/sh\"]\ncommand = \"/bin/sh\"\n";
    let images = ImageMap::parse(images, Path::new("network-images.toml")).unwrap();
    let mut process = ProcessOptions::new(images);
    process.shutdown_grace = Duration::from_secs(2);
    let emu = emulator_with(Options {
        ready_after: Duration::from_millis(50),
        runtime: Runtime::Process(process),
        ingress: IngressListen::At(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Options::default()
    })
    .await;
    let net = emu
        .network()
        .expect("the process runtime starts the network services");
    let client = emu.client().await;
    let post = |path: &str, body: serde_json::Value| {
        let (client, path) = (client.clone(), path.to_string());
        async move {
            let req = http::Request::post(path)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap();
            client.request_text(req).await.expect("create succeeds");
        }
    };
    post("/apis/apps/v1/namespaces/default/deployments", json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "web", "image": "test/python:3",
                    "command": ["python3", "-c", WHOAMI],
                    "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1}}]}}}}))
    .await;
    post(
        "/api/v1/namespaces/default/services",
        json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
    )
    .await;
    post("/apis/networking.k8s.io/v1/namespaces/default/ingresses", json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "web.localhost", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}))
    .await;

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let names: Vec<String> = eventually("both web replicas ready behind the Service", || async {
        let view = net.view();
        let port = view.service_port(
            "default",
            "web",
            &kube_emulator::network::view::PortRef::Number(80),
        )?;
        (port.backends.len() == 2).then_some(())?;
        let list = pods.list(&Default::default()).await.ok()?;
        Some(
            list.items
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect(),
        )
    })
    .await;

    let ingress = net.ingress_addr().expect("the Ingress listens");
    let answer = Command::new("curl")
        .args(["-s", "-m", "5", "-H", "Host: web.localhost"])
        .arg(format!("http://{ingress}/"))
        .output()
        .await
        .expect("curl runs");
    let answer = String::from_utf8_lossy(&answer.stdout).to_string();
    assert!(
        names.contains(&answer),
        "the Ingress answers from a replica: {answer:?} of {names:?}"
    );

    let client_pod: Pod = from_json(json!({"metadata": {"name": "client"}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "client", "image": "test/sh:1", "command": ["sh", "-c", CLIENT],
            "env": [{"name": "HOME", "value": "/tmp"}]}]}}));
    pods.create(&PostParams::default(), &client_pod)
        .await
        .expect("create the client pod");
    let log = eventually("the client pod to finish its requests", || async {
        let log = pods.logs("client", &LogParams::default()).await.ok()?;
        log.contains("done").then_some(log)
    })
    .await;
    let vip = net
        .view()
        .frontends
        .iter()
        .find(|(_, svc)| svc.1 == "web")
        .map(|(f, _)| f.ip);
    let vip = vip.expect("the web Service has a virtual IP").to_string();
    assert!(
        log.starts_with(&vip),
        "`web` resolves to the Service IP {vip}:\n{log}"
    );
    for name in &names {
        assert!(
            log.contains(&format!("answer={name}")),
            "the VIP round-robins to replica {name}:\n{log}"
        );
    }
    assert!(
        log.contains("\"kind\":\"Endpoints\""),
        "curl reached the API over TLS:\n{log}"
    );
    assert!(
        log.contains("pod/client"),
        "kubectl's in-cluster config works:\n{log}"
    );
    emu.shutdown().await;
}
