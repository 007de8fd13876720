//! API tokens of the BFF: the tokens file (only SHA-256 hashes, never a token), minting a
//! token, and checking a presented token in constant time. See docs/adr/0006-bff-api-tokens.md.
//!
//! The file, `tokens.toml`, is the key `tokens.toml` of the Secret `fluo-bff-api-tokens`:
//!
//! ```toml
//! [[tokens]]
//! name = "smoke"                      # who holds it (shown in logs, never the token)
//! sha256 = "<64 hex digits>"          # SHA-256 of the whole token text
//! scopes = ["jobs:submit", "jobs:read"]
//! ```
//!
//! Several entries may share a name: that is how a rotation keeps the old and the new token
//! valid until the old one is removed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this, so a leaked one is recognisable (and scanners can find it).
pub const TOKEN_PREFIX: &str = "fluo_";

/// A permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// POST /api/jobs
    #[serde(rename = "jobs:submit")]
    JobsSubmit,
    /// GET /api/jobs/{id}
    #[serde(rename = "jobs:read")]
    JobsRead,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::JobsSubmit, Scope::JobsRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsSubmit => "jobs:submit",
            Scope::JobsRead => "jobs:read",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?} (known: jobs:submit, jobs:read)"))
    }
}

/// One entry of the tokens file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<Scope>,
}

impl Entry {
    /// The short id operators use to remove an entry: the first 12 hex digits of its hash
    /// (a hash prefix reveals nothing usable about the token).
    pub fn id(&self) -> &str {
        &self.sha256[..12]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    #[serde(default)]
    pub tokens: Vec<Entry>,
}

/// Why the tokens file cannot be used; names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the tokens file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// What a presented token is allowed to do, when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// The SHA-256 of a token as lowercase hex.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: the prefix and 64 hex digits (two v4 UUIDs, 244 random bits).
pub fn mint() -> String {
    format!(
        "{TOKEN_PREFIX}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl TokensFile {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|reason| Error::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses and validates the text of a tokens file; the error names the entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokensFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        for (index, entry) in file.tokens.iter().enumerate() {
            let at = format!("tokens[{index}] (name {:?})", entry.name);
            if entry.name.trim().is_empty() || entry.name.chars().any(char::is_control) {
                return Err(format!("{at}: name must be non-empty printable text"));
            }
            if entry.sha256.len() != 64
                || !entry
                    .sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
            {
                return Err(format!(
                    "{at}: sha256 must be 64 lowercase hex digits (the hash, never the token)"
                ));
            }
            if entry.scopes.is_empty() {
                return Err(format!("{at}: scopes must name at least one scope"));
            }
        }
        Ok(file)
    }

    /// The TOML text of the file.
    pub fn render(&self) -> String {
        toml::to_string(self).expect("a tokens file always serializes")
    }

    /// The grant of `token`, if its hash is in the file (see [`Verifier::verify`]). A service
    /// checking many requests keeps a [`Verifier`] instead.
    pub fn verify(&self, token: &str) -> Option<Grant> {
        Verifier::from(self).verify(token).cloned()
    }
}

/// The tokens of a file ready for checking requests: each hash decoded once, so a check is
/// one SHA-256 and a constant-time comparison with every entry, with no allocation.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    entries: Vec<([u8; 32], Grant)>,
}

impl From<&TokensFile> for Verifier {
    fn from(file: &TokensFile) -> Self {
        let entries = file
            .tokens
            .iter()
            .filter_map(|entry| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&entry.sha256, &mut hash).ok()?;
                let grant = Grant {
                    name: entry.name.clone(),
                    scopes: entry.scopes.clone(),
                };
                Some((hash, grant))
            })
            .collect();
        Verifier { entries }
    }
}

impl Verifier {
    /// How many tokens it knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grant of `token`, if its hash is in the file. Every entry is compared, each in
    /// constant time, so the time taken does not depend on which entry (if any) matched.
    pub fn verify(&self, token: &str) -> Option<&Grant> {
        let presented = Sha256::digest(token.as_bytes());
        let mut found = None;
        for (stored, grant) in &self.entries {
            if bool::from(stored[..].ct_eq(presented.as_slice())) && found.is_none() {
                found = Some(grant);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(token: &str, scopes: &[Scope]) -> TokensFile {
        TokensFile {
            tokens: vec![Entry {
                name: "smoke".into(),
                sha256: hash(token),
                scopes: scopes.to_vec(),
            }],
        }
    }

    #[test]
    fn a_listed_token_gets_its_scopes_and_others_get_nothing() {
        let token = mint();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == 69);
        let file = file_with(&token, &[Scope::JobsRead]);
        let grant = file.verify(&token).unwrap();
        assert_eq!(grant.name, "smoke");
        assert_eq!(grant.scopes, vec![Scope::JobsRead]);
        assert_eq!(file.verify(&mint()), None);
        assert_eq!(file.verify(""), None);
        assert_eq!(file.verify(&token[..token.len() - 1]), None);
    }

    #[test]
    fn the_verifier_grants_what_the_file_grants() {
        let (first, second) = (mint(), mint());
        let mut file = file_with(&first, &[Scope::JobsRead]);
        file.tokens.push(Entry {
            name: "ci".into(),
            sha256: hash(&second),
            scopes: Scope::ALL.to_vec(),
        });
        let verifier = Verifier::from(&file);
        assert_eq!(verifier.len(), 2);
        assert_eq!(verifier.verify(&first).unwrap().name, "smoke");
        let grant = verifier.verify(&second).unwrap();
        assert_eq!(
            (grant.name.as_str(), &grant.scopes[..]),
            ("ci", &Scope::ALL[..])
        );
        assert_eq!(verifier.verify(&mint()), None);
        assert_eq!(verifier.verify(&second[..second.len() - 1]), None);
        assert_eq!(verifier.verify(""), None);
        assert!(Verifier::from(&TokensFile::default()).is_empty());
    }

    #[test]
    fn the_file_round_trips_and_holds_no_token() {
        let token = mint();
        let file = file_with(&token, &Scope::ALL);
        let text = file.render();
        assert!(!text.contains(&token));
        assert!(text.contains("\"jobs:submit\""));
        assert_eq!(TokensFile::parse(&text).unwrap(), file);
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TokensFile::parse(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"fluo_abc\"\nscopes = [\"jobs:read\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "tokens[0] (name \"ci\"): sha256 must be 64 lowercase hex digits (the hash, never the token)"
        );
        let err = TokensFile::parse(&format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nscopes = [\"jobs:delete\"]\n",
            hash("x")
        ))
        .unwrap_err();
        assert!(err.contains("jobs:delete"), "{err}");
        let err = TokensFile::parse(&format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nscopes = []\n",
            hash("x")
        ))
        .unwrap_err();
        assert!(err.contains("at least one scope"), "{err}");
    }
}
