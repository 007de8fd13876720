//! Memory limits, as the kubelet enforces them: a cgroup per container with
//! `resources.limits.memory` as its limit, so the kernel OOM-kills a process over its limit and
//! the container ends `OOMKilled` (exit 137).
//!
//! Works with the cgroup v1 memory controller (`memory.limit_in_bytes`, `memory.oom_control`)
//! and with cgroup v2 (`memory.max`, `memory.events`). Layout: `<base>/<pod uid>/<container>`,
//! where `<base>` is `kube-emulator-<slot>` under this process's own v1 memory cgroup (so the
//! containers stay inside whatever limits the emulator itself runs under), or at the root of the
//! v2 hierarchy (v2 allows no processes in a cgroup that delegates controllers, so the
//! emulator's own cgroup cannot be the parent). The base path is recorded in the slot directory
//! before it is created, so the slot's cleanup removes it on exit and after a SIGKILL (see
//! [`crate::host_records::cgroups`]).

use std::fs;
use std::path::{Path, PathBuf};

use crate::host_records::cgroups::{RECORD, remove_tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where the memory controller lives: its hierarchy's mount point and this process's cgroup
/// in that hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub version: Version,
    pub mount: PathBuf,
    pub own: String,
}

/// Finds the memory controller from the text of `/proc/self/mountinfo` and
/// `/proc/self/cgroup`; `v2_has_memory` tells whether a cgroup2 mount offers it (its
/// `cgroup.controllers`). A v1 memory hierarchy wins: the controller cannot be in both.
pub fn find_controller(
    mountinfo: &str,
    cgroups: &str,
    v2_has_memory: impl Fn(&Path) -> bool,
) -> Option<Controller> {
    let mut v2 = None;
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let mount = before.split(' ').nth(4).map(PathBuf::from);
        let mut after = after.split(' ');
        let (fstype, options) = (after.next(), after.nth(1).unwrap_or(""));
        match (fstype, mount) {
            (Some("cgroup"), Some(mount)) if options.split(',').any(|o| o == "memory") => {
                let own = own_cgroup(cgroups, |c| c.split(',').any(|c| c == "memory"))?;
                return Some(Controller {
                    version: Version::V1,
                    mount,
                    own,
                });
            }
            (Some("cgroup2"), Some(mount)) if v2.is_none() && v2_has_memory(&mount) => {
                let own = own_cgroup(cgroups, str::is_empty)?;
                v2 = Some(Controller {
                    version: Version::V2,
                    mount,
                    own,
                });
            }
            _ => {}
        }
    }
    v2
}

/// The host's memory controller, with `proc_cgroup` (a `/proc/<pid>/cgroup` text) as `own`.
fn host_controller(proc_cgroup: &str) -> Option<Controller> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    find_controller(&mountinfo, proc_cgroup, |mount| {
        fs::read_to_string(mount.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
    })
}

/// The path in a `/proc/self/cgroup` line whose controller list matches.
fn own_cgroup(cgroups: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(controllers).then(|| path.to_string())
    })
}

/// The instance's cgroups (one per container).
#[derive(Debug)]
pub struct Cgroups {
    version: Version,
    base: PathBuf,
}

/// One container's cgroup; it lives as long as the pod (restarts reuse it).
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    version: Version,
    dir: PathBuf,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

