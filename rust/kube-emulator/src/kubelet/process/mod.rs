//! The process runtime (`--runtime process`): each pod's containers run as real host processes,
//! in a network namespace of the pod's (an IP on the emulator's bridge, see
//! [`crate::network::bridge`]) and a mount namespace per container showing the pod's volumes,
//! resolv.conf and hosts. Needs root; see the README for what differs from a real node.
//!
//! Layout: [`images`] (image -> host command), [`env`] (environment and `$(VAR)`), [`volumes`]
//! (pod files and mounts), [`launch`] (spawn and logs) over `isolate` (namespaces, mounts and
//! ids set up in the forked child), [`cgroup`] (memory limits),
//! [`probes`], [`container`] (one container's life), [`worker`] (one pod and its status),
//! [`volume_sync`] (Secret and ConfigMap volumes following their sources).

pub mod cgroup;
pub mod container;
pub mod env;
pub mod exec;
pub mod images;
// The only `unsafe` of the workspace: the forked child's steps before exec (see its docs).
#[allow(unsafe_code)]
mod isolate;
pub mod launch;
pub mod logs;
pub mod probes;
pub mod volume_sync;
pub mod volumes;
pub mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::apiserver::store::{State, Store, meta_str};
use crate::controllers::events::{self, SCHEDULER};
use crate::controllers::{PodRuntime, Requeue, def};
use crate::kubelet::NODE_NAME;
use crate::network::bridge::{ClusterNetwork, PodNetwork};
use crate::wire::portforward_spdy::Resolve;
pub use cgroup::Cgroups;
pub use images::ImageMap;

/// Pod networks kept ready ahead of need: enough for a Deployment's pods created back to back
/// (with 4 the pool ran empty within a burst and the next pods made theirs on their start).
/// The emulator fills it before it serves; each pod start refills it in the background.
pub const NETWORK_POOL: usize = 8;

/// How the process runtime runs pods.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    pub images: ImageMap,
    /// First CrashLoopBackOff delay (the kubelet's is 10 s); doubles per crash.
    pub backoff_initial: Duration,
    /// Longest CrashLoopBackOff delay (the kubelet's is 300 s).
    pub backoff_max: Duration,
    /// `ca.crt` of the service-account volume (the in-cluster API's CA; empty without TLS).
    pub ca_crt: Vec<u8>,
    /// PATH for containers that set none.
    pub path: String,
    pub cluster_domain: String,
    /// Longest grace a pod gets when the emulator itself shuts down.
    pub shutdown_grace: Duration,
}

