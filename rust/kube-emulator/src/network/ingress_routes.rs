//! Ingress rules as a route table, and the matching an ingress controller does: the most
//! specific host (exact, then `*.` wildcard, then rules without host), then the longest path
//! (Exact before Prefix at equal length), then the first Ingress's defaultBackend.
//!
//! ingress-nginx's canary Ingresses (`nginx.ingress.kubernetes.io/canary: "true"`) add no
//! routes of their own: each of their host/path rules becomes the alternative backend of the
//! main Ingress's rule with the same host and path (one canary per rule, the first by
//! namespace/name; a canary without a main rule is ignored), chosen per request by
//! `canary-by-header` (`always`/`never` or `canary-by-header-value`), then `canary-weight` out
//! of `canary-weight-total` (default 100, as ingress-nginx: a total below 100 counts as 100).

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

/// The alternative backend of a rule, from a canary Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    pub backend: Backend,
    /// Requests routed to the canary: `weight` out of `total` (random per request).
    pub weight: u32,
    pub total: u32,
    /// `canary-by-header`: the header that forces (`always` or `header_value`) or forbids
    /// (`never`) the canary.
    pub header: Option<String>,
    pub header_value: Option<String>,
}

impl Canary {
    /// Whether a request goes to the canary: `header` is the value of the canary header (if
    /// the request has it), `roll` a uniform random number in `1..=total`.
    pub fn takes(&self, header: Option<&str>, roll: u32) -> bool {
        match (header, self.header_value.as_deref()) {
            (Some(h), Some(want)) if h == want => return true,
            (Some(_), Some(_)) => {}
            (Some("always"), None) => return true,
            (Some("never"), None) => return false,
            _ => {}
        }
        roll <= self.weight
    }
}

/// What a request matched: the main backend and, if a canary Ingress shares the rule, its
/// alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    pub backend: &'a Backend,
    pub canary: Option<&'a Canary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    /// Lower-case host, possibly `*.example.com`; None matches every host.
    host: Option<String>,
    match_kind: PathMatch,
    path: String,
    backend: Backend,
    canary: Option<Canary>,
}

const ANN: &str = "nginx.ingress.kubernetes.io/";

fn is_canary(ing: &Value) -> bool {
    ing["metadata"]["annotations"][format!("{ANN}canary")] == "true"
}

/// The canary policy of an Ingress (None: not a canary Ingress). Unparsable numbers count as
/// unset, as ingress-nginx's annotation parser leaves them.
fn canary_policy(ing: &Value, backend: Backend) -> Option<Canary> {
    let ann = |k: &str| ing["metadata"]["annotations"][format!("{ANN}{k}")].as_str();
    if !is_canary(ing) {
        return None;
    }
    let number = |k: &str| ann(k).and_then(|v| v.trim().parse::<u32>().ok());
    Some(Canary {
        backend,
        weight: number("canary-weight").unwrap_or(0),
        total: number("canary-weight-total").unwrap_or(100).max(100),
        header: ann("canary-by-header")
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase),
        header_value: ann("canary-by-header-value")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    })
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
        let mut canaries = Vec::new();
        for ing in state.list(def, None) {
            let ns = meta_str(ing, "namespace");
            let is_canary = is_canary(ing);
            if table.default_backend.is_none() && !is_canary {
                table.default_backend = backend(ns, &ing["spec"]["defaultBackend"]);
            }
            for route in routes_of(ing, ns) {
                if is_canary {
                    canaries.push((ns.to_string(), route, ing));
                } else {
                    table.routes.push(route);
                }
            }
        }
        for (ns, alt, ing) in canaries {
            // Only a main rule of the same namespace, host and path takes a canary.
            let main = table.routes.iter_mut().find(|r| {
                r.backend.namespace == ns
                    && r.host == alt.host
                    && r.path == alt.path
                    && r.canary.is_none()
            });
            if let Some(main) = main {
                main.canary = canary_policy(ing, alt.backend);
            }
        }
        table
    }

    /// The backend (and canary) for a request's Host (with or without port) and path, if any.
    pub fn matched(&self, host: &str, path: &str) -> Option<Matched<'_>> {
        let host = host_without_port(host).to_ascii_lowercase();
        self.routes
            .iter()
            .filter_map(|r| Some((self.rank(r, &host, path)?, r)))
            // max_by_key keeps the last maximum; reverse so the first Ingress wins ties.
            .rev()
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, r)| Matched {
                backend: &r.backend,
                canary: r.canary.as_ref(),
            })
            .or_else(|| {
                self.default_backend.as_ref().map(|backend| Matched {
                    backend,
                    canary: None,
                })
            })
    }

    /// Higher is better: host specificity, then path length, then Exact over Prefix.
    fn rank(&self, r: &Route, host: &str, path: &str) -> Option<(u8, usize, u8)> {
        let host_rank = host_rank(r.host.as_deref(), host)?;
        path_matches(r.match_kind, &r.path, path).then_some(())?;
        Some((
            host_rank,
            r.path.len(),
            u8::from(r.match_kind == PathMatch::Exact),
        ))
    }

    /// The main backend for a request's Host (port already stripped or not) and path, if any.
    pub fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        self.matched(host, path).map(|m| m.backend)
    }
}

