//! The child side of a container's start, run in the forked child before exec (a `pre_exec`
//! hook): join the container's cgroup, enter the pod's network namespace, unshare a mount and a
//! UTS namespace (mounts private), bind-mount the pod's files at their mountPaths (read-only
//! where asked), set the hostname, change to workingDir, drop to runAsUser/runAsGroup and exec
//! the container's argv. This replaces a chain of four programs (nsenter -> unshare -> sh ->
//! mount), most of a pod's start overhead (docs/performance/process-runtime.md).
//!
//! Between fork and exec only async-signal-safe work is allowed (the parent has other threads
//! that may hold the allocator's lock): everything the child needs (C strings, pointer arrays,
//! open descriptors, messages) is built before the fork by [`Isolation::new`]; the child only
//! makes system calls on it. This is the process runtime's one module with `unsafe`.
//!
//! Failures keep the meaning they had under the shell: a workingDir that cannot be entered ends
//! the process with exit 2, a command that cannot be executed with 127 (not found) or 126,
//! each with a message on the container's stderr; namespace and mount failures fail the start.

use std::ffi::{CString, c_char};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags};
use rustix::process::{Gid, Uid};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use super::volumes::Mount;

/// dash's PATH when the environment has none (what `exec "$@"` searched).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The container's start as `launch` describes it.
pub struct Container<'a> {
    pub netns_path: &'a Path,
    /// The container cgroup's join file (`cgroup::join_file_name`): the child writes `0`.
    pub cgroup_join: Option<&'a Path>,
    pub mounts: &'a [Mount],
    pub hostname: &'a str,
    pub working_dir: Option<&'a str>,
    pub run_as: Option<(u32, u32)>,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
}

/// What the child needs, prepared before the fork.
pub struct Isolation {
    cgroup_join: Option<File>,
    netns: File,
    /// (source, target, read-only), in order.
    mounts: Vec<(CString, CString, bool)>,
    hostname: Vec<u8>,
    working_dir: Option<CString>,
    run_as: Option<(Uid, Gid)>,
    /// The paths `argv[0]` may be executed from, in PATH order.
    candidates: Vec<CString>,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    /// NULL-terminated pointer arrays into `_argv` and `_envp`, kept as addresses so the hook
    /// is `Send + Sync` (the strings they point to live as long as this struct).
    argv_ptrs: Vec<usize>,
    envp_ptrs: Vec<usize>,
    cd_failed: Vec<u8>,
    not_found: Vec<u8>,
    not_executable: Vec<u8>,
}

