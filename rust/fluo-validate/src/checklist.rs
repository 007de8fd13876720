//! The SOP-002 pre-deployment checklist: the steps, their order, and the commands of the
//! command steps (configured in `infra/checklist.toml`, with the SOP's defaults).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fluo_core::read_error::ReadError;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown step `{0}` (steps: tests, flake-check, build, manifests, policy, status)")]
    UnknownStep(String),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One checklist step, in the order the gate runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Tests,
    FlakeCheck,
    Build,
    Manifests,
    Policy,
    Status,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Tests,
        Step::FlakeCheck,
        Step::Build,
        Step::Manifests,
        Step::Policy,
        Step::Status,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Tests => "tests",
            Step::FlakeCheck => "flake-check",
            Step::Build => "build",
            Step::Manifests => "manifests",
            Step::Policy => "policy",
            Step::Status => "status",
        }
    }

    /// Steps that run a configured command (the others are built into the gate).
    pub fn is_command(self) -> bool {
        matches!(self, Step::Tests | Step::FlakeCheck | Step::Build)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Step {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Step::ALL
            .into_iter()
            .find(|step| step.name() == s)
            .ok_or_else(|| Error::UnknownStep(s.to_string()))
    }
}

/// A command step: argv and how long it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandStep {
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// The checklist commands, keyed by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checklist {
    pub commands: BTreeMap<Step, CommandStep>,
    /// Where commands run: the repository root (the parent of infra/).
    pub workdir: PathBuf,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    steps: BTreeMap<String, StepEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepEntry {
    command: Vec<String>,
    timeout: Option<String>,
}

impl Checklist {
    /// SOP-002 defaults: `nix run .#test-all`, `nix flake check`, `nix run .#build-all`.
    pub fn defaults(workdir: &Path) -> Self {
        let argv = |args: &[&str]| CommandStep {
            command: args.iter().map(|s| s.to_string()).collect(),
            timeout: DEFAULT_TIMEOUT,
        };
        Self {
            commands: BTreeMap::from([
                (Step::Tests, argv(&["nix", "run", ".#test-all"])),
                (Step::FlakeCheck, argv(&["nix", "flake", "check"])),
                (Step::Build, argv(&["nix", "run", ".#build-all"])),
            ]),
            workdir: workdir.to_path_buf(),
        }
    }

    /// Reads `infra/checklist.toml`; a missing file means the defaults. Commands run from the
    /// parent of `infra_dir`.
    pub fn load(infra_dir: &Path) -> Result<Self> {
        let workdir = infra_dir
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut checklist = Self::defaults(&workdir);
        let path = infra_dir.join("checklist.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(checklist),
            Err(source) => return Err(ReadError::of(&path)(source).into()),
        };
        let invalid = |message: String| Error::Invalid {
            path: path.clone(),
            message,
        };
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        for (name, entry) in file.steps {
            let step: Step = name.parse().map_err(|e: Error| invalid(e.to_string()))?;
            if !step.is_command() {
                return Err(invalid(format!(
                    "steps.{name}: `{name}` is built into fluo-validate and has no command"
                )));
            }
            if entry.command.is_empty() || entry.command[0].is_empty() {
                return Err(invalid(format!("steps.{name}.command: must not be empty")));
            }
            let timeout = match entry.timeout {
                Some(t) => fluo_core::cli::duration::positive(&t)
                    .map_err(|e| invalid(format!("steps.{name}.timeout: {e}")))?,
                None => DEFAULT_TIMEOUT,
            };
            checklist.commands.insert(
                step,
                CommandStep {
                    command: entry.command,
                    timeout,
                },
            );
        }
        Ok(checklist)
    }
}

/// How a command step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    Succeeded,
    Failed(String),
}

