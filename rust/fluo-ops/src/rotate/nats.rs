//! What the rotation does to and asks of nats-server: the reload and the probes.
//!
//! The reload: nats-server re-reads its configuration (and so `authorization.conf`, the
//! mounted Secret nats-auth) on SIGHUP; there is no config reloader in the pod, so the
//! deployer runs `nats-server --signal reload=/var/run/nats/nats.pid` in the `nats` container
//! (pods/exec). The pid file (nats.conf `pid_file`) names the server in whatever PID namespace
//! the container has: PID 1 of its own on a real node, a host pid on kube-emulator's process
//! runtime, which has no PID namespaces (where `reload=1` would signal the host's init).
//!
//! The probes: a NATS CONNECT as a user over TLS verified against the CA of nats-tls (or
//! `[backup] nats_ca_file`) for the name the services use (`nats`), through a port-forward to
//! each NATS pod, or to `[backup] nats_url` when set (fluo-health's wire client, which says
//! which answer came, without a client library's retries and logs): accepted, refused
//! (authorization violation) or an error. A reload only helps once the kubelet has updated
//! the mounted file (within about a minute on a real node), so callers reload and probe until
//! the probes say what the new file means ([`Nats::reload_until`]).

use std::time::{Duration, Instant};

use fluo_core::portforward::PortForward;
use fluo_health::natswire::{self, Answer, Target, TlsFailure};
use fluo_secrets::nats_users::User;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, AttachParams, ListParams};
use tokio::io::AsyncReadExt;

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
    ca_pem: Vec<u8>,
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
        let ca_pem = match backup.and_then(|b| b.nats_ca_file.clone()) {
            Some(path) => std::fs::read(&path)
                .map_err(|e| format!("backup.nats_ca_file {}: {e}", path.display()))?,
            None => ca_of(client, namespace).await?.into_bytes(),
        };
        Ok(Nats {
            pods,
            namespace: namespace.to_owned(),
            names,
            url: backup.and_then(|b| b.nats_url.clone()),
            ca_pem,
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
            let addr = url
                .rsplit("://")
                .next()
                .unwrap_or(url)
                .trim_end_matches('/');
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            return self.connect(addr, host, url, user).await;
        }
        let mut verdict = Verdict::Accepted;
        for pod in &self.names {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
            let forward = PortForward::to_pod(pods, pod.clone(), 4222)
                .await
                .map_err(|e| format!("port-forward to pod {pod}:4222: {e}"))?;
            let addr = forward.local_addr().to_string();
            let via = format!("port-forward to pod {}/{pod}", self.namespace);
            // The name the services connect to (tls://nats:4222), which the certificate names.
            if self.connect(&addr, "nats", &via, user).await? == Verdict::Refused {
                verdict = Verdict::Refused;
            }
        }
        Ok(verdict)
    }

    async fn connect(
        &self,
        addr: &str,
        name: &str,
        via: &str,
        user: &User,
    ) -> Result<Verdict, String> {
        let target = Target {
            addr: addr.to_owned(),
            server_name: name.to_owned(),
            via: via.to_owned(),
        };
        let credential = Some((user.name.as_str(), user.password.as_str()));
        match natswire::over_tls_as(&target, &self.ca_pem, credential).await {
            Ok((_, Answer::Pong)) => Ok(Verdict::Accepted),
            Ok((_, Answer::Refused(m))) if m.to_lowercase().contains("authorization violation") => {
                Ok(Verdict::Refused)
            }
            Ok((_, answer)) => Err(format!("NATS ({via}) answered {} with {answer}", user.name)),
            Err(TlsFailure::Handshake(e) | TlsFailure::Setup(e)) => {
                Err(format!("connecting to NATS ({via}) as {}: {e}", user.name))
            }
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

    /// Every NATS client connected now (the monitoring port's /connz).
    pub async fn connections(&self, client: &kube::Client) -> Result<Vec<Connection>, String> {
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
                    .filter_map(|c| {
                        let text = |k: &str| c[k].as_str().unwrap_or("").to_owned();
                        Some(Connection {
                            user: c["authorized_user"].as_str()?.to_owned(),
                            ip: text("ip"),
                            name: text("name"),
                        })
                    }),
            );
        }
        Ok(users)
    }
}

/// One client connection as /connz shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub user: String,
    pub ip: String,
    /// The client's connection name; the BFF's and the worker's end with their pod's name.
    pub name: String,
}

impl Connection {
    /// Whether a pod that has not ended holds it: its name ends with the pod's name, or it
    /// comes from the pod's address. Neither means a client gone without closing it (behind
    /// kube-emulator's userspace Service proxy every client's address is the proxy's).
    pub fn of_live_pod(&self, live: &[(String, String)]) -> bool {
        let pod = self.name.rsplit(' ').next().unwrap_or("");
        live.iter()
            .any(|(name, ip)| name == pod || (!ip.is_empty() && ip == &self.ip))
    }

    pub fn describe(&self) -> String {
        format!("{} from {} ({:?})", self.user, self.ip, self.name)
    }
}

/// The name and address of every pod of the namespace that has not ended (terminating ones
/// included: they may still be draining).
pub async fn live_pods(
    client: &kube::Client,
    namespace: &str,
) -> Result<Vec<(String, String)>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing the pods in {namespace}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .map(|p| {
            let ip = p.status.and_then(|s| s.pod_ip).unwrap_or_default();
            (p.metadata.name.unwrap_or_default(), ip)
        })
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_belongs_to_a_live_pod_by_its_name_or_its_address() {
        let live = [("fluo-worker-7d9-abc".to_owned(), "10.244.1.7".to_owned())];
        let conn = |name: &str, ip: &str| Connection {
            user: "worker".into(),
            ip: ip.into(),
            name: name.into(),
        };
        assert!(conn("fluo-worker fluo-worker-7d9-abc", "10.244.1.1").of_live_pod(&live));
        assert!(conn("other", "10.244.1.7").of_live_pod(&live));
        assert!(!conn("fluo-worker fluo-worker-7d9-old", "10.244.1.1").of_live_pod(&live));
        // A pod without an address yet matches no connection by address.
        let pending = [("p".to_owned(), String::new())];
        assert!(!conn("x", "").of_live_pod(&pending));
    }
}
