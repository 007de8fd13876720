//! What the rotation does to and asks of nats-server: the reload and the probes.
//!
//! The reload: nats-server re-reads its configuration (and so `authorization.conf`, the
//! mounted Secret nats-auth) on SIGHUP; there is no config reloader in the pod, so the
//! deployer runs `nats-server --signal reload=/var/run/nats/nats.pid` in the `nats` container
//! (pods/exec). The pid file (nats.conf `pid_file`) names the server in whatever PID namespace
//! the container has: PID 1 of its own on a real node, a host pid on kube-emulator's process
//! runtime, which has no PID namespaces (where `reload=1` would signal the host's init).
//!
//! The probes: a NATS connection as a user (TLS, the CA of nats-tls) through a port-forward
//! to each NATS pod, or to `[backup] nats_url` when set; accepted, refused (authorization
//! violation) or an error. A reload only helps once the kubelet has updated the mounted file
//! (within about a minute on a real node), so callers reload and probe until the probe says
//! what the new file means ([`Nats::reload_until`]).

use std::time::{Duration, Instant};

use async_nats::{ConnectErrorKind, ConnectOptions};
use fluo_core::portforward::PortForward;
use fluo_secrets::nats_users::User;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;

use crate::jetstream::CaFile;

/// The NATS pods' label and container, the pid file of nats.conf.
pub const SELECTOR: &str = "app.kubernetes.io/name=nats";
pub const CONTAINER: &str = "nats";
pub const PID_FILE: &str = "/var/run/nats/nats.pid";
const TLS_SECRET: &str = "nats-tls";
/// Between two reloads while waiting for the mounted file to change.
const RETRY: Duration = Duration::from_secs(2);

/// The NATS pods of the namespace and how to reach them.
pub struct Nats {
    pods: Api<Pod>,
    namespace: String,
    pub names: Vec<String>,
    /// `[backup] nats_url`: probes go there instead of through port-forwards.
    url: Option<String>,
    ca: CaFile,
}

/// A probe's verdict on one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused,
}