/// Runs one command step, streaming its stdout and stderr into `log` line by line.
pub async fn run_command(
    step: Step,
    spec: &CommandStep,
    workdir: &Path,
    log: &mut tokio::fs::File,
) -> std::io::Result<CommandOutcome> {
    let rendered = spec.command.join(" ");
    log.write_all(format!("$ {rendered}\n").as_bytes()).await?;
    let mut child = match tokio::process::Command::new(&spec.command[0])
        .args(&spec.command[1..])
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let message = format!("{step}: cannot run `{rendered}`: {e}");
            log.write_all(format!("{message}\n").as_bytes()).await?;
            return Ok(CommandOutcome::Failed(message));
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().map(|s| forward(s, tx.clone()));
    let stderr = child.stderr.take().map(|s| forward(s, tx));
    let wait = async {
        while let Some(line) = rx.recv().await {
            log.write_all(line.as_bytes()).await?;
            log.write_all(b"\n").await?;
        }
        let status = child.wait().await?;
        std::io::Result::Ok(status)
    };
    let outcome = match tokio::time::timeout(spec.timeout, wait).await {
        Ok(status) => {
            let status = status?;
            if status.success() {
                CommandOutcome::Succeeded
            } else {
                CommandOutcome::Failed(format!("{step}: `{rendered}` exited with {status}"))
            }
        }
        Err(_) => CommandOutcome::Failed(format!(
            "{step}: `{rendered}` did not finish within {}s",
            spec.timeout.as_secs()
        )),
    };
    for task in [stdout, stderr].into_iter().flatten() {
        task.abort();
    }
    log.flush().await?;
    Ok(outcome)
}

fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_keep_sop_order() {
        assert_eq!("flake-check".parse::<Step>().unwrap(), Step::FlakeCheck);
        assert!("lint".parse::<Step>().is_err());
        let mut sorted = Step::ALL;
        sorted.sort();
        assert_eq!(sorted, Step::ALL);
    }

    #[test]
    fn missing_file_means_defaults_and_file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let infra = dir.path().join("infra");
        std::fs::create_dir(&infra).unwrap();
        let defaults = Checklist::load(&infra).unwrap();
        assert_eq!(
            defaults.commands[&Step::FlakeCheck].command,
            ["nix", "flake", "check"]
        );
        assert_eq!(defaults.workdir, dir.path().canonicalize().unwrap());
        std::fs::write(
            infra.join("checklist.toml"),
            "[steps.tests]\ncommand = [\"cargo\", \"test\"]\ntimeout = \"10m\"\n",
        )
        .unwrap();
        let custom = Checklist::load(&infra).unwrap();
        assert_eq!(custom.commands[&Step::Tests].command, ["cargo", "test"]);
        assert_eq!(
            custom.commands[&Step::Tests].timeout,
            Duration::from_secs(600)
        );
        assert_eq!(
            custom.commands[&Step::Build].command,
            ["nix", "run", ".#build-all"]
        );
    }

    #[test]
    fn bad_checklist_names_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("checklist.toml"), text).unwrap();
        write("[steps.manifests]\ncommand = [\"true\"]\n");
        let err = Checklist::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("checklist.toml") && err.contains("built into"),
            "{err}"
        );
        write("[steps.tests]\ncommand = [\"true\"]\ntimeout = \"soon\"\n");
        let err = Checklist::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("steps.tests.timeout"), "{err}");
        write("[steps.tests]\ncommand = [\"true\"]\nretries = 3\n");
        let err = Checklist::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("retries"), "{err}");
    }

    #[tokio::test]
    async fn command_output_goes_to_the_log_and_failure_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("gate.log");
        let mut log = tokio::fs::File::create(&log_path).await.unwrap();
        let spec = CommandStep {
            command: vec![
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 3".into(),
            ],
            timeout: Duration::from_secs(120),
        };
        let outcome = run_command(Step::Build, &spec, dir.path(), &mut log)
            .await
            .unwrap();
        let CommandOutcome::Failed(message) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            message.starts_with("build:") && message.contains("exit status: 3"),
            "{message}"
        );
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
    }

    #[tokio::test]
    async fn missing_program_is_a_failure_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = tokio::fs::File::create(dir.path().join("l")).await.unwrap();
        let spec = CommandStep {
            command: vec!["fluo-no-such-program".into()],
            timeout: Duration::from_secs(60),
        };
        let outcome = run_command(Step::Tests, &spec, dir.path(), &mut log)
            .await
            .unwrap();
        assert!(matches!(outcome, CommandOutcome::Failed(m) if m.contains("cannot run")));
    }
}
