//! One child process with its output in a log file; killed when dropped.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

use crate::error::{Error, Result};

pub(crate) struct ChildProcess {
    child: Child,
}

impl ChildProcess {
    /// Starts `program` with stdout and stderr appended to `log` (restarts append, so one file
    /// tells the whole story of a piece).
    pub(crate) fn spawn(
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
    ) -> Result<Self> {
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| Error::Io {
                    action: "open log file",
                    path: log.to_path_buf(),
                    source,
                })
        };
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Io {
                action: "start",
                path: program.to_path_buf(),
                source,
            })?;
        Ok(ChildProcess { child })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status if the process has already exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then wait up to `grace` for a clean exit, then SIGKILL.
    pub(crate) async fn terminate(mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal(Signal::TERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => self.kill().await,
        }
    }

    /// SIGKILL and reap.
    pub(crate) async fn kill(mut self) -> Option<ExitStatus> {
        let _ = self.child.start_kill();
        self.child.wait().await.ok()
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw)
        {
            // The process may have exited already; then there is nothing to signal.
            let _ = kill_process(pid, signal);
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Where a piece's log goes inside the stack directory.
pub(crate) fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}
