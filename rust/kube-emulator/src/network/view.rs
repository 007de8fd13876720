//! The cluster as the network sees it: which Service ports exist, which ready endpoints back
//! them, which DNS names resolve to what, and the Ingress routes. Built from one store snapshot
//! by pure functions, so the proxies, DNS and ingress read one consistent picture.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use serde_json::Value;

use super::ingress_routes::IngressTable;
/// Re-exported: Service ports are named the same way everywhere.
pub use super::ingress_routes::PortRef;
use crate::apiserver::resources::by_kind;
use crate::apiserver::store::{State, meta_str};

/// A Service virtual address: clusterIP and port (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// One port of a Service with the ready endpoints behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    /// TCP unless the Service says otherwise.
    pub protocol: String,
    /// Ready endpoints (pod IP and resolved targetPort), in Endpoints order.
    pub backends: Vec<SocketAddr>,
}

/// What a cluster DNS name answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// A records (a ClusterIP Service, a headless Service's ready pods, one pod).
    A(Vec<Ipv4Addr>),
    /// An ExternalName Service.
    Cname(String),
}

/// The whole picture, compared as a value so consumers only act on real changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// (namespace, name) -> ports of every Service.
    pub services: BTreeMap<(String, String), Vec<ServicePort>>,
    /// Service virtual addresses (TCP ports of Services with a clusterIP) -> (namespace, name).
    pub frontends: BTreeMap<Frontend, (String, String)>,
    /// Lower-case fully qualified names without the trailing dot.
    pub names: BTreeMap<String, DnsAnswer>,
    pub ingress: IngressTable,
}

impl ClusterView {
    /// Ready endpoints behind a Service frontend (empty if none, or unknown).
    pub fn backends(&self, frontend: &Frontend) -> &[SocketAddr] {
        self.frontends
            .get(frontend)
            .and_then(|key| self.services.get(key))
            .and_then(|ports| ports.iter().find(|p| p.port == frontend.port && is_tcp(p)))
            .map_or(&[], |p| p.backends.as_slice())
    }

    /// Ready endpoints of a Service port named by number or name, if the port exists.
    pub fn service_port(&self, ns: &str, name: &str, port: &PortRef) -> Option<&ServicePort> {
        let ports = self.services.get(&(ns.to_string(), name.to_string()))?;
        ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == *n,
            PortRef::Name(s) => p.name.as_deref() == Some(s.as_str()),
        })
    }
}

fn is_tcp(p: &ServicePort) -> bool {
    p.protocol == "TCP"
}

/// Builds the view from the store; `domain` is the cluster domain (`cluster.local`).
pub fn build(state: &State, domain: &str) -> ClusterView {
    let svc_def = by_kind("", "Service").expect("services served");
    let ep_def = by_kind("", "Endpoints").expect("endpoints served");
    let mut view = ClusterView::default();
    for svc in state.list(svc_def, None) {
        let ns = meta_str(svc, "namespace").to_string();
        let name = meta_str(svc, "name").to_string();
        let endpoints = state.get(ep_def, &ns, &name);
        let ports = service_ports(state, svc, endpoints);
        let fqdn = format!("{name}.{ns}.svc.{domain}").to_ascii_lowercase();
        let spec = &svc["spec"];
        if spec["type"] == "ExternalName" {
            if let Some(target) = spec["externalName"].as_str() {
                let target = target.trim_end_matches('.').to_ascii_lowercase();
                view.names.insert(fqdn, DnsAnswer::Cname(target));
            }
        } else if spec["clusterIP"] == "None" {
            add_headless_names(state, &mut view, &fqdn, endpoints);
        } else if let Some(ip) = spec["clusterIP"].as_str().and_then(|s| s.parse().ok()) {
            view.names.insert(fqdn, DnsAnswer::A(vec![ip]));
            for p in ports.iter().filter(|p| is_tcp(p)) {
                let frontend = Frontend { ip, port: p.port };
                view.frontends.insert(frontend, (ns.clone(), name.clone()));
            }
        }
        view.services.insert((ns, name), ports);
    }
    view.ingress = IngressTable::build(state);
    view
}

