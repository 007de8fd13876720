//! A pod's files on the host: its volumes (ConfigMap, Secret, emptyDir, downward API, projected
//! incl. the service-account token, PersistentVolumeClaim), `/etc/resolv.conf` and `/etc/hosts`,
//! under the pod's directory; and the bind mounts each container gets.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::env::{PodFacts, field, resource, values_of};
use crate::apiserver::resources::by_kind;
use crate::apiserver::store::State;

/// Where the service-account volume appears, as on a real node.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// One bind mount into a container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// The DNS and name files every container sees.
pub struct ClusterDns<'a> {
    pub nameserver: &'a str,
    pub domain: &'a str,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
    }
    fs::write(path, bytes).map_err(|e| io_err("writing", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_err("chmod", path, e))
}

/// Writes resolv.conf and hosts for the pod into `dir`.
pub fn write_name_files(
    dir: &Path,
    pod: &Value,
    pod_ip: &str,
    dns: &ClusterDns<'_>,
) -> Result<(), String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let hostname = pod["spec"]["hostname"].as_str().unwrap_or(name);
    let d = dns.domain;
    let resolv = format!(
        "nameserver {}\nsearch {ns}.svc.{d} svc.{d} {d}\noptions ndots:5\n",
        dns.nameserver
    );
    let fqdn = match pod["spec"]["subdomain"].as_str() {
        Some(sub) => format!("{hostname}.{sub}.{ns}.svc.{d} "),
        None => String::new(),
    };
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{pod_ip}\t{fqdn}{hostname}\n"
    );
    write_file(&dir.join("resolv.conf"), resolv.as_bytes(), 0o644)?;
    write_file(&dir.join("hosts"), hosts.as_bytes(), 0o644)
}

/// Items of a ConfigMap/Secret volume: all keys, or the listed `items` (key -> path).
pub(super) fn project_items(
    kind: &str,
    obj: &Value,
    items: &Value,
    out: &Path,
    mode: u32,
) -> Result<(), String> {
    let values = values_of(kind, obj);
    match items.as_array() {
        Some(items) => {
            for item in items {
                let key = item["key"].as_str().unwrap_or("");
                let path = item["path"].as_str().unwrap_or(key);
                let bytes = values
                    .get(key)
                    .ok_or_else(|| format!("couldn't find key {key} in {kind}"))?;
                let m = item["mode"].as_u64().map_or(mode, |m| m as u32);
                write_file(&out.join(path), bytes, m)?;
            }
        }
        None => {
            for (k, v) in &values {
                write_file(&out.join(k), v, mode)?;
            }
        }
    }
    Ok(())
}

/// Fetches a ConfigMap/Secret; Ok(None) when it is missing and optional.
pub(super) fn source_object(
    state: &State,
    kind: &str,
    ns: &str,
    src: &Value,
    name_key: &str,
) -> Result<Option<Value>, String> {
    let def = by_kind("", kind).expect("core kinds are served");
    let name = src[name_key].as_str().unwrap_or("");
    match state.get(def, ns, name) {
        Some(o) => Ok(Some(o.clone())),
        None if src["optional"] == true => Ok(None),
        None => Err(format!("{} \"{name}\" not found", kind.to_lowercase())),
    }
}

fn downward_items(
    facts: &PodFacts<'_>,
    container_of: &dyn Fn(&str) -> Value,
    items: &Value,
    out: &Path,
) -> Result<(), String> {
    for item in items.as_array().into_iter().flatten() {
        let path = item["path"].as_str().unwrap_or("");
        let value = if let Some(fp) = item["fieldRef"]["fieldPath"].as_str() {
            field(facts, fp).ok_or_else(|| format!("unsupported fieldPath {fp:?}"))?
        } else {
            let r = &item["resourceFieldRef"];
            let c = container_of(r["containerName"].as_str().unwrap_or(""));
            resource(
                &c,
                r["resource"].as_str().unwrap_or(""),
                r["divisor"].as_str(),
            )
            .ok_or_else(|| format!("unsupported resourceFieldRef in {path}"))?
        };
        write_file(&out.join(path), value.as_bytes(), 0o644)?;
    }
    Ok(())
}

/// What a pod's volumes need besides the store.
pub struct VolumeContext<'a> {
    pub facts: PodFacts<'a>,
    /// The in-cluster CA bundle for `ca.crt` (empty when the API has no TLS endpoint).
    pub ca_crt: &'a [u8],
    /// Where PersistentVolumeClaims keep their data (per claim, lives as long as the emulator).
    pub claims_dir: &'a Path,
}

