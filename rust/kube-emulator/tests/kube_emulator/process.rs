//! `--runtime process`: pods as real host processes in their own network and mount namespaces.
//! Needs root (CI runs as root); a missing prerequisite fails with what to do.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube_emulator::kubelet::process::{ImageMap, ProcessOptions};
use kube_emulator::{Emulator, Options, Runtime};
use serde_json::{Value, json};

use super::support::*;

pub const IMAGES: &str = r#"
[images."test/sh"]
command = "/bin/sh"
[images."test/python"]
command = "/usr/bin/python3"
"#;

pub fn options(backoff: Duration) -> Options {
    kube_emulator::network::bridge::preflight()
        .unwrap_or_else(|e| panic!("process-mode tests need root and namespaces: {e}"));
    let images = ImageMap::parse(IMAGES, Path::new("test-images.toml")).unwrap();
    let mut process = ProcessOptions::new(images);
    process.backoff_initial = backoff;
    process.shutdown_grace = Duration::from_secs(2);
    Options {
        ready_after: Duration::from_millis(50),
        runtime: Runtime::Process(process),
        ..Options::default()
    }
}

pub async fn process_emulator() -> Emulator {
    emulator_with(options(Duration::from_millis(500))).await
}

pub fn pod(name: &str, labels: Value, containers: Value) -> Pod {
    from_json(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 5, "containers": containers}}))
}

pub fn sh(name: &str, script: &str) -> Value {
    json!({"name": name, "image": "test/sh:1", "command": ["sh", "-c", script]})
}

