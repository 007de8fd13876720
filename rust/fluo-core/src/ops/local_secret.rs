//! `--env local` only: the Grafana admin Secret (`grafana-admin`, see infra/README.md) is
//! created with a random password when it is missing and reused when present, so a first local
//! deploy works without a manual step. Other environments keep it an operator's job. The
//! password is never printed; the message says how to read it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::context::{self, Ctx};
use super::error::{Error, Result};
use crate::config::Config;
use crate::render::PART_OF_LABEL;
use crate::report::Level;

pub const GRAFANA_ADMIN_SECRET: &str = "grafana-admin";
/// The workload annotation listing Secrets a manifest references but never contains.
const EXTERNAL_SECRETS_ANNOTATION: &str = "fluo.dev/external-secrets";
const LOCAL_ENVIRONMENT: &str = "local";

/// Whether this deploy makes the Secret: the local environment, and a component declares it.
pub fn wanted(config: &Config) -> bool {
    config.environment.environment.name == LOCAL_ENVIRONMENT
        && declares_external(config, GRAFANA_ADMIN_SECRET)
}

/// Whether a manifest lists `secret` in its `fluo.dev/external-secrets` annotation.
pub fn declares_external(config: &Config, secret: &str) -> bool {
    config.components.iter().any(|c| {
        c.manifests.iter().any(|d| {
            d.object["metadata"]["annotations"][EXTERNAL_SECRETS_ANNOTATION]
                .as_str()
                .is_some_and(|list| list.split(',').any(|s| s.trim() == secret))
        })
    })
}

/// How to read the password without it ever being printed.
pub fn how_to_read(namespace: &str) -> String {
    format!(
        "kubectl -n {namespace} get secret {GRAFANA_ADMIN_SECRET} -o jsonpath='{{.data.admin-password}}' | base64 -d"
    )
}

/// A random password: two v4 UUIDs (244 random bits) as hex.
fn random_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Creates the Secret when `wanted` and missing; says what it did either way.
pub async fn ensure_grafana_admin(ctx: &Ctx) -> Result<()> {
    if !wanted(&ctx.config) {
        return Ok(());
    }
    let ns = &ctx.namespace;
    let api: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), ns);
    let kube_err = |action: &str, e: kube::Error| {
        Error::Failed(format!(
            "{action} Secret {ns}/{GRAFANA_ADMIN_SECRET} (local environment): {e}"
        ))
    };
    let exists = api
        .get_opt(GRAFANA_ADMIN_SECRET)
        .await
        .map_err(|e| kube_err("reading", e))?
        .is_some();
    if !exists {
        context::ensure_namespaces(ctx).await?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(GRAFANA_ADMIN_SECRET.into()),
                labels: Some(BTreeMap::from([(PART_OF_LABEL.into(), "fluo".into())])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("admin-user".into(), ByteString(b"admin".to_vec())),
                (
                    "admin-password".into(),
                    ByteString(random_password().into_bytes()),
                ),
            ])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            // Created meanwhile by someone else: reuse it.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kube_err("creating", e)),
        }
    }
    let what = if exists {
        "using the existing"
    } else {
        "created a random admin password in"
    };
    ctx.reporter.progress(
        "grafana",
        Level::Info,
        &format!(
            "{what} Secret {ns}/{GRAFANA_ADMIN_SECRET} (user admin); read the password with: {}",
            how_to_read(ns)
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_and_differ() {
        let (a, b) = (random_password(), random_password());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn the_reading_command_names_namespace_and_key_only() {
        assert_eq!(
            how_to_read("fluo"),
            "kubectl -n fluo get secret grafana-admin -o jsonpath='{.data.admin-password}' | base64 -d"
        );
    }
}