/// Materializes every volume of the pod under `dir/volumes/<name>`; returns the host path per
/// volume name. A missing ConfigMap/Secret fails with the kubelet's message.
pub fn materialize(
    state: &State,
    ctx: &VolumeContext<'_>,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>, String> {
    let pod = ctx.facts.pod;
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let container_of = |name: &str| {
        containers
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut volumes: Vec<Value> = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if pod["spec"]["automountServiceAccountToken"] != false {
        volumes.push(serde_json::json!({"name": "kube-emulator-service-account", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}], "optional": true}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
        ]}}));
    }
    for v in &volumes {
        let name = v["name"].as_str().unwrap_or("");
        let target = dir.join("volumes").join(name);
        if !v["persistentVolumeClaim"].is_null() {
            let claim = v["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap_or("");
            let path = ctx.claims_dir.join(ns).join(claim);
            fs::create_dir_all(&path).map_err(|e| io_err("creating", &path, e))?;
            open_to_all(&path)?;
            out.push((name.to_string(), path));
            continue;
        }
        let mode = |src: &Value| src["defaultMode"].as_u64().map_or(0o644, |m| m as u32);
        if !v["emptyDir"].is_null() || !v["hostPath"].is_null() {
            // Lives as long as the pod: its containers share it, restarts keep it.
            fs::create_dir_all(&target).map_err(|e| io_err("creating", &target, e))?;
            open_to_all(&target)?;
        } else {
            // Rebuilt on every container start, so a changed ConfigMap shows on restart;
            // emptied in place, not replaced, so that the pod's running containers (bind
            // mounts of this directory) see it and the updates of `volume_sync`.
            empty_dir(&target)?;
        }
        if let Some(src) = v.get("configMap").filter(|s| !s.is_null()) {
            if let Some(obj) = source_object(state, "ConfigMap", ns, src, "name")? {
                project_items("ConfigMap", &obj, &src["items"], &target, mode(src))?;
            }
        } else if let Some(src) = v.get("secret").filter(|s| !s.is_null()) {
            if let Some(obj) = source_object(state, "Secret", ns, src, "secretName")? {
                project_items("Secret", &obj, &src["items"], &target, mode(src))?;
            }
        } else if let Some(src) = v.get("downwardAPI").filter(|s| !s.is_null()) {
            downward_items(&ctx.facts, &container_of, &src["items"], &target)?;
        } else if let Some(src) = v.get("projected").filter(|s| !s.is_null()) {
            for s in src["sources"].as_array().into_iter().flatten() {
                if let Some(sa) = s.get("serviceAccountToken") {
                    let path = sa["path"].as_str().unwrap_or("token");
                    write_file(
                        &target.join(path),
                        service_account_token(pod).as_bytes(),
                        0o644,
                    )?;
                } else if let Some(cm) = s.get("configMap") {
                    if cm["name"] == "kube-root-ca.crt" {
                        write_file(&target.join("ca.crt"), ctx.ca_crt, 0o644)?;
                    } else if let Some(obj) = source_object(state, "ConfigMap", ns, cm, "name")? {
                        project_items("ConfigMap", &obj, &cm["items"], &target, 0o644)?;
                    }
                } else if let Some(sec) = s.get("secret") {
                    if let Some(obj) = source_object(state, "Secret", ns, sec, "name")? {
                        project_items("Secret", &obj, &sec["items"], &target, 0o644)?;
                    }
                } else if let Some(d) = s.get("downwardAPI") {
                    downward_items(&ctx.facts, &container_of, &d["items"], &target)?;
                }
            }
        }
        if let Some(gid) = pod["spec"]["securityContext"]["fsGroup"].as_u64()
            && v["hostPath"].is_null()
        {
            apply_fs_group(&target, gid as u32)?;
        }
        out.push((name.to_string(), target));
    }
    Ok(out)
}

/// Makes `path` an empty directory, keeping the directory itself when it exists.
fn empty_dir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| io_err("creating", path, e))?;
    for entry in fs::read_dir(path).map_err(|e| io_err("reading", path, e))? {
        let entry = entry.map_err(|e| io_err("reading", path, e))?;
        let p = entry.path();
        let removed = match entry
            .file_type()
            .map_err(|e| io_err("reading", &p, e))?
            .is_dir()
        {
            true => fs::remove_dir_all(&p),
            false => fs::remove_file(&p),
        };
        removed.map_err(|e| io_err("removing", &p, e))?;
    }
    Ok(())
}

/// The bearer token pods present: the emulator does not authenticate, so it only names the
/// service account (never a secret of anyone's).
fn service_account_token(pod: &Value) -> String {
    format!(
        "kube-emulator:serviceaccount:{}:{}",
        pod["metadata"]["namespace"].as_str().unwrap_or(""),
        pod["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or("default")
    )
}

/// fsGroup as the kubelet applies it to the volumes it writes: the group owns every file and
/// directory and may read them (a Secret at defaultMode 0400 becomes 0440), directories are
/// setgid; so a non-root container in that group reads what root-only modes would hide.
pub(super) fn apply_fs_group(path: &Path, gid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path).map_err(|e| io_err("reading", path, e))?;
    std::os::unix::fs::lchown(path, None, Some(gid)).map_err(|e| io_err("chown", path, e))?;
    let mode = meta.mode() & 0o7777;
    if meta.is_dir() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o2550))
            .map_err(|e| io_err("chmod", path, e))?;
        for entry in fs::read_dir(path).map_err(|e| io_err("reading", path, e))? {
            let entry = entry.map_err(|e| io_err("reading", path, e))?;
            apply_fs_group(&entry.path(), gid)?;
        }
    } else if meta.is_file() {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o440))
            .map_err(|e| io_err("chmod", path, e))?;
    }
    Ok(())
}