fn http_server(name: &str, port: u16) -> Value {
    json!({"name": name, "image": "test/python:3", "command": ["python3", "-m", "http.server", port.to_string()],
        "ports": [{"containerPort": port, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}})
}

pub async fn create(api: &Api<Pod>, p: &Pod) {
    api.create(&PostParams::default(), p)
        .await
        .expect("create pod");
}

pub fn container_status(p: &Pod, i: usize) -> Value {
    serde_json::to_value(
        &p.status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[i],
    )
    .unwrap()
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub async fn logs(api: &Api<Pod>, pod: &str, container: &str, previous: bool) -> String {
    let lp = LogParams {
        container: Some(container.into()),
        previous,
        ..Default::default()
    };
    api.logs(pod, &lp).await.unwrap_or_default()
}

#[tokio::test]
async fn a_container_exiting_1_crash_loops_with_real_restart_counts() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    create(
        &pods,
        &pod(
            "crash",
            json!({}),
            json!([sh("app", "echo attempt; exit 1")]),
        ),
    )
    .await;
    let p = wait_for(&pods, "crash", "two restarts", |p: Option<&Pod>| {
        p.is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs[0].restart_count >= 2)
        })
    })
    .await;
    let cs = container_status(&p, 0);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    let p = wait_for(&pods, "crash", "CrashLoopBackOff", |p: Option<&Pod>| {
        p.is_some_and(|p| {
            container_status(p, 0)["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    })
    .await;
    let cs = container_status(&p, 0);
    assert!(
        cs["state"]["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("back-off"),
        "{cs}"
    );
    assert!(!is_ready(&p));
    assert_eq!(logs(&pods, "crash", "app", true).await, "attempt\n");
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::default_namespaced(emu.client().await);
    let reasons: Vec<String> = events
        .list(&kube::api::ListParams::default().fields("involvedObject.name=crash"))
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Scheduled", "Pulled", "Created", "Started", "BackOff"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }
}

#[tokio::test]
async fn readiness_decides_endpoints_and_two_replicas_share_a_port() {
    let emu = process_emulator().await;
    let client = emu.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let labels = json!({"app": "web"});
    create(
        &pods,
        &pod("web-a", labels.clone(), json!([http_server("web", 8080)])),
    )
    .await;
    create(
        &pods,
        &pod("web-b", labels.clone(), json!([http_server("web", 8080)])),
    )
    .await;
    let mut never = http_server("web", 8080);
    never["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 9}, "periodSeconds": 1});
    create(&pods, &pod("web-never", labels, json!([never]))).await;
    let svc: k8s_openapi::api::core::v1::Service = from_json(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}));
    Api::default_namespaced(client.clone())
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let mut ips = Vec::new();
    for name in ["web-a", "web-b"] {
        let p = wait_for(&pods, name, "Ready", |p: Option<&Pod>| {
            p.is_some_and(is_ready)
        })
        .await;
        ips.push(p.status.unwrap().pod_ip.unwrap());
    }
    assert_ne!(ips[0], ips[1]);
    // Both listen on :8080 in their own namespaces, and answer from the host.
    for ip in &ips {
        let s = tokio::net::TcpStream::connect((ip.as_str(), 8080)).await;
        assert!(s.is_ok(), "{ip}:8080: {s:?}");
    }
    let never = pods.get("web-never").await.unwrap();
    let never_ip = never.status.as_ref().unwrap().pod_ip.clone().unwrap();
    assert!(container_status(&never, 0)["state"]["running"].is_object());
    assert!(!is_ready(&never));
    let eps: Api<Endpoints> = Api::default_namespaced(client);
    let addresses = eventually("both ready pods in the endpoints", || async {
        let e = eps.get_opt("web").await.expect("get endpoints")?;
        let addrs: Vec<String> = e
            .subsets
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s.addresses.clone().unwrap_or_default())
            .map(|a| a.ip)
            .collect();
        (addrs.len() == 2).then_some(addrs)
    })
    .await;
    assert!(!addresses.contains(&never_ip), "{addresses:?}");
    let e = serde_json::to_value(eps.get("web").await.unwrap()).unwrap();
    assert!(
        e.to_string().contains(&never_ip),
        "the unready pod is listed as not ready: {e}"
    );
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let mut c = sh("app", "echo up; exec sleep 3600");
    c["livenessProbe"] =
        json!({"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2});
    create(&pods, &pod("live", json!({}), json!([c]))).await;
    let p = wait_for(&pods, "live", "a restart", |p: Option<&Pod>| {
        p.is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs[0].restart_count >= 1)
        })
    })
    .await;
    let cs = container_status(&p, 0);
    // sleep dies of the SIGTERM: 128 + 15.
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 143, "{cs}");
    assert!(
        cs["lastState"]["terminated"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Liveness probe failed"),
        "{cs}"
    );
}

#[tokio::test]
async fn deleting_a_pod_sends_sigterm_to_its_process() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let out = tempfile::tempdir().unwrap();
    let seen = out.path().join("term");
    let script = format!(
        "trap 'echo SIGTERM > {}; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        seen.display()
    );
    create(&pods, &pod("term", json!({}), json!([sh("app", &script)]))).await;
    wait_for(&pods, "term", "Ready", |p: Option<&Pod>| {
        p.is_some_and(is_ready)
    })
    .await;
    eventually("the trap is installed", || async {
        logs(&pods, "term", "app", false)
            .await
            .contains("ready")
            .then_some(())
    })
    .await;
    pods.delete("term", &DeleteParams::default()).await.unwrap();
    let text = eventually("the process saw SIGTERM", || async {
        std::fs::read_to_string(&seen).ok()
    })
    .await;
    assert_eq!(text, "SIGTERM\n");
}

/// A pod re-created under the name of one still stopping (a StatefulSet's pod deleted) starts
/// only once the old one's processes are gone: one identity never runs twice on the node.
#[tokio::test]
async fn a_pod_recreated_under_a_stopping_pods_name_starts_after_it_stopped() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let out = tempfile::tempdir().unwrap();
    let order = out.path().join("order");
    let script = |generation: &str| {
        format!(
            "trap 'sleep 1; echo {generation} stopped >> {f}; exit 0' TERM; echo {generation} started >> {f}; while true; do sleep 0.1; done",
            f = order.display()
        )
    };
    create(
        &pods,
        &pod("db-0", json!({}), json!([sh("db", &script("old"))])),
    )
    .await;
    eventually("the old pod's process runs", || async {
        std::fs::read_to_string(&order)
            .ok()
            .filter(|t| t.contains("old started"))
    })
    .await;
    pods.delete("db-0", &DeleteParams::default()).await.unwrap();
    create(
        &pods,
        &pod("db-0", json!({}), json!([sh("db", &script("new"))])),
    )
    .await;
    let lines = eventually("the new pod's process runs", || async {
        std::fs::read_to_string(&order)
            .ok()
            .filter(|t| t.contains("new started"))
    })
    .await;
    assert_eq!(
        lines, "old started\nold stopped\nnew started\n",
        "the new db-0 started while the old one was still stopping"
    );
}

