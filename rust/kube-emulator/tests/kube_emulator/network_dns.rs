//! Cluster DNS on loopback: raw queries over UDP and TCP, and glibc's resolver (getent) with a
//! pod-style resolv.conf, so the search-path short forms are proven with the real client.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::process::Command;

use kube_emulator::network::IngressListen;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::network_support::{Cluster, endpoints, require_root, service};
use super::support::eventually;

/// A standard query (RD set) for `name`, built here rather than with the server's codec.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![
        (id >> 8) as u8,
        id as u8,
        0x01,
        0x00,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, (qtype >> 8) as u8, qtype as u8, 0, 1]);
    m
}

/// (rcode, A addresses) of a reply to a query for `name`.
fn decode(reply: &[u8], name: &str) -> (u8, Vec<Ipv4Addr>) {
    let rcode = reply[3] & 0x0f;
    let ancount = u16::from_be_bytes([reply[6], reply[7]]) as usize;
    let mut at = 12 + name.len() + 2 + 4;
    let mut ips = Vec::new();
    for _ in 0..ancount {
        at += 2; // name pointer
        let rtype = u16::from_be_bytes([reply[at], reply[at + 1]]);
        let len = u16::from_be_bytes([reply[at + 8], reply[at + 9]]) as usize;
        at += 10;
        if rtype == 1 {
            ips.push(Ipv4Addr::new(
                reply[at],
                reply[at + 1],
                reply[at + 2],
                reply[at + 3],
            ));
        }
        at += len;
    }
    (rcode, ips)
}

async fn udp(server: SocketAddr, name: &str, qtype: u16) -> (u8, Vec<Ipv4Addr>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&query(0x1234, name, qtype), server)
        .await
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("the DNS server answers over UDP")
        .unwrap();
    assert_eq!(&buf[..2], &[0x12, 0x34], "the reply carries the query id");
    decode(&buf[..n], name)
}

async fn tcp(server: SocketAddr, name: &str) -> (u8, Vec<Ipv4Addr>) {
    let mut s = TcpStream::connect(server).await.expect("DNS over TCP");
    let q = query(7, name, 1);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).await.unwrap();
    decode(&reply, name)
}

const NOERROR: u8 = 0;
const NXDOMAIN: u8 = 3;

#[tokio::test]
async fn cluster_names_resolve_over_udp_and_tcp_and_nothing_else_does() {
    let c = Cluster::start(0, IngressListen::Off).await;
    let dns = c.net.dns_addr();
    c.create(
        "Service",
        "default",
        service(
            "web",
            "default",
            &c.ip(30).to_string(),
            json!([{"port": 80}]),
        ),
    )
    .await;
    let name = "web.default.svc.cluster.local";
    eventually("web to resolve", || async {
        (udp(dns, name, 1).await == (NOERROR, vec![c.ip(30)])).then_some(())
    })
    .await;
    assert_eq!(tcp(dns, name).await, (NOERROR, vec![c.ip(30)]));
    assert_eq!(
        udp(dns, "Web.Default.svc.cluster.local", 1).await.1,
        vec![c.ip(30)]
    );
    assert_eq!(udp(dns, name, 28).await, (NOERROR, vec![]), "AAAA: no data");
    assert_eq!(
        udp(dns, "nope.default.svc.cluster.local", 1).await.0,
        NXDOMAIN
    );
    assert_eq!(
        udp(dns, "example.com", 1).await.0,
        NXDOMAIN,
        "nothing is forwarded"
    );
    let api = udp(dns, "kubernetes.default.svc.cluster.local", 1).await;
    assert_eq!(api, (NOERROR, vec![c.ip(1)]));

    c.delete("Service", "default", "web").await;
    eventually("a deleted Service to stop resolving", || async {
        (udp(dns, name, 1).await.0 == NXDOMAIN).then_some(())
    })
    .await;
}

#[tokio::test]
async fn headless_services_resolve_to_ready_pods_and_statefulset_pods_by_name() {
    let c = Cluster::start(0, IngressListen::Off).await;
    let dns = c.net.dns_addr();
    c.create(
        "Service",
        "default",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "nats", "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": "nats"}, "ports": [{"port": 4222}]}}),
    )
    .await;
    c.create(
        "StatefulSet",
        "default",
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "nats", "namespace": "default"},
        "spec": {"serviceName": "nats", "replicas": 2, "selector": {"matchLabels": {"app": "nats"}},
            "template": {"metadata": {"labels": {"app": "nats"}},
                "spec": {"containers": [{"name": "nats", "image": "nats:2"}]}}}}),
    )
    .await;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::default_namespaced(c.emu.client().await);
    let ips = eventually("both nats pods ready and resolvable", || async {
        let mut ips = Vec::new();
        for pod in ["nats-0", "nats-1"] {
            let ip: Ipv4Addr = pods.get(pod).await.ok()?.status?.pod_ip?.parse().ok()?;
            let name = format!("{pod}.nats.default.svc.cluster.local");
            (udp(dns, &name, 1).await == (NOERROR, vec![ip])).then_some(())?;
            ips.push(ip);
        }
        Some(ips)
    })
    .await;
    let (rcode, mut all) = udp(dns, "nats.default.svc.cluster.local", 1).await;
    all.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(
        (rcode, all),
        (NOERROR, want),
        "the headless name answers every ready pod"
    );
}