/// A headless Service answers its ready pods' IPs, and each ready pod with a hostname (a
/// StatefulSet pod: `spec.hostname` plus `spec.subdomain` naming the Service) answers
/// `<hostname>.<service FQDN>`, as CoreDNS's kubernetes plugin does.
fn add_headless_names(
    state: &State,
    view: &mut ClusterView,
    fqdn: &str,
    endpoints: Option<&Value>,
) {
    let svc_name = fqdn.split('.').next().unwrap_or("");
    let mut all = Vec::new();
    for addr in ready_addresses(endpoints) {
        let Some(ip) = addr["ip"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        if !all.contains(&ip) {
            all.push(ip);
        }
        let hostname = addr["hostname"].as_str().map(str::to_string).or_else(|| {
            let pod = target_pod(state, addr)?;
            (pod["spec"]["subdomain"] == svc_name)
                .then(|| pod["spec"]["hostname"].as_str().map(str::to_string))
                .flatten()
        });
        if let Some(host) = hostname {
            let name = format!("{host}.{fqdn}").to_ascii_lowercase();
            view.names.insert(name, DnsAnswer::A(vec![ip]));
        }
    }
    // Without ready pods the name still exists (NODATA, as CoreDNS answers), so resolvers such
    // as Prometheus' dns_sd see "no targets" rather than an error.
    view.names.insert(fqdn.to_string(), DnsAnswer::A(all));
}

fn ready_addresses(endpoints: Option<&Value>) -> impl Iterator<Item = &Value> {
    endpoints
        .and_then(|e| e["subsets"].as_array())
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
}

fn target_pod<'a>(state: &'a State, addr: &Value) -> Option<&'a Value> {
    let target = &addr["targetRef"];
    if target["kind"] != "Pod" {
        return None;
    }
    let pod_def = by_kind("", "Pod").expect("pods served");
    state.get(
        pod_def,
        target["namespace"].as_str()?,
        target["name"].as_str()?,
    )
}

/// The Service's ports with their ready endpoints. The endpoint port is the Endpoints port of the
/// same name (or the only one); a named targetPort is resolved per pod, since pods of one Service
/// may give the name different numbers.
fn service_ports(state: &State, svc: &Value, endpoints: Option<&Value>) -> Vec<ServicePort> {
    let subsets: &[Value] = endpoints
        .and_then(|e| e["subsets"].as_array())
        .map_or(&[], Vec::as_slice);
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = u16::try_from(sp["port"].as_u64()?).ok()?;
            let name = sp["name"].as_str().filter(|n| !n.is_empty());
            let mut backends = Vec::new();
            for subset in subsets {
                let ep_port = endpoint_port(subset, name);
                for addr in subset["addresses"].as_array().into_iter().flatten() {
                    let Some(ip) = addr["ip"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok())
                    else {
                        continue;
                    };
                    let named = sp["targetPort"]
                        .as_str()
                        .and_then(|target| named_container_port(target_pod(state, addr)?, target));
                    if let Some(p) = named.or(ep_port) {
                        backends.push(SocketAddr::from((ip, p)));
                    }
                }
            }
            Some(ServicePort {
                name: name.map(str::to_string),
                port,
                protocol: sp["protocol"].as_str().unwrap_or("TCP").to_string(),
                backends,
            })
        })
        .collect()
}

