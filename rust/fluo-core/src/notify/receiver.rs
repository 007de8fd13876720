//! A webhook receiver on loopback for tests (feature `test-receiver`): a real HTTP server
//! (axum) that records every message and can answer slowly or fail the first requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use serde_json::Value;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Answer 500 to this many requests first.
    pub fail_first: usize,
    /// Wait this long before answering every request.
    pub delay: Duration,
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    behaviour: Behaviour,
    requests: usize,
    received: Vec<Received>,
}

/// A running receiver; stops when the test's runtime ends.
pub struct TestReceiver {
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
}

impl TestReceiver {
    pub async fn start(behaviour: Behaviour) -> TestReceiver {
        let shared = Arc::new(Mutex::new(Shared {
            behaviour,
            ..Shared::default()
        }));
        let app = axum::Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the test webhook receiver");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestReceiver { base_url, shared }
    }

    /// A URL on this receiver whose path carries `secret` (as Slack's URLs carry a token).
    pub fn url(&self, secret: &str) -> String {
        format!("{}/services/{secret}", self.base_url)
    }

    /// Messages received and answered 2xx, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("receiver state").received.clone()
    }

    /// Requests seen, failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.lock().expect("receiver state").requests
    }
}

/// A loopback URL nobody listens on (connections are refused).
pub async fn dead_url(secret: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}/services/{secret}")
}

async fn receive(
    State(shared): State<Arc<Mutex<Shared>>>,
    uri: Uri,
    body: axum::body::Bytes,
) -> StatusCode {
    let (delay, fail) = {
        let mut s = shared.lock().expect("receiver state");
        s.requests += 1;
        (s.behaviour.delay, s.requests <= s.behaviour.fail_first)
    };
    tokio::time::sleep(delay).await;
    if fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared
        .lock()
        .expect("receiver state")
        .received
        .push(Received {
            path: uri.path().to_string(),
            body,
        });
    StatusCode::OK
}
