//! Reaching the FLUO endpoints the way the environment's `[access]` says.
//!
//! Endpoint names are those of `[access.urls]`: `bff`, `nats-monitor`, `prometheus`, `grafana`,
//! `worker`, and `nats` (the client port, `nats://` or `tls://`, for the NATS security checks).
//! Resolution order for a name:
//! 1. `[access.urls] name = URL` when present (any mode; `direct` mode requires it);
//! 2. mode `ingress`: the BFF through `ingress_url` with `Host: ingress_host` (the only service
//!    the ingress exposes);
//! 3. otherwise a port-forward made with kube-rs to the Service and port of the component's first
//!    `[[health]]` entry (`fluo_core::portforward`), kept open for the whole run.

use std::collections::BTreeMap;
use std::sync::Arc;

use fluo_core::config::{AccessMode, Config};
use fluo_core::portforward::PortForward;
use tokio::sync::OnceCell;

use crate::endpoint::Endpoint;
use crate::natswire::Target;

pub const BFF: &str = "bff";
pub const NATS_MONITOR: &str = "nats-monitor";
pub const PROMETHEUS: &str = "prometheus";
pub const GRAFANA: &str = "grafana";
pub const WORKER: &str = "worker";
pub const NATS: &str = "nats";

/// The client port of the nats Service (infra/components/nats/manifests/service.yaml).
pub const NATS_CLIENT_PORT: u16 = 4222;

/// The endpoints the post-deploy checks (health and smoke) and the monitor reach (the worker
/// check goes through the BFF).
pub const CHECKED_ENDPOINTS: [&str; 4] = [BFF, NATS_MONITOR, PROMETHEUS, GRAFANA];

/// Endpoint name -> the component whose first `[[health]]` entry names its Service and port.
const ENDPOINT_COMPONENTS: [(&str, &str); 6] = [
    (BFF, "bff"),
    (NATS, "nats"),
    (NATS_MONITOR, "nats"),
    (PROMETHEUS, "prometheus"),
    (GRAFANA, "grafana"),
    (WORKER, "workers"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown endpoint {0:?} (known: bff, nats, nats-monitor, prometheus, grafana, worker)")]
    Unknown(String),
    #[error("access.mode is \"direct\" but access.urls.{0} is not set in {1}")]
    MissingUrl(String, String),
    #[error(
        "endpoint {name} needs a port-forward but component {component} has no [[health]] entry naming its service"
    )]
    NoService { name: String, component: String },
    #[error(
        "endpoint {0} needs a port-forward, which needs a cluster: no usable kubeconfig (give --kubeconfig or set KUBECONFIG)"
    )]
    NoCluster(String),
    #[error("port-forward for endpoint {name}: {source}")]
    PortForward {
        name: String,
        #[source]
        source: fluo_core::portforward::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Service and port inside the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    pub service: String,
    pub port: u16,
}

/// The cluster to reach: a client and the environment's namespace.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    pub namespace: String,
}

/// Resolves endpoint names to [`Endpoint`]s; port-forwards live as long as the resolver.
pub struct Resolver {
    mode: AccessMode,
    ingress: Option<(String, String)>,
    urls: BTreeMap<String, String>,
    services: BTreeMap<String, ServiceTarget>,
    environment_file: String,
    cluster: Option<Cluster>,
    forwards: BTreeMap<String, OnceCell<Arc<PortForward>>>,
    /// Endpoints reached through a port-forward to another Service whatever the access mode
    /// (a blue-green preview: [`Resolver::through_previews`]).
    previewed: Vec<String>,
}

impl Resolver {
    pub fn from_config(config: &Config, cluster: Option<Cluster>) -> Self {
        let access = &config.environment.access;
        let services = ENDPOINT_COMPONENTS
            .iter()
            .filter_map(|(name, component)| {
                let health = config.component(component)?.spec.health.first()?;
                // The NATS health entry names the monitoring port; clients use the client port.
                let port = if *name == NATS {
                    NATS_CLIENT_PORT
                } else {
                    health.port
                };
                Some((
                    (*name).to_owned(),
                    ServiceTarget {
                        service: health.service.clone(),
                        port,
                    },
                ))
            })
            .collect();
        let ingress = access.ingress_url.clone().map(|url| {
            let host = access
                .ingress_host
                .clone()
                .unwrap_or_else(|| "fluo-api.localhost".to_owned());
            (url, host)
        });
        Self {
            mode: access.mode,
            ingress,
            urls: access.urls.clone(),
            services,
            environment_file: config.environment_file.display().to_string(),
            cluster,
            forwards: ENDPOINT_COMPONENTS
                .iter()
                .map(|(name, _)| ((*name).to_owned(), OnceCell::new()))
                .collect(),
            previewed: Vec::new(),
        }
    }

    /// Reaches every endpoint whose Service is listed in `previews` (service, preview) through
    /// a port-forward to the preview instead, whatever `[access]` says (URLs and the ingress
    /// lead to what serves production). Returns the endpoints so redirected.
    pub fn through_previews(&mut self, previews: &[(String, String)]) -> Vec<String> {
        for (name, target) in &mut self.services {
            if let Some((_, preview)) = previews.iter().find(|(s, _)| *s == target.service) {
                target.service = preview.clone();
                self.previewed.push(name.clone());
            }
        }
        self.previewed.clone()
    }

