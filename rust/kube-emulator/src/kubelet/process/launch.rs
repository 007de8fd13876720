//! Starting a container's process: in the pod's network namespace, in mount and UTS namespaces
//! of its own where the pod's files are bind-mounted at their mountPaths, as
//! runAsUser/runAsGroup, in workingDir, with the built environment (all set up in the forked
//! child by `isolate`); stdout and stderr go to the container's log file.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::isolate::{Container, Isolation};
use super::volumes::Mount;
use crate::host_records::created_paths;

/// What to run and how.
pub struct Launch<'a> {
    pub netns_path: &'a Path,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub run_as: Option<(u32, u32)>,
    pub mounts: Vec<Mount>,
    pub hostname: String,
    /// Slot directory, where mount points created on the host are recorded.
    pub slot_dir: &'a Path,
    pub log_file: PathBuf,
    /// Where a command a volume would hide is bind-mounted (`keep_command_visible`).
    pub exe_dir: PathBuf,
    /// The container's cgroup (its join file, `cgroup::join_file_name`), joined before
    /// anything else runs.
    pub cgroup_join: Option<PathBuf>,
}

/// Quotes for sh: everything inside single quotes.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A command below one of the container's mount targets (e.g. a checkout under /tmp when the
/// pod mounts an emptyDir at /tmp) would be hidden once the volumes are mounted: it is
/// bind-mounted first, in `exe_dir`, and run from there.
fn keep_command_visible(l: &mut Launch<'_>) {
    let Some(command) = l.argv.first().map(PathBuf::from) else {
        return;
    };
    let hidden = command.is_absolute() && l.mounts.iter().any(|m| command.starts_with(&m.target));
    let Some(name) = command.file_name().filter(|_| hidden) else {
        return;
    };
    let visible = l.exe_dir.join(name);
    l.mounts.insert(
        0,
        Mount {
            source: command,
            target: visible.clone(),
            read_only: true,
        },
    );
    l.argv[0] = visible.to_string_lossy().into_owned();
}

/// Makes sure every mount target exists on the host; created ones (also those another
/// emulator created) are recorded, so that they stay while any emulator needs them.
fn prepare_targets(l: &Launch<'_>) -> std::io::Result<()> {
    for m in &l.mounts {
        created_paths::create(l.slot_dir, &m.target, m.source.is_file())?;
    }
    Ok(())
}

/// Spawns the container; its output is appended to `log_file` as `<RFC3339> <stream> <line>`.
pub async fn spawn(mut l: Launch<'_>) -> std::io::Result<Child> {
    keep_command_visible(&mut l);
    // Small writes under /run: done in place, as a trip through the blocking pool for each
    // cost more than the writes themselves on a loaded machine.
    prepare_targets(&l)?;
    if let Some(parent) = l.log_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log_file)?;
    // The program std would exec is never reached: the child execs the container's argv
    // itself once its namespaces, mounts and user are set up.
    let isolation = Isolation::new(&Container {
        netns_path: l.netns_path,
        cgroup_join: l.cgroup_join.as_deref(),
        mounts: &l.mounts,
        hostname: &l.hostname,
        working_dir: l.working_dir.as_deref(),
        run_as: l.run_as,
        argv: &l.argv,
        env: &l.env,
    })?;
    let mut cmd = Command::new(&l.argv[0]);
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The emulator may die without cleaning up; the next run kills what is left.
        .kill_on_drop(false);
    isolation.install(&mut cmd);
    let mut child = cmd.spawn()?;
    let log = std::sync::Arc::new(tokio::sync::Mutex::new(tokio::fs::File::from_std(log)));
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, "stdout", log.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, "stderr", log));
    }
    Ok(child)
}

async fn pump(
    stream: impl tokio::io::AsyncRead + Unpin,
    name: &'static str,
    log: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let stamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut f = log.lock().await;
        if f.write_all(format!("{stamp} {name} {line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends `signal` (TERM, KILL) to a process.
pub async fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_a_volume_would_hide_is_bound_in_exe_dir_first() {
        let launch = |command: &str| Launch {
            netns_path: Path::new("/run/netns/x"),
            argv: vec![command.into(), "--flag".into()],
            env: vec![],
            working_dir: None,
            run_as: None,
            mounts: vec![Mount {
                source: "/run/p/volumes/tmp".into(),
                target: "/tmp".into(),
                read_only: false,
            }],
            hostname: "bff".into(),
            slot_dir: Path::new("/run/kube-emulator/1"),
            log_file: "/x".into(),
            exe_dir: "/run/p/exe".into(),
            cgroup_join: None,
        };
        let mut hidden = launch("/tmp/checkout/target/debug/fluo-bff");
        keep_command_visible(&mut hidden);
        assert_eq!(hidden.argv, ["/run/p/exe/fluo-bff", "--flag"]);
        assert_eq!(
            hidden.mounts[0].source,
            Path::new("/tmp/checkout/target/debug/fluo-bff")
        );
        assert_eq!(hidden.mounts[0].target, Path::new("/run/p/exe/fluo-bff"));
        assert_eq!(hidden.mounts.len(), 2);
        for command in ["/work/target/debug/fluo-bff", "nats-server"] {
            let mut visible = launch(command);
            keep_command_visible(&mut visible);
            assert_eq!(visible.argv[0], command);
            assert_eq!(visible.mounts.len(), 1);
        }
    }

    #[test]
    fn sh_quoting_survives_single_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