fn mkdir(dir: &Path) -> Result<(), String> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(format!("creating cgroup {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

impl Cgroups {
    /// Creates the instance's base cgroup for slot `slot`, recording it in `slot_dir`. Err says
    /// why memory limits cannot be enforced on this host.
    pub fn create(slot_dir: &Path, slot: u8) -> Result<Self, String> {
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let c = host_controller(&own)
            .ok_or("no cgroup memory controller is mounted (neither a v1 `memory` hierarchy nor cgroup2 offering `memory`)")?;
        let parent = match c.version {
            Version::V1 => c.mount.join(c.own.trim_start_matches('/')),
            Version::V2 => c.mount.clone(),
        };
        let base = parent.join(format!("kube-emulator-{slot}"));
        write(&slot_dir.join(RECORD), &base.display().to_string())?;
        if c.version == Version::V2 {
            write(&parent.join("cgroup.subtree_control"), "+memory")?;
        }
        mkdir(&base)?;
        let cgroups = Self {
            version: c.version,
            base,
        };
        if let Err(e) = cgroups.delegate(&cgroups.base) {
            remove_tree(&cgroups.base);
            return Err(e);
        }
        Ok(cgroups)
    }

    /// v2: lets `dir`'s children use the memory controller (v1 needs nothing).
    fn delegate(&self, dir: &Path) -> Result<(), String> {
        match self.version {
            Version::V1 => Ok(()),
            Version::V2 => write(&dir.join("cgroup.subtree_control"), "+memory"),
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The container's cgroup (created on first use) with `limit` bytes as its memory limit
    /// (none: unlimited), swap included, so a process over it is OOM-killed rather than swapped.
    pub fn container(
        &self,
        pod_uid: &str,
        name: &str,
        limit: Option<u64>,
    ) -> Result<ContainerCgroup, String> {
        let pod = self.base.join(pod_uid);
        mkdir(&pod)?;
        self.delegate(&pod)?;
        let dir = pod.join(name);
        mkdir(&dir)?;
        match self.version {
            Version::V1 => {
                let v = limit.map_or("-1".to_string(), |l| l.to_string());
                write(&dir.join("memory.limit_in_bytes"), &v)?;
                // Only where swap accounting is on; memsw may not be below the limit above.
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &v)?;
                }
            }
            Version::V2 => {
                let v = limit.map_or("max".to_string(), |l| l.to_string());
                write(&dir.join("memory.max"), &v)?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                // As the kubelet does on v2: an OOM kill takes the whole container.
                write(&dir.join("memory.oom.group"), "1")?;
            }
        }
        Ok(ContainerCgroup {
            version: self.version,
            dir,
        })
    }

    /// Kills what is left in the pod's cgroups and removes them.
    pub fn remove_pod(&self, pod_uid: &str) {
        remove_tree(&self.base.join(pod_uid));
    }
}

impl ContainerCgroup {
    /// Writing `0` here moves the writer into the cgroup: see [`join_file_name`].
    pub fn join_file(&self) -> PathBuf {
        self.dir.join(join_file_name(self.version))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many processes the kernel OOM-killed in this cgroup so far.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        parse_oom_kills(&fs::read_to_string(self.dir.join(file)).unwrap_or_default())
    }
}

/// The file a single-threaded process writes `0` to in order to join a container's cgroup.
/// On v1 that is `tasks` (the writing thread, which is the whole process): moving a thread
/// takes no global lock, while `cgroup.procs` takes the threadgroup lock for writing, which
/// waits for an RCU grace period: 10-20 ms per container start on a loaded host
/// (docs/performance/kube-emulator.md). v2 has only `cgroup.procs` for domain cgroups.
pub fn join_file_name(version: Version) -> &'static str {
    match version {
        Version::V1 => "tasks",
        Version::V2 => "cgroup.procs",
    }
}

/// The join file ([`join_file_name`]) of an emulator container cgroup named in a
/// `/proc/<pid>/cgroup` text (None when the process is in none of ours).
pub fn join_file_of(proc_cgroup: &str) -> Option<PathBuf> {
    let c = host_controller(proc_cgroup)?;
    c.own.contains("/kube-emulator-").then(|| {
        c.mount
            .join(c.own.trim_start_matches('/'))
            .join(join_file_name(c.version))
    })
}

/// The `oom_kill N` line of `memory.oom_control` (v1) or `memory.events` (v2).
pub fn parse_oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const CGROUP_V1: &str = "1:cpu:/\n4:memory:/process_api/abc\n0::/\n";

    #[test]
    fn the_memory_controller_is_found_in_v1_and_v2() {
        let c = find_controller(MOUNTINFO_V1, CGROUP_V1, |_| false).unwrap();
        assert_eq!(
            c,
            Controller {
                version: Version::V1,
                mount: "/sys/fs/cgroup/memory".into(),
                own: "/process_api/abc".into()
            }
        );
        let v2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let c = find_controller(v2, "0::/user.slice/session-1.scope\n", |m| {
            m == Path::new("/sys/fs/cgroup")
        })
        .unwrap();
        assert_eq!(
            (c.version, c.mount, c.own),
            (
                Version::V2,
                "/sys/fs/cgroup".into(),
                "/user.slice/session-1.scope".into()
            )
        );
        // cgroup2 without the memory controller (this host's hybrid `unified` mount): none.
        assert_eq!(find_controller(v2, "0::/\n", |_| false), None);
        assert_eq!(find_controller("", CGROUP_V1, |_| true), None);
    }

    #[test]
    fn oom_kills_are_read_from_either_file() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 1\n";
        assert_eq!(parse_oom_kills(v1), 3);
        assert_eq!(parse_oom_kills(v2), 2);
        assert_eq!(parse_oom_kills(""), 0);
    }
}
