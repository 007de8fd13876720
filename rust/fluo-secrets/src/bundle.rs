//! Every Secret the secured platform needs, made in memory for one namespace: what
//! `fluo-deploy --env local` creates when they are missing, and what tests create the way an
//! operator would (docs/security.md lists them with the keys each workload mounts).

use std::collections::BTreeMap;

use fluo_jobs::tokens::{self, Entry, Scope, TokensFile};

use crate::{nats_users, tls};

/// Secret names, shared with the manifests under infra/components.
pub const API_TOKENS: &str = "fluo-bff-api-tokens";
pub const SMOKE_TOKEN: &str = "fluo-smoke-api-token";
pub const NATS_AUTH: &str = "nats-auth";
pub const NATS_TLS: &str = "nats-tls";
pub const NATS_CREDENTIALS: &str = "nats-credentials";

/// Keys of the smoke token Secret: the smoke test's token (jobs:submit, jobs:read) and a
/// jobs:read-only token the post-deploy security check expects a 403 with.
pub const SMOKE_TOKEN_KEY: &str = "token";
pub const READ_TOKEN_KEY: &str = "read-token";

pub const ALL: [&str; 5] = [
    API_TOKENS,
    SMOKE_TOKEN,
    NATS_AUTH,
    NATS_TLS,
    NATS_CREDENTIALS,
];

/// One Secret: name and string data.
pub type Secret = (&'static str, BTreeMap<String, String>);

/// Fresh credentials for `namespace`: a local CA and NATS certificate, NATS users, and the
/// smoke test's API token (both scopes) and the security check's jobs:read-only token in the
/// BFF's tokens file.
pub fn local(namespace: &str) -> Result<Vec<Secret>, tls::Error> {
    let bundle = tls::generate("fluo-local-ca", &tls::service_names(namespace))?;
    let users = nats_users::fresh();
    let smoke = tokens::mint();
    let reader = tokens::mint();
    let file = TokensFile {
        tokens: vec![
            Entry {
                name: "smoke".into(),
                sha256: tokens::hash(&smoke),
                scopes: Scope::ALL.to_vec(),
            },
            Entry {
                name: "security-check".into(),
                sha256: tokens::hash(&reader),
                scopes: vec![Scope::JobsRead],
            },
        ],
    };
    let data = |pairs: Vec<(&str, String)>| -> BTreeMap<String, String> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    };
    Ok(vec![
        (API_TOKENS, data(vec![("tokens.toml", file.render())])),
        (
            SMOKE_TOKEN,
            data(vec![(SMOKE_TOKEN_KEY, smoke), (READ_TOKEN_KEY, reader)]),
        ),
        (
            NATS_AUTH,
            data(vec![(nats_users::AUTH_CONF, nats_users::render(&users))]),
        ),
        (
            NATS_TLS,
            data(vec![
                ("ca.crt", bundle.ca_cert),
                ("tls.crt", bundle.server_cert),
                ("tls.key", bundle.server_key),
            ]),
        ),
        (
            NATS_CREDENTIALS,
            users
                .into_iter()
                .flat_map(|u| {
                    let [user_key, password_key] = nats_users::credential_files(u.service);
                    [(user_key, u.name), (password_key, u.password)]
                })
                .collect(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smoke_token_is_in_the_tokens_file_and_every_user_has_a_password() {
        let secrets = local("fluo").unwrap();
        let get = |name: &str, key: &str| {
            secrets.iter().find(|(n, _)| *n == name).unwrap().1[key].clone()
        };
        let file = TokensFile::parse(&get(API_TOKENS, "tokens.toml")).unwrap();
        assert_eq!(
            file.verify(&get(SMOKE_TOKEN, SMOKE_TOKEN_KEY))
                .unwrap()
                .scopes,
            Scope::ALL
        );
        assert_eq!(
            file.verify(&get(SMOKE_TOKEN, READ_TOKEN_KEY))
                .unwrap()
                .scopes,
            [Scope::JobsRead]
        );
        let auth = get(NATS_AUTH, nats_users::AUTH_CONF);
        for service in nats_users::SERVICES {
            let password = get(NATS_CREDENTIALS, &format!("{service}.password"));
            let user = get(NATS_CREDENTIALS, &format!("{service}.user"));
            assert_eq!(user, service);
            assert!(auth.contains(&format!("user: \"{user}\"\n      password: \"{password}\"")));
        }
        assert!(get(NATS_TLS, "ca.crt").starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            secrets.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            ALL.to_vec()
        );
    }
}
