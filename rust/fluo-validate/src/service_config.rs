//! `service.config`: the BFF and worker containers of the manifests (as a deploy renders them)
//! go through the service's own validation, `fluo-bff --check-config=values` (or
//! fluo-worker's), with the container's literal env and args. A value the service would refuse
//! at start (a listen address, a ratio, a concurrency out of range) then stops the deploy
//! before anything is applied, with the service's own message. Values from Secrets or
//! ConfigMaps (`valueFrom`) and the files the config names are mounted in the cluster, so they
//! are not read here (the `ref.*` rules and `fluo-deploy diagnose` cover them).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::finding::Finding;
use crate::manifests::ManifestSet;
use crate::pods::{Container, PodTemplate};
use crate::rules::SERVICE_CONFIG;

/// Where the service binaries are looked for first (then beside the running program, then
/// `PATH`).
pub const BIN_DIR_VAR: &str = "FLUO_SERVICE_BIN_DIR";

/// Our services: the image name (last path segment, without tag) and the binary.
const SERVICES: [&str; 2] = ["fluo-bff", "fluo-worker"];

/// How long one check may take (it parses flags and exits).
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Findings of every service container of `set`, and notes on what could not be checked.
pub async fn check(set: &ManifestSet<'_>, search: &[PathBuf]) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    for object in &set.objects {
        let Some(template) = PodTemplate::of(&object.doc) else {
            continue;
        };
        for container in template.containers() {
            let Some(service) = service_of(container.value) else {
                continue;
            };
            let Some(binary) = search.iter().map(|d| d.join(service)).find(|p| p.is_file()) else {
                notes.push(format!(
                    "{} container {}: configuration not checked, {service} not found in {} \
                     (set {BIN_DIR_VAR}, or build it: cargo build -p {service})",
                    object.doc.display_name(),
                    container.name,
                    display_dirs(search)
                ));
                continue;
            };
            if let Some(message) = run_check(&binary, &container).await {
                let path = container.path.key("env");
                findings.push(SERVICE_CONFIG.at(&object.doc, path, message));
            }
        }
    }
    (findings, notes)
}

/// The directories searched for the service binaries: `$FLUO_SERVICE_BIN_DIR`, the running
/// program's directory (an install puts the binaries side by side), then `PATH`.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os(BIN_DIR_VAR)
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    dirs
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    let joined: OsString = std::env::join_paths(dirs).unwrap_or_default();
    joined.to_string_lossy().into_owned()
}

/// The service binary a container runs, from its image (`registry/fluo/fluo-bff:tag`).
fn service_of(container: &Value) -> Option<&'static str> {
    let image = container.get("image")?.as_str()?;
    let name = image.split('@').next()?.rsplit('/').next()?;
    let name = name.split(':').next()?;
    SERVICES.into_iter().find(|s| *s == name)
}

/// Runs the check; `None` when the service accepts the configuration, else the message.
async fn run_check(binary: &Path, container: &Container<'_>) -> Option<String> {
    let env = literal_env(container.value);
    let args: Vec<&str> = container
        .value
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("--check-config=values")
        .args(&args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    let output = match tokio::time::timeout(CHECK_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Some(format!("cannot run {}: {e}", binary.display())),
        Err(_) => return Some(format!("{name} --check-config did not answer in 20 s")),
    };
    if output.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim();
    let reason = reason.strip_prefix(&format!("{name}: ")).unwrap_or(reason);
    Some(format!(
        "{name} refuses the configuration of container {}: {reason}",
        container.name
    ))
}

/// The container's env entries with a literal `value` (valueFrom ones come from the cluster).
fn literal_env(container: &Value) -> Vec<(String, String)> {
    container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.get("name")?.as_str()?;
            let value = e.get("value")?.as_str()?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::docs;
    use serde_json::json;

    #[test]
    fn services_are_known_by_their_image_name() {
        let of = |image: &str| service_of(&json!({ "image": image }));
        assert_eq!(of("fluo/fluo-bff:dev"), Some("fluo-bff"));
        assert_eq!(
            of("reg:5000/fluo/fluo-worker@sha256:ab"),
            Some("fluo-worker")
        );
        assert_eq!(of("fluo/fluo-bff-proxy:1"), None);
        assert_eq!(of("nats:2.10"), None);
    }

    #[test]
    fn only_literal_values_are_passed() {
        let c = json!({"env": [
            {"name": "FLUO_BFF_LISTEN", "value": "0.0.0.0:8080"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ]});
        assert_eq!(
            literal_env(&c),
            vec![("FLUO_BFF_LISTEN".to_string(), "0.0.0.0:8080".to_string())]
        );
    }

    /// A stand-in for the service binary (the real ones are run by fluo-deploy's gate test):
    /// refuses FLUO_BFF_LISTEN=bad the way the services do, and proves it got the env cleared
    /// and `--check-config=values` first.
    fn stand_in(dir: &Path) {
        let path = dir.join("fluo-bff");
        std::fs::write(
            &path,
            "#!/bin/sh\n[ \"$1\" = --check-config=values ] || exit 9\n[ -z \"$HOME\" ] || exit 8\n\
             if [ \"$FLUO_BFF_LISTEN\" = bad ]; then echo 'fluo-bff: --listen (FLUO_BFF_LISTEN) \"bad\" is not a socket address' >&2; exit 2; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn set(listen: &str) -> ManifestSet<'static> {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bff}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: bff\n        image: fluo/fluo-bff:dev\n        env:\n        - {{name: FLUO_BFF_LISTEN, value: {listen}}}\n"
        );
        ManifestSet::new("fluo", vec![("bff".into(), docs(&yaml))])
    }

    #[tokio::test]
    async fn a_refused_value_is_a_finding_at_the_container_env_with_the_services_message() {
        let dir = tempfile::tempdir().unwrap();
        stand_in(dir.path());
        let search = vec![dir.path().to_path_buf()];
        let (findings, notes) = check(&set("bad"), &search).await;
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.rule, "service.config");
        assert_eq!(
            f.message,
            "fluo-bff refuses the configuration of container bff: --listen (FLUO_BFF_LISTEN) \"bad\" is not a socket address"
        );
        let location = f.location.as_ref().unwrap().to_string();
        assert!(
            location.ends_with("Deployment/bff spec.template.spec.containers[0].env"),
            "{location}"
        );
        let (findings, _) = check(&set("0.0.0.0:8080"), &search).await;
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_note_saying_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let (findings, notes) = check(&set("bad"), &[dir.path().to_path_buf()]).await;
        assert!(findings.is_empty());
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("fluo-bff not found") && notes[0].contains("cargo build -p fluo-bff"),
            "{}",
            notes[0]
        );
    }
}
