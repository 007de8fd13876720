//! Cluster networking on loopback: an emulator plus its [`Network`] on a 127.a.b.0/24 of this
//! test process's own, tiny backends that say who they are, and object helpers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube_emulator::Emulator;
use kube_emulator::network::{IngressListen, Network, NetworkConfig};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::support::{emulator, within};

pub struct Cluster {
    pub emu: Emulator,
    pub net: Network,
    /// The 127.a.b.0/24 this cluster uses.
    pub a: u8,
    pub b: u8,
    _dir: tempfile::TempDir,
}

static NEXT: AtomicU8 = AtomicU8::new(0);

/// A loopback /24 no other test process uses: nextest runs every test in its own process.
fn prefix() -> (u8, u8) {
    let pid = std::process::id();
    let a = 100 + (pid % 100) as u8;
    let b = ((pid / 100) % 200) as u8 + NEXT.fetch_add(1, Ordering::Relaxed) % 50 + 1;
    (a, b)
}

impl Cluster {
    pub async fn start(dns_port: u16, ingress: IngressListen) -> Self {
        let emu = emulator().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = prefix();
        let mut config = NetworkConfig::loopback(a, b, dns_port, dir.path().to_path_buf());
        config.ingress = ingress;
        let net = Network::start(emu.store().clone(), emu.addr(), config)
            .await
            .expect("the cluster network starts on loopback");
        Self {
            emu,
            net,
            a,
            b,
            _dir: dir,
        }
    }

    /// 127.a.b.`last`, a Service IP of this cluster.
    pub fn ip(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.a, self.b, last)
    }

    pub async fn create(&self, kind: &str, ns: &str, obj: Value) {
        let api = self.api(kind, ns).await;
        let obj: DynamicObject = serde_json::from_value(obj).expect("object fixture");
        api.create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create {kind}: {e}"));
    }

    pub async fn replace(&self, kind: &str, ns: &str, name: &str, mut obj: Value) {
        let api = self.api(kind, ns).await;
        let current = api.get(name).await.expect("get before replace");
        obj["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
        let obj: DynamicObject = serde_json::from_value(obj).expect("object fixture");
        api.replace(name, &PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("replace {kind} {name}: {e}"));
    }

    pub async fn delete(&self, kind: &str, ns: &str, name: &str) {
        let api = self.api(kind, ns).await;
        api.delete(name, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("delete {kind} {name}: {e}"));
    }

    async fn api(&self, kind: &str, ns: &str) -> Api<DynamicObject> {
        let (group, version, plural) = match kind {
            "Service" => ("", "v1", "services"),
            "Endpoints" => ("", "v1", "endpoints"),
            "Namespace" => ("", "v1", "namespaces"),
            "Ingress" => ("networking.k8s.io", "networking.k8s.io/v1", "ingresses"),
            "StatefulSet" => ("apps", "apps/v1", "statefulsets"),
            other => panic!("no fixture API for {other}"),
        };
        let ar = ApiResource {
            group: group.into(),
            version: version.rsplit('/').next().unwrap_or(version).into(),
            api_version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let client = self.emu.client().await;
        if kind == "Namespace" {
            Api::all_with(client, &ar)
        } else {
            Api::namespaced_with(client, ns, &ar)
        }
    }
}

/// A selector-less Service with an explicit clusterIP (None for headless).
pub fn service(name: &str, ns: &str, cluster_ip: &str, ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip, "ports": ports}})
}

/// Endpoints with one subset per (ready, address); every address on its own port.
pub fn endpoints(name: &str, ns: &str, addrs: &[(bool, SocketAddr)]) -> Value {
    let subsets: Vec<Value> = addrs
        .iter()
        .map(|(ready, a)| {
            let key = if *ready {
                "addresses"
            } else {
                "notReadyAddresses"
            };
            json!({key: [{"ip": a.ip().to_string()}], "ports": [{"port": a.port()}]})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns},
        "subsets": subsets})
}

/// A TCP server on 127.0.0.1 that writes `name` and closes each connection.
pub async fn named_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(name.as_bytes()).await;
        }
    });
    addr
}

/// Connects to `addr` and reads what the backend says; Err(kind) if the connection fails or
/// closes without a word.
pub async fn ask(addr: SocketAddr) -> Result<String, std::io::ErrorKind> {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.kind())?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
        .map_err(|e| e.kind())?;
    if out.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof);
    }
    Ok(out)
}

/// Asks `addr` until `accept` likes the answer (bounded), returning it.
pub async fn ask_until(
    addr: SocketAddr,
    what: &str,
    accept: impl Fn(&Result<String, std::io::ErrorKind>) -> bool,
) -> Result<String, std::io::ErrorKind> {
    within(Duration::from_secs(20), what, async {
        loop {
            let r = ask(addr).await;
            if accept(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Fails with a clear message unless the test runs as root (ports below 1024, mount namespaces).
pub fn require_root(why: &str) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test needs root ({why}); run the kube-emulator tests as root (CI and the dev VMs do)"
    );
}
