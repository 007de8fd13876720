//! The `kube-emulator serve` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

use super::support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_prints_address_writes_kubeconfig_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("nested/kubeconfig");
    let mut child = Child(
        bin()
            .args([
                "serve",
                "--ready-after",
                "0",
                "--context",
                "rehearsal",
                "--kubeconfig-out",
            ])
            .arg(&kc)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts"),
    );
    let stdout = child.0.stdout.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().to_string()
    });
    let addr = within(WAIT, "the bound address on stdout", addr)
        .await
        .unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(
        text.contains(&format!("server: http://{addr}"))
            && text.contains("current-context: rehearsal"),
        "{text}"
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let ns: Api<Namespace> = Api::all(client);
    assert!(ns.list(&ListParams::default()).await.unwrap().items.len() >= 3);
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = within(
        WAIT,
        "exit after SIGTERM",
        tokio::task::spawn_blocking(move || child.0.wait().unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(code.code(), Some(0));
}

#[test]
fn bad_flags_are_usage_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let out = bin()
        .args(["serve", "--error-rate", "1.5", "--kubeconfig-out"])
        .arg(&kc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error_rate must be between 0 and 1, got 1.5"),
        "{err}"
    );
    assert!(!kc.exists());
    let out = bin()
        .args([
            "serve",
            "--write-unavailable-rate",
            "0.6",
            "--reset-rate",
            "0.5",
        ])
        .arg("--kubeconfig-out")
        .arg(&kc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must not exceed 1, got 1.1"), "{err}");
    assert!(!kc.exists());
    let out = bin()
        .args(["serve", "--ready-after", "soon", "--kubeconfig-out"])
        .arg(&kc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`soon` is not a duration"));
    assert!(!kc.exists());
}
