//! `--env local` only: the Secrets of the secured platform (NATS users and TLS, the BFF's API
//! tokens and the smoke test's token; `fluo_secrets::bundle`) are made together when all are
//! missing and reused when all exist. A partial set is refused: its parts must match each
//! other (tokens file and token, users file and passwords, certificate and CA). Other
//! environments keep them an operator's job (docs/security.md). No value is ever printed.

use std::collections::BTreeMap;

use fluo_secrets::bundle;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::context::{self, Ctx};
use super::error::{Error, Result};
use super::local_secret::declares_external;
use crate::render::PART_OF_LABEL;
use crate::report::Level;

/// Whether this deploy makes the Secrets: the local environment, and a component declares one.
pub fn wanted(ctx: &Ctx) -> bool {
    ctx.config.environment.environment.name == "local"
        && bundle::ALL
            .iter()
            .any(|name| declares_external(&ctx.config, name))
}

/// Creates the security Secrets when `wanted` and all missing; says what it did either way.
pub async fn ensure(ctx: &Ctx) -> Result<()> {
    if !wanted(ctx) {
        return Ok(());
    }
    let ns = &ctx.namespace;
    let api: Api<Secret> = Api::namespaced(ctx.cluster.client.clone(), ns);
    let mut missing = Vec::new();
    for name in bundle::ALL {
        let found = api.get_opt(name).await.map_err(|e| {
            Error::Failed(format!(
                "reading Secret {ns}/{name} (local environment): {e}"
            ))
        })?;
        if found.is_none() {
            missing.push(name);
        }
    }
    if missing.is_empty() {
        ctx.reporter.progress(
            "security",
            Level::Info,
            &format!(
                "using the existing security Secrets in {ns} ({})",
                bundle::ALL.join(", ")
            ),
        );
        return Ok(());
    }
    if missing.len() != bundle::ALL.len() {
        return Err(Error::Failed(format!(
            "Secrets {} are missing in {ns} while the others of the set exist; they must match each other: delete the rest ({}) to have a new set made, or make the missing ones with fluo-secrets (docs/security.md); nothing was applied",
            missing.join(", "),
            bundle::ALL
                .iter()
                .filter(|n| !missing.contains(n))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    context::ensure_namespaces(ctx).await?;
    let secrets = bundle::local(ns)
        .map_err(|e| Error::Failed(format!("making the local security Secrets: {e}")))?;
    for (name, data) in secrets {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(PART_OF_LABEL.into(), "fluo".into())])),
                ..Default::default()
            },
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k, ByteString(v.into_bytes())))
                    .collect(),
            ),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(Error::Failed(format!(
                    "creating Secret {ns}/{name} (local environment): {e}"
                )));
            }
        }
    }
    ctx.reporter.progress(
        "security",
        Level::Info,
        &format!(
            "created a local CA, NATS users and the smoke test's API token in Secrets {}; read the token with: kubectl -n {ns} get secret {} -o jsonpath='{{.data.token}}' | base64 -d",
            bundle::ALL.join(", "),
            bundle::SMOKE_TOKEN
        ),
    );
    Ok(())
}
