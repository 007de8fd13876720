//! The two Secrets of the NATS users, read and written with the deployer's credentials (its
//! Role may `get` and `update` exactly these two). Every write replaces the object read last
//! (its resourceVersion), so a concurrent change fails the write instead of being lost.
//! Values stay in memory; errors name Secrets and keys only.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use super::state::{AUTH, AUTH_KEY, CREDENTIALS};

/// Annotation on nats-auth naming the step a rotation is in (`adding` while old and new users
/// are listed, `dropping` from writing the new users alone until nats-server refused the old).
pub const STEP: &str = "fluo.dev/nats-rotation";
pub const ADDING: &str = "adding";
pub const DROPPING: &str = "dropping";

pub struct Secrets {
    api: Api<Secret>,
    namespace: String,
    auth: Secret,
    credentials: Secret,
}

fn strings(secret: &Secret) -> Result<BTreeMap<String, String>, String> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            String::from_utf8(v.0.clone())
                .map(|v| (k.clone(), v))
                .map_err(|_| format!("Secret {name} key {k} is not UTF-8"))
        })
        .collect()
}

impl Secrets {
    /// Both Secrets; Err names the one missing or unreadable.
    pub async fn read(client: &kube::Client, namespace: &str) -> Result<Secrets, String> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let get = |name: &'static str| {
            let api = api.clone();
            async move {
                api.get_opt(name)
                    .await
                    .map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?
                    .ok_or_else(|| {
                        format!("Secret {namespace}/{name} not found (make it with fluo-secrets nats-users: docs/security.md)")
                    })
            }
        };
        let auth = get(AUTH).await?;
        let credentials = get(CREDENTIALS).await?;
        Ok(Secrets {
            api: api.clone(),
            namespace: namespace.to_owned(),
            auth,
            credentials,
        })
    }

    /// The resourceVersions of both Secrets as read.
    pub fn versions(&self) -> [Option<&str>; 2] {
        [&self.auth, &self.credentials].map(|s| s.metadata.resource_version.as_deref())
    }

    /// nats-auth's authorization.conf.
    pub fn conf(&self) -> Result<String, String> {
        strings(&self.auth)?
            .remove(AUTH_KEY)
            .ok_or_else(|| format!("Secret {}/{AUTH} has no key {AUTH_KEY}", self.namespace))
    }

    pub fn credentials(&self) -> Result<BTreeMap<String, String>, String> {
        strings(&self.credentials)
    }

    /// The step annotation on nats-auth.
    pub fn step(&self) -> Option<&str> {
        self.auth
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STEP))
            .map(String::as_str)
    }

    /// Writes `conf` into nats-auth with the step annotation (`None` removes it).
    pub async fn write_auth(&mut self, conf: &str, step: Option<&str>) -> Result<(), String> {
        let mut next = self.auth.clone();
        next.data
            .get_or_insert_with(BTreeMap::new)
            .insert(AUTH_KEY.to_owned(), ByteString(conf.as_bytes().to_vec()));
        let annotations = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match step {
            Some(s) => annotations.insert(STEP.to_owned(), s.to_owned()),
            None => annotations.remove(STEP),
        };
        self.auth = self.replace(AUTH, next).await?;
        Ok(())
    }

    /// Writes `data` (user and password keys) into nats-credentials; other keys stay.
    pub async fn write_credentials(
        &mut self,
        data: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let mut next = self.credentials.clone();
        let map = next.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in data {
            map.insert(k.clone(), ByteString(v.as_bytes().to_vec()));
        }
        self.credentials = self.replace(CREDENTIALS, next).await?;
        Ok(())
    }

    async fn replace(&self, name: &str, mut next: Secret) -> Result<Secret, String> {
        next.string_data = None;
        next.metadata.managed_fields = None;
        self.api
            .replace(name, &PostParams::default(), &next)
            .await
            .map_err(|e| format!("updating Secret {}/{name}: {e}", self.namespace))
    }
}
