//! Secret and ConfigMap volumes follow their source while the pod runs, as the kubelet's
//! periodic sync does (on a real node within about a minute; here every [`PERIOD`]): the
//! volume is projected again beside the mounted one and each changed key is renamed over the
//! old file, so containers read the new content at the same path without a restart (nats-server
//! reloading its users, for one). subPath mounts keep their content, as on a real node; a
//! source that is gone leaves the files as they are.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::PodContext;
use super::volumes::{apply_fs_group, project_items, source_object};

/// How often the volumes are compared with their sources.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Syncs the pod's Secret and ConfigMap volumes until `stop` carries a grace period.
pub async fn run(ctx: Arc<PodContext>, mut stop: watch::Receiver<Option<Duration>>) {
    let mut synced = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(PERIOD) => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
        if stop.borrow().is_some() {
            return;
        }
        if let Err(e) = sync(&ctx, &mut synced) {
            tracing::warn!(pod = %ctx.name, namespace = %ctx.namespace, "volume sync: {e}");
        }
    }
}

/// The kind, source and name field of a Secret or ConfigMap volume.
fn source(volume: &Value) -> Option<(&'static str, &Value, &'static str)> {
    match (&volume["secret"], &volume["configMap"]) {
        (s, _) if s.is_object() => Some(("Secret", s, "secretName")),
        (_, c) if c.is_object() => Some(("ConfigMap", c, "name")),
        _ => None,
    }
}

/// Projects each source whose resourceVersion changed since the last look (`synced`: volume ->
/// version), so an unchanged source costs a lookup and never touches the pod's files. The
/// first look projects too: the source may have changed since the container start projected
/// it, and only files whose content differs are replaced.
fn sync(ctx: &PodContext, synced: &mut HashMap<String, String>) -> Result<(), String> {
    let volumes_dir = ctx.dir.join("volumes");
    let gid = ctx.pod["spec"]["securityContext"]["fsGroup"].as_u64();
    for v in ctx.pod["spec"]["volumes"].as_array().into_iter().flatten() {
        let Some((kind, src, name_key)) = source(v) else {
            continue;
        };
        let name = v["name"].as_str().unwrap_or("");
        let target = volumes_dir.join(name);
        // Not materialized yet: the container start projects it.
        if !target.is_dir() {
            continue;
        }
        let staged = volumes_dir.join(format!(".{name}.sync"));
        let projected = {
            let state = ctx.store.lock();
            let mode = src["defaultMode"].as_u64().map_or(0o644, |m| m as u32);
            match source_object(&state, kind, &ctx.namespace, src, name_key) {
                Ok(Some(obj)) => {
                    let version = obj["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    match synced.insert(name.to_string(), version.clone()) {
                        Some(before) if before == version => Ok(false),
                        _ => {
                            let _ = fs::remove_dir_all(&staged);
                            fs::create_dir_all(&staged)
                                .map_err(|e| format!("creating {}: {e}", staged.display()))
                                .and_then(|()| {
                                    project_items(kind, &obj, &src["items"], &staged, mode)
                                })
                                .map(|()| true)
                        }
                    }
                }
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            }
        };
        let result = match projected {
            Ok(true) => gid
                .map_or(Ok(()), |g| apply_fs_group(&staged, g as u32))
                .and_then(|()| replace_changed(&staged, &target)),
            Ok(false) => Ok(()),
            // A missing source keeps the files (the kubelet's behaviour too).
            Err(e) if e.ends_with("not found") => Ok(()),
            Err(e) => Err(format!("volume {name}: {e}")),
        };
        let _ = fs::remove_dir_all(&staged);
        result?;
    }
    Ok(())
}

/// Moves every file of `staged` whose content or mode differs into `target` (a rename, so a
/// reader sees the old or the new file, never a half-written one) and removes the files of
/// `target` that `staged` no longer has.
fn replace_changed(staged: &Path, target: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let err = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let entries = |dir: &Path| -> Result<Vec<fs::DirEntry>, String> {
        fs::read_dir(dir)
            .map_err(|e| err("reading", dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| err("reading", dir, e))
    };
    let staged_entries = entries(staged)?;
    let keep: Vec<std::ffi::OsString> = staged_entries.iter().map(|e| e.file_name()).collect();
    for entry in staged_entries {
        let (from, to) = (entry.path(), target.join(entry.file_name()));
        if from.is_dir() {
            fs::create_dir_all(&to).map_err(|e| err("creating", &to, e))?;
            replace_changed(&from, &to)?;
            continue;
        }
        let same = |p: &Path| {
            (
                fs::read(p).ok(),
                fs::metadata(p).ok().map(|m| m.permissions().mode()),
            )
        };
        if same(&from) != same(&to) {
            fs::rename(&from, &to).map_err(|e| err("replacing", &to, e))?;
        }
    }
    for entry in entries(target)? {
        let p = entry.path();
        if !keep.contains(&entry.file_name()) {
            let removed = match p.is_dir() {
                true => fs::remove_dir_all(&p),
                false => fs::remove_file(&p),
            };
            removed.map_err(|e| err("removing", &p, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_renamed_in_and_gone_keys_removed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (staged, target) = (dir.path().join("staged"), dir.path().join("target"));
        for d in [&staged, &target] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(target.join("same"), "1").unwrap();
        fs::write(target.join("changed"), "old").unwrap();
        fs::write(target.join("gone"), "x").unwrap();
        fs::write(staged.join("same"), "1").unwrap();
        fs::write(staged.join("changed"), "new").unwrap();
        fs::write(staged.join("added"), "a").unwrap();
        // A reader holding the old file keeps reading the old content (a rename, not a write).
        let held = fs::File::open(target.join("changed")).unwrap();
        let same_inode =
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(target.join("same")).unwrap());
        replace_changed(&staged, &target).unwrap();
        assert_eq!(fs::read_to_string(target.join("changed")).unwrap(), "new");
        assert_eq!(fs::read_to_string(target.join("added")).unwrap(), "a");
        assert!(!target.join("gone").exists());
        let mut old = String::new();
        std::io::Read::read_to_string(&mut &held, &mut old).unwrap();
        assert_eq!(old, "old");
        // An unchanged file is left alone.
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&fs::metadata(target.join("same")).unwrap()),
            same_inode
        );
    }
}
