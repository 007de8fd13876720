//! Counts the requests the emulator serves, per client and verb, so benchmarks can report how
//! many API calls a tool makes: `GET /debug/kube-emulator/requests` answers the counts as JSON
//! (itself neither counted nor subject to fault injection). The client is the product token of
//! the User-Agent (`kubectl`, `helm`, `fluo-deploy`, ...); the verb follows kube-apiserver's
//! audit verbs (get, list, watch, create, update, patch, apply, delete, deletecollection) plus
//! `discovery` for everything that is not a resource (discovery, OpenAPI, version, health).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::http::routes::{Route, parse_route};

/// Where the counts are served.
pub const PATH: &str = "/debug/kube-emulator/requests";

/// Requests served so far, by (client, verb).
#[derive(Default)]
pub struct RequestCounts(Mutex<BTreeMap<(String, &'static str), u64>>);

impl RequestCounts {
    pub fn record(&self, client: &str, verb: &'static str) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((client.to_string(), verb)).or_default() += 1;
    }

    /// `{"total": N, "clients": {"kubectl": {"total": N, "get": N, ...}, ...}}`.
    pub fn snapshot(&self) -> Value {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut clients = serde_json::Map::new();
        let mut total = 0;
        for ((client, verb), n) in counts.iter() {
            total += n;
            let entry = clients
                .entry(client.clone())
                .or_insert_with(|| json!({"total": 0}));
            entry["total"] = json!(entry["total"].as_u64().unwrap_or(0) + n);
            entry[*verb] = json!(n);
        }
        json!({"total": total, "clients": clients})
    }
}

/// The product token of a User-Agent (`kubectl/v1.35.2 (linux/amd64) ...` -> `kubectl`).
pub fn client_of(user_agent: Option<&str>) -> String {
    let product = user_agent
        .and_then(|ua| ua.split([' ', '/']).next())
        .unwrap_or("");
    if product.is_empty() {
        "unknown".to_string()
    } else {
        product.to_string()
    }
}

/// The audit verb of a request (`discovery` for non-resource paths).
pub fn verb_of(method: &Method, path: &str, query: &str, content_type: &str) -> &'static str {
    let Ok(Route::Resource(target)) = parse_route(path) else {
        return "discovery";
    };
    let collection = target.name.is_none();
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    match *method {
        Method::GET if watch => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
}

/// Wraps the router: every request is counted, and [`PATH`] answers the counts.
pub fn layer(router: Router) -> Router {
    let counts = Arc::new(RequestCounts::default());
    router.layer(middleware::from_fn_with_state(counts, count))
}

async fn count(State(counts): State<Arc<RequestCounts>>, req: Request, next: Next) -> Response {
    if req.uri().path() == PATH {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            counts.snapshot().to_string(),
        )
            .into_response();
    }
    // In a block: a borrow of the request (whose body is not Sync) must not live across the await.
    {
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let verb = verb_of(
            req.method(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
            header(header::CONTENT_TYPE).unwrap_or(""),
        );
        counts.record(&client_of(header(header::USER_AGENT)), verb);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_the_audit_verbs() {
        let deployments = "/apis/apps/v1/namespaces/ns/deployments";
        let one = "/apis/apps/v1/namespaces/ns/deployments/web";
        let apply = "application/apply-patch+yaml";
        let cases = [
            (
                Method::GET,
                deployments,
                "watch=true&resourceVersion=1",
                "",
                "watch",
            ),
            (Method::GET, deployments, "labelSelector=a%3Db", "", "list"),
            (Method::GET, one, "", "", "get"),
            (Method::POST, deployments, "", "application/json", "create"),
            (Method::PUT, one, "", "application/json", "update"),
            (Method::PATCH, one, "fieldManager=fluo", apply, "apply"),
            (
                Method::PATCH,
                one,
                "",
                "application/merge-patch+json",
                "patch",
            ),
            (Method::DELETE, one, "", "", "delete"),
            (Method::DELETE, deployments, "", "", "deletecollection"),
            (Method::GET, "/apis/apps/v1", "", "", "discovery"),
            (Method::GET, "/openapi/v3", "", "", "discovery"),
            (
                Method::GET,
                "/api/v1/namespaces/ns/widgets",
                "",
                "",
                "discovery",
            ),
        ];
        for (method, path, query, content_type, want) in cases {
            assert_eq!(
                verb_of(&method, path, query, content_type),
                want,
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn clients_are_user_agent_products() {
        assert_eq!(
            client_of(Some("kubectl/v1.35.2 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(client_of(Some("Helm/4.1.4")), "Helm");
        assert_eq!(client_of(Some("")), "unknown");
        assert_eq!(client_of(None), "unknown");
    }

    #[test]
    fn snapshot_sums_per_client_and_overall() {
        let counts = RequestCounts::default();
        counts.record("helm", "get");
        counts.record("helm", "get");
        counts.record("helm", "apply");
        counts.record("fluo-deploy", "watch");
        let snap = counts.snapshot();
        assert_eq!(snap["total"], 4);
        assert_eq!(snap["clients"]["helm"]["total"], 3);
        assert_eq!(snap["clients"]["helm"]["get"], 2);
        assert_eq!(snap["clients"]["helm"]["apply"], 1);
        assert_eq!(snap["clients"]["fluo-deploy"]["watch"], 1);
        assert!(snap["clients"]["helm"].get("watch").is_none());
    }

    #[tokio::test]
    async fn layer_counts_requests_and_serves_the_counts_uncounted() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let router = layer(Router::new().fallback(|| async { "ok" }));
        let send = |method: Method, uri: &str, ua: &str| {
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::USER_AGENT, ua)
                .body(axum::body::Body::empty())
                .expect("request");
            router.clone().oneshot(req)
        };
        let pods = "/api/v1/namespaces/ns/pods";
        send(Method::GET, pods, "kubectl/v1.35.2")
            .await
            .expect("list");
        send(
            Method::GET,
            &format!("{pods}?watch=true"),
            "kubectl/v1.35.2",
        )
        .await
        .expect("watch");
        send(Method::DELETE, &format!("{pods}/p"), "Helm/4.1.4")
            .await
            .expect("delete");
        for _ in 0..2 {
            let resp = send(Method::GET, PATH, "curl/8").await.expect("counts");
            assert_eq!(resp.status(), StatusCode::OK);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let counts: Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(counts["total"], 3, "{counts}");
            assert_eq!(counts["clients"]["kubectl"]["list"], 1);
            assert_eq!(counts["clients"]["kubectl"]["watch"], 1);
            assert_eq!(counts["clients"]["Helm"]["delete"], 1);
            assert!(counts["clients"].get("curl").is_none());
        }
    }
}