impl ProcessOptions {
    pub fn new(images: ImageMap) -> Self {
        Self {
            images,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            ca_crt: Vec::new(),
            path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            cluster_domain: "cluster.local".into(),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// What a pod's worker and its containers share.
pub struct PodContext {
    pub store: Arc<Store>,
    pub pod: Value,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub hostname: String,
    pub network: PodNetwork,
    /// The pod's directory (files, volumes, logs).
    pub dir: PathBuf,
    pub slot_dir: PathBuf,
    pub claims_dir: PathBuf,
    pub host_ip: String,
    pub api_host: String,
    pub images: ImageMap,
    pub options: Arc<ProcessOptions>,
    /// None where no memory controller is writable (limits are then not enforced).
    pub cgroups: Option<Arc<Cgroups>>,
}

impl PodContext {
    /// `<pod dir>/logs/<container>/<restart>.log`.
    pub fn log_path(&self, container: &str, restart: u32) -> PathBuf {
        log_dir(&self.dir, container).join(format!("{restart}.log"))
    }

    /// terminationGracePeriodSeconds (default 30 s).
    pub fn grace(&self) -> Duration {
        Duration::from_secs(
            self.pod["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap_or(30),
        )
    }
}

fn log_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(container)
}

struct PodEntry {
    /// namespace/name: a pod of the same name may only start once this one has stopped.
    key: String,
    stop: watch::Sender<Option<Duration>>,
    /// Turns true when the pod's processes are gone and its network and files removed.
    stopped: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
    ip: Option<std::net::Ipv4Addr>,
}

fn pod_key(pod: &Value) -> String {
    format!("{}/{}", meta_str(pod, "namespace"), meta_str(pod, "name"))
}

/// The node: the cluster network and every pod worker.
pub struct ProcessNode {
    store: Arc<Store>,
    net: Arc<ClusterNetwork>,
    options: Arc<ProcessOptions>,
    cgroups: Option<Arc<Cgroups>>,
    pods: Mutex<HashMap<String, PodEntry>>,
}

impl ProcessNode {
    pub fn new(store: Arc<Store>, net: Arc<ClusterNetwork>, options: ProcessOptions) -> Arc<Self> {
        let cgroups = match Cgroups::create(net.state_dir(), net.slot()) {
            Ok(c) => Some(Arc::new(c)),
            Err(why) => {
                tracing::warn!(%why, "memory limits are NOT enforced on this host: containers run without a memory cgroup, nothing is OOMKilled");
                None
            }
        };
        let node = Arc::new(Self {
            store,
            net,
            cgroups,
            options: Arc::new(options),
            pods: Mutex::new(HashMap::new()),
        });
        node.refill_pool();
        node
    }

    /// Keeps a few pod networks ready, so creating one is not part of a pod's start.
    pub fn refill_pool(&self) {
        let net = self.net.clone();
        tokio::task::spawn_blocking(move || net.fill_pool(NETWORK_POOL));
    }

    pub fn network(&self) -> &Arc<ClusterNetwork> {
        &self.net
    }

    /// The containers' cgroups; None where memory limits are not enforced.
    pub fn cgroups(&self) -> Option<&Arc<Cgroups>> {
        self.cgroups.as_ref()
    }

    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodEntry>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log file of a container's current (or previous) run.
    pub fn log_file(&self, uid: &str, container: &str, previous: bool) -> Option<PathBuf> {
        let dir = log_dir(&self.pods().get(uid)?.dir, container);
        let mut runs: Vec<u32> = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
            .collect();
        runs.sort_unstable();
        let pick = if previous {
            runs.iter().rev().nth(1)
        } else {
            runs.last()
        };
        pick.map(|n| dir.join(format!("{n}.log")))
    }

    /// Starts the pod's worker. A pod that replaces one of the same name (a StatefulSet's pod
    /// deleted and re-created) waits until the old one's processes have stopped: the API
    /// removes a deleted pod at once, while a node runs at most one pod per identity (two
    /// NATS servers on one volume, the old one still flushing, lost accepted messages).
    fn start_pod(self: &Arc<Self>, pod: &Value) {
        tracing::debug!(pod = meta_str(pod, "name"), "starting a pod worker");
        let uid = meta_str(pod, "uid").to_string();
        let key = pod_key(pod);
        let (stop, stop_rx) = watch::channel(None);
        let (stopped_tx, stopped) = watch::channel(false);
        let dir = self.net.state_dir().join("pods").join(&uid);
        let node = self.clone();
        let pod = pod.clone();
        let pod_dir = dir.clone();
        let mut pods = self.pods();
        let predecessors: Vec<watch::Receiver<bool>> = pods
            .values()
            .filter(|e| e.key == key)
            .map(|e| e.stopped.clone())
            .collect();
        let task = tokio::spawn(async move {
            for mut previous in predecessors {
                // Err: the old worker is gone without saying so, which also means stopped.
                let _ = previous.wait_for(|stopped| *stopped).await;
            }
            node.run_pod(pod, pod_dir, stop_rx).await;
            let _ = stopped_tx.send(true);
        });
        pods.insert(
            uid,
            PodEntry {
                key,
                stop,
                stopped,
                task,
                dir,
                ip: None,
            },
        );
    }

    async fn run_pod(
        self: Arc<Self>,
        pod: Value,
        dir: PathBuf,
        stop: watch::Receiver<Option<Duration>>,
    ) {
        let uid = meta_str(&pod, "uid").to_string();
        let begun = Instant::now();
        let net = self.net.clone();
        // A pooled network is a mutex pop; only creating one needs the blocking pool.
        let network = match self.net.take_pooled() {
            Some(n) => Ok(Ok(n)),
            None => tokio::task::spawn_blocking(move || net.add_pod()).await,
        };
        let network = match network {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(error = %e, pod = meta_str(&pod, "name"), "creating the pod network failed");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "the pod network task failed");
                return;
            }
        };
        if let Some(entry) = self.pods().get_mut(&uid) {
            entry.ip = Some(network.ip);
        }
        tracing::debug!(pod = meta_str(&pod, "name"), took = ?begun.elapsed(), "pod network ready");
        self.refill_pool();
        let name = meta_str(&pod, "name").to_string();
        let dns = volumes::ClusterDns {
            nameserver: &self.net.dns_service_ip().to_string(),
            domain: &self.options.cluster_domain,
        };
        if let Err(e) = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| volumes::write_name_files(&dir, &pod, &network.ip.to_string(), &dns))
        {
            tracing::error!(error = %e, pod = %name, "writing the pod's files failed");
        } else {
            let ctx = Arc::new(PodContext {
                store: self.store.clone(),
                namespace: meta_str(&pod, "namespace").to_string(),
                hostname: pod["spec"]["hostname"]
                    .as_str()
                    .unwrap_or(&name)
                    .to_string(),
                name,
                uid: uid.clone(),
                network: network.clone(),
                dir: dir.clone(),
                slot_dir: self.net.state_dir().to_path_buf(),
                claims_dir: self.net.state_dir().join("claims"),
                host_ip: self.net.gateway().to_string(),
                api_host: self.net.api_service_ip().to_string(),
                images: self.options.images.clone(),
                options: self.options.clone(),
                cgroups: self.cgroups.clone(),
                pod,
            });
            worker::run(ctx, stop).await;
        }
        let net = self.net.clone();
        let cgroups = self.cgroups.clone();
        let pod_uid = uid.clone();
        let _ = tokio::task::spawn_blocking(move || {
            net.remove_pod(&network);
            if let Some(c) = cgroups {
                c.remove_pod(&pod_uid);
            }
        })
        .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        self.pods().remove(&uid);
    }

