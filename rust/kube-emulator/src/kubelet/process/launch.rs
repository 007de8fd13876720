//! Starting a container's process: in the pod's network namespace (`nsenter --net`), in a mount
//! namespace of its own (`unshare --mount`) where the pod's files are bind-mounted at their
//! mountPaths, as runAsUser/runAsGroup (`setpriv`), in workingDir, with the built environment;
//! stdout and stderr go to the container's log file.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

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
    /// Where the mounts are written for `mount --all --fstab`.
    pub fstab_file: PathBuf,
    /// The container's cgroup (`cgroup.procs`), joined before anything else runs.
    pub cgroup_procs: Option<PathBuf>,
}

/// Quotes for sh: everything inside single quotes.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script run by sh inside the new mount namespace; the container's argv follows as "$@".
fn script(l: &Launch<'_>) -> String {
    let mut s = String::from("set -e\n");
    if let Some(procs) = &l.cgroup_procs {
        // The shell becomes the container's process (every step execs), so it joins first.
        s.push_str(&format!(
            "echo $$ > {}\n",
            sh_quote(&procs.to_string_lossy())
        ));
    }
    if !l.mounts.is_empty() {
        // One `mount` for all of them (a process per mount was most of a pod's start).
        s.push_str(&format!(
            "mount --all --fstab {}\n",
            sh_quote(&l.fstab_file.to_string_lossy())
        ));
    }
    // The container has its own UTS namespace: set the hostname without running `hostname`.
    s.push_str(&format!(
        "echo {} > /proc/sys/kernel/hostname 2>/dev/null || true\n",
        sh_quote(&l.hostname)
    ));
    if let Some(dir) = &l.working_dir {
        s.push_str(&format!("cd {}\n", sh_quote(dir)));
    }
    match l.run_as {
        Some((uid, gid)) => s.push_str(&format!(
            "exec setpriv --reuid={uid} --regid={gid} --clear-groups -- \"$@\"\n"
        )),
        None => s.push_str("exec \"$@\"\n"),
    }
    s
}

/// The container's bind mounts as an fstab, in order (a subPath after its volume); util-linux
/// does the read-only remount of a `bind,ro` entry itself.
fn fstab(mounts: &[Mount]) -> String {
    // fstab fields are separated by blanks; escape them (and the escape) as octal.
    let field = |p: &Path| {
        let mut out = String::new();
        for c in p.to_string_lossy().chars() {
            match c {
                ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
                c => out.push(c),
            }
        }
        out
    };
    mounts
        .iter()
        .map(|m| {
            let options = if m.read_only { "bind,ro" } else { "bind" };
            format!(
                "{} {} none {options} 0 0\n",
                field(&m.source),
                field(&m.target)
            )
        })
        .collect()
}

/// A command below one of the container's mount targets (e.g. a checkout under /tmp when the
/// pod mounts an emptyDir at /tmp) would be hidden once the volumes are mounted: it is
/// bind-mounted first, beside the fstab, and run from there.
fn keep_command_visible(l: &mut Launch<'_>) {
    let Some(command) = l.argv.first().map(PathBuf::from) else {
        return;
    };
    let hidden = command.is_absolute() && l.mounts.iter().any(|m| command.starts_with(&m.target));
    let (Some(dir), Some(name)) = (l.fstab_file.parent(), command.file_name()) else {
        return;
    };
    if !hidden {
        return;
    }
    let visible = dir.join("exe").join(name);
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

/// Makes sure every mount target exists on the host (created ones are recorded for cleanup).
fn prepare_targets(l: &Launch<'_>) -> std::io::Result<()> {
    for m in &l.mounts {
        if m.target.exists() {
            continue;
        }
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
    if !l.mounts.is_empty() {
        if let Some(parent) = l.fstab_file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&l.fstab_file, fstab(&l.mounts))?;
    }
    if let Some(parent) = l.log_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&l.log_file)?;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", l.netns_path.display()))
        .args([
            "--",
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
        ])
        .args(["/bin/sh", "-c", &script(&l), "kube-emulator-container"])
        .args(&l.argv)
        .env_clear()
        .envs(l.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The emulator may die without cleaning up; the next run kills what is left.
        .kill_on_drop(false);
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
    fn a_command_a_volume_would_hide_is_bound_beside_the_fstab_first() {
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
            fstab_file: "/run/p/fstab/c".into(),
            cgroup_procs: None,
        };
        let mut hidden = launch("/tmp/checkout/target/debug/fluo-bff");
        keep_command_visible(&mut hidden);
        assert_eq!(hidden.argv, ["/run/p/fstab/exe/fluo-bff", "--flag"]);
        assert_eq!(
            hidden.mounts[0].source,
            Path::new("/tmp/checkout/target/debug/fluo-bff")
        );
        assert_eq!(
            hidden.mounts[0].target,
            Path::new("/run/p/fstab/exe/fluo-bff")
        );
        assert_eq!(hidden.mounts.len(), 2);
        for command in ["/work/target/debug/fluo-bff", "nats-server"] {
            let mut visible = launch(command);
            keep_command_visible(&mut visible);
            assert_eq!(visible.argv[0], command);
            assert_eq!(visible.mounts.len(), 1);
        }
    }

    #[test]
    fn the_script_mounts_then_drops_privileges() {
        let l = Launch {
            netns_path: Path::new("/run/netns/x"),
            argv: vec!["nats-server".into()],
            env: vec![],
            working_dir: Some("/data".into()),
            run_as: Some((65532, 65532)),
            mounts: vec![Mount {
                source: "/run/p/volumes/config".into(),
                target: "/etc/nats".into(),
                read_only: true,
            }],
            hostname: "nats-0".into(),
            slot_dir: Path::new("/run/kube-emulator/1"),
            log_file: "/x".into(),
            fstab_file: "/run/p/fstab/c".into(),
            cgroup_procs: Some("/sys/fs/cgroup/memory/kube-emulator-1/u/c/cgroup.procs".into()),
        };
        let s = script(&l);
        assert!(
            s.starts_with(
                "set -e\necho $$ > '/sys/fs/cgroup/memory/kube-emulator-1/u/c/cgroup.procs'\n"
            ),
            "{s}"
        );
        assert!(s.contains("mount --all --fstab '/run/p/fstab/c'\n"), "{s}");
        let mounts = [
            Mount {
                source: "/run/p/volumes/config".into(),
                target: "/etc/nats".into(),
                read_only: true,
            },
            Mount {
                source: "/run/p/a b".into(),
                target: "/data/x\\y".into(),
                read_only: false,
            },
        ];
        assert_eq!(
            fstab(&mounts),
            "/run/p/volumes/config /etc/nats none bind,ro 0 0\n/run/p/a\\040b /data/x\\134y none bind 0 0\n"
        );
        assert!(s.contains("cd '/data'\n"));
        assert!(s.ends_with("exec setpriv --reuid=65532 --regid=65532 --clear-groups -- \"$@\"\n"));
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
