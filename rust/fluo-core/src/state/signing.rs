//! ed25519 signatures over record digests, in the spirit of cosign: the signer signs
//! `fluo.dev/<what>.v1\n<hex sha256 of the canonical payload>`; the environment file lists the
//! public keys it trusts. The private key comes from a file (`FLUO_SIGNING_KEY_FILE`) or an
//! environment variable (`FLUO_SIGNING_KEY`) that only the deployer holds; it never reaches
//! output.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::config::Environment;

/// Environment variable with the private key itself (PEM or base64 of the 32-byte seed).
pub const KEY_ENV: &str = "FLUO_SIGNING_KEY";
/// Environment variable naming a file with the private key.
pub const KEY_FILE_ENV: &str = "FLUO_SIGNING_KEY_FILE";
const SCHEME: &str = "ed25519";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the signing key from {from} is not an ed25519 private key (expected a PEM `PRIVATE KEY` or base64 of the 32-byte seed)"
    )]
    PrivateKey { from: String },
    #[error("cannot read the signing key file {path} (from {KEY_FILE_ENV}): {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the signing key from {from} is not trusted by environment `{environment}`: its public key {public} is not in [signing].keys of the environment file"
    )]
    Untrusted {
        from: String,
        environment: String,
        public: String,
    },
    #[error(
        "environment `{environment}` accepts only signed release records ([signing].accept_unsigned = false): set {KEY_FILE_ENV} to a file holding your ed25519 private key (or {KEY_ENV} to the key)"
    )]
    KeyRequired { environment: String },
}

pub use crate::config::{PublicKeyError, is_key_id, parse_public_key, public_key_text};

fn parse_private_key(text: &str, from: &str) -> Result<SigningKey> {
    let text = text.trim();
    let bad = || Error::PrivateKey {
        from: from.to_string(),
    };
    if text.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(text).map_err(|_| bad());
    }
    let bytes = BASE64.decode(text).map_err(|_| bad())?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The message signed for a digest: a domain (`release`, `anchor`) keeps one kind of
/// signature from being replayed as another.
fn message(domain: &str, digest: &str) -> Vec<u8> {
    format!("fluo.dev/{domain}.v1\n{digest}").into_bytes()
}

/// The deployer's private key with the id the environment trusts it under.
pub struct Signer {
    key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Signer {
    /// The key from `FLUO_SIGNING_KEY_FILE` or `FLUO_SIGNING_KEY`, checked against `env`'s
    /// trusted keys. None when no key is set and the environment accepts unsigned records.
    pub fn load(env: &Environment) -> Result<Option<Signer>> {
        let material = match (std::env::var(KEY_FILE_ENV), std::env::var(KEY_ENV)) {
            (Ok(path), _) if !path.is_empty() => {
                let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadKey {
                    path: path.clone(),
                    source,
                })?;
                Some((text, format!("{KEY_FILE_ENV} ({path})")))
            }
            (_, Ok(text)) if !text.is_empty() => Some((text, KEY_ENV.to_string())),
            _ => None,
        };
        match material {
            Some((text, from)) => Signer::from_text(&text, &from, env).map(Some),
            None if env.signing.accept_unsigned => Ok(None),
            None => Err(Error::KeyRequired {
                environment: env.environment.name.clone(),
            }),
        }
    }

    /// A key given as text (`from` names where it came from, for messages).
    pub fn from_text(text: &str, from: &str, env: &Environment) -> Result<Signer> {
        let key = parse_private_key(text, from)?;
        let public = key.verifying_key();
        let key_id = env
            .signing
            .keys
            .iter()
            .find(|(_, k)| parse_public_key(k).is_ok_and(|k| k == public))
            .map(|(id, _)| id.clone())
            .ok_or_else(|| Error::Untrusted {
                from: from.to_string(),
                environment: env.environment.name.clone(),
                public: public_key_text(&public),
            })?;
        Ok(Signer { key_id, key })
    }

    /// A signer for tests and benchmarks: seed bytes and an id.
    pub fn from_seed(seed: [u8; 32], key_id: &str) -> Signer {
        Signer {
            key_id: key_id.to_string(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn public_key(&self) -> String {
        public_key_text(&self.key.verifying_key())
    }

    /// `ed25519:<key id>:<base64 signature>` over `digest` in `domain`.
    pub fn sign(&self, domain: &str, digest: &str) -> String {
        let signature = self.key.sign(&message(domain, digest));
        format!(
            "{SCHEME}:{}:{}",
            self.key_id,
            BASE64.encode(signature.to_bytes())
        )
    }
}

/// What a signature check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Valid {
        key_id: String,
    },
    Unsigned,
    /// Signed, but the keys are unknown (no environment file): not checked.
    NotChecked {
        key_id: String,
    },
    Invalid(String),
}

/// The keys an environment trusts and whether it takes unsigned records.
#[derive(Debug, Clone)]
pub struct Trust {
    keys: BTreeMap<String, VerifyingKey>,
    pub accept_unsigned: bool,
    /// False when no environment file was readable: signatures cannot be checked.
    pub keys_known: bool,
}

impl Trust {
    pub fn of(env: &Environment) -> Trust {
        Trust {
            keys: env
                .signing
                .keys
                .iter()
                .filter_map(|(id, k)| parse_public_key(k).ok().map(|k| (id.clone(), k)))
                .collect(),
            accept_unsigned: env.signing.accept_unsigned,
            keys_known: true,
        }
    }

