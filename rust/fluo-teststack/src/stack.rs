//! The stack: which pieces run, on which ports, and how to stop and restart them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;

use crate::binaries::{self, Service};
use crate::client::JobsClient;
use crate::error::{Error, Result};
use crate::ports::free_port;
use crate::process::{ChildProcess, log_path, log_tail};
use crate::prometheus_config;
use crate::secured::Secured;
use crate::wait::{eventually, http_get};

/// One piece of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Nats,
    Prometheus,
    Bff,
    Worker,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Nats,
        Component::Bff,
        Component::Worker,
        Component::Prometheus,
    ];

    fn name(self) -> &'static str {
        match self {
            Component::Nats => "nats-server",
            Component::Prometheus => "prometheus",
            Component::Bff => "fluo-bff",
            Component::Worker => "fluo-worker",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Chooses which pieces [`StackBuilder::start`] starts and how they are configured. Pieces left
/// out still get ports, so they can be started later with [`Stack::start_component`].
#[derive(Debug, Clone)]
pub struct StackBuilder {
    start: Vec<Component>,
    bff_env: Vec<(String, String)>,
    worker_env: Vec<(String, String)>,
    worker_ack_wait: Duration,
    scrape_interval: Duration,
    ready_timeout: Duration,
    secured: bool,
}

impl Default for StackBuilder {
    fn default() -> Self {
        StackBuilder {
            start: Vec::new(),
            bff_env: Vec::new(),
            worker_env: Vec::new(),
            worker_ack_wait: Duration::from_secs(5),
            scrape_interval: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(120),
            secured: false,
        }
    }
}

impl StackBuilder {
    /// Start nats-server with JetStream.
    pub fn nats(mut self) -> Self {
        self.start.push(Component::Nats);
        self
    }

    /// Start the BFF.
    pub fn bff(mut self) -> Self {
        self.start.push(Component::Bff);
        self
    }

    /// Start one worker.
    pub fn worker(mut self) -> Self {
        self.start.push(Component::Worker);
        self
    }

    /// Start what a job needs to run: nats-server, the BFF and one worker.
    pub fn jobs(self) -> Self {
        self.nats().bff().worker()
    }

    /// Start Prometheus, scraping the BFF and the worker.
    pub fn prometheus(mut self) -> Self {
        self.start.push(Component::Prometheus);
        self
    }

    /// Security on, as deployed: NATS users and TLS, BFF API tokens (see [`Secured`]).
    /// Without it the BFF runs with --insecure-no-auth and NATS is anonymous plaintext.
    pub fn secured(mut self) -> Self {
        self.secured = true;
        self
    }

    /// Start every piece (what [`Stack::start`] does).
    pub fn all(mut self) -> Self {
        self.start = Component::ALL.to_vec();
        self
    }

    /// An extra environment variable for the BFF, e.g. `FLUO_BFF_FAULT_5XX_RATIO=1`.
    pub fn bff_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.bff_env.push((key.into(), value.into()));
        self
    }

    /// An extra environment variable for the worker.
    pub fn worker_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.worker_env.push((key.into(), value.into()));
        self
    }

    /// How long a delivered job may go unacknowledged before NATS redelivers it (default 5 s,
    /// shorter than production's 30 s so crash tests finish quickly).
    pub fn worker_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.worker_ack_wait = ack_wait;
        self
    }

    /// Prometheus scrape interval (default 1 s).
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// How long to wait for each piece to become ready (default 120 s: CI machines are slow).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Allocates ports and a temp dir, starts the chosen pieces and waits until they are ready.
    pub async fn start(self) -> Result<Stack> {
        let dir = tempfile::Builder::new()
            .prefix("fluo-stack-")
            .tempdir()
            .map_err(|source| Error::Io {
                action: "create a temp dir in",
                path: std::env::temp_dir(),
                source,
            })?;
        for sub in ["logs", "nats", "prometheus"] {
            let path = dir.path().join(sub);
            std::fs::create_dir_all(&path).map_err(|source| Error::Io {
                action: "create",
                path,
                source,
            })?;
        }
        let ports = Ports {
            nats: free_port()?,
            nats_monitor: free_port()?,
            bff: free_port()?,
            worker: free_port()?,
            prometheus: free_port()?,
        };
        let prometheus_yml = dir.path().join("prometheus.yml");
        write_file(
            &prometheus_yml,
            &prometheus_config::render(self.scrape_interval, ports.bff, ports.worker),
        )?;
        let secured = if self.secured {
            let secured = Secured::make(dir.path())?;
            write_file(
                &dir.path().join("nats.conf"),
                &secured.nats_conf(ports.nats, ports.nats_monitor, &dir.path().join("nats")),
            )?;
            Some(secured)
        } else {
            None
        };
        let mut stack = Stack {
            ports,
            secured,
            config: self.clone(),
            client: crate::http_client::http_client(),
            worker_starts: 0,
            processes: BTreeMap::new(),
            dir,
        };
        let mut order = self.start.clone();
        order.sort();
        order.dedup();
        // NATS first so the BFF's readiness wait can include it; the rest in parallel.
        if order.contains(&Component::Nats) {
            stack.start_component(Component::Nats).await?;
        }
        for component in order.iter().copied().filter(|c| *c != Component::Nats) {
            stack.spawn(component).await?;
        }
        for component in order.iter().copied().filter(|c| *c != Component::Nats) {
            stack.wait_ready(component).await?;
        }
        Ok(stack)
    }
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    nats: u16,
    nats_monitor: u16,
    bff: u16,
    worker: u16,
    prometheus: u16,
}

