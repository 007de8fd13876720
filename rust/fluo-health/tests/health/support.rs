//! Test support: a temp infra dir with a test environment, the Grafana stand-in, the local
//! stack with Prometheus having scraped, and a fluent CLI runner.

use std::process::Stdio;
use std::time::Duration;

pub use fluo_teststack::TestInfra;
use fluo_teststack::{Stack, eventually};

pub use super::grafana_stand_in::GrafanaStandIn;

/// The full local stack, once Prometheus has scraped the BFF and the worker successfully.
pub async fn healthy_stack() -> Stack {
    let stack = Stack::start()
        .await
        .unwrap_or_else(|e| panic!("starting the local stack: {e}"));
    wait_targets_up(&stack, 2).await;
    stack
}

/// Until Prometheus reports `n` targets up and has FLUO BFF series.
pub async fn wait_targets_up(stack: &Stack, n: usize) {
    eventually("prometheus targets up", Duration::from_secs(60), || async {
        let up = stack.query_prometheus("up == 1").await?;
        let bff = stack.query_prometheus("fluo_bff_build_info").await?;
        Ok::<_, fluo_teststack::Error>((up.len() >= n && !bff.is_empty()).then_some(()))
    })
    .await
    .expect("prometheus scrapes the stack");
}

/// The direct-access URLs of a stack plus a Grafana stand-in.
pub fn stack_urls(stack: &Stack, grafana: &GrafanaStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("bff", stack.bff_url()),
        ("nats-monitor", stack.nats_monitor_url()),
        ("prometheus", stack.prometheus_url()),
        ("grafana", grafana.url()),
        ("worker", stack.worker_url()),
    ]
}

/// Runs a binary of this crate and captures what it printed.
pub struct Cli {
    command: tokio::process::Command,
    shown: String,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    shown: String,
}

impl Cli {
    pub fn health(infra: &TestInfra) -> Self {
        let mut cli = Self::bin(env!("CARGO_BIN_EXE_fluo-health"));
        cli.command
            .env("FLUO_INFRA_DIR", infra.path())
            .env("FLUO_ENV", infra.env());
        cli
    }

    pub fn bin(path: &str) -> Self {
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

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        for arg in args {
            self.shown.push(' ');
            self.shown.push_str(arg.as_ref());
            self.command.arg(arg.as_ref());
        }
        self
    }

    pub async fn run(mut self) -> Ran {
        let output = tokio::time::timeout(Duration::from_secs(120), self.command.output())
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
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "`{}` exited {} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
            self.shown, self.code, self.stdout, self.stderr
        );
        self
    }

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

    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "`{}` stderr lacks {needle:?}:\n{}",
            self.shown,
            self.stderr
        );
        self
    }

    /// stdout parsed as the JSON report.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", self.shown, self.stdout))
    }

    /// The verdict and evidence of a check in the JSON report.
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