/// Writable volumes are open to every uid, since containers may run as any runAsUser.
fn open_to_all(path: &Path) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o1777))
        .map_err(|e| io_err("chmod", path, e))
}

/// The bind mounts of one container: its volumeMounts (subPath, readOnly), the
/// service-account volume, resolv.conf and hosts.
pub fn container_mounts(
    pod_dir: &Path,
    volumes: &[(String, PathBuf)],
    container: &Value,
) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("");
        let (_, source) = volumes
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("volumeMount {name:?} names no volume of the pod"))?;
        let mut source = source.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            if sub.split('/').any(|part| part == "..") {
                return Err(format!("subPath {sub:?} must not contain '..'"));
            }
            source = source.join(sub);
        }
        mounts.push(Mount {
            source,
            target: PathBuf::from(m["mountPath"].as_str().unwrap_or("")),
            read_only: m["readOnly"] == true,
        });
    }
    let has_sa_mount = mounts
        .iter()
        .any(|m| m.target == Path::new(SERVICE_ACCOUNT_DIR));
    if let Some((_, sa)) = volumes
        .iter()
        .find(|(n, _)| n == "kube-emulator-service-account")
        && !has_sa_mount
    {
        mounts.push(Mount {
            source: sa.clone(),
            target: PathBuf::from(SERVICE_ACCOUNT_DIR),
            read_only: true,
        });
    }
    for file in ["resolv.conf", "hosts"] {
        mounts.push(Mount {
            source: pod_dir.join(file),
            target: Path::new("/etc").join(file),
            read_only: true,
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_files_carry_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let pod = json!({"metadata": {"name": "web-0", "namespace": "fluo"},
            "spec": {"hostname": "web-0", "subdomain": "web"}});
        let dns = ClusterDns {
            nameserver: "10.96.3.10",
            domain: "cluster.local",
        };
        write_name_files(dir.path(), &pod, "10.244.3.2", &dns).unwrap();
        let resolv = fs::read_to_string(dir.path().join("resolv.conf")).unwrap();
        assert!(resolv.contains("nameserver 10.96.3.10\n"), "{resolv}");
        assert!(
            resolv.contains("search fluo.svc.cluster.local svc.cluster.local cluster.local\n"),
            "{resolv}"
        );
        let hosts = fs::read_to_string(dir.path().join("hosts")).unwrap();
        assert!(
            hosts.contains("10.244.3.2\tweb-0.web.fluo.svc.cluster.local web-0\n"),
            "{hosts}"
        );
    }

    #[test]
    fn fs_group_owns_and_may_read_a_root_only_secret() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("auth");
        write_file(&secret.join("nested/password"), b"pw", 0o400).unwrap();
        apply_fs_group(&secret, 65532).unwrap();
        let file = fs::metadata(secret.join("nested/password")).unwrap();
        assert_eq!((file.gid(), file.mode() & 0o7777), (65532, 0o440));
        let nested = fs::metadata(secret.join("nested")).unwrap();
        assert_eq!(nested.gid(), 65532);
        assert_eq!(nested.mode() & 0o2550, 0o2550);
    }

    #[test]
    fn mounts_follow_volume_mounts() {
        let pod_dir = Path::new("/run/p");
        let volumes = vec![
            ("config".to_string(), PathBuf::from("/run/p/volumes/config")),
            (
                "kube-emulator-service-account".to_string(),
                PathBuf::from("/run/p/volumes/sa"),
            ),
        ];
        let c = json!({"volumeMounts": [{"name": "config", "mountPath": "/etc/app/app.conf", "subPath": "app.conf", "readOnly": true}]});
        let mounts = container_mounts(pod_dir, &volumes, &c).unwrap();
        assert_eq!(
            mounts[0].source,
            Path::new("/run/p/volumes/config/app.conf")
        );
        assert!(mounts[0].read_only);
        assert_eq!(mounts[1].target, Path::new(SERVICE_ACCOUNT_DIR));
        assert_eq!(mounts[2].target, Path::new("/etc/resolv.conf"));
        let bad = json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]});
        assert!(
            container_mounts(pod_dir, &volumes, &bad)
                .unwrap_err()
                .contains("\"nope\"")
        );
    }
}