    pub fn mode(&self) -> AccessMode {
        self.mode
    }

    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The Service and port of an endpoint (from the components' `[[health]]` entries).
    pub fn service(&self, name: &str) -> Option<&ServiceTarget> {
        self.services.get(name)
    }

    /// How `name` is reached, decided from the configuration alone (no connection).
    // The error is `endpoint`'s own (returned once per endpoint); boxing it would only move
    // the size.
    #[allow(clippy::result_large_err)]
    fn route(&self, name: &str) -> Result<Route<'_>> {
        if !self.forwards.contains_key(name) {
            return Err(Error::Unknown(name.to_owned()));
        }
        if self.previewed.iter().any(|p| p == name)
            && let (Some(target), Some(cluster)) = (self.services.get(name), &self.cluster)
        {
            return Ok(Route::Forward(target, cluster));
        }
        if let Some(url) = self.urls.get(name) {
            return Ok(Route::Direct(url));
        }
        match (self.mode, &self.ingress) {
            (AccessMode::Direct, _) => {
                return Err(Error::MissingUrl(
                    name.to_owned(),
                    self.environment_file.clone(),
                ));
            }
            (AccessMode::Ingress, Some((url, host))) if name == BFF => {
                return Ok(Route::Ingress(url, host));
            }
            _ => {}
        }
        let target = self.services.get(name).ok_or_else(|| Error::NoService {
            name: name.to_owned(),
            component: component_of(name).to_owned(),
        })?;
        let cluster = self
            .cluster
            .as_ref()
            .ok_or_else(|| Error::NoCluster(name.to_owned()))?;
        Ok(Route::Forward(target, cluster))
    }

    /// Checks, without connecting, that every endpoint the post-deploy checks and the monitor
    /// reach ([`CHECKED_ENDPOINTS`]) can be resolved as configured; Err names each that cannot.
    pub fn unresolvable(&self) -> std::result::Result<(), String> {
        self.unresolvable_of(&CHECKED_ENDPOINTS)
    }

    /// As [`Resolver::unresolvable`], for the endpoints `names` only.
    pub fn unresolvable_of(&self, names: &[&str]) -> std::result::Result<(), String> {
        let problems: Vec<String> = names
            .iter()
            .filter_map(|name| self.route(name).err().map(|e| e.to_string()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    pub async fn endpoint(&self, name: &str) -> Result<Endpoint> {
        let (target, cluster) = match self.route(name)? {
            Route::Direct(url) => return Ok(Endpoint::direct(url)),
            Route::Ingress(url, host) => return Ok(Endpoint::ingress(url, host)),
            Route::Forward(target, cluster) => (target, cluster),
        };
        let forward = self
            .forwards
            .get(name)
            .ok_or_else(|| Error::Unknown(name.to_owned()))?;
        let forward = forward
            .get_or_try_init(|| async {
                PortForward::to_service(
                    cluster.client.clone(),
                    &cluster.namespace,
                    &target.service,
                    target.port,
                )
                .await
                .map(Arc::new)
                .map_err(|source| Error::PortForward {
                    name: name.to_owned(),
                    source,
                })
            })
            .await?;
        Ok(Endpoint::forwarded(
            &forward.url(),
            &format!("pod/{}:{}", forward.pod(), forward.pod_port()),
        ))
    }
}

impl Resolver {
    /// Whether the NATS client port can be reached as configured (`access.urls.nats`, or a
    /// port-forward through the cluster).
    pub fn has_nats_client(&self) -> bool {
        self.route(NATS).is_ok()
    }

    /// The NATS client port: `access.urls.nats`, whose host is also the TLS name, or a
    /// port-forward to the nats Service's client port, checked under the Service name (what
    /// the BFF and workers connect to).
    pub async fn nats_client(&self) -> std::result::Result<Target, String> {
        let server_name = match self.route(NATS).map_err(|e| e.to_string())? {
            Route::Forward(target, _) => target.service.clone(),
            Route::Direct(_) | Route::Ingress(..) => String::new(),
        };
        let endpoint = self.endpoint(NATS).await.map_err(|e| e.to_string())?;
        let base = endpoint.url("");
        let addr = base
            .split_once("://")
            .map_or(base.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        let server_name = if server_name.is_empty() {
            addr.rsplit_once(':')
                .map_or(addr.as_str(), |(host, _)| host)
                .to_owned()
        } else {
            server_name
        };
        Ok(Target {
            addr,
            server_name,
            via: endpoint.via().to_owned(),
        })
    }
}

/// How one endpoint is reached.
enum Route<'a> {
    Direct(&'a str),
    Ingress(&'a str, &'a str),
    Forward(&'a ServiceTarget, &'a Cluster),
}

fn component_of(name: &str) -> &'static str {
    ENDPOINT_COMPONENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or("?")
}
