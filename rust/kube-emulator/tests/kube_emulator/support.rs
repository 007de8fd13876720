//! Shared helpers: emulators with short delays, typed APIs, raw requests and bounded waits.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use kube_emulator::{Emulator, Options};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Generous bound for anything the controllers do (loaded 2-core CI machines).
pub const WAIT: Duration = Duration::from_secs(60);

pub async fn emulator() -> Emulator {
    emulator_with(Options {
        ready_after: Duration::from_millis(50),
        ..Options::default()
    })
    .await
}

pub async fn emulator_with(opts: Options) -> Emulator {
    let emu = Emulator::start(opts).await.expect("emulator starts");
    // Bootstrap is done once the default ServiceAccount exists (controllers are running).
    let sas: Api<ServiceAccount> = Api::namespaced(emu.client().await, "default");
    within(WAIT, "the default ServiceAccount", async {
        loop {
            if sas
                .get_opt("default")
                .await
                .expect("get serviceaccount")
                .is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    emu
}

/// Awaits `fut`, failing the test with a message naming what did not happen in time.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Waits (watch-based) until the named object satisfies `cond`.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Condition<K>) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    within(WAIT, what, await_condition(api.clone(), name, cond))
        .await
        .expect("watch works")
        .unwrap_or_else(|| panic!("{what}: object {name} was deleted"))
}

/// Polls `check` until it returns Some (for conditions over several objects).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(WAIT, what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

pub fn from_json<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("fixture matches the type")
}

pub fn from_yaml<K: DeserializeOwned>(yaml: &str) -> K {
    serde_yaml::from_str(yaml).expect("fixture yaml matches the type")
}

pub fn configmap(name: &str, labels: Value) -> ConfigMap {
    from_json(json!({"metadata": {"name": name, "labels": labels}, "data": {"key": "value"}}))
}

pub async fn create_configmap(client: &Client, name: &str, labels: Value) -> ConfigMap {
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &configmap(name, labels))
        .await
        .expect("create configmap")
}

/// A raw HTTP response: status, headers and body text.
pub struct Raw {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// Sends a raw request (no client-side checks), for error paths and headers.
pub async fn raw(
    emu: &Emulator,
    method: &str,
    path: &str,
    content_type: &str,
    accept: &str,
    body: &str,
) -> Raw {
    let client = emu.client().await;
    let mut req = http::Request::builder().method(method).uri(path);
    if !content_type.is_empty() {
        req = req.header(http::header::CONTENT_TYPE, content_type);
    }
    if !accept.is_empty() {
        req = req.header(http::header::ACCEPT, accept);
    }
    let req = req.body(body.as_bytes().to_vec()).expect("request builds");
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("request is sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    Raw {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub fn deployment(
    name: &str,
    image: &str,
    replicas: i32,
) -> k8s_openapi::api::apps::v1::Deployment {
    from_json(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}}}
    }))
}
