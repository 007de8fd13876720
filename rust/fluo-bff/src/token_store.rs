//! The API tokens in force: the tokens file (`fluo_jobs::tokens`, SHA-256 hashes and scopes),
//! re-read when the mounted Secret changes so a rotation needs no restart. Requests check
//! against a [`Verifier`] made once per version of the file.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fluo_jobs::tokens::{self, TokensFile, Verifier};

/// How often the tokens file is checked for a new version (the kubelet updates a mounted
/// Secret within about a minute; this adds at most a few seconds).
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The tokens in force and where they come from.
pub struct TokenStore {
    path: PathBuf,
    current: RwLock<(String, Arc<Verifier>)>,
}

impl TokenStore {
    /// Loads the file once; a bad file at start is a configuration error (exit 2).
    pub fn load(path: PathBuf) -> Result<Self, tokens::Error> {
        let text = read(&path)?;
        let file = TokensFile::parse(&text).map_err(|reason| tokens::Error::Invalid {
            path: path.clone(),
            reason,
        })?;
        Ok(TokenStore {
            path,
            current: RwLock::new((text, Arc::new(Verifier::from(&file)))),
        })
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// What requests are checked against.
    pub fn tokens(&self) -> Arc<Verifier> {
        self.current.read().expect("tokens lock poisoned").1.clone()
    }

    /// Re-reads the file; a changed, valid file replaces the tokens (returns true). A broken
    /// file keeps the tokens in force, so a bad edit cannot lock every client out.
    pub fn reload(&self) -> Result<bool, tokens::Error> {
        let text = read(&self.path)?;
        if self.current.read().expect("tokens lock poisoned").0 == text {
            return Ok(false);
        }
        let file = TokensFile::parse(&text).map_err(|reason| tokens::Error::Invalid {
            path: self.path.clone(),
            reason,
        })?;
        *self.current.write().expect("tokens lock poisoned") =
            (text, Arc::new(Verifier::from(&file)));
        Ok(true)
    }
}

fn read(path: &PathBuf) -> Result<String, tokens::Error> {
    std::fs::read_to_string(path).map_err(|source| tokens::Error::Read {
        path: path.clone(),
        source,
    })
}

/// Re-reads the tokens file every [`RELOAD_EVERY`] for as long as the BFF runs.
pub async fn keep_reloading(store: Arc<TokenStore>) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        match store.reload() {
            Ok(true) => tracing::info!(
                file = %store.path().display(),
                tokens = store.tokens().len(),
                "API tokens reloaded"
            ),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "API tokens not reloaded; the previous tokens stay in force")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fluo_jobs::tokens::Scope;

    use super::*;

    #[test]
    fn a_broken_reload_keeps_the_tokens_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let token = tokens::mint();
        let file = TokensFile {
            tokens: vec![tokens::Entry {
                name: "ci".into(),
                sha256: tokens::hash(&token),
                scopes: vec![Scope::JobsRead],
            }],
        };
        std::fs::write(&path, file.render()).unwrap();
        let store = TokenStore::load(path.clone()).unwrap();
        assert!(!store.reload().unwrap());
        std::fs::write(&path, "[[tokens]]\nname = 1\n").unwrap();
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("tokens.toml"), "{err}");
        assert!(store.tokens().verify(&token).is_some());
        std::fs::write(&path, TokensFile::default().render()).unwrap();
        assert!(store.reload().unwrap());
        assert!(store.tokens().verify(&token).is_none());
    }
}
