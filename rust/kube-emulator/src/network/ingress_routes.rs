//! Ingress rules as a route table, and the matching an ingress controller does: the most
//! specific host (exact, then `*.` wildcard, then rules without host), then the longest path
//! (Exact before Prefix at equal length), then the first Ingress's defaultBackend.

use serde_json::Value;

use crate::apiserver::resources::by_kind;
use crate::apiserver::store::{State, meta_str};

/// How an Ingress backend (or anything else) names a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

/// Where matched requests go: a Service port in the Ingress's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub namespace: String,
    pub service: String,
    pub port: PortRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathMatch {
    Exact,
    /// `Prefix` and `ImplementationSpecific` (treated as Prefix).
    Prefix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    /// Lower-case host, possibly `*.example.com`; None matches every host.
    host: Option<String>,
    match_kind: PathMatch,
    path: String,
    backend: Backend,
}

/// All Ingress rules of the cluster, in (namespace, name) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressTable {
    routes: Vec<Route>,
    default_backend: Option<Backend>,
}

fn backend(ns: &str, b: &Value) -> Option<Backend> {
    let svc = &b["service"];
    let port = match (&svc["port"]["number"], &svc["port"]["name"]) {
        (Value::Number(n), _) => PortRef::Number(u16::try_from(n.as_u64()?).ok()?),
        (_, Value::String(s)) => PortRef::Name(s.clone()),
        _ => return None,
    };
    Some(Backend {
        namespace: ns.to_string(),
        service: svc["name"].as_str()?.to_string(),
        port,
    })
}

impl IngressTable {
    /// Reads every networking.k8s.io/v1 Ingress (any ingressClassName: there is one controller).
    pub fn build(state: &State) -> Self {
        let def = by_kind("networking.k8s.io", "Ingress").expect("ingresses served");
        let mut table = IngressTable::default();
        for ing in state.list(def, None) {
            let ns = meta_str(ing, "namespace");
            if table.default_backend.is_none() {
                table.default_backend = backend(ns, &ing["spec"]["defaultBackend"]);
            }
            for rule in ing["spec"]["rules"].as_array().into_iter().flatten() {
                let host = rule["host"]
                    .as_str()
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase);
                for p in rule["http"]["paths"].as_array().into_iter().flatten() {
                    let Some(backend) = backend(ns, &p["backend"]) else {
                        continue;
                    };
                    let match_kind = if p["pathType"] == "Exact" {
                        PathMatch::Exact
                    } else {
                        PathMatch::Prefix
                    };
                    table.routes.push(Route {
                        host: host.clone(),
                        match_kind,
                        path: p["path"].as_str().unwrap_or("/").to_string(),
                        backend,
                    });
                }
            }
        }
        table
    }

    /// The backend for a request's Host (port already stripped or not) and path, if any.
    pub fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        let host = host_without_port(host).to_ascii_lowercase();
        self.routes
            .iter()
            .filter_map(|r| {
                let host_rank = host_rank(r.host.as_deref(), &host)?;
                path_matches(r.match_kind, &r.path, path).then_some(())?;
                // Higher is better: host specificity, then path length, then Exact over Prefix.
                let exact = u8::from(r.match_kind == PathMatch::Exact);
                Some(((host_rank, r.path.len(), exact), &r.backend))
            })
            // max_by_key keeps the last maximum; reverse so the first Ingress wins ties.
            .rev()
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, b)| b)
            .or(self.default_backend.as_ref())
    }
}

fn host_without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// 2 = exact host, 1 = wildcard (`*.example.com` matches exactly one more label), 0 = no host.
fn host_rank(rule_host: Option<&str>, host: &str) -> Option<u8> {
    match rule_host {
        None => Some(0),
        Some(h) if h == host => Some(2),
        Some(h) => {
            let suffix = h.strip_prefix("*.")?;
            let (first, rest) = host.split_once('.')?;
            (!first.is_empty() && rest == suffix).then_some(1)
        }
    }
}

