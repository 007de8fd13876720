//! kube-emulator: an emulated Kubernetes API server with the controllers and kubelet behaviour
//! the FLUO suite relies on, faithful enough for kubectl 1.32 and kube-rs.
//!
//! Start one in-process with [`Emulator::start`], or run the `kube-emulator serve` binary.
//!
//! Layers, top to bottom: [`http`] (the HTTP surface) -> [`apiserver`] (API machinery and
//! storage) and [`wire`] (protocols); [`kubelet`] -> [`controllers`] -> [`apiserver`];
//! [`kubelet`] -> [`network`] -> [`host_records`]; [`cli`] (the binary's command line) sits on
//! top of them all.

pub mod apiserver;
pub mod cli;
pub mod controllers;
pub mod host_records;
pub mod http;
pub mod kubeconfig;
pub mod kubelet;
pub mod network;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;

pub use http::faults::Faults;

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Name of the cluster, user and context in the written kubeconfig.
    pub context: String,
    /// Default delay before a pod's containers start and become ready.
    pub ready_after: Duration,
    /// Injected faults (none by default); can be changed later with [`Emulator::set_faults`].
    pub faults: Faults,
    /// Watch events kept for resourceVersion replay; older versions get 410 Gone.
    pub watch_history: usize,
    /// How often idle watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// What runs pods: the simulated kubelet (default) or real host processes.
    pub runtime: Runtime,
    /// Where the process runtime serves Ingress rules (off by default in-process; `serve`
    /// defaults to 127.0.0.1:80 when it can bind it).
    pub ingress: network::IngressListen,
}

/// What runs pods.
#[derive(Debug, Clone, Default)]
pub enum Runtime {
    /// Outcomes chosen from the pod spec (image tags, annotations); fast, no privileges.
    #[default]
    Simulated,
    /// Containers as real host processes in per-pod namespaces (needs root; see README).
    Process(kubelet::process::ProcessOptions),
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            context: "kube-emulator".into(),
            ready_after: Duration::from_millis(200),
            faults: Faults::default(),
            watch_history: 4096,
            bookmark_interval: Duration::from_secs(1),
            runtime: Runtime::Simulated,
            ingress: network::IngressListen::Off,
        }
    }
}

/// A running emulator. Dropping it (or [`Emulator::shutdown`]) stops the server and controllers.
pub struct Emulator {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    _dir: Option<tempfile::TempDir>,
    store: Arc<apiserver::store::Store>,
    faults: Arc<RwLock<Faults>>,
    stop: tokio::sync::watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    controllers: Option<tokio::task::JoinHandle<()>>,
    process: Option<Arc<kubelet::process::ProcessNode>>,
    /// Service VIPs, cluster DNS, in-cluster API and Ingress of the process runtime.
    network: Option<network::Network>,
}

impl Emulator {
    /// Binds, bootstraps the cluster, starts the controllers and writes a kubeconfig into a
    /// temporary directory owned by the emulator.
    pub async fn start(opts: Options) -> anyhow::Result<Emulator> {
        let dir = tempfile::Builder::new()
            .prefix("kube-emulator")
            .tempdir()
            .context("creating the kubeconfig directory")?;
        let path = dir.path().join("kubeconfig");
        let mut emu = Self::start_with_kubeconfig(opts, &path).await?;
        emu._dir = Some(dir);
        Ok(emu)
    }

