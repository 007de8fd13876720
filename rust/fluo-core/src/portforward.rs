//! Port-forward to a Service through the Kubernetes API (like `kubectl port-forward svc/NAME`),
//! without kubectl.
//!
//! [`PortForward::to_service`] resolves the Service's port to a ready pod and a container port
//! the way kubectl does (numeric or named `targetPort`), binds `127.0.0.1:0` and serves every
//! accepted TCP connection through its own `pods/portforward` stream. The local address is
//! usable by any HTTP client (`PortForward::url`). Dropping the value stops the listener.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading service {namespace}/{service}: {source}")]
    Service {
        namespace: String,
        service: String,
        #[source]
        source: kube::Error,
    },
    #[error("service {namespace}/{service} has no selector, so it has no pods to forward to")]
    NoSelector { namespace: String, service: String },
    #[error("service {namespace}/{service} does not expose port {port}")]
    PortNotInService {
        namespace: String,
        service: String,
        port: u16,
    },
    #[error("listing pods of service {namespace}/{service}: {source}")]
    ListPods {
        namespace: String,
        service: String,
        #[source]
        source: kube::Error,
    },
    #[error("service {namespace}/{service} has no ready pod")]
    NoReadyPod { namespace: String, service: String },
    #[error("pod {pod} has no container port named {name:?} (targetPort of the service)")]
    NamedPortNotFound { pod: String, name: String },
    #[error("port {value} of {what} is not a valid TCP port")]
    InvalidPort { what: String, value: i64 },
    #[error("binding a local port for the port-forward: {0}")]
    Bind(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running port-forward; dropping it stops accepting connections.
#[derive(Debug)]
pub struct PortForward {
    local_addr: SocketAddr,
    pod: String,
    pod_port: u16,
    accept_loop: JoinHandle<()>,
}

impl PortForward {
    /// Forward a local port to `port` of Service `namespace/service` (a port of the Service, as
    /// in `kubectl port-forward svc/service LOCAL:port`).
    pub async fn to_service(
        client: Client,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<Self> {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let svc = services
            .get(service)
            .await
            .map_err(|source| Error::Service {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                source,
            })?;
        let selector = selector_of(&svc).ok_or_else(|| Error::NoSelector {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
        })?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let candidates = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| Error::ListPods {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                source,
            })?;
        let (pod, pod_port) = resolve_target(namespace, service, &svc, &candidates.items, port)?;
        Self::to_pod(pods, pod, pod_port).await
    }

    /// Forward a local port to `pod_port` of a named pod.
    pub async fn to_pod(pods: Api<Pod>, pod: String, pod_port: u16) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(Error::Bind)?;
        let local_addr = listener.local_addr().map_err(Error::Bind)?;
        let accept_loop = tokio::spawn(accept_loop(listener, pods, pod.clone(), pod_port));
        tracing::debug!(%local_addr, %pod, pod_port, "port-forward listening");
        Ok(Self {
            local_addr,
            pod,
            pod_port,
            accept_loop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://127.0.0.1:PORT`, the base URL of the forwarded port.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The pod the connections go to.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// The container port on that pod.
    pub fn pod_port(&self) -> u16 {
        self.pod_port
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept_loop(listener: TcpListener, pods: Api<Pod>, pod: String, pod_port: u16) {
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                let pods = pods.clone();
                let pod = pod.clone();
                tokio::spawn(async move {
                    if let Err(err) = forward_connection(conn, &pods, &pod, pod_port).await {
                        tracing::warn!(%peer, %pod, pod_port, "port-forward connection failed: {err}");
                    }
                });
            }
            Err(err) => {
                tracing::warn!("port-forward accept failed: {err}");
                return;
            }
        }
    }
}

/// One TCP connection = one `pods/portforward` stream, as kubectl does per connection.
async fn forward_connection(
    mut conn: TcpStream,
    pods: &Api<Pod>,
    pod: &str,
    pod_port: u16,
) -> std::result::Result<(), String> {
    let mut forwarder = pods
        .portforward(pod, &[pod_port])
        .await
        .map_err(|e| format!("opening the stream: {e}"))?;
    let mut upstream = forwarder
        .take_stream(pod_port)
        .ok_or_else(|| format!("the API server returned no stream for port {pod_port}"))?;
    let copied = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
    drop(upstream);
    forwarder
        .join()
        .await
        .map_err(|e| format!("closing the stream: {e}"))?;
    copied
        .map(|_| ())
        .map_err(|e| format!("copying bytes: {e}"))
}

/// The Service's selector as a label selector string (`a=b,c=d`), or None without one.
fn selector_of(svc: &Service) -> Option<String> {
    let selector = svc.spec.as_ref()?.selector.as_ref()?;
    if selector.is_empty() {
        return None;
    }
    Some(
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Pick the pod and container port that `port` of the Service reaches: the first ready,
/// not-terminating pod by name, and the service's targetPort (number, name of a container port,
/// or the port itself when unset).
fn resolve_target(
    namespace: &str,
    service: &str,
    svc: &Service,
    pods: &[Pod],
    port: u16,
) -> Result<(String, u16)> {
    let service_port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == i32::from(port)))
        .ok_or_else(|| Error::PortNotInService {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            port,
        })?;
    let mut ready: Vec<&Pod> = pods.iter().filter(|p| is_ready(p)).collect();
    ready.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let pod = ready.first().ok_or_else(|| Error::NoReadyPod {
        namespace: namespace.to_owned(),
        service: service.to_owned(),
    })?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let pod_port = match &service_port.target_port {
        None => i64::from(port),
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(name)) => {
            named_container_port(pod, name).ok_or_else(|| Error::NamedPortNotFound {
                pod: pod_name.clone(),
                name: name.clone(),
            })?
        }
    };
    let pod_port = u16::try_from(pod_port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::InvalidPort {
            what: format!("service {namespace}/{service} targetPort"),
            value: pod_port,
        })?;
    Ok((pod_name, pod_port))
}

fn named_container_port(pod: &Pod, name: &str) -> Option<i64> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| i64::from(p.container_port))
}

