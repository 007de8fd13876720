//! In-cluster API access on loopback: kubectl with only the service-account CA, the token and
//! the `kubernetes` Service's VIP (what client-go's in-cluster config uses) reaches the API over
//! TLS, and a client that does not trust the cluster CA is refused.

use tokio::process::Command;

use kube_emulator::network::IngressListen;

use super::network_support::{Cluster, require_root};
use super::support::eventually;

/// Runs kubectl (async: the proxy and TLS endpoint under test run on this test's runtime).
async fn kubectl(
    server: &str,
    ca: Option<&std::path::Path>,
    token: &str,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new("kubectl");
    // An empty kubeconfig: nothing but the flags below.
    cmd.env("KUBECONFIG", "/dev/null")
        .args(["--server", server, "--token", token]);
    if let Some(ca) = ca {
        cmd.arg("--certificate-authority").arg(ca);
    }
    cmd.args(args)
        .output()
        .await
        .expect("kubectl runs (kubectl 1.32 is installed at /usr/bin/kubectl on these machines)")
}

#[tokio::test]
async fn in_cluster_clients_reach_the_api_through_the_kubernetes_vip_over_tls() {
    require_root("the kubernetes Service listens on port 443 of its VIP");
    let c = Cluster::start(0, IngressListen::Off).await;
    let access = c.net.apiserver_access();
    let env: std::collections::BTreeMap<String, String> =
        access.service_env().into_iter().collect();
    assert_eq!(env["KUBERNETES_SERVICE_HOST"], c.ip(1).to_string());
    assert_eq!(env["KUBERNETES_SERVICE_PORT"], "443");
    assert_eq!(
        env["KUBERNETES_PORT_443_TCP"],
        format!("tcp://{}:443", c.ip(1))
    );
    let token = std::fs::read_to_string(access.token_file()).expect("the token file is written");
    assert_eq!(token, access.token());
    let ca = std::fs::read_to_string(access.ca_file()).expect("the CA file is written");
    assert!(
        ca.starts_with("-----BEGIN CERTIFICATE-----"),
        "ca.crt is a PEM certificate"
    );

    let server = format!(
        "https://{}:{}",
        env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
    );
    let ca_file = access.ca_file();
    let out = eventually("kubectl through the VIP", || async {
        let out = kubectl(
            &server,
            Some(&ca_file),
            &token,
            &["get", "namespaces", "-o", "name"],
        )
        .await;
        if !out.status.success() {
            eprintln!("kubectl: {}", String::from_utf8_lossy(&out.stderr));
        }
        out.status.success().then_some(out)
    })
    .await;
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.contains("namespace/default"),
        "kubectl lists namespaces: {names}"
    );

    let out = kubectl(
        &format!("https://{}:443", c.ip(1)),
        Some(&ca_file),
        &token,
        &[
            "--tls-server-name",
            "kubernetes.default.svc",
            "get",
            "--raw",
            "/version",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "the certificate names kubernetes.default.svc: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let untrusted = kubectl(&server, None, &token, &["get", "namespaces"]).await;
    assert!(
        !untrusted.status.success(),
        "a client without the cluster CA must be refused"
    );
    let err = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        err.contains("certificate"),
        "refused for the certificate: {err}"
    );
}

/// kubectl without kubeconfig falls back to client-go's in-cluster config, the code path
/// Prometheus' kubernetes_sd_configs and every operator use: KUBERNETES_SERVICE_HOST/PORT plus
/// /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}, laid out here in a private mount
/// namespace as the process kubelet does for a pod. (Debian's prometheus 2.42 is built without
/// kubernetes_sd, so Prometheus itself cannot show it on these machines.)
#[tokio::test]
async fn kubectl_with_the_in_cluster_config_reaches_the_api() {
    require_root(
        "the kubernetes VIP listens on 443; the service-account files need a mount namespace",
    );
    let c = Cluster::start(0, IngressListen::Off).await;
    let access = c.net.apiserver_access();
    let home = tempfile::tempdir().unwrap();
    let sa = "/run/secrets/kubernetes.io/serviceaccount";
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p {sa} && cp {ca} {sa}/ca.crt && cp {token} {sa}/token \
         && echo default > {sa}/namespace && kubectl get services -o name",
        ca = access.ca_file().display(),
        token = access.token_file().display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .envs(access.service_env())
        .output()
        .await
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("service/kubernetes"),
        "kubectl in-cluster lists the Services of its namespace: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
