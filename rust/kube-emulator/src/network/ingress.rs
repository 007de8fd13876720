//! The Ingress listener: an HTTP/1.1 reverse proxy that routes by Host and path
//! ([`IngressTable`](super::ingress_routes::IngressTable)) straight to the ready endpoints of the
//! backend Service (round robin), as ingress-nginx does. 404 when no rule matches, 503 when the
//! Service has no ready endpoint (or does not exist), 502 when no endpoint accepts. A rule with
//! a canary Ingress sends the share its annotations say to the canary Service (while that has
//! ready endpoints).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::ingress_routes::Backend;
use super::services::connect_any;
use super::view::ClusterView;

/// Headers that describe one hop and are not forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

struct Shared {
    view: watch::Receiver<Arc<ClusterView>>,
    next: AtomicUsize,
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{body}\n"),
    )
        .into_response()
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

async fn proxy(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let view = shared.view.borrow().clone();
    let Some(matched) = view.ingress.matched(&host, req.uri().path()) else {
        return text(
            StatusCode::NOT_FOUND,
            "404 Not Found: no Ingress rule matches this host and path",
        );
    };
    let endpoints_of = |b: &Backend| {
        view.service_port(&b.namespace, &b.service, &b.port)
            .map(|p| p.backends.clone())
            .unwrap_or_default()
    };
    let mut backend = matched.backend;
    let mut endpoints = endpoints_of(backend);
    if let Some(canary) = matched.canary {
        let header = canary
            .header
            .as_deref()
            .and_then(|h| req.headers().get(h))
            .and_then(|v| v.to_str().ok());
        let canary_endpoints = endpoints_of(&canary.backend);
        if !canary_endpoints.is_empty() && canary.takes(header, roll(canary.total)) {
            backend = &canary.backend;
            endpoints = canary_endpoints;
        }
    }
    if endpoints.is_empty() {
        let msg = format!(
            "503 Service Unavailable: service {}/{} has no ready endpoint",
            backend.namespace, backend.service
        );
        return text(StatusCode::SERVICE_UNAVAILABLE, &msg);
    }
    let start = shared.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
    let rotation: Vec<SocketAddr> = endpoints[start..]
        .iter()
        .chain(&endpoints[..start])
        .copied()
        .collect();
    let Some(stream) = connect_any(&rotation).await else {
        return text(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: no endpoint accepted the connection",
        );
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(pair) => pair,
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("502 Bad Gateway: {e}")),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "ingress upstream connection ended");
        }
    });
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *req.uri_mut() = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    for (name, value) in [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-host", host.clone()),
        ("x-forwarded-proto", "http".to_string()),
        ("x-real-ip", peer.ip().to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    if !host.is_empty()
        && !headers.contains_key(header::HOST)
        && let Ok(v) = HeaderValue::from_str(&host)
    {
        headers.insert(header::HOST, v);
    }
    match sender.send_request(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, &format!("502 Bad Gateway: {e}")),
    }
}

/// A uniform random number in `1..=total` (the random bytes of a v4 UUID).
fn roll(total: u32) -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let random = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    random % total.max(1) + 1
}

/// Binds the Ingress listener (port 0: a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves Ingress traffic on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, view: watch::Receiver<Arc<ClusterView>>) {
    let shared = Arc::new(Shared {
        view,
        next: AtomicUsize::new(0),
    });
    let app = axum::Router::new().fallback(proxy).with_state(shared);
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    {
        tracing::error!(error = %e, "ingress listener stopped");
    }
}