    /// Stops a pod's worker (preStop, SIGTERM, grace, SIGKILL); its cleanup follows.
    pub fn stop_pod(&self, uid: &str, grace: Duration) {
        if let Some(entry) = self.pods().get(uid) {
            entry.stop.send_if_modified(|g| {
                if g.is_none() {
                    *g = Some(grace);
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Stops every pod (grace capped by `shutdown_grace`), waits for them, then removes the
    /// cluster network.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = {
            let mut pods = self.pods();
            pods.values().for_each(|e| {
                let _ = e.stop.send(Some(self.options.shutdown_grace));
            });
            pods.drain().map(|(_, e)| e.task).collect()
        };
        let limit = self.options.shutdown_grace + Duration::from_secs(5);
        for h in handles {
            if tokio::time::timeout(limit, h).await.is_err() {
                tracing::warn!("a pod did not stop in time; its processes are killed");
            }
        }
        let net = self.net.clone();
        let _ = tokio::task::spawn_blocking(move || net.shutdown()).await;
    }
}

/// Port-forward in process mode: straight to the pod's IP.
pub fn pod_ip_targets(pod: &Value) -> Resolve {
    let ip = pod["status"]["podIP"].as_str().map(str::to_string);
    Arc::new(move |port| match &ip {
        Some(ip) => Ok(format!("{ip}:{port}")),
        None => Err("the pod has no IP yet".to_string()),
    })
}

/// The controller loop's handle on the process node.
pub struct ProcessKubelet {
    node: Arc<ProcessNode>,
}

impl ProcessKubelet {
    pub fn new(node: Arc<ProcessNode>) -> Self {
        Self { node }
    }
}

impl PodRuntime for ProcessKubelet {
    fn reconcile(&mut self, state: &mut State, pod: &Value, _now: Instant) -> Requeue {
        let uid = meta_str(pod, "uid");
        if pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty) {
            let mut next = pod.clone();
            next["spec"]["nodeName"] = json!(NODE_NAME);
            next["status"]["phase"] = json!("Pending");
            let stored = state.replace(def("", "Pod"), next);
            let message = format!(
                "Successfully assigned {}/{} to {NODE_NAME}",
                meta_str(&stored, "namespace"),
                meta_str(&stored, "name")
            );
            events::normal(state, SCHEDULER, &stored, "Scheduled", message);
        }
        let known = self.node.pods().contains_key(uid);
        let finished = matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        );
        if !known && !finished && pod["metadata"]["deletionTimestamp"].is_null() {
            self.node.start_pod(pod);
        }
        None
    }

    fn pod_deleted(&mut self, _state: &mut State, pod: &Value) {
        let grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        self.node
            .stop_pod(meta_str(pod, "uid"), Duration::from_secs(grace));
    }

    fn retain_live(&mut self, state: &State) {
        let live: std::collections::HashSet<String> = state
            .list(def("", "Pod"), None)
            .map(|p| meta_str(p, "uid").to_string())
            .collect();
        let gone: Vec<String> = self
            .node
            .pods()
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.node.stop_pod(&uid, Duration::from_secs(30));
        }
    }
}