/// Prefix matching is per path element: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not
/// `/foobar`.
fn path_matches(kind: PathMatch, rule: &str, path: &str) -> bool {
    match kind {
        PathMatch::Exact => rule == path,
        PathMatch::Prefix => {
            let rule = rule.trim_end_matches('/');
            match path.strip_prefix(rule) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::Store;
    use serde_json::json;

    fn table(ingresses: &[Value]) -> IngressTable {
        let store = Store::new(16);
        let mut s = store.lock();
        let def = by_kind("networking.k8s.io", "Ingress").unwrap();
        for ing in ingresses {
            s.insert(def, ing.clone());
        }
        IngressTable::build(&s)
    }

    fn path(p: &str, kind: &str, svc: &str) -> Value {
        json!({"path": p, "pathType": kind,
            "backend": {"service": {"name": svc, "port": {"number": 80}}}})
    }

    fn ingress(name: &str, host: Option<&str>, paths: Value) -> Value {
        let mut rule = json!({"http": {"paths": paths}});
        if let Some(h) = host {
            rule["host"] = json!(h);
        }
        json!({"metadata": {"name": name, "namespace": "fluo"}, "spec": {"rules": [rule]}})
    }

    fn routed<'a>(t: &'a IngressTable, host: &str, p: &str) -> Option<&'a str> {
        t.route(host, p).map(|b| b.service.as_str())
    }

    #[test]
    fn hosts_rank_exact_then_wildcard_then_any_and_ports_are_ignored() {
        let t = table(&[
            ingress("any", None, json!([path("/", "Prefix", "fallback")])),
            ingress(
                "wild",
                Some("*.localhost"),
                json!([path("/", "Prefix", "wild")]),
            ),
            ingress(
                "api",
                Some("fluo-api.localhost"),
                json!([path("/", "Prefix", "bff")]),
            ),
        ]);
        assert_eq!(routed(&t, "FLUO-API.localhost:80", "/health"), Some("bff"));
        assert_eq!(routed(&t, "grafana.localhost", "/"), Some("wild"));
        assert_eq!(
            routed(&t, "a.b.localhost", "/"),
            Some("fallback"),
            "wildcards match one label"
        );
        assert_eq!(routed(&t, "example.com", "/x"), Some("fallback"));
    }

    #[test]
    fn paths_match_by_element_longest_first_and_exact_wins_ties() {
        let t = table(&[ingress(
            "a",
            Some("h"),
            json!([
                path("/api", "Prefix", "api"),
                path("/api/v1/", "Prefix", "v1"),
                path("/api", "Exact", "exact"),
                path("/static", "ImplementationSpecific", "static"),
            ]),
        )]);
        assert_eq!(routed(&t, "h", "/api"), Some("exact"));
        assert_eq!(routed(&t, "h", "/api/"), Some("api"));
        assert_eq!(routed(&t, "h", "/api/v1/jobs"), Some("v1"));
        assert_eq!(routed(&t, "h", "/api/v1"), Some("v1"));
        assert_eq!(
            routed(&t, "h", "/apix"),
            None,
            "no element-wise prefix: 404"
        );
        assert_eq!(routed(&t, "h", "/static/app.js"), Some("static"));
        assert_eq!(routed(&t, "other", "/api"), None, "unknown host: 404");
    }

    #[test]
    fn default_backend_catches_the_rest_and_named_ports_are_kept() {
        let mut ing = ingress(
            "a",
            Some("h"),
            json!([{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]),
        );
        ing["spec"]["defaultBackend"] =
            json!({"service": {"name": "dflt", "port": {"number": 8080}}});
        let t = table(&[ing]);
        let b = t.route("h", "/").unwrap();
        assert_eq!(
            (b.namespace.as_str(), &b.port),
            ("fluo", &PortRef::Name("http".into()))
        );
        let d = t.route("nope", "/").unwrap();
        assert_eq!(
            (d.service.as_str(), &d.port),
            ("dflt", &PortRef::Number(8080))
        );
    }
}
