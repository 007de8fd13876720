//! A stack with the platform's security switched on, made the way an operator makes it
//! (`fluo-secrets`): NATS with per-service users and TLS from a local CA, and the BFF with an
//! API tokens file. The files live in `<stack dir>/secrets/`.

use std::path::{Path, PathBuf};

use fluo_jobs::connect::NatsAuth;
use fluo_jobs::tokens::Scope;
use fluo_secrets::{api_tokens, nats_users, tls};

use crate::error::{Error, Result};

/// The secrets of a secured stack.
#[derive(Debug, Clone)]
pub struct Secured {
    pub dir: PathBuf,
}

fn failed(action: &'static str, path: &Path, err: impl std::fmt::Display) -> Error {
    Error::Io {
        action,
        path: path.to_owned(),
        source: std::io::Error::other(err.to_string()),
    }
}

impl Secured {
    /// Makes the NATS users, the CA with a certificate for 127.0.0.1/localhost, and two API
    /// tokens: `tests` (both scopes) and `reader` (jobs:read only).
    pub fn make(stack_dir: &Path) -> Result<Self> {
        let dir = stack_dir.join("secrets");
        std::fs::create_dir_all(&dir).map_err(|e| failed("create", &dir, e))?;
        nats_users::write(&dir).map_err(|e| failed("write NATS users in", &dir, e))?;
        let bundle = tls::generate(
            "fluo-teststack-ca",
            &["localhost".into(), "127.0.0.1".into()],
        )
        .map_err(|e| failed("make certificates for", &dir, e))?;
        tls::write(&dir, &bundle).map_err(|e| failed("write certificates in", &dir, e))?;
        let tokens = dir.join("tokens.toml");
        for (name, scopes) in [
            ("tests", &Scope::ALL[..]),
            ("reader", &[Scope::JobsRead][..]),
        ] {
            api_tokens::add(&tokens, name, scopes, &dir.join(format!("{name}.token")))
                .map_err(|e| failed("add an API token to", &tokens, e))?;
        }
        Ok(Secured { dir })
    }

    /// The token named `name` ("tests" or "reader").
    pub fn token(&self, name: &str) -> String {
        let path = self.dir.join(format!("{name}.token"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    /// nats-server's configuration: the usual listeners and JetStream, plus the users and TLS.
    pub fn nats_conf(&self, port: u16, monitor: u16, store: &Path) -> String {
        let file = |name: &str| self.dir.join(name).display().to_string();
        format!(
            "server_name: fluo-teststack\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{monitor}\"\n\
             jetstream {{ store_dir: \"{}\" }}\ninclude \"secrets/{}\"\n\
             tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            store.display(),
            nats_users::AUTH_CONF,
            file("tls.crt"),
            file("tls.key"),
        )
    }

    /// What `service` connects with: its current user and password, as in the manifests
    /// (user and password from files, read at every connect).
    pub fn nats_auth(&self, service: &str) -> NatsAuth {
        let user_file = self.dir.join(format!("{service}.user"));
        let name = fluo_jobs::connect::read_user(&user_file)
            .unwrap_or_else(|e| panic!("the user of {service}: {e}"));
        NatsAuth {
            user: Some((name, self.dir.join(format!("{service}.password")))),
            user_file: Some(user_file),
            ca_file: Some(self.dir.join("ca.crt")),
        }
    }

    /// The environment of `service` (bff, worker, ...): its NATS user, password and CA files.
    pub fn service_env(&self, service: &str) -> Vec<(String, String)> {
        let file = |name: String| self.dir.join(name).display().to_string();
        vec![
            ("NATS_USER_FILE".into(), file(format!("{service}.user"))),
            (
                "NATS_PASSWORD_FILE".into(),
                file(format!("{service}.password")),
            ),
            ("NATS_CA_FILE".into(), file("ca.crt".into())),
        ]
    }

    /// The BFF's environment: its NATS user and the tokens file.
    pub fn bff_env(&self) -> Vec<(String, String)> {
        let mut env = self.service_env("bff");
        env.push((
            "FLUO_BFF_AUTH_TOKENS_FILE".into(),
            self.dir.join("tokens.toml").display().to_string(),
        ));
        env
    }
}

/// The security Secrets of a namespace as Kubernetes objects, as an operator would create
/// them before deploying infra/ outside `--env local` (fresh values from
/// `fluo_secrets::bundle::local`).
pub fn security_secrets(namespace: &str) -> Vec<serde_json::Value> {
    fluo_secrets::bundle::local(namespace)
        .expect("local security Secrets are made")
        .into_iter()
        .map(|(name, data)| {
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace},
                "stringData": data,
            })
        })
        .collect()
}
