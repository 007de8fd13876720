//! Running a command-line tool to completion and asserting on its exit code, its output and
//! its JSON report: a fluent helper for the binaries' integration tests.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::TestInfra;

/// How long a run may take before the test fails (generous: CI machines are slow).
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A tool to run: `Cli::new(env!("CARGO_BIN_EXE_fluo-health")).infra(&infra).args([..]).run()`.
pub struct Cli {
    command: tokio::process::Command,
    shown: String,
}

/// How a run ended, with assertions that show the whole output when they fail.
#[derive(Debug)]
pub struct Ran {
    /// The exit code; -1 when a signal ended the tool.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    shown: String,
}

impl Cli {
    /// The binary at `path`, without the environment the fluo-* tools read their target from
    /// (`KUBECONFIG`, `FLUO_ENV`, `FLUO_INFRA_DIR`), with `NO_COLOR=1` and no stdin; killed if
    /// the test drops it.
    pub fn new(path: &str) -> Self {
        let mut command = tokio::process::Command::new(path);
        command
            .env_remove("KUBECONFIG")
            .env_remove("FLUO_ENV")
            .env_remove("FLUO_INFRA_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Self {
            command,
            shown: path.rsplit('/').next().unwrap_or(path).to_owned(),
        }
    }

    /// Points the tool at `infra` and its environment (`FLUO_INFRA_DIR`, `FLUO_ENV`).
    pub fn infra(mut self, infra: &TestInfra) -> Self {
        self.command
            .env("FLUO_INFRA_DIR", infra.path())
            .env("FLUO_ENV", infra.env());
        self
    }

    /// Removes environment variables the tool would read (so the test's own cannot leak in).
    pub fn env_remove(mut self, names: &[&str]) -> Self {
        for name in names {
            self.command.env_remove(name);
        }
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        for arg in args {
            self.shown.push(' ');
            self.shown.push_str(arg.as_ref());
            self.command.arg(arg.as_ref());
        }
        self
    }

    /// Runs the tool to completion; panics if it cannot start or takes longer than 120 s.
    pub async fn run(mut self) -> Ran {
        let output = tokio::time::timeout(RUN_TIMEOUT, self.command.output())
            .await
            .unwrap_or_else(|_| panic!("{} did not finish within 120 s", self.shown))
            .unwrap_or_else(|e| panic!("running {}: {e}", self.shown));
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            shown: self.shown,
        }
    }
}

impl Ran {
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "`{}` exited {} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
            self.shown, self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "`{}` stdout lacks {needle:?}:\n{}\nstderr:\n{}",
            self.shown,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Neither stdout nor stderr contains `needle` (a secret, say).
    #[track_caller]
    pub fn stdout_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stdout.contains(needle) && !self.stderr.contains(needle),
            "`{}` output contains {needle:?}:\n{}\n{}",
            self.shown,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "`{}` stderr lacks {needle:?}:\n{}",
            self.shown,
            self.stderr
        );
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", self.shown, self.stdout))
    }

    /// The evidence of the check `name` in a JSON report, which must say it failed.
    #[track_caller]
    pub fn failed_check(&self, name: &str) -> String {
        let (verdict, evidence) = self.check(name);
        assert_eq!(verdict, "fail", "check {name}: {evidence}");
        evidence
    }

    /// The verdict and evidence of the check `name` in a JSON report (fluo-health, fluo-smoke).
    #[track_caller]
    pub fn check(&self, name: &str) -> (String, String) {
        let json = self.json();
        let check = json["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no check {name} in:\n{}", self.stdout));
        (
            check["verdict"].as_str().unwrap_or_default().to_owned(),
            check["evidence"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cli {
        Cli::new("/bin/sh").args(["-c", script])
    }

    #[tokio::test]
    async fn captures_code_and_output_without_the_removed_variables() {
        assert!(
            std::env::var_os("HOME").is_some(),
            "the test needs HOME set"
        );
        let ran = sh("echo \"out ${NO_COLOR}\"; echo \"err ${HOME:-unset}\" >&2; exit 3")
            .env_remove(&["HOME"])
            .run()
            .await;
        ran.code(3).stdout_has("out 1").stderr_has("err unset");
        assert_eq!(ran.stdout, "out 1\n");
    }

    #[tokio::test]
    async fn infra_points_the_tool_at_the_copy_and_its_environment() {
        let infra = TestInfra::direct(&[]);
        let ran = sh("echo \"$FLUO_INFRA_DIR $FLUO_ENV\"")
            .infra(&infra)
            .run()
            .await;
        ran.code(0)
            .stdout_has(&format!("{} ci", infra.path().display()));
    }

    #[tokio::test]
    async fn reads_checks_from_a_json_report() {
        let ran = sh(
            r#"echo '{"checks":[{"name":"bff","verdict":"fail","evidence":"GET /health: 503"}]}'"#,
        )
        .run()
        .await;
        assert_eq!(
            ran.check("bff"),
            ("fail".to_owned(), "GET /health: 503".to_owned())
        );
        assert_eq!(ran.failed_check("bff"), "GET /health: 503");
    }

    #[tokio::test]
    #[should_panic(expected = "exited 1 (expected 2)")]
    async fn a_wrong_exit_code_fails_showing_the_output() {
        sh("echo oops >&2; exit 1").run().await.code(2);
    }
}