/// The host/path rules of one Ingress, without canaries.
fn routes_of(ing: &Value, ns: &str) -> Vec<Route> {
    let mut routes = Vec::new();
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
            routes.push(Route {
                host: host.clone(),
                match_kind,
                path: p["path"].as_str().unwrap_or("/").to_string(),
                backend,
                canary: None,
            });
        }
    }
    routes
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

    fn canary(name: &str, svc: &str, annotations: Value) -> Value {
        let mut ing = ingress(
            name,
            Some("fluo-api.localhost"),
            json!([path("/api", "Prefix", svc)]),
        );
        ing["metadata"]["annotations"] = annotations;
        ing
    }

    #[test]
    fn a_canary_ingress_joins_the_main_rule_of_its_host_and_path_and_adds_no_route() {
        let main = ingress(
            "main",
            Some("fluo-api.localhost"),
            json!([
                path("/api", "Prefix", "bff"),
                path("/health", "Exact", "bff")
            ]),
        );
        let t = table(&[
            main.clone(),
            canary(
                "main-canary",
                "bff-canary",
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "30"}),
            ),
            // A second canary of the same rule is ignored (one canary per rule).
            canary(
                "zz-second",
                "other",
                json!({"nginx.ingress.kubernetes.io/canary": "true",
                    "nginx.ingress.kubernetes.io/canary-weight": "100"}),
            ),
        ]);
        let m = t.matched("fluo-api.localhost", "/api/jobs").unwrap();
        assert_eq!(m.backend.service, "bff");
        let c = m.canary.expect("the canary joined /api");
        assert_eq!(
            (c.backend.service.as_str(), c.weight, c.total),
            ("bff-canary", 30, 100)
        );
        assert!(
            t.matched("fluo-api.localhost", "/health")
                .unwrap()
                .canary
                .is_none(),
            "/health has no canary rule"
        );
        // Without the main Ingress the canary routes nothing.
        let alone = table(&[canary(
            "c",
            "bff-canary",
            json!({"nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "100"}),
        )]);
        assert_eq!(alone.route("fluo-api.localhost", "/api"), None);
        // canary: "false" is an ordinary Ingress (the first of equal rules wins).
        let plain = table(&[
            main,
            canary(
                "x",
                "bff-x",
                json!({"nginx.ingress.kubernetes.io/canary": "false"}),
            ),
        ]);
        assert!(
            plain
                .matched("fluo-api.localhost", "/api")
                .unwrap()
                .canary
                .is_none()
        );
    }

    #[test]
    fn canary_weight_total_header_and_bad_numbers_follow_ingress_nginx() {
        let policy = |ann: Value| {
            let ing = json!({"metadata": {"annotations": ann}});
            let b = Backend {
                namespace: "fluo".into(),
                service: "c".into(),
                port: PortRef::Number(80),
            };
            canary_policy(&ing, b).unwrap()
        };
        let p = |k: &str| format!("nginx.ingress.kubernetes.io/{k}");
        let c = policy(json!({p("canary"): "true", p("canary-weight"): "5",
            p("canary-weight-total"): "1000"}));
        assert_eq!((c.weight, c.total), (5, 1000));
        assert!(c.takes(None, 5) && !c.takes(None, 6));
        let c = policy(json!({p("canary"): "true", p("canary-weight"): "abc",
            p("canary-weight-total"): "10"}));
        assert_eq!(
            (c.weight, c.total),
            (0, 100),
            "bad weight: 0; total below 100: 100"
        );
        assert!(!c.takes(None, 1));
        let c = policy(json!({p("canary"): "true", p("canary-weight"): "0",
            p("canary-by-header"): "X-Canary"}));
        assert_eq!(c.header.as_deref(), Some("x-canary"));
        assert!(c.takes(Some("always"), 100));
        assert!(!c.takes(Some("never"), 1));
        assert!(
            !c.takes(Some("maybe"), 1),
            "other values fall through to the weight"
        );
        let c = policy(json!({p("canary"): "true", p("canary-weight"): "100",
            p("canary-by-header"): "x-canary", p("canary-by-header-value"): "me"}));
        assert!(c.takes(Some("me"), 100));
        assert!(
            c.takes(Some("never"), 100),
            "with a value, never is just another value"
        );
    }
}
