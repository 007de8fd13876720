//! Fluent helpers: a copy of infra/ to modify, and running the CLI with assertions on exit code
//! and output.

use std::path::{Path, PathBuf};
use std::process::Command;

use fluo_teststack::copy_dir;
pub use fluo_teststack::repo_infra;

/// A private copy of infra/ in a temp dir (the repository root is its parent).
pub struct Infra {
    dir: tempfile::TempDir,
}

impl Infra {
    pub fn copy_of_repo() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&repo_infra(), &dir.path().join("infra"));
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("infra")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) -> &Self {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Checklist commands as `sh -c` scripts, run from the copy's root.
    pub fn checklist(&self, tests: &str, flake_check: &str, build: &str) -> &Self {
        let step = |name: &str, script: &str| {
            format!("[steps.{name}]\ncommand = [\"sh\", \"-c\", {script:?}]\ntimeout = \"5m\"\n")
        };
        let text = [
            step("tests", tests),
            step("flake-check", flake_check),
            step("build", build),
        ]
        .join("\n");
        self.write("checklist.toml", &text)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("gate.log")
    }
}

pub struct Cli {
    command: Command,
}

impl Cli {
    /// The binary with a clean environment: no KUBECONFIG/FLUO_* from the caller.
    pub fn new() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fluo-validate"));
        for var in ["KUBECONFIG", "FLUO_ENV", "FLUO_INFRA_DIR", "FLUO_COMMIT"] {
            command.env_remove(var);
        }
        // No kubeconfig in $HOME either.
        command.env("HOME", std::env::temp_dir().join("fluo-validate-test-home"));
        Self { command }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn infra(self, infra: &Infra) -> Self {
        let log = infra.log();
        self.args([
            "--infra".as_ref(),
            infra.path().as_os_str(),
            "--log".as_ref(),
            log.as_os_str(),
        ])
    }

    pub fn run(mut self) -> Run {
        let output = self.command.output().expect("fluo-validate runs");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// The status of `step` in a JSON report.
pub fn step_status(report: &serde_json::Value, step: &str) -> String {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .map(|s| s["status"].as_str().unwrap().to_string())
        .unwrap()
}
