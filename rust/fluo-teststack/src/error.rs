//! Errors of the test stack. Each names the piece and the file or URL involved.

use std::path::PathBuf;

use crate::Component;

/// The hint every "binary not found" error carries.
pub const INSTALL_HINT: &str = "apt-get install nats-server prometheus";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{binary} not found (looked in {looked_in}); install it with: {INSTALL_HINT}")]
    MissingBinary { binary: String, looked_in: String },
    #[error("{binary} not found (looked in {looked_in}); install it with: {hint}")]
    MissingPackage {
        binary: String,
        looked_in: String,
        hint: &'static str,
    },
    #[error("building the workspace services failed ({command}):\n{stderr}")]
    Build { command: String, stderr: String },
    #[error("could not find the cargo target directory from the running executable {exe}")]
    TargetDir { exe: PathBuf },
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{component} is not part of this stack (add it with Stack::builder().{builder}())")]
    NotConfigured {
        component: Component,
        builder: &'static str,
    },
    #[error("{component} is already running")]
    AlreadyRunning { component: Component },
    #[error(
        "{component} did not become ready at {url} within {seconds}s; last log lines of {log}:\n{log_tail}"
    )]
    NotReady {
        component: Component,
        url: String,
        seconds: u64,
        log: PathBuf,
        log_tail: String,
    },
    #[error("{component} exited during startup ({status}); last log lines of {log}:\n{log_tail}")]
    Exited {
        component: Component,
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("request to {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("timed out after {seconds}s waiting for {what}; last observation: {last}")]
    Timeout {
        what: String,
        seconds: u64,
        last: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