/// A running local FLUO stack. Every process is killed and the temp dir removed on drop.
///
/// ```no_run
/// # async fn demo() -> fluo_teststack::Result<()> {
/// let mut stack = fluo_teststack::Stack::start().await?;
/// println!("BFF at {}", stack.bff_url());
/// stack.stop_nats().await?;   // BFF /ready turns 503
/// stack.start_nats().await?;  // same port, same JetStream data
/// # Ok(()) }
/// ```
pub struct Stack {
    ports: Ports,
    secured: Option<Secured>,
    config: StackBuilder,
    client: reqwest::Client,
    worker_starts: u32,
    processes: BTreeMap<Component, ChildProcess>,
    // Last field: dropped after the processes, so nothing writes into a removed directory.
    dir: TempDir,
}

/// One sample of a Prometheus instant query.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Stack {
    /// Starts everything: nats-server, the BFF, a worker and Prometheus.
    pub async fn start() -> Result<Stack> {
        Self::builder().all().start().await
    }

    /// Starts nothing until told: `Stack::builder().nats().bff().start().await?`.
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// `http://127.0.0.1:<port>` of the BFF.
    pub fn bff_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.bff)
    }

    /// A client of the BFF's jobs API (with the `tests` token on a secured stack).
    pub fn jobs_client(&self) -> JobsClient {
        let client = JobsClient::new(self.bff_url());
        match &self.secured {
            Some(secured) => client.with_token(secured.token("tests")),
            None => client,
        }
    }

    /// The secrets of a stack built with [`StackBuilder::secured`].
    pub fn secured(&self) -> Option<&Secured> {
        self.secured.as_ref()
    }

    /// `http://127.0.0.1:<port>` of the worker's /health and /metrics.
    pub fn worker_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.worker)
    }

    /// `nats://127.0.0.1:<port>`, the NATS client URL.
    pub fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports.nats)
    }

    /// `http://127.0.0.1:<port>` of the NATS monitoring endpoint (/healthz, /varz, /jsz).
    pub fn nats_monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.nats_monitor)
    }

    /// `http://127.0.0.1:<port>` of Prometheus.
    pub fn prometheus_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.prometheus)
    }

    /// The stack's temp dir (logs/, nats/ JetStream data, prometheus/ TSDB, prometheus.yml).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file of a piece (stdout and stderr of every run, appended).
    pub fn log_path(&self, component: Component) -> PathBuf {
        log_path(self.dir.path(), component.name())
    }

    /// Whether the piece's process is running.
    pub fn is_running(&mut self, component: Component) -> bool {
        match self.processes.get_mut(&component) {
            Some(process) => process.exited().is_none(),
            None => false,
        }
    }

    /// The process id of a running piece.
    pub fn pid(&self, component: Component) -> Option<u32> {
        self.processes.get(&component).and_then(ChildProcess::pid)
    }

    /// The worker id the currently running worker reports in job results
    /// (`stack-worker-<n>`, n counting starts).
    pub fn worker_id(&self) -> String {
        format!("stack-worker-{}", self.worker_starts)
    }

    /// Starts a piece that is not running (same ports and data dir as before) and waits until it
    /// is ready.
    pub async fn start_component(&mut self, component: Component) -> Result<()> {
        self.spawn(component).await?;
        self.wait_ready(component).await
    }

    /// Graceful stop: SIGTERM, wait up to 60 s for exit, then SIGKILL. Returns the exit code
    /// (None if killed by a signal or not running).
    pub async fn stop(&mut self, component: Component) -> Result<Option<i32>> {
        Ok(match self.processes.remove(&component) {
            Some(process) => process
                .terminate(Duration::from_secs(60))
                .await
                .and_then(|status| status.code()),
            None => None,
        })
    }

    /// Hard stop: SIGKILL, as when a node dies. No-op if not running.
    pub async fn kill(&mut self, component: Component) -> Result<()> {
        if let Some(process) = self.processes.remove(&component) {
            process.kill().await;
        }
        Ok(())
    }

    pub async fn start_nats(&mut self) -> Result<()> {
        self.start_component(Component::Nats).await
    }
    pub async fn stop_nats(&mut self) -> Result<Option<i32>> {
        self.stop(Component::Nats).await
    }
    pub async fn start_bff(&mut self) -> Result<()> {
        self.start_component(Component::Bff).await
    }
    pub async fn stop_bff(&mut self) -> Result<Option<i32>> {
        self.stop(Component::Bff).await
    }
    pub async fn start_worker(&mut self) -> Result<()> {
        self.start_component(Component::Worker).await
    }
    pub async fn stop_worker(&mut self) -> Result<Option<i32>> {
        self.stop(Component::Worker).await
    }
    /// SIGKILL the worker, as when its pod is killed mid-job.
    pub async fn kill_worker(&mut self) -> Result<()> {
        self.kill(Component::Worker).await
    }
    pub async fn start_prometheus(&mut self) -> Result<()> {
        self.start_component(Component::Prometheus).await
    }
    pub async fn stop_prometheus(&mut self) -> Result<Option<i32>> {
        self.stop(Component::Prometheus).await
    }

    /// Runs a Prometheus instant query and returns its samples.
    pub async fn query_prometheus(&self, expr: &str) -> Result<Vec<Sample>> {
        let url = format!("{}/api/v1/query", self.prometheus_url());
        let http_err = |reason: String| Error::Http {
            url: url.clone(),
            reason,
        };
        let query_url = reqwest::Url::parse_with_params(&url, &[("query", expr)])
            .map_err(|e| http_err(e.to_string()))?;
        let response: QueryResponse = self
            .client
            .get(query_url)
            .send()
            .await
            .map_err(|e| http_err(e.to_string()))?
            .json()
            .await
            .map_err(|e| http_err(e.to_string()))?;
        if response.status != "success" {
            return Err(http_err(format!(
                "query {expr:?} failed: {}",
                response.error.unwrap_or_default()
            )));
        }
        response
            .data
            .map(|d| d.result)
            .unwrap_or_default()
            .into_iter()
            .map(|s| {
                let value = s.value.1.parse::<f64>().map_err(|e| {
                    http_err(format!("sample value {:?} is not a number: {e}", s.value.1))
                })?;
                Ok(Sample {
                    labels: s.metric,
                    value,
                })
            })
            .collect()
    }

    async fn spawn(&mut self, component: Component) -> Result<()> {
        if self.is_running(component) {
            return Err(Error::AlreadyRunning { component });
        }
        let (program, args, envs) = self.command(component).await?;
        let process = ChildProcess::spawn(&program, &args, &envs, &self.log_path(component))?;
        self.processes.insert(component, process);
        Ok(())
    }

    async fn command(
        &mut self,
        component: Component,
    ) -> Result<(PathBuf, Vec<String>, Vec<(String, String)>)> {
        let dir = self.dir.path().to_path_buf();
        let log_env = (
            "RUST_LOG".to_owned(),
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        );
        Ok(match component {
            Component::Nats => (
                binaries::system_binary("nats-server", "NATS_SERVER_BIN")?,
                match &self.secured {
                    Some(_) => vec!["-c".to_owned(), dir.join("nats.conf").display().to_string()],
                    None => [
                        "-a",
                        "127.0.0.1",
                        "-p",
                        &self.ports.nats.to_string(),
                        "-m",
                        &self.ports.nats_monitor.to_string(),
                        "-js",
                        "-sd",
                        &dir.join("nats").display().to_string(),
                        "-n",
                        "fluo-teststack",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                },
                Vec::new(),
            ),
            Component::Prometheus => (
                binaries::system_binary("prometheus", "PROMETHEUS_BIN")?,
                vec![
                    format!("--config.file={}", dir.join("prometheus.yml").display()),
                    format!("--storage.tsdb.path={}", dir.join("prometheus").display()),
                    format!("--web.listen-address=127.0.0.1:{}", self.ports.prometheus),
                ],
                Vec::new(),
            ),
            Component::Bff => {
                let mut envs = vec![
                    (
                        "FLUO_BFF_LISTEN".to_owned(),
                        format!("127.0.0.1:{}", self.ports.bff),
                    ),
                    ("NATS_URL".to_owned(), self.nats_url()),
                    log_env,
                ];
                match &self.secured {
                    Some(secured) => envs.extend(secured.bff_env()),
                    None => envs.push(("FLUO_BFF_INSECURE_NO_AUTH".into(), "true".into())),
                }
                envs.extend(self.config.bff_env.iter().cloned());
                (
                    binaries::service_binary(Service::Bff).await?,
                    Vec::new(),
                    envs,
                )
            }
            Component::Worker => {
                self.worker_starts += 1;
                let mut envs = vec![
                    (
                        "FLUO_WORKER_LISTEN".to_owned(),
                        format!("127.0.0.1:{}", self.ports.worker),
                    ),
                    ("NATS_URL".to_owned(), self.nats_url()),
                    ("FLUO_WORKER_ID".to_owned(), self.worker_id()),
                    (
                        "FLUO_WORKER_ACK_WAIT_SECS".to_owned(),
                        self.config.worker_ack_wait.as_secs().max(1).to_string(),
                    ),
                    log_env,
                ];
                if let Some(secured) = &self.secured {
                    envs.extend(secured.service_env("worker"));
                }
                envs.extend(self.config.worker_env.iter().cloned());
                (
                    binaries::service_binary(Service::Worker).await?,
                    Vec::new(),
                    envs,
                )
            }
        })
    }

    /// The URL that answers 200 once the piece is ready. The BFF is only "ready" when NATS is
    /// up; without NATS the stack waits for its liveness instead.
    fn ready_url(&mut self, component: Component) -> String {
        match component {
            Component::Nats => format!("{}/healthz", self.nats_monitor_url()),
            Component::Prometheus => format!("{}/-/ready", self.prometheus_url()),
            Component::Bff if self.is_running(Component::Nats) => {
                format!("{}/ready", self.bff_url())
            }
            Component::Bff => format!("{}/health", self.bff_url()),
            Component::Worker => format!("{}/health", self.worker_url()),
        }
    }

    /// Waits until a running piece answers ready (NATS /healthz, Prometheus /-/ready, BFF
    /// /ready when NATS runs else /health, worker /health), e.g. after a restart.
    pub async fn wait_ready(&mut self, component: Component) -> Result<()> {
        let url = self.ready_url(component);
        let timeout = self.config.ready_timeout;
        let log = self.log_path(component);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let exited = self
                .processes
                .get_mut(&component)
                .and_then(ChildProcess::exited);
            if let Some(status) = exited {
                self.processes.remove(&component);
                return Err(Error::Exited {
                    component,
                    status: status.to_string(),
                    log_tail: log_tail(&log, 30),
                    log,
                });
            }
            if let Ok((200, _)) = http_get(&self.client, &url).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotReady {
                    component,
                    url,
                    seconds: timeout.as_secs(),
                    log_tail: log_tail(&log, 30),
                    log,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `check` until it yields a value; see [`eventually`].
    pub async fn eventually<T, E, F, Fut>(&self, what: &str, check: F) -> Result<T>
    where
        E: std::fmt::Debug,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Option<T>, E>>,
    {
        eventually(what, self.config.ready_timeout, check).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // kill_on_drop sends SIGKILL; a clean shutdown is what stop() is for.
        self.processes.clear();
    }
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<QueryData>,
}

#[derive(Deserialize)]
struct QueryData {
    result: Vec<QuerySample>,
}

#[derive(Deserialize)]
struct QuerySample {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}
