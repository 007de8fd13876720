//! Host paths the emulator had to create (mount points for pod volumes that do not exist on the
//! host), recorded in the slot directory so that they are removed on exit, also by the next
//! run after a SIGKILL.
//!
//! Emulators share the host's filesystem, and two of them (or two pods of one) may need the
//! same mount point at once (both run NATS with its volume at `/data`). So the records are kept
//! under one lock for all slots (`<run dir>/created-paths.lock`): a slot that finds a path
//! another slot created records it too, and a path is removed only by the last slot that
//! records it. Without that, the first emulator to exit removed `/data` from under the other's
//! running NATS (an rmdir on the host detaches the bind mounts of other mount namespaces), which
//! then failed with "mkdir /data: permission denied"; and two pods creating the same path at
//! once failed their start with "File exists (os error 17)".

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

const RECORD: &str = "created-paths";
const LOCK: &str = "created-paths.lock";

/// The lock over every slot's record, held while a record is read against the others and
/// changed (the kernel drops it if the process dies).
fn lock_records(slot_dir: &Path) -> std::io::Result<File> {
    let run_dir = slot_dir.parent().unwrap_or(slot_dir);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(run_dir.join(LOCK))?;
    lock.lock()?;
    Ok(lock)
}

fn read_record(slot_dir: &Path) -> Vec<PathBuf> {
    fs::read_to_string(slot_dir.join(RECORD))
        .unwrap_or_default()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// The paths every other slot (a sibling of `slot_dir`) records.
fn recorded_by_others(slot_dir: &Path) -> HashSet<PathBuf> {
    let run_dir = slot_dir.parent().unwrap_or(slot_dir);
    let Ok(entries) = fs::read_dir(run_dir) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != slot_dir && p.is_dir())
        .flat_map(|p| read_record(&p))
        .collect()
}

/// Makes sure `path` (a directory, or an empty file when `file`) and its parents exist,
/// recording under `slot_dir` each one it created and each one another slot created.
pub fn create(slot_dir: &Path, path: &Path, file: bool) -> std::io::Result<()> {
    if path.exists() && read_record(slot_dir).iter().any(|p| p == path) {
        return Ok(());
    }
    let _lock = lock_records(slot_dir)?;
    let own: HashSet<PathBuf> = read_record(slot_dir).into_iter().collect();
    let others = recorded_by_others(slot_dir);
    let mut record = OpenOptions::new()
        .create(true)
        .append(true)
        .open(slot_dir.join(RECORD))?;
    // Outermost first, so that removal (newest first) empties children before parents.
    let chain: Vec<&Path> = path.ancestors().collect();
    for (i, p) in chain.iter().enumerate().rev() {
        if own.contains(*p) {
            continue;
        }
        if p.exists() {
            if others.contains(*p) {
                writeln!(record, "{}", p.display())?;
            }
            continue;
        }
        // Record before creating, so a crash in between still cleans up.
        writeln!(record, "{}", p.display())?;
        let made = if i == 0 && file {
            File::create_new(p).map(drop)
        } else {
            fs::create_dir(p)
        };
        // Someone outside the emulators' lock (or the host) made it meanwhile: it exists.
        match made {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes the recorded paths no other slot records, newest first, only while they are empty.
pub fn remove_recorded(slot_dir: &Path) {
    if !slot_dir.join(RECORD).exists() {
        return;
    }
    let lock = lock_records(slot_dir);
    if let Err(e) = &lock {
        tracing::warn!(error = %e, "locking the created mount points; removing them unlocked");
    }
    let others = recorded_by_others(slot_dir);
    for p in read_record(slot_dir).iter().rev() {
        if others.contains(p) {
            continue;
        }
        let removed = if p.is_dir() {
            fs::remove_dir(p)
        } else if fs::metadata(p).is_ok_and(|m| m.len() == 0) {
            fs::remove_file(p)
        } else {
            continue;
        };
        if let Err(e) = removed
            && e.kind() != ErrorKind::NotFound
            && e.kind() != ErrorKind::DirectoryNotEmpty
        {
            tracing::warn!(error = %e, path = %p.display(), "removing a created mount point");
        }
    }
    let _ = fs::remove_file(slot_dir.join(RECORD));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let run = tempfile::tempdir().unwrap();
        let (a, b) = (run.path().join("1"), run.path().join("2"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        (run, a, b)
    }

    #[test]
    fn created_paths_are_removed_newest_first() {
        let (_run, slot, _) = slots();
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("a/b/c.conf");
        create(&slot, &target, true).unwrap();
        assert!(target.is_file());
        create(&slot, &root.path().join("a/d"), false).unwrap();
        remove_recorded(&slot);
        assert!(!root.path().join("a").exists());
        assert!(root.path().exists(), "pre-existing paths stay");
    }

    #[test]
    fn a_path_two_emulators_use_is_removed_by_the_last_one() {
        let (_run, a, b) = slots();
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        create(&a, &data, false).unwrap();
        // The second emulator finds it made by the first, and relies on it too.
        create(&b, &data, false).unwrap();
        create(&b, &data.join("inner"), false).unwrap();
        remove_recorded(&a);
        assert!(data.is_dir(), "the first to exit left what the second uses");
        remove_recorded(&b);
        assert!(!data.exists(), "the last one removed it");
        assert!(root.path().exists());
    }

    #[test]
    fn pods_creating_one_path_at_once_all_start() {
        let (_run, a, b) = slots();
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("etc/nats-auth/users.conf");
        let results: Vec<std::io::Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (slot, target) = (if i % 2 == 0 { &a } else { &b }, &target);
                    s.spawn(move || create(slot, target, true))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.expect("no start fails with File exists");
        }
        assert!(target.is_file());
        remove_recorded(&b);
        remove_recorded(&a);
        assert!(!root.path().join("etc").exists());
    }
}