#[tokio::test]
async fn a_sidecar_reaches_its_pods_main_container_on_localhost() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let sidecar = json!({"name": "sidecar", "image": "test/python:3", "command": ["python3", "-c",
        "import time, urllib.request\nfor _ in range(200):\n    try:\n        urllib.request.urlopen('http://localhost:8080/', timeout=1)\n        print('sidecar reached main', flush=True)\n        break\n    except Exception:\n        time.sleep(0.1)\ntime.sleep(3600)\n"]});
    create(
        &pods,
        &pod(
            "pair",
            json!({}),
            json!([http_server("main", 8080), sidecar]),
        ),
    )
    .await;
    eventually("the sidecar's log line", || async {
        logs(&pods, "pair", "sidecar", false)
            .await
            .contains("sidecar reached main")
            .then_some(())
    })
    .await;
}

/// The warm pool of pod networks is full once the emulator serves; a pod start takes its
/// network from it (none is made on the start) and the pool is refilled in the background.
#[tokio::test]
async fn pod_networks_come_from_a_pool_filled_before_serving_and_refilled() {
    let emu = process_emulator().await;
    let net = emu
        .cluster_network()
        .expect("process mode has a cluster network")
        .clone();
    let full = kube_emulator::kubelet::process::NETWORK_POOL;
    let prefix = format!("kemu{}-", net.slot());
    let namespaces = || {
        kube_emulator::network::bridge::list_netns()
            .iter()
            .filter(|n| n.starts_with(&prefix))
            .count()
    };
    assert_eq!((net.pooled(), namespaces()), (full, full));
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    create(
        &pods,
        &pod("pooled", json!({}), json!([sh("c", "exec sleep 600")])),
    )
    .await;
    let ip = eventually("the pod's IP", || async {
        let p = pods.get("pooled").await.ok()?;
        p.status?.pod_ip?.parse::<std::net::Ipv4Addr>().ok()
    })
    .await;
    // The pool's networks have the first addresses (.2 up), one made on the start the next.
    let pooled = 2..(2 + full as u8);
    assert!(
        pooled.contains(&ip.octets()[3]),
        "{ip} is not one of the pool's"
    );
    eventually("the pool refilled", || async {
        (net.pooled() == full && namespaces() == full + 1).then_some(())
    })
    .await;
}

/// A process emulator holding ConfigMap `name` with `greeting: one`.
async fn with_greeting(name: &str) -> (Emulator, Api<Pod>, Api<ConfigMap>) {
    let emu = process_emulator().await;
    let client = emu.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = from_json(json!({"metadata": {"name": name}, "data": {"greeting": "one"}}));
    cms.create(&PostParams::default(), &cm).await.unwrap();
    (emu, Api::default_namespaced(client), cms)
}

async fn set_greeting(cms: &Api<ConfigMap>, name: &str, greeting: &str) {
    let mut cm = cms.get(name).await.unwrap();
    cm.data
        .as_mut()
        .unwrap()
        .insert("greeting".into(), greeting.into());
    cms.replace(name, &PostParams::default(), &cm)
        .await
        .unwrap();
}

/// A ConfigMap volume follows its source while the container runs, including a change made
/// right after the container started (before the sync's first look at the source).
#[tokio::test]
async fn a_configmap_volume_follows_changes_from_the_containers_start_on() {
    let (_emu, pods, cms) = with_greeting("live").await;
    let out = tempfile::tempdir().unwrap();
    let seen = out.path().join("seen");
    let script = format!(
        "while true; do cat /etc/live/greeting > {f}.tmp && mv {f}.tmp {f}; sleep 0.05; done",
        f = seen.display()
    );
    let mut c = sh("app", &script);
    c["volumeMounts"] = json!([{"name": "live", "mountPath": "/etc/live", "readOnly": true}]);
    let mut p = pod("live", json!({}), json!([c]));
    p.spec.as_mut().unwrap().volumes = Some(from_json(
        json!([{"name": "live", "configMap": {"name": "live"}}]),
    ));
    create(&pods, &p).await;
    // As soon as the container reads the first content: well inside the sync's first period.
    eventually("the first greeting", || async {
        (std::fs::read_to_string(&seen).ok()? == "one").then_some(())
    })
    .await;
    set_greeting(&cms, "live", "two").await;
    eventually("the change made right after the start", || async {
        (std::fs::read_to_string(&seen).ok()? == "two").then_some(())
    })
    .await;
    set_greeting(&cms, "live", "three").await;
    eventually("a later change", || async {
        (std::fs::read_to_string(&seen).ok()? == "three").then_some(())
    })
    .await;
    let restarts = container_status(&pods.get("live").await.unwrap(), 0)["restartCount"].clone();
    assert_eq!(restarts, 0, "seen without a restart");
}

