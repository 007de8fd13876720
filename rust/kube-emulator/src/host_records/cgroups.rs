//! The instance's cgroups, recorded in the slot directory before they are created (by the
//! process runtime's memory limits, `kubelet::process::cgroup`), and their removal.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The record in the slot directory: the instance's base cgroup path.
pub const RECORD: &str = "cgroup";

/// Removes the cgroup tree recorded in `slot_dir` (the slot's cleanup, also after a SIGKILL).
pub fn remove_recorded(slot_dir: &Path) {
    let record = slot_dir.join(RECORD);
    if let Ok(base) = fs::read_to_string(&record) {
        let base = Path::new(base.trim());
        // Only what the process runtime creates: a `kube-emulator-<slot>` directory of a cgroup mount.
        let ours = base.starts_with("/sys/fs/cgroup")
            && base
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kube-emulator-"));
        if ours {
            remove_tree(base);
        }
    }
    let _ = fs::remove_file(record);
}

/// Depth first: SIGKILLs each cgroup's processes, then removes it once they are gone.
pub fn remove_tree(dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        let pids = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if !pids.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&pids).output();
        }
        match fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return,
        }
    }
    tracing::warn!(cgroup = %dir.display(), "a cgroup could not be removed");
}
