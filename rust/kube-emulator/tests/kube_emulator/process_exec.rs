//! `kubectl exec` (the real kubectl 1.32, WebSocket `v5.channel.k8s.io`) against the process
//! runtime: the command runs in the pod's network, mount and UTS namespaces and in the
//! container's cgroup, with its environment; stdout, stderr and stdin travel over the
//! channels and the exit code comes back through the status channel. Needs root.

use std::process::Stdio;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::kubectl_cli::require_kubectl;
use super::process::*;
use super::support::*;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn kubectl_exec(kubeconfig: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Out {
    let cache = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .arg("exec")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes()).await.unwrap();
    }
    let out = within(WAIT, "kubectl exec", child.wait_with_output())
        .await
        .unwrap();
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[tokio::test]
async fn kubectl_exec_runs_in_the_pods_namespaces_and_returns_the_exit_code() {
    require_kubectl();
    let emu = process_emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let mut app = sh("app", "exec sleep 3600");
    app["env"] = json!([{"name": "GREETING", "value": "from the spec"}]);
    app["resources"] = json!({"limits": {"memory": "64Mi"}});
    create(&pods, &pod("shell", json!({}), json!([app]))).await;
    let p = wait_for(&pods, "shell", "Ready", |p: Option<&Pod>| {
        p.is_some_and(is_ready)
    })
    .await;
    let ip = p.status.unwrap().pod_ip.unwrap();
    let kc = emu.kubeconfig_path();

    let out = kubectl_exec(
        &kc,
        &[
            "shell",
            "--",
            "sh",
            "-c",
            "echo $HOSTNAME; echo oops >&2; exit 3",
        ],
        None,
    )
    .await;
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert_eq!(out.stdout, "shell\n");
    assert!(out.stderr.contains("oops"), "{}", out.stderr);
    assert!(
        out.stderr.contains("command terminated with exit code 3"),
        "{}",
        out.stderr
    );

    // The pod's network (its IP on eth0), its mounts (resolv.conf), the container's env and cgroup.
    let script = "ip -o -4 addr show eth0; grep search /etc/resolv.conf; echo \"$GREETING\"; \
                  grep -c /kube-emulator- /proc/self/cgroup; hostname";
    let out = kubectl_exec(&kc, &["shell", "-c", "app", "--", "sh", "-c", script], None).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].contains(&format!("inet {ip}/24")),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines[1..],
        [
            "search default.svc.cluster.local svc.cluster.local cluster.local",
            "from the spec",
            "1",
            "shell"
        ],
        "{}",
        out.stdout
    );

    // stdin reaches the command; its end ends the command.
    let out = kubectl_exec(
        &kc,
        &["-i", "shell", "--", "cat"],
        Some("line one\nline two\n"),
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "line one\nline two\n");

    // A container that does not exist: kubectl reports the apiserver's refusal.
    let out = kubectl_exec(&kc, &["shell", "-c", "nope", "--", "true"], None).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("container nope"), "{}", out.stderr);
}