    /// No environment file: nothing is known about keys; signatures are reported unchecked.
    pub fn unknown() -> Trust {
        Trust {
            keys: BTreeMap::new(),
            accept_unsigned: true,
            keys_known: false,
        }
    }

    /// Trust in exactly these keys (tests, benchmarks).
    pub fn with_keys(
        keys: impl IntoIterator<Item = (String, String)>,
        accept_unsigned: bool,
    ) -> Trust {
        Trust {
            keys: keys
                .into_iter()
                .filter_map(|(id, k)| parse_public_key(&k).ok().map(|k| (id, k)))
                .collect(),
            accept_unsigned,
            keys_known: true,
        }
    }

    /// Checks `signature` (as written by [`Signer::sign`]) over `digest` in `domain`.
    pub fn check(&self, domain: &str, digest: &str, signature: Option<&str>) -> Check {
        let Some(signature) = signature.filter(|s| !s.is_empty()) else {
            return Check::Unsigned;
        };
        let mut parts = signature.splitn(3, ':');
        let (Some(SCHEME), Some(key_id), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Check::Invalid(format!("signature is not {SCHEME}:<key id>:<base64>"));
        };
        if !self.keys_known {
            return Check::NotChecked {
                key_id: key_id.to_string(),
            };
        }
        let Some(key) = self.keys.get(key_id) else {
            return Check::Invalid(format!(
                "signed by key `{key_id}`, which the environment does not trust"
            ));
        };
        let Ok(bytes) = BASE64.decode(b64) else {
            return Check::Invalid("signature is not base64".into());
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return Check::Invalid("signature has the wrong length".into());
        };
        match key.verify(&message(domain, digest), &signature) {
            Ok(()) => Check::Valid {
                key_id: key_id.to_string(),
            },
            Err(_) => Check::Invalid(format!(
                "signature by `{key_id}` does not match the content (modified after signing)"
            )),
        }
    }

    /// The problem a check is for this environment, if any.
    pub fn problem(&self, check: &Check) -> Option<String> {
        match check {
            Check::Valid { .. } | Check::NotChecked { .. } => None,
            Check::Unsigned if self.accept_unsigned => None,
            Check::Unsigned => Some("unsigned, and the environment requires signatures".into()),
            Check::Invalid(why) => Some(why.clone()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn signer(n: u8, id: &str) -> Signer {
        Signer::from_seed([n; 32], id)
    }

    pub(crate) fn trust_in(signer: &Signer, accept_unsigned: bool) -> Trust {
        Trust::with_keys(
            [(signer.key_id().to_string(), signer.public_key())],
            accept_unsigned,
        )
    }

    #[test]
    fn signature_round_trip_and_tampering() {
        let alice = signer(1, "alice");
        let trust = trust_in(&alice, false);
        let sig = alice.sign("release", "abc");
        assert_eq!(
            trust.check("release", "abc", Some(&sig)),
            Check::Valid {
                key_id: "alice".into()
            }
        );
        assert!(matches!(
            trust.check("release", "abd", Some(&sig)),
            Check::Invalid(_)
        ));
        assert!(
            matches!(trust.check("anchor", "abc", Some(&sig)), Check::Invalid(_)),
            "a release signature is not an anchor signature"
        );
        let mallory = signer(2, "alice");
        let forged = mallory.sign("release", "abc");
        assert!(matches!(
            trust.check("release", "abc", Some(&forged)),
            Check::Invalid(_)
        ));
        let stranger = signer(3, "mallory").sign("release", "abc");
        let Check::Invalid(why) = trust.check("release", "abc", Some(&stranger)) else {
            panic!("unknown key accepted")
        };
        assert!(why.contains("mallory"), "{why}");
        assert_eq!(trust.check("release", "abc", None), Check::Unsigned);
        assert!(trust.problem(&Check::Unsigned).is_some());
        assert!(trust_in(&alice, true).problem(&Check::Unsigned).is_none());
        assert!(matches!(
            Trust::unknown().check("release", "abc", Some(&sig)),
            Check::NotChecked { .. }
        ));
    }

    #[test]
    fn keys_parse_from_base64_and_pem() {
        let alice = signer(1, "alice");
        assert!(parse_public_key(&alice.public_key()).is_ok());
        assert!(parse_public_key("AAAA").is_err());
        // `openssl genpkey -algorithm ed25519` / `openssl pkey -pubout` output.
        let private = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGjqfIXGXmMT20B0tAhLSTKr4DuG/3r6+34IS+j5C5Qj\n-----END PRIVATE KEY-----\n";
        let key = parse_private_key(private, "test").expect("PKCS#8 PEM private key");
        let public_pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAssxw6zhbGHrueKPQHkZeHe4llF+DbxjZbvkPb/CUFKo=\n-----END PUBLIC KEY-----\n";
        assert_eq!(parse_public_key(public_pem).unwrap(), key.verifying_key());
        assert!(parse_private_key("nope", "test").is_err());
        assert!(format!("{:?}", alice).contains("alice") && !format!("{alice:?}").contains("key:"));
    }
}
