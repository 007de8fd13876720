//! The connection to one cluster: a kube client for the environment's context and a cache of
//! discovered kinds (plural name and scope), so manifests of any kind can be applied.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("kube context `{context}` not found in {path} (known: {known})")]
    UnknownContext {
        context: String,
        path: String,
        known: String,
    },
    #[error("connecting with context `{context}`: {message}")]
    Connect { context: String, message: String },
    /// The API server did not answer (refused, no route, TLS, timeout): named with the cause.
    #[error("cannot reach the API server {server} (context `{context}`): {cause}")]
    Unreachable {
        server: String,
        context: String,
        cause: String,
    },
    #[error("the server does not know {api_version} {kind}: {source}")]
    UnknownKind {
        api_version: String,
        kind: String,
        source: kube::Error,
    },
}

/// The kubeconfig at `path` (or KUBECONFIG / ~/.kube/config) and how to name it in messages.
pub fn read_kubeconfig(path: Option<&Path>) -> Result<(Kubeconfig, String)> {
    let (config, path) = match path {
        Some(p) => (Kubeconfig::read_from(p), p.display().to_string()),
        None => (
            Kubeconfig::read(),
            "$KUBECONFIG or ~/.kube/config".to_string(),
        ),
    };
    let config = config.map_err(|e| Error::Kubeconfig {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok((config, path))
}

/// How long the first request may take before the server counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// One cheap request (`GET /version`) so that an unreachable server is reported once, with its
/// address and the cause, before any command starts (instead of `ServiceError: client error
/// (Connect)` from its first real request). An answer of any HTTP status means reachable.
async fn probe(client: &Client, server: &str, context: &str) -> Result<()> {
    let unreachable = |cause: String| Error::Unreachable {
        server: server.trim_end_matches('/').to_string(),
        context: context.to_string(),
        cause,
    };
    match tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => Ok(()),
        Ok(Err(e)) => Err(unreachable(causes(&e))),
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            PROBE_TIMEOUT.as_secs()
        ))),
    }
}

/// The chain of causes under `error` ("client error (Connect): tcp connect error: Connection
/// refused (os error 111)"), without kube's wrapper text.
pub fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut next = error.source();
    while let Some(e) = next {
        let message = e.to_string();
        if !messages.iter().any(|m| m.contains(&message)) {
            messages.push(message);
        }
        next = e.source();
    }
    if messages.is_empty() {
        error.to_string()
    } else {
        messages.join(": ")
    }
}

/// A client plus discovered kinds.
pub struct Cluster {
    pub client: Client,
    /// The context the client talks to.
    pub context: String,
    kinds: Mutex<HashMap<(String, String), Kind>>,
}

/// A discovered kind: how to address it and whether it lives in a namespace.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Cluster {
    /// Connects with `context` from `kubeconfig` (or KUBECONFIG / ~/.kube/config).
    pub async fn connect(kubeconfig: Option<&Path>, context: &str) -> Result<Cluster> {
        let (config, path) = read_kubeconfig(kubeconfig)?;
        if !config.contexts.iter().any(|c| c.name == context) {
            let known: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::UnknownContext {
                context: context.to_string(),
                path,
                known: known.join(", "),
            });
        }
        let options = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let connect_err = |message: String| Error::Connect {
            context: context.to_string(),
            message,
        };
        let mut config = kube::Config::from_custom_kubeconfig(config, &options)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        // Our retry policy (crate::retry) replaces kube's built-in one; two would multiply.
        config.default_retry = false;
        let server = config.cluster_url.to_string();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| connect_err(e.to_string()))?
            // The retry layer replays requests, so the service under it must be cloneable.
            .with_layer(&tower::buffer::BufferLayer::new(1024))
            .with_layer(&tower::retry::RetryLayer::new(
                crate::retry::TransientErrors::default(),
            ))
            .build();
        probe(&client, &server, context).await?;
        Ok(Self::from_client(client, context))
    }

    pub fn from_client(client: Client, context: &str) -> Cluster {
        Cluster {
            client,
            context: context.to_string(),
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Discovers (once) the kind of `api_version`/`kind`.
    pub async fn kind(&self, api_version: &str, kind: &str) -> Result<Kind> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(k) = self.kinds.lock().expect("kind cache lock").get(&key) {
            return Ok(k.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| Error::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                source,
            })?;
        let found = Kind {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.kinds
            .lock()
            .expect("kind cache lock")
            .insert(key, found.clone());
        Ok(found)
    }

    /// The API for `object` and the namespace it goes to: its own, else `default_namespace`
    /// for namespaced kinds, none for cluster-scoped ones.
    pub async fn api_for(
        &self,
        object: &Value,
        default_namespace: &str,
    ) -> Result<(Api<DynamicObject>, Option<String>)> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let found = self.kind(api_version, kind).await?;
        if !found.namespaced {
            return Ok((Api::all_with(self.client.clone(), &found.resource), None));
        }
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(default_namespace)
            .to_string();
        Ok((
            Api::namespaced_with(self.client.clone(), &namespace, &found.resource),
            Some(namespace),
        ))
    }
}
