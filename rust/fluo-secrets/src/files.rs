//! Writing secret material: new files are created 0600, and an existing file is only replaced
//! when the caller says so.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path} already exists; remove it or choose another --out")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `contents` to a new file `path` (mode 0600); refuses an existing file.
pub fn write_new(path: &Path, contents: &str) -> Result<(), Error> {
    let err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Exists {
                path: path.to_owned(),
            }
        } else {
            Error::Write {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)
}

/// Replaces `path` atomically (write a temp file next to it, then rename), mode 0600.
pub fn replace(path: &Path, contents: &str) -> Result<(), Error> {
    let temp = path.with_extension("fluo-secrets.tmp");
    let _ = std::fs::remove_file(&temp);
    write_new(&temp, contents)?;
    std::fs::rename(&temp, path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// Every path `names` would write in `dir`, refused up front when one exists, so a run
/// writes all of its files or none.
pub fn check_free(dir: &Path, names: &[&str]) -> Result<(), Error> {
    for name in names {
        let path = dir.join(name);
        if path.exists() {
            return Err(Error::Exists { path });
        }
    }
    Ok(())
}