#[tokio::test]
async fn a_configmap_change_is_seen_by_a_restarted_pod() {
    let (_emu, pods, cms) = with_greeting("settings").await;
    let mut c = sh(
        "app",
        "echo file=$(cat /etc/kube-emulator-test/greeting) env=$GREETING arg=$(NAME) \
         ro=$(touch /etc/kube-emulator-test/x 2>/dev/null && echo no || echo yes); exec sleep 3600",
    );
    c["env"] = json!([{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
    c["volumeMounts"] =
        json!([{"name": "settings", "mountPath": "/etc/kube-emulator-test", "readOnly": true}]);
    let mut p = pod("reader", json!({}), json!([c]));
    p.spec.as_mut().unwrap().volumes = Some(from_json(
        json!([{"name": "settings", "configMap": {"name": "settings"}}]),
    ));
    create(&pods, &p).await;
    eventually("the first greeting", || async {
        (logs(&pods, "reader", "app", false).await == "file=one env=one arg=reader ro=yes\n")
            .then_some(())
    })
    .await;
    assert!(
        !Path::new("/etc/kube-emulator-test/greeting").exists(),
        "the mount stays in the pod"
    );
    set_greeting(&cms, "settings", "two").await;
    pods.delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the old pod is gone", || async {
        pods.get_opt("reader")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    create(&pods, &p).await;
    eventually("the new greeting", || async {
        (logs(&pods, "reader", "app", false).await == "file=two env=two arg=reader ro=yes\n")
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_unknown_image_fails_like_a_missing_one_naming_the_map() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    create(
        &pods,
        &pod(
            "ghost",
            json!({}),
            json!([{"name": "app", "image": "fluo/unknown:1"}]),
        ),
    )
    .await;
    let p = wait_for(&pods, "ghost", "ImagePullBackOff", |p: Option<&Pod>| {
        p.is_some_and(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|_| {
                    container_status(p, 0)["state"]["waiting"]["reason"] == "ImagePullBackOff"
                })
        })
    })
    .await;
    assert!(!is_ready(&p));
    let cs = container_status(&p, 0);
    let message = cs["state"]["waiting"]["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("Back-off pulling image \"fluo/unknown:1\": "),
        "{cs}"
    );
    assert!(message.contains("image map test-images.toml"), "{cs}");
}

/// Links, namespaces, processes and files of a slot.
pub fn leftovers(slot: u8) -> Vec<String> {
    let mut found: Vec<String> = kube_emulator::network::bridge::list_netns()
        .into_iter()
        .filter(|n| n.starts_with(&format!("kemu{slot}-")))
        .collect();
    found.extend(
        kube_emulator::network::bridge::list_links()
            .into_iter()
            .filter(|l| *l == format!("kemu{slot}") || l.starts_with(&format!("kemu{slot}v"))),
    );
    let dir = Path::new("/run/kube-emulator").join(slot.to_string());
    if dir.exists() {
        found.push(dir.display().to_string());
    }
    found
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

async fn running_pod_pid(emu_slot: u8) -> Vec<u32> {
    kube_emulator::network::bridge::list_netns()
        .into_iter()
        .filter(|n| n.starts_with(&format!("kemu{emu_slot}-")))
        .flat_map(|ns| {
            let out = std::process::Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[tokio::test]
async fn nothing_is_left_behind_after_shutdown() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    create(
        &pods,
        &pod("idle", json!({}), json!([sh("app", "exec sleep 3600")])),
    )
    .await;
    let p = wait_for(&pods, "idle", "Ready", |p: Option<&Pod>| {
        p.is_some_and(is_ready)
    })
    .await;
    let slot: u8 = p
        .status
        .clone()
        .unwrap()
        .pod_ip
        .unwrap()
        .split('.')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let pids = running_pod_pid(slot).await;
    assert!(!pids.is_empty(), "the pod's process runs in its namespace");
    assert!(!leftovers(slot).is_empty());
    let record = Path::new("/run/kube-emulator")
        .join(slot.to_string())
        .join("cgroup");
    let base = std::fs::read_to_string(&record).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (needs a writable cgroup memory controller)",
            record.display()
        )
    });
    assert!(Path::new(base.trim()).is_dir());
    emu.shutdown().await;
    assert_eq!(leftovers(slot), Vec::<String>::new());
    assert!(!Path::new(base.trim()).exists(), "cgroup {base} survived");
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the emulator");
    }
}

#[tokio::test]
async fn a_restart_after_sigkill_cleans_what_the_last_run_left() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("images.toml");
    std::fs::write(&map, IMAGES).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .args(["serve", "--runtime", "process", "--image-map"])
        .arg(&map)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = eventually("the emulator's kubeconfig", || async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).ok()?;
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .ok()?;
        kube::Client::try_from(config).ok()
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    eventually("the default namespace", || async {
        pods.list(&Default::default()).await.ok()
    })
    .await;
    create(
        &pods,
        &pod("orphan", json!({}), json!([sh("app", "exec sleep 3600")])),
    )
    .await;
    let p = wait_for(&pods, "orphan", "Ready", |p: Option<&Pod>| {
        p.is_some_and(is_ready)
    })
    .await;
    let slot: u8 = p
        .status
        .clone()
        .unwrap()
        .pod_ip
        .unwrap()
        .split('.')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    let pids = running_pod_pid(slot).await;
    assert!(!pids.is_empty());
    // Every container has a cgroup (where a memory controller is writable, as in CI).
    let record = Path::new("/run/kube-emulator")
        .join(slot.to_string())
        .join("cgroup");
    let base = std::fs::read_to_string(&record).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (needs a writable cgroup memory controller)",
            record.display()
        )
    });
    let pod_cgroup = Path::new(base.trim()).join(p.metadata.uid.as_deref().unwrap());
    assert!(pod_cgroup.is_dir(), "{}", pod_cgroup.display());
    child.kill().unwrap();
    child.wait().unwrap();
    // What SIGKILL left (the namespace, its veth, the sleeping process) is cleaned by the next
    // emulator to start (another test's emulator may even have done it already).
    // The next emulator cleans the dead slot before it starts.
    let emu = process_emulator().await;
    // It may reuse the slot (its bridge and directory are new), but nothing of the pod remains.
    let pod_leftovers: Vec<String> = leftovers(slot)
        .into_iter()
        .filter(|l| {
            l.starts_with(&format!("kemu{slot}-")) || l.starts_with(&format!("kemu{slot}v"))
        })
        .collect();
    assert_eq!(pod_leftovers, Vec::<String>::new());
    assert!(!pod_cgroup.exists(), "{} was left", pod_cgroup.display());
    for pid in pids {
        assert!(
            !alive(pid),
            "process {pid} of the killed emulator still runs"
        );
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn user_workdir_and_hostname_apply_and_start_failures_keep_the_shells_exit_codes() {
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let mut who = sh(
        "app",
        "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) pwd=$(pwd) host=$(cat /proc/sys/kernel/hostname); exec sleep 3600",
    );
    who["workingDir"] = json!("/tmp");
    who["securityContext"] = json!({"runAsUser": 65534, "runAsGroup": 65534});
    create(&pods, &pod("who", json!({}), json!([who]))).await;
    let mut no_dir = sh("app", "exit 0");
    no_dir["workingDir"] = json!("/does/not/exist");
    create(&pods, &pod("no-dir", json!({}), json!([no_dir]))).await;
    let no_command =
        json!({"name": "app", "image": "test/sh:1", "command": ["no-such-command-kube-emulator"]});
    create(&pods, &pod("no-command", json!({}), json!([no_command]))).await;
    eventually("the identity line", || async {
        (logs(&pods, "who", "app", false).await
            == "uid=65534 gid=65534 groups=65534 pwd=/tmp host=who\n")
            .then_some(())
    })
    .await;
    for (name, code, message) in [
        ("no-dir", 2, "can't cd to /does/not/exist"),
        (
            "no-command",
            127,
            "no-such-command-kube-emulator: not found",
        ),
    ] {
        let p = wait_for(&pods, name, "a restart", |p: Option<&Pod>| {
            p.is_some_and(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| cs[0].restart_count >= 1)
            })
        })
        .await;
        let cs = container_status(&p, 0);
        assert_eq!(
            cs["lastState"]["terminated"]["exitCode"], code,
            "{name}: {cs}"
        );
        let previous = logs(&pods, name, "app", true).await;
        assert!(previous.contains(message), "{name}: {previous:?}");
    }
}
