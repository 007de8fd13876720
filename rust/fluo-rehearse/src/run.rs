//! Running the FLUO binaries (and kubectl, and the SOP's shell script) against a stack, with
//! what a finished run printed and how long it took.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The environment the binaries deploy (infra/environments/rehearsal.toml).
pub const ENVIRONMENT: &str = "rehearsal";

/// The upper bound of any one command of a rehearsal (a hung command fails its step).
const COMMAND_LIMIT: Duration = Duration::from_secs(240);

/// How binaries are started: where they are, and the environment pointing them at the stack.
#[derive(Debug, Clone)]
pub struct Runner {
    pub bin_dir: PathBuf,
    pub repo: PathBuf,
    pub kubeconfig: PathBuf,
    pub infra: PathBuf,
    /// Print each finished command, its time and its stderr (fluo-deploy's timeline) to stderr.
    pub trace: bool,
}

impl Runner {
    pub fn new(bin_dir: &Path, repo: &Path, kubeconfig: &Path, infra: &Path) -> Self {
        Runner {
            bin_dir: bin_dir.to_path_buf(),
            repo: repo.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            infra: infra.to_path_buf(),
            trace: false,
        }
    }

    /// `program` is a binary of the build (`fluo-deploy`), a path, or a command on PATH.
    fn resolve(&self, program: &str) -> PathBuf {
        let built = self.bin_dir.join(program);
        if program.contains('/') {
            self.repo.join(program)
        } else if built.is_file() {
            built
        } else {
            PathBuf::from(program)
        }
    }

    pub async fn run(&self, program: &str, args: &[&str]) -> Run {
        let path = self.resolve(program);
        let mut command = tokio::process::Command::new(&path);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("FLUO_ENV", ENVIRONMENT)
            .env("FLUO_INFRA_DIR", &self.infra)
            .env("FLUO_USER", "rehearsal")
            .env("FLUO_COMMIT", "0000000000000000000000000000000000000000")
            .env("FLUO_HEALTH_BIN", self.bin_dir.join("fluo-health"))
            .env("FLUO_SMOKE_BIN", self.bin_dir.join("fluo-smoke"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let what = format!("{program} {}", args.join(" "));
        let started = Instant::now();
        let (code, stdout, stderr) =
            match tokio::time::timeout(COMMAND_LIMIT, command.output()).await {
                Ok(Ok(out)) => (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ),
                Ok(Err(e)) => (
                    None,
                    String::new(),
                    format!("could not run {}: {e}", path.display()),
                ),
                Err(_) => (
                    None,
                    String::new(),
                    format!("did not finish within {COMMAND_LIMIT:?}"),
                ),
            };
        if self.trace {
            eprintln!(
                "--- `{what}` exited {code:?} after {:.1}s\n{}",
                started.elapsed().as_secs_f64(),
                stderr.trim_end()
            );
        }
        Run {
            what,
            code,
            stdout,
            stderr,
            took: started.elapsed(),
        }
    }
}

/// One finished command.
#[derive(Debug, Clone)]
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    /// Ok when it exited `want` (a code, or a fluo command's `Exit`), else an error with both
    /// streams (for the report and the test).
    pub fn expect(&self, want: impl Into<i32>) -> Result<&Run, String> {
        let want = want.into();
        if self.code == Some(want) {
            Ok(self)
        } else {
            Err(format!("wanted exit {want}: {self}"))
        }
    }

    /// stdout parsed as JSON (`-o json` runs).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_str(&self.stdout)
            .map_err(|e| format!("stdout of `{}` is not JSON ({e}): {self}", self.what))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited {:?} after {:.1}s\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.code,
            self.took.as_secs_f64(),
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}
