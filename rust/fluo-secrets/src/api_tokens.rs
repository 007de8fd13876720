//! Adding and removing BFF API tokens. A rotation is `add` (new token, same name) then, once
//! every client uses the new token, `remove --id <old id>`: in between both are accepted,
//! because the BFF re-reads the tokens file when the mounted Secret changes.

use std::path::{Path, PathBuf};

use fluo_jobs::tokens::{self, Entry, Scope, TokensFile};

use crate::files;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tokens(#[from] tokens::Error),
    #[error(transparent)]
    File(#[from] files::Error),
    #[error("no token with id {id} in {path} (see: fluo-secrets token list --file {path})")]
    UnknownId { id: String, path: PathBuf },
    #[error("--name must be non-empty printable text")]
    Name,
    #[error("--scopes must name at least one scope (jobs:submit, jobs:read)")]
    NoScopes,
}

/// The file at `path`, or an empty one when it does not exist yet.
fn load_or_empty(path: &Path) -> Result<TokensFile, Error> {
    if path.exists() {
        Ok(TokensFile::load(path)?)
    } else {
        Ok(TokensFile::default())
    }
}

/// Mints a token for `name` with `scopes`, writes it to the new file `token_out` (0600) and
/// its hash to the tokens file. Nothing is written when any step would fail.
pub fn add(path: &Path, name: &str, scopes: &[Scope], token_out: &Path) -> Result<Entry, Error> {
    if name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(Error::Name);
    }
    if scopes.is_empty() {
        return Err(Error::NoScopes);
    }
    let mut file = load_or_empty(path)?;
    if token_out.exists() {
        return Err(files::Error::Exists {
            path: token_out.to_owned(),
        }
        .into());
    }
    let token = tokens::mint();
    let entry = Entry {
        name: name.to_owned(),
        sha256: tokens::hash(&token),
        scopes: scopes.to_vec(),
    };
    file.tokens.push(entry.clone());
    files::write_new(token_out, &format!("{token}\n"))?;
    if let Err(err) = files::replace(path, &file.render()) {
        let _ = std::fs::remove_file(token_out);
        return Err(err.into());
    }
    Ok(entry)
}

/// Removes the entry whose id is `id`; returns it.
pub fn remove(path: &Path, id: &str) -> Result<Entry, Error> {
    let mut file = TokensFile::load(path)?;
    let index = file
        .tokens
        .iter()
        .position(|e| e.id() == id)
        .ok_or_else(|| Error::UnknownId {
            id: id.to_owned(),
            path: path.to_owned(),
        })?;
    let entry = file.tokens.remove(index);
    files::replace(path, &file.render())?;
    Ok(entry)
}

/// One line per entry: id, name, scopes (never a hash in full, never a token).
pub fn list(path: &Path) -> Result<Vec<String>, Error> {
    Ok(TokensFile::load(path)?
        .tokens
        .iter()
        .map(|e| {
            let scopes: Vec<_> = e.scopes.iter().map(|s| s.as_str()).collect();
            format!("{}  {}  {}", e.id(), e.name, scopes.join(","))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_writes_the_token_once_and_only_its_hash_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        let out = dir.path().join("smoke.token");
        let entry = add(&file, "smoke", &Scope::ALL, &out).unwrap();
        let token = std::fs::read_to_string(&out).unwrap().trim().to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&token));
        assert_eq!(tokens::hash(&token), entry.sha256);
        let loaded = TokensFile::load(&file).unwrap();
        assert_eq!(loaded.verify(&token).unwrap().name, "smoke");
        use std::os::unix::fs::PermissionsExt;
        for path in [&file, &out] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        // A second add to the same token file is refused and leaves the tokens file alone.
        let err = add(&file, "other", &Scope::ALL, &out).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("already exists; remove it or choose another --out")
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn rotation_keeps_both_until_the_old_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.toml");
        let old = add(&file, "ci", &[Scope::JobsRead], &dir.path().join("old")).unwrap();
        let new = add(&file, "ci", &[Scope::JobsRead], &dir.path().join("new")).unwrap();
        let read = |name: &str| {
            std::fs::read_to_string(dir.path().join(name))
                .unwrap()
                .trim()
                .to_owned()
        };
        let both = TokensFile::load(&file).unwrap();
        assert!(both.verify(&read("old")).is_some() && both.verify(&read("new")).is_some());
        assert_eq!(list(&file).unwrap().len(), 2);
        remove(&file, old.id()).unwrap();
        let after = TokensFile::load(&file).unwrap();
        assert!(after.verify(&read("old")).is_none());
        assert!(after.verify(&read("new")).is_some());
        assert_eq!(
            list(&file).unwrap(),
            vec![format!("{}  ci  jobs:read", new.id())]
        );
        let err = remove(&file, "000000000000").unwrap_err().to_string();
        assert!(
            err.starts_with("no token with id 000000000000 in "),
            "{err}"
        );
    }
}