#[tokio::test]
async fn glibc_resolves_short_names_through_a_pod_resolv_conf() {
    require_root(
        "binds the DNS server to port 53 and bind-mounts resolv.conf in a mount namespace",
    );
    let c = Cluster::start(53, IngressListen::Off).await;
    c.create(
        "Namespace",
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}),
    )
    .await;
    c.create(
        "Service",
        "apps",
        service("bff", "apps", &c.ip(40).to_string(), json!([{"port": 80}])),
    )
    .await;
    c.create(
        "Service",
        "default",
        service(
            "other",
            "default",
            &c.ip(41).to_string(),
            json!([{"port": 80}]),
        ),
    )
    .await;
    c.create(
        "Service",
        "apps",
        service("db", "apps", "None", json!([{"port": 5432}])),
    )
    .await;
    c.create(
        "Endpoints",
        "apps",
        endpoints("db", "apps", &[(true, SocketAddr::from((c.ip(50), 5432)))]),
    )
    .await;
    let dns_ip = c.net.dns_addr().ip();
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {dns_ip}\nsearch apps.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 attempts:1 timeout:2\n"),
    )
    .unwrap();
    // The view follows the store within milliseconds; wait for the last object to show up.
    c.net
        .wait_for_view(|v| v.names.contains_key("db.apps.svc.cluster.local"))
        .await;
    let lookup = async |name: &str| {
        let script = format!(
            "mount --bind {} /etc/resolv.conf && getent ahostsv4 {name}",
            resolv.display()
        );
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .output()
            .await
            .expect("unshare (util-linux) runs; install util-linux");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!(
            "getent {name}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .next()
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
    };
    let ip = |last: u8| Some(c.ip(last).to_string());
    assert_eq!(
        lookup("bff").await,
        ip(40),
        "bare name via <ns>.svc.cluster.local"
    );
    assert_eq!(
        lookup("other.default").await,
        ip(41),
        "<svc>.<ns> via svc.cluster.local"
    );
    assert_eq!(lookup("bff.apps.svc.cluster.local").await, ip(40));
    assert_eq!(lookup("db").await, ip(50), "headless: the ready endpoint");
    assert_eq!(lookup("kubernetes.default").await, ip(1));
    assert_eq!(lookup("does-not-exist").await, None);
}

/// What infra/'s Prometheus does to find its targets: `dns_sd_configs` type A on the short name
/// of a headless Service, resolved through the pod's resolv.conf. Only the ready endpoints are
/// discovered.
#[tokio::test]
async fn prometheus_dns_sd_finds_the_ready_pods_of_a_headless_service() {
    require_root(
        "binds the DNS server to port 53 and bind-mounts resolv.conf in a mount namespace",
    );
    let prometheus = std::path::Path::new("/usr/bin/prometheus");
    assert!(
        prometheus.is_file(),
        "prometheus is not installed: apt-get install prometheus (Debian package)"
    );
    let c = Cluster::start(53, IngressListen::Off).await;
    c.create(
        "Namespace",
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fluo"}}),
    )
    .await;
    let name = "fluo-bff-headless";
    c.create(
        "Service",
        "fluo",
        service(name, "fluo", "None", json!([{"port": 8080}])),
    )
    .await;
    let at = |last: u8| SocketAddr::from((c.ip(last), 8080));
    let eps = endpoints(
        name,
        "fluo",
        &[(true, at(80)), (true, at(81)), (false, at(82))],
    );
    c.create("Endpoints", "fluo", eps).await;
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver {}\nsearch fluo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
            c.net.dns_addr().ip()
        ),
    )
    .unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "scrape_configs:\n  - job_name: fluo-bff\n    dns_sd_configs:\n      - names: [{name}]\n        type: A\n        port: 8080\n        refresh_interval: 1s\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "mount --bind {resolv} /etc/resolv.conf && exec {prometheus} --config.file={config} \
         --storage.tsdb.path={data} --web.listen-address=127.0.0.1:{port}",
        resolv = resolv.display(),
        prometheus = prometheus.display(),
        config = config.display(),
        data = dir.path().join("data").display(),
    );
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("unshare (util-linux) runs");
    let targets = format!("http://127.0.0.1:{port}/api/v1/targets");
    let found = |body: &str, last: u8| body.contains(&format!("\"instance\":\"{}\"", at(last)));
    let discovered = tokio::time::timeout(super::support::WAIT, async {
        loop {
            let out = Command::new("curl")
                .args(["-s", "-m", "5", &targets])
                .output()
                .await;
            let body = out
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            if found(&body, 80) && found(&body, 81) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    child.kill().await.ok();
    let mut log = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut log).await.ok();
    }
    let body = discovered.unwrap_or_else(|_| {
        panic!("Prometheus did not discover both ready pods in time; its log:\n{log}")
    });
    assert!(
        !found(&body, 82),
        "the not-ready pod is not a target: {body}"
    );
}
