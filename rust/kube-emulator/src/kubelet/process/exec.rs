//! `kubectl exec` in the process runtime: a command in a running container's network, mount
//! and UTS namespaces (`nsenter --target <its pid>`), with the container's environment (read
//! from `/proc/<pid>/environ`) and its cgroup. No TTY: `-t` gets plain pipes.

use std::process::Stdio;

use serde_json::Value;
use tokio::process::{Child, Command};

use super::launch::sh_quote;

/// The pid of a running container, from its status (`containerID` is
/// `kube-emulator-process://<pid>`); Err names why there is none.
pub fn container_pid(pod: &Value, container: &str) -> Result<u32, String> {
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == container)
        .ok_or_else(|| format!("container {container} has no status yet"))?;
    if !status["state"]["running"].is_object() {
        return Err(format!("container {container} is not running"));
    }
    status["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("kube-emulator-process://"))
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| format!("container {container} has no process id"))
}

/// The container's environment, as its process was started with it.
fn environ(pid: u32) -> std::io::Result<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect())
}

/// Starts `argv` in the container of process `pid`; stdout/stderr piped, stdin piped when asked.
pub fn spawn(pid: u32, argv: &[String], stdin: bool) -> std::io::Result<Child> {
    let env = environ(pid)?;
    // Join the container's cgroup first, so its memory limit covers the command too.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let join = super::cgroup::join_file_of(&cgroup);
    let mut script = String::new();
    if let Some(p) = join {
        script.push_str(&format!(
            "echo 0 > {} || exit 126\n",
            sh_quote(&p.to_string_lossy())
        ));
    }
    script.push_str("exec \"$@\"\n");
    Command::new("nsenter")
        .arg(format!("--target={pid}"))
        .args(["--net", "--mount", "--uts", "--", "/bin/sh", "-c", &script])
        .arg("kube-emulator-exec")
        .args(argv)
        .env_clear()
        .envs(env)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pid_comes_from_a_running_containers_status() {
        let pod = json!({"status": {"containerStatuses": [
            {"name": "app", "state": {"running": {}}, "containerID": "kube-emulator-process://4242"},
            {"name": "side", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        assert_eq!(container_pid(&pod, "app"), Ok(4242));
        assert_eq!(
            container_pid(&pod, "side"),
            Err("container side is not running".into())
        );
        assert!(container_pid(&pod, "nope").is_err());
    }
}