fn endpoint_port(subset: &Value, name: Option<&str>) -> Option<u16> {
    let ports = subset["ports"].as_array()?;
    let found = match name {
        Some(n) => ports.iter().find(|p| p["name"] == n),
        None => ports
            .iter()
            .find(|p| p["name"].as_str().is_none_or(str::is_empty)),
    };
    found
        .or_else(|| (ports.len() == 1).then(|| &ports[0]))
        .and_then(|p| p["port"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

fn named_container_port(pod: &Value, name: &str) -> Option<u16> {
    pod["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::Store;
    use serde_json::json;

    fn put(state: &mut State, kind: &str, obj: Value) {
        state.insert(by_kind("", kind).unwrap(), obj);
    }

    fn svc(name: &str, cluster_ip: &str, ports: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "apps"},
            "spec": {"clusterIP": cluster_ip, "ports": ports}})
    }

    fn addr(ip: &str, pod: &str) -> Value {
        json!({"ip": ip, "targetRef": {"kind": "Pod", "namespace": "apps", "name": pod}})
    }

    #[test]
    fn cluster_ip_services_get_a_frontend_per_tcp_port_and_ready_backends_only() {
        let store = Store::new(16);
        let mut s = store.lock();
        put(
            &mut s,
            "Service",
            svc(
                "web",
                "10.96.3.20",
                json!([
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "dns", "port": 53, "protocol": "UDP"}]),
            ),
        );
        put(
            &mut s,
            "Endpoints",
            json!({"metadata": {"name": "web", "namespace": "apps"},
            "subsets": [{"addresses": [addr("10.244.3.2", "a"), addr("10.244.3.3", "b")],
                "notReadyAddresses": [addr("10.244.3.4", "c")],
                "ports": [{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]}]}),
        );
        let view = build(&s, "cluster.local");
        let front = Frontend {
            ip: "10.96.3.20".parse().unwrap(),
            port: 80,
        };
        assert_eq!(view.frontends.len(), 1, "the UDP port gets no TCP frontend");
        assert_eq!(
            view.backends(&front),
            [
                "10.244.3.2:8080".parse().unwrap(),
                "10.244.3.3:8080".parse().unwrap()
            ]
        );
        assert_eq!(
            view.names["web.apps.svc.cluster.local"],
            DnsAnswer::A(vec!["10.96.3.20".parse().unwrap()])
        );
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let store = Store::new(16);
        let mut s = store.lock();
        put(
            &mut s,
            "Service",
            svc(
                "api",
                "10.96.3.21",
                json!([{"port": 80, "targetPort": "web"}]),
            ),
        );
        for (pod, port) in [("a", 8080), ("b", 9090)] {
            put(
                &mut s,
                "Pod",
                json!({"metadata": {"name": pod, "namespace": "apps"},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "web", "containerPort": port}]}]}}),
            );
        }
        put(
            &mut s,
            "Endpoints",
            json!({"metadata": {"name": "api", "namespace": "apps"},
            "subsets": [{"addresses": [addr("10.244.3.2", "a"), addr("10.244.3.3", "b")],
                "ports": [{"port": 8080}]}]}),
        );
        let view = build(&s, "cluster.local");
        let port = view
            .service_port("apps", "api", &PortRef::Number(80))
            .unwrap();
        assert_eq!(
            port.backends,
            [
                "10.244.3.2:8080".parse().unwrap(),
                "10.244.3.3:9090".parse().unwrap()
            ]
        );
    }

    #[test]
    fn headless_services_answer_ready_pods_and_statefulset_pod_names() {
        let store = Store::new(16);
        let mut s = store.lock();
        put(
            &mut s,
            "Service",
            svc("nats", "None", json!([{"port": 4222}])),
        );
        for (pod, sub) in [("nats-0", "nats"), ("other", "elsewhere")] {
            put(
                &mut s,
                "Pod",
                json!({"metadata": {"name": pod, "namespace": "apps"},
                "spec": {"hostname": pod, "subdomain": sub, "containers": []}}),
            );
        }
        put(
            &mut s,
            "Endpoints",
            json!({"metadata": {"name": "nats", "namespace": "apps"},
            "subsets": [{"addresses": [addr("10.244.3.5", "nats-0"), addr("10.244.3.6", "other")],
                "notReadyAddresses": [addr("10.244.3.7", "nats-1")], "ports": [{"port": 4222}]}]}),
        );
        let view = build(&s, "cluster.local");
        assert_eq!(
            view.names["nats.apps.svc.cluster.local"],
            DnsAnswer::A(vec![
                "10.244.3.5".parse().unwrap(),
                "10.244.3.6".parse().unwrap()
            ])
        );
        assert_eq!(
            view.names["nats-0.nats.apps.svc.cluster.local"],
            DnsAnswer::A(vec!["10.244.3.5".parse().unwrap()])
        );
        assert!(!view.names.contains_key("other.nats.apps.svc.cluster.local"));
        assert!(
            view.frontends.is_empty(),
            "headless Services have no virtual IP"
        );
    }

    #[test]
    fn external_names_are_cnames_and_empty_headless_services_have_no_addresses() {
        let store = Store::new(16);
        let mut s = store.lock();
        put(
            &mut s,
            "Service",
            json!({"metadata": {"name": "ext", "namespace": "apps"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com."}}),
        );
        put(&mut s, "Service", svc("empty", "None", json!([])));
        let view = build(&s, "cluster.local");
        assert_eq!(
            view.names["ext.apps.svc.cluster.local"],
            DnsAnswer::Cname("db.example.com".into())
        );
        assert_eq!(
            view.names["empty.apps.svc.cluster.local"],
            DnsAnswer::A(vec![])
        );
    }
}