/// Ready=True and not being deleted (kubectl skips terminating pods too).
pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conds| {
                conds
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn pods(yaml: &str) -> Vec<Pod> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect()
    }

    const SVC_NAMED: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nats}
spec:
  selector: {app: nats}
  ports:
    - {name: client, port: 4222, targetPort: client}
    - {name: monitor, port: 8222, targetPort: monitor}
    - {name: metrics, port: 7777, targetPort: 7778}
"#;

    const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: nats-b}
spec:
  containers:
    - name: nats
      ports: [{name: client, containerPort: 4222}, {name: monitor, containerPort: 18222}]
status:
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Pod
metadata: {name: nats-a}
spec:
  containers:
    - name: nats
      ports: [{name: monitor, containerPort: 18222}]
status:
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: v1
kind: Pod
metadata: {name: nats-0, deletionTimestamp: "2026-01-01T00:00:00Z"}
spec:
  containers: [{name: nats}]
status:
  conditions: [{type: Ready, status: "True"}]
"#;

    #[test]
    fn named_target_port_resolves_on_the_first_ready_pod() {
        let (pod, port) =
            resolve_target("fluo", "nats", &service(SVC_NAMED), &pods(PODS), 8222).unwrap();
        assert_eq!((pod.as_str(), port), ("nats-b", 18222));
    }

    #[test]
    fn numeric_target_port_is_used_as_is() {
        let (_, port) =
            resolve_target("fluo", "nats", &service(SVC_NAMED), &pods(PODS), 7777).unwrap();
        assert_eq!(port, 7778);
    }

    #[test]
    fn missing_target_port_means_the_service_port() {
        let svc = service("metadata: {name: x}\nspec: {selector: {a: b}, ports: [{port: 9090}]}");
        let (_, port) = resolve_target("fluo", "x", &svc, &pods(PODS), 9090).unwrap();
        assert_eq!(port, 9090);
    }

    #[test]
    fn unknown_service_port_is_an_error_naming_the_port() {
        let err = resolve_target("fluo", "nats", &service(SVC_NAMED), &pods(PODS), 1).unwrap_err();
        assert_eq!(err.to_string(), "service fluo/nats does not expose port 1");
    }

    #[test]
    fn no_ready_pod_is_an_error() {
        let only_unready: Vec<Pod> = pods(PODS)
            .into_iter()
            .filter(|p| p.metadata.name.as_deref() != Some("nats-b"))
            .collect();
        let err =
            resolve_target("fluo", "nats", &service(SVC_NAMED), &only_unready, 8222).unwrap_err();
        assert!(matches!(err, Error::NoReadyPod { .. }), "{err}");
    }

    #[test]
    fn named_port_missing_on_the_pod_is_an_error_naming_it() {
        let err = resolve_target("fluo", "nats", &service(SVC_NAMED), &pods(PODS), 4222)
            .map(|_| ())
            .err();
        assert!(err.is_none(), "client is declared on nats-b");
        let svc = service(
            "metadata: {name: x}\nspec: {selector: {a: b}, ports: [{port: 80, targetPort: http}]}",
        );
        let err = resolve_target("fluo", "x", &svc, &pods(PODS), 80).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod nats-b has no container port named \"http\" (targetPort of the service)"
        );
    }

    #[test]
    fn selector_is_rendered_as_label_selector() {
        assert_eq!(
            selector_of(&service(SVC_NAMED)).as_deref(),
            Some("app=nats")
        );
        let headless = service("metadata: {name: x}\nspec: {ports: [{port: 80}]}");
        assert_eq!(selector_of(&headless), None);
    }
}
