//! Host paths the emulator had to create (mount points for pod volumes that do not exist on the
//! host), recorded in the slot directory so that they are removed on exit, also by the next
//! run after a SIGKILL.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

const RECORD: &str = "created-paths";

/// Creates `path` (a directory, or an empty file when `file`) and its missing parents,
/// recording each one it created under `slot_dir`.
pub fn create(slot_dir: &Path, path: &Path, file: bool) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut p = path;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    let mut record = OpenOptions::new()
        .create(true)
        .append(true)
        .open(slot_dir.join(RECORD))?;
    for (i, m) in missing.iter().rev().enumerate() {
        // Record before creating, so a crash in between still cleans up.
        writeln!(record, "{}", m.display())?;
        let last = i + 1 == missing.len();
        if last && file {
            fs::File::create(m)?;
        } else {
            fs::create_dir(m)?;
        }
    }
    Ok(())
}

/// Removes the recorded paths, newest first, only while they are empty.
pub fn remove_recorded(slot_dir: &Path) {
    let Ok(text) = fs::read_to_string(slot_dir.join(RECORD)) else {
        return;
    };
    for line in text.lines().rev() {
        let p = Path::new(line);
        let removed = if p.is_dir() {
            fs::remove_dir(p)
        } else if fs::metadata(p).is_ok_and(|m| m.len() == 0) {
            fs::remove_file(p)
        } else {
            continue;
        };
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = line, "removing a created mount point");
        }
    }
    let _ = fs::remove_file(slot_dir.join(RECORD));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_paths_are_removed_newest_first() {
        let slot = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("a/b/c.conf");
        create(slot.path(), &target, true).unwrap();
        assert!(target.is_file());
        create(slot.path(), &root.path().join("a/d"), false).unwrap();
        remove_recorded(slot.path());
        assert!(!root.path().join("a").exists());
        assert!(root.path().exists(), "pre-existing paths stay");
    }
}