    /// Like [`Emulator::start`] but writes the kubeconfig to `kubeconfig_out`.
    pub async fn start_with_kubeconfig(
        opts: Options,
        kubeconfig_out: &Path,
    ) -> anyhow::Result<Emulator> {
        opts.faults.validate().context("invalid fault options")?;
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let store = apiserver::store::Store::new(opts.watch_history);
        apiserver::registry::bootstrap(&store);
        let faults = Arc::new(RwLock::new(opts.faults.clone()));
        let (process, cluster_services) = match &opts.runtime {
            Runtime::Simulated => (None, None),
            Runtime::Process(process) => {
                let net = tokio::task::spawn_blocking(network::bridge::ClusterNetwork::create)
                    .await
                    .context("creating the cluster network")?
                    .context("creating the cluster network")?;
                store.lock().use_service_cidr(net.slot());
                let net = Arc::new(net);
                // The node is ready with its warm pool of pod networks (as a kubelet is with
                // its CNI): made while the cluster services start.
                let pooling = net.clone();
                let pool = tokio::task::spawn_blocking(move || {
                    pooling.fill_pool(kubelet::process::NETWORK_POOL)
                });
                let config = network::NetworkConfig::for_bridge(net.clone(), opts.ingress);
                let services = network::Network::start(store.clone(), addr, config)
                    .await
                    .context("starting Service IPs, cluster DNS, in-cluster API and Ingress")?;
                let mut process = process.clone();
                process.ca_crt = services.apiserver_access().ca_pem().as_bytes().to_vec();
                pool.await.context("filling the pod network pool")?;
                let node = kubelet::process::ProcessNode::new(store.clone(), net, process);
                (Some(node), Some(services))
            }
        };
        let (kubelet, pod_targets): (Box<dyn controllers::PodRuntime>, http::server::PodTargets) =
            match &process {
                None => (
                    Box::new(kubelet::simulated::Kubelet::new(opts.ready_after)),
                    Box::new(http::portforward::annotation_targets),
                ),
                Some(node) => (
                    Box::new(kubelet::process::ProcessKubelet::new(node.clone())),
                    Box::new(kubelet::process::pod_ip_targets),
                ),
            };
        let app = Arc::new(http::server::App {
            store: store.clone(),
            faults: faults.clone(),
            server_address: addr.to_string(),
            bookmark_interval: opts.bookmark_interval,
            pod_targets,
            process_logs: process.clone(),
        });
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = server_stop.changed().await;
            };
            let listener = http::connection::Listener::new(listener);
            let app = http::server::router(app)
                .into_make_service_with_connect_info::<http::connection::Peer>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "kube-emulator server stopped");
            }
        });
        let controllers = tokio::spawn(controllers::run(
            store.clone(),
            controllers::Controllers::new(&store, kubelet),
            stop_rx,
        ));
        kubeconfig::write(kubeconfig_out, &format!("http://{addr}"), &opts.context)?;
        Ok(Emulator {
            addr,
            kubeconfig: kubeconfig_out.to_path_buf(),
            _dir: None,
            store,
            faults,
            stop,
            server: Some(server),
            controllers: Some(controllers),
            process,
            network: cluster_services,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client for this emulator with default namespace `default`.
    pub async fn client(&self) -> kube::Client {
        let uri: ::http::Uri = self.url().parse().expect("emulator url is a valid URI");
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).expect("a plain-http kube client can always be built")
    }

    /// Replaces the injected faults while running.
    pub fn set_faults(&self, faults: Faults) -> anyhow::Result<()> {
        faults.validate().context("invalid fault options")?;
        *self.faults.write().unwrap_or_else(|p| p.into_inner()) = faults;
        Ok(())
    }

    /// Direct access to the store, for tests that inspect raw state.
    pub fn store(&self) -> &Arc<apiserver::store::Store> {
        &self.store
    }

    /// The cluster network of the process runtime (None for the simulated kubelet).
    pub fn cluster_network(&self) -> Option<&Arc<network::bridge::ClusterNetwork>> {
        self.process.as_ref().map(|p| p.network())
    }

    /// Service VIPs, cluster DNS, in-cluster API access and Ingress (process runtime only).
    pub fn network(&self) -> Option<&network::Network> {
        self.network.as_ref()
    }

    /// Stops the server (open watches end) and the controllers, and waits for both; in process
    /// mode then stops the network services and every pod (SIGTERM, grace, SIGKILL) and removes
    /// the cluster network.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for handle in [self.server.take(), self.controllers.take()]
            .into_iter()
            .flatten()
        {
            handle.abort();
            let _ = handle.await;
        }
        if let Some(services) = self.network.take() {
            services.shutdown().await;
        }
        if let Some(process) = self.process.take() {
            process.shutdown().await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for handle in [self.server.take(), self.controllers.take()]
            .into_iter()
            .flatten()
        {
            handle.abort();
        }
        // No time to be graceful here: close the Service listeners, kill the pods' processes
        // and remove the network.
        drop(self.network.take());
        if let Some(process) = self.process.take() {
            process.network().shutdown();
        }
    }
}