fn c_string(s: impl AsRef<[u8]>, what: &str) -> io::Result<CString> {
    CString::new(s.as_ref()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

fn pointers(strings: &[CString]) -> Vec<usize> {
    let mut out: Vec<usize> = strings.iter().map(|s| s.as_ptr() as usize).collect();
    out.push(0);
    out
}

impl Isolation {
    /// Opens the namespace and cgroup files and builds every string the child uses.
    pub fn new(l: &Container<'_>) -> io::Result<Isolation> {
        let (argv, env) = (l.argv, l.env);
        let command = argv.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the container has no command")
        })?;
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        let candidates = match command.contains('/') {
            true => vec![c_string(command, "the command")?],
            false => path
                .split(':')
                .map(|dir| match dir {
                    "" => c_string(command, "the command"),
                    dir => c_string(format!("{dir}/{command}"), "a PATH entry"),
                })
                .collect::<io::Result<_>>()?,
        };
        let argv = argv
            .iter()
            .map(|a| c_string(a, "an argument"))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = env
            .iter()
            .map(|(k, v)| c_string(format!("{k}={v}"), "an environment variable"))
            .collect::<io::Result<Vec<_>>>()?;
        let mounts = l
            .mounts
            .iter()
            .map(|m| {
                Ok((
                    c_string(m.source.as_os_str().as_bytes(), "a volume path")?,
                    c_string(m.target.as_os_str().as_bytes(), "a mountPath")?,
                    m.read_only,
                ))
            })
            .collect::<io::Result<_>>()?;
        let message = |text: String| format!("kube-emulator-container: {text}\n").into_bytes();
        let dir = l.working_dir.unwrap_or_default();
        Ok(Isolation {
            cgroup_join: match l.cgroup_join {
                Some(p) => Some(std::fs::OpenOptions::new().write(true).open(p)?),
                None => None,
            },
            netns: File::open(l.netns_path)?,
            mounts,
            hostname: l.hostname.as_bytes().to_vec(),
            working_dir: l
                .working_dir
                .map(|d| c_string(d, "workingDir"))
                .transpose()?,
            run_as: l.run_as.map(|(u, g)| (Uid::from_raw(u), Gid::from_raw(g))),
            candidates,
            argv_ptrs: pointers(&argv),
            envp_ptrs: pointers(&envp),
            _argv: argv,
            _envp: envp,
            cd_failed: message(format!("cd: can't cd to {dir}")),
            not_found: message(format!("exec: {command}: not found")),
            not_executable: message(format!("exec: {command}: Permission denied")),
        })
    }

    /// Makes `command` run this isolation in its child before anything else.
    pub fn install(self, command: &mut tokio::process::Command) {
        // SAFETY: the hook runs in the forked child, where only async-signal-safe calls are
        // sound. `enter` makes system calls on data built before the fork and never allocates,
        // takes a lock or touches the parent's threads; it ends in execve or _exit.
        unsafe {
            command.pre_exec(move || self.enter());
        }
    }

    /// The child's steps; returns only an error (a failed namespace or mount step).
    fn enter(&self) -> io::Result<()> {
        if let Some(join) = &self.cgroup_join {
            // First, so everything the container does is accounted to its cgroup. `0` is the
            // writer: this single-threaded child (v1 `tasks` moves it without a global lock).
            rustix::io::write(join.as_fd(), b"0")?;
        }
        rustix::thread::move_into_link_name_space(
            self.netns.as_fd(),
            Some(LinkNameSpaceType::Network),
        )?;
        // SAFETY: FILES is not among the flags, so no descriptor table is unshared (the
        // function's only safety condition); the child has a single thread anyway.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS | UnshareFlags::NEWUTS)? };
        // As `unshare --propagation private`: our mounts never reach the host.
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )?;
        for (source, target, read_only) in &self.mounts {
            rustix::mount::mount_bind(source.as_c_str(), target.as_c_str())?;
            if *read_only {
                // A bind mount is made read-only by a remount (as `mount -o bind,ro` does).
                rustix::mount::mount_remount(
                    target.as_c_str(),
                    MountFlags::BIND | MountFlags::RDONLY,
                    c"",
                )?;
            }
        }
        // Best effort, as before: a hostname the kernel refuses leaves the host's.
        let _ = rustix::system::sethostname(&self.hostname);
        if let Some(dir) = &self.working_dir
            && rustix::process::chdir(dir.as_c_str()).is_err()
        {
            self.fail(&self.cd_failed, 2);
        }
        if let Some((uid, gid)) = self.run_as {
            rustix::thread::set_thread_groups(&[])?;
            rustix::thread::set_thread_res_gid(gid, gid, gid)?;
            rustix::thread::set_thread_res_uid(uid, uid, uid)?;
        }
        let mut denied = false;
        for path in &self.candidates {
            // SAFETY: `path` and the NULL-terminated arrays point into CStrings owned by
            // `self`, alive until exec replaces the process image.
            unsafe {
                libc::execve(
                    path.as_ptr(),
                    self.argv_ptrs.as_ptr() as *const *const c_char,
                    self.envp_ptrs.as_ptr() as *const *const c_char,
                );
            }
            denied |= io::Error::last_os_error().raw_os_error() == Some(libc::EACCES);
        }
        match denied {
            true => self.fail(&self.not_executable, 126),
            false => self.fail(&self.not_found, 127),
        }
    }

    /// Writes `message` to stderr and ends the child with `code`, as the shell did.
    fn fail(&self, message: &[u8], code: i32) -> ! {
        let _ = rustix::io::write(rustix::stdio::stderr(), message);
        // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
        unsafe { libc::_exit(code) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_searched_on_the_containers_path_and_arrays_end_in_null() {
        let netns = tempfile::NamedTempFile::new().expect("temp file");
        let mounts = [Mount {
            source: "/run/p/volumes/config".into(),
            target: "/etc/nats".into(),
            read_only: true,
        }];
        let build = |argv: &[&str], env: &[(&str, &str)]| {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Isolation::new(&Container {
                netns_path: netns.path(),
                cgroup_join: None,
                mounts: &mounts,
                hostname: "nats-0",
                working_dir: Some("/data"),
                run_as: Some((65532, 65532)),
                argv: &argv,
                env: &env,
            })
        };
        let searched = build(
            &["nats-server", "-c", "x"],
            &[("PATH", "/opt/bin:/usr/bin")],
        )
        .expect("builds");
        assert_eq!(
            searched.candidates,
            [
                c"/opt/bin/nats-server".to_owned(),
                c"/usr/bin/nats-server".to_owned()
            ]
        );
        assert_eq!(searched.argv_ptrs.len(), 4);
        assert_eq!(searched.argv_ptrs.last(), Some(&0));
        assert_eq!(searched.envp_ptrs.len(), 2);
        assert_eq!(searched.mounts[0].1, c"/etc/nats".to_owned());
        assert!(searched.mounts[0].2);
        assert_eq!(
            searched.not_found,
            b"kube-emulator-container: exec: nats-server: not found\n"
        );
        assert_eq!(
            searched.cd_failed,
            b"kube-emulator-container: cd: can't cd to /data\n"
        );
        let default = build(&["sh"], &[]).expect("builds");
        assert_eq!(default.candidates.len(), DEFAULT_PATH.split(':').count());
        let absolute = build(&["/bin/sh", "-c", "true"], &[("PATH", "/x")]).expect("builds");
        assert_eq!(absolute.candidates, [c"/bin/sh".to_owned()]);
        let nul = build(&["sh"], &[("A", "b\0c")]);
        assert!(nul.is_err());
    }
}