impl Nats {
    /// The NATS pods, each Running and Ready; Err names the pod that is not.
    pub async fn find(
        client: &kube::Client,
        namespace: &str,
        backup: Option<&fluo_core::config::Backup>,
    ) -> Result<Nats, String> {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(SELECTOR))
            .await
            .map_err(|e| format!("listing the NATS pods ({SELECTOR}) in {namespace}: {e}"))?;
        let mut names = Vec::new();
        for pod in &list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() || !fluo_core::portforward::is_ready(pod) {
                return Err(format!("NATS pod {namespace}/{name} is not ready"));
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(format!(
                "no NATS pod ({SELECTOR}) in {namespace}: deploy nats first"
            ));
        }
        let ca = match backup.and_then(|b| b.nats_ca_file.clone()) {
            Some(path) => CaFile::Given(path),
            None => CaFile::written(&ca_of(client, namespace).await?)?,
        };
        Ok(Nats {
            pods,
            namespace: namespace.to_owned(),
            names,
            url: backup.and_then(|b| b.nats_url.clone()),
            ca,
        })
    }

    /// Runs `argv` in the nats container of `pod`; Err carries the exit status and stderr.
    async fn exec(&self, pod: &str, argv: &[&str]) -> Result<(), String> {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(false)
            .stdout(false)
            .stderr(true);
        let what = format!("`{}` in pod {pod} container {CONTAINER}", argv.join(" "));
        let mut process = self
            .pods
            .exec(pod, argv.to_vec(), &params)
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let mut stderr = String::new();
        if let Some(mut err) = process.stderr() {
            let _ = err.read_to_string(&mut stderr).await;
        }
        let status = match process.take_status() {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => Err(format!(
                "{what}: {} {}",
                s.message.unwrap_or_default(),
                stderr.trim()
            )),
            None => Err(format!("{what}: no exit status {}", stderr.trim())),
        }
    }

    /// Whether the reload can run: `nats-server --version` in every NATS pod.
    pub async fn can_reload(&self) -> Result<(), String> {
        for pod in &self.names {
            self.exec(pod, &["nats-server", "--version"]).await?;
        }
        Ok(())
    }

    /// Makes every NATS server re-read its configuration.
    pub async fn reload(&self) -> Result<(), String> {
        let signal = format!("reload={PID_FILE}");
        for pod in &self.names {
            self.exec(pod, &["nats-server", "--signal", &signal])
                .await?;
        }
        Ok(())
    }

    /// What every NATS server says to `user`'s credential.
    pub async fn probe(&self, client: &kube::Client, user: &User) -> Result<Verdict, String> {
        if let Some(url) = &self.url {
            return self.connect(url, user).await;
        }
        let mut verdict = Verdict::Accepted;
        for pod in &self.names {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
            let forward = PortForward::to_pod(pods, pod.clone(), 4222)
                .await
                .map_err(|e| format!("port-forward to pod {pod}:4222: {e}"))?;
            // The name `fluo-secrets tls` puts in the certificate for local clients.
            let url = format!("tls://localhost:{}", forward.local_addr().port());
            if self.connect(&url, user).await? == Verdict::Refused {
                verdict = Verdict::Refused;
            }
        }
        Ok(verdict)
    }

    async fn connect(&self, url: &str, user: &User) -> Result<Verdict, String> {
        let connected = ConnectOptions::new()
            .name("fluo-deploy rotate")
            .connection_timeout(Duration::from_secs(5))
            .user_and_password(user.name.clone(), user.password.clone())
            .require_tls(true)
            .add_root_certificates(self.ca.path().clone())
            .connect(url)
            .await;
        match connected {
            Ok(client) => {
                let _ = client.drain().await;
                Ok(Verdict::Accepted)
            }
            Err(e) if e.kind() == ConnectErrorKind::AuthorizationViolation => Ok(Verdict::Refused),
            Err(e) => Err(format!("connecting to NATS at {url} as {}: {e}", user.name)),
        }
    }

    /// Reloads until every user of `users` gets its wanted verdict, or fails after `timeout`
    /// naming the users that do not.
    pub async fn reload_until(
        &self,
        client: &kube::Client,
        users: &[(&User, Verdict)],
        timeout: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        loop {
            self.reload().await?;
            let mut wrong = Vec::new();
            for (user, want) in users {
                let got = self.probe(client, user).await?;
                if got != *want {
                    wrong.push(format!("{} {got:?}", user.name));
                }
            }
            if wrong.is_empty() {
                return Ok(started.elapsed());
            }
            if started.elapsed() + RETRY > timeout {
                return Err(format!(
                    "after reloading for {}s NATS still answers {} (has the kubelet updated the mounted Secret nats-auth?)",
                    timeout.as_secs(),
                    wrong.join(", ")
                ));
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// The users of the NATS clients connected now (the monitoring port's /connz), per pod.
    pub async fn connected_users(&self, client: &kube::Client) -> Result<Vec<String>, String> {
        let mut users = Vec::new();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        for pod in &self.names {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
            let forward = PortForward::to_pod(pods, pod.clone(), 8222)
                .await
                .map_err(|e| format!("port-forward to pod {pod}:8222: {e}"))?;
            let url = format!("{}/connz?auth=true&limit=1024", forward.url());
            let body: serde_json::Value = http
                .get(&url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("GET /connz of pod {pod}: {e}"))?
                .json()
                .await
                .map_err(|e| format!("GET /connz of pod {pod}: {e}"))?;
            users.extend(
                body["connections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["authorized_user"].as_str().map(str::to_owned)),
            );
        }
        Ok(users)
    }
}

/// nats-tls' `ca.crt`.
async fn ca_of(client: &kube::Client, namespace: &str) -> Result<String, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(TLS_SECRET)
        .await
        .map_err(|e| format!("reading Secret {namespace}/{TLS_SECRET}: {e}"))?;
    secret
        .data
        .and_then(|mut d| d.remove("ca.crt"))
        .and_then(|v| String::from_utf8(v.0).ok())
        .ok_or_else(|| format!("Secret {namespace}/{TLS_SECRET} has no key ca.crt"))
}
