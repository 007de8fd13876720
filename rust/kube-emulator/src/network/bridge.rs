//! The cluster network of one process-mode emulator: a Linux bridge on the host that every pod's
//! network namespace is plugged into, and the addresses of the cluster's Services.
//!
//! Per emulator instance a slot `N` (1..=250) is claimed under `/run/kube-emulator/<N>/`: the
//! instance holds an exclusive `flock` on `/run/kube-emulator/<N>/lock` for its whole life (the
//! kernel drops it when the process dies, even on SIGKILL). The slot gives:
//!
//! | what | value |
//! |---|---|
//! | bridge | `kemu<N>`, gateway `10.244.<N>.1/24` |
//! | pod CIDR | `10.244.<N>.0/24` (pods get `.2` ..= `.254`, default route via the gateway) |
//! | service CIDR | `10.96.<N>.0/24`: API server VIP `.1`, cluster DNS `.10`, Services from `.11` |
//! | pod network namespaces | `kemu<N>-<pod ip last octet>` (`/run/netns/...`), host veth `kemu<N>v<octet>` |
//! | state directory | `/run/kube-emulator/<N>/` (pod files, volumes, logs) |
//!
//! Service addresses are not routed anywhere: a host-side listener (the Service proxy, the DNS
//! server, the in-cluster API endpoint) binds `10.96.<N>.x` after [`ClusterNetwork::add_local_address`]
//! put that address as a `/32` on the bridge; pods reach it through their default route via the
//! gateway, and the host answers because the address is local. Nothing is forwarded off the host
//! (no NAT, ip_forward untouched): pods reach only the host's own listeners and each other.
//!
//! Everything lives inside names derived from the slot, so cleanup is exact: dropping the
//! [`ClusterNetwork`] (or [`ClusterNetwork::shutdown`]) kills the processes left in the pod
//! namespaces, deletes the namespaces, the veths and the bridge, and removes the state directory;
//! [`ClusterNetwork::create`] first does the same for every slot whose owner died.
//!
//! The bridge, service addresses and cleanup use iproute2's `ip` (spawned, not parsed beyond
//! names); pod networks, made on every pod start, are plugged over rtnetlink
//! (`pod_network.rs`, `netlink.rs`). Every call blocks (a process run or a few
//! system calls), so call these from `spawn_blocking` on hot async paths.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Where slots live.
pub const RUN_DIR: &str = "/run/kube-emulator";
/// Highest slot number (the third octet of the slot's CIDRs).
pub const MAX_SLOT: u8 = 250;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "process mode needs root (it creates network namespaces, veths and a bridge); run kube-emulator as root"
    )]
    NotRoot,
    #[error("process mode needs iproute2's `ip` ({0}); install it with `apt-get install iproute2`")]
    NoIpTool(std::io::Error),
    #[error(
        "process mode needs `{0}` on PATH (util-linux / procps); install it with `apt-get install util-linux procps`"
    )]
    MissingTool(&'static str),
    #[error(
        "process mode needs Linux network and mount namespaces (/proc/self/ns/net, /proc/self/ns/mnt)"
    )]
    NoNamespaces,
    #[error("all {MAX_SLOT} cluster network slots under {RUN_DIR} are in use")]
    NoFreeSlot,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("`ip {args}` failed: {stderr}")]
    Ip { args: String, stderr: String },
    #[error("the pod CIDR {0}.0/24 has no free address")]
    PodCidrFull(String),
    #[error("{0} is not in this instance's service CIDR 10.96.{1}.0/24")]
    NotAServiceAddress(Ipv4Addr, u8),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Runs `ip <args>`; an error carries ip's stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(Error::NoIpTool)?;
    if !out.status.success() {
        return Err(Error::Ip {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs several ip commands in one `ip -batch -` (one process, not one per command).
pub(super) fn ip_batch(commands: &[String]) -> Result<()> {
    use std::io::Write as _;
    let args = ["-batch", "-"];
    let mut child = Command::new("ip")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(Error::NoIpTool)?;
    if let Some(mut stdin) = child.stdin.take() {
        let script = commands.join("\n") + "\n";
        stdin
            .write_all(script.as_bytes())
            .map_err(io("writing to ip -batch"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io("waiting for ip -batch"))?;
    if !out.status.success() {
        return Err(Error::Ip {
            args: format!("{} <<< {}", args.join(" "), commands.join("; ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The network of one pod: its namespace and its address on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// Name under `/run/netns` (for `ip netns exec` / `nsenter --net=`).
    pub netns: String,
    /// `/run/netns/<netns>`.
    pub netns_path: PathBuf,
    /// The pod's IP (status.podIP).
    pub ip: Ipv4Addr,
    pub(super) host_veth: String,
}

/// One instance's bridge, CIDRs and pod namespaces; see the module docs (pod networks and
/// their warm pool: `pod_network.rs`).
pub struct ClusterNetwork {
    pub(super) slot: u8,
    dir: PathBuf,
    /// Held for the instance's life: the slot's ownership.
    _lock: File,
    pub(super) pods: Mutex<super::pod_ips::PodIps>,
    /// Pod networks created ahead of need (see [`ClusterNetwork::fill_pool`]).
    pub(super) pool: Mutex<Vec<PodNetwork>>,
    local_addresses: Mutex<BTreeSet<Ipv4Addr>>,
    pub(super) shut: Mutex<bool>,
}

impl ClusterNetwork {
    /// Checks root and `ip`, cleans slots whose owner died, claims the lowest free slot and
    /// creates its bridge.
    pub fn create() -> Result<Self> {
        preflight()?;
        fs::create_dir_all(RUN_DIR).map_err(io(format!("creating {RUN_DIR}")))?;
        // One claimer at a time, so two instances starting together cannot pick the same slot
        // or clean a slot the other just claimed.
        let claim = File::create(Path::new(RUN_DIR).join("claim.lock"))
            .map_err(io(format!("opening {RUN_DIR}/claim.lock")))?;
        claim
            .lock()
            .map_err(io(format!("locking {RUN_DIR}/claim.lock")))?;
        clean_dead_slots();
        let mut claimed = None;
        // Start at a random slot, so a slot just released is rarely reused at once (tests
        // that check a finished instance's slot stay meaningful while others start).
        let start = (uuid::Uuid::new_v4().as_u128() % u128::from(MAX_SLOT)) as u16;
        for i in 0..u16::from(MAX_SLOT) {
            let slot = ((start + i) % u16::from(MAX_SLOT) + 1) as u8;
            if let Some(lock) = try_claim(slot)? {
                claimed = Some((slot, lock));
                break;
            }
        }
        drop(claim);
        let (slot, lock) = claimed.ok_or(Error::NoFreeSlot)?;
        let net = Self {
            slot,
            dir: slot_dir(slot),
            _lock: lock,
            pods: Mutex::new(Default::default()),
            pool: Mutex::new(Vec::new()),
            local_addresses: Mutex::new(BTreeSet::new()),
            shut: Mutex::new(false),
        };
        let bridge = net.bridge_name();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.gateway()),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        Ok(net)
    }

    /// The slot number `N` (third octet of the CIDRs).
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// `kemu<N>`.
    pub fn bridge_name(&self) -> String {
        format!("kemu{}", self.slot)
    }

    /// `/run/kube-emulator/<N>`: the instance's state directory (removed on shutdown).
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// `10.244.<N>.1`: the bridge's address, the pods' default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, self.slot, 1)
    }

    /// `10.244.<N>.0` (/24).
    pub fn pod_cidr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, self.slot, 0)
    }

    /// `10.96.<N>.0` (/24).
    pub fn service_cidr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 96, self.slot, 0)
    }

    /// `10.96.<N>.1`: the `kubernetes` Service (in-cluster API server).
    pub fn api_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 96, self.slot, 1)
    }

    /// `10.96.<N>.10`: the cluster DNS server (pods' resolv.conf nameserver).
    pub fn dns_service_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 96, self.slot, 10)
    }

    /// The first Service clusterIP handed out (`.11`; `.1` and `.10` are reserved).
    pub fn first_service_host(&self) -> u8 {
        11
    }

    /// Makes `ip` (an address of the service CIDR) a local /32 address of the bridge, so a
    /// host-side listener bound to it is reachable from pods. Idempotent.
    pub fn add_local_address(&self, addr: Ipv4Addr) -> Result<()> {
        self.check_service_address(addr)?;
        let mut set = self
            .local_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if set.contains(&addr) {
            return Ok(());
        }
        ip(&[
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            &self.bridge_name(),
        ])?;
        set.insert(addr);
        Ok(())
    }

    /// Removes an address added with [`ClusterNetwork::add_local_address`]. Idempotent.
    pub fn remove_local_address(&self, addr: Ipv4Addr) -> Result<()> {
        self.check_service_address(addr)?;
        let mut set = self
            .local_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !set.remove(&addr) {
            return Ok(());
        }
        ip(&[
            "addr",
            "del",
            &format!("{addr}/32"),
            "dev",
            &self.bridge_name(),
        ])?;
        Ok(())
    }

    fn check_service_address(&self, addr: Ipv4Addr) -> Result<()> {
        let [a, b, c, _] = addr.octets();
        if (a, b, c) != (10, 96, self.slot) {
            return Err(Error::NotAServiceAddress(addr, self.slot));
        }
        Ok(())
    }

    /// Removes everything of this instance (also done on drop). Idempotent.
    pub fn shutdown(&self) {
        let mut shut = self.shut.lock().unwrap_or_else(|p| p.into_inner());
        if *shut {
            return;
        }
        clean_slot(self.slot);
        *shut = true;
    }
}

impl Drop for ClusterNetwork {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Checks what process mode needs (root, network namespaces, the host tools) without changing
/// anything; the error says what is missing and how to get it.
pub fn preflight() -> Result<()> {
    if !is_root() {
        return Err(Error::NotRoot);
    }
    ip(&["-V"])?;
    // nsenter for `kubectl exec`; a container start needs no tool (kubelet/process/isolate.rs).
    for tool in ["nsenter", "kill"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
        if !found {
            return Err(Error::MissingTool(tool));
        }
    }
    if !Path::new("/proc/self/ns/net").exists() || !Path::new("/proc/self/ns/mnt").exists() {
        return Err(Error::NoNamespaces);
    }
    Ok(())
}

fn is_root() -> bool {
    // The effective uid, from the kernel's view of this process.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn slot_dir(slot: u8) -> PathBuf {
    Path::new(RUN_DIR).join(slot.to_string())
}

/// Locks slot `slot` if no live instance holds it, cleaning what a dead owner left.
fn try_claim(slot: u8) -> Result<Option<File>> {
    let dir = slot_dir(slot);
    fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    if lock.try_lock().is_err() {
        return Ok(None);
    }
    clean_slot_contents(slot);
    let _ = fs::create_dir_all(&dir);
    let mut owner =
        File::create(dir.join("owner")).map_err(io(format!("writing {}/owner", dir.display())))?;
    let _ = writeln!(owner, "{}", std::process::id());
    Ok(Some(lock))
}

/// Cleans every slot directory whose lock nobody holds (its owner died).
fn clean_dead_slots() {
    let Ok(entries) = fs::read_dir(RUN_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(slot) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u8>().ok())
        else {
            continue;
        };
        let lock = OpenOptions::new()
            .write(true)
            .open(entry.path().join("lock"));
        match lock {
            Ok(f) if f.try_lock().is_err() => continue,
            _ => clean_slot(slot),
        }
    }
}

/// Removes the processes, namespaces, links and files of a slot, and its directory.
fn clean_slot(slot: u8) {
    clean_slot_contents(slot);
    let dir = slot_dir(slot);
    if let Err(e) = fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, dir = %dir.display(), "removing a slot directory");
    }
}

/// Everything of a slot except its directory and lock file.
fn clean_slot_contents(slot: u8) {
    let prefix = format!("kemu{slot}-");
    for ns in list_netns() {
        if ns.starts_with(&prefix) {
            remove_netns(&ns);
        }
    }
    let bridge = format!("kemu{slot}");
    let veth = format!("kemu{slot}v");
    for link in list_links() {
        if (link == bridge || link.starts_with(&veth))
            && let Err(e) = ip(&["link", "del", &link])
            && link_exists(&link)
        {
            tracing::warn!(error = %e, "removing a leftover link");
        }
    }
    crate::host_records::created_paths::remove_recorded(&slot_dir(slot));
    crate::host_records::cgroups::remove_recorded(&slot_dir(slot));
    let dir = slot_dir(slot);
    if let Ok(entries) = fs::read_dir(&dir) {
        for entry in entries.flatten() {
            if entry.file_name() == "lock" {
                continue;
            }
            let p = entry.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// SIGKILLs every process in the namespace (they are the pod's; nothing else joins it), then
/// deletes it.
pub(super) fn remove_netns(ns: &str) {
    for _ in 0..20 {
        let pids = ip(&["netns", "pids", ns]).unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.is_empty() {
            break;
        }
        let _ = Command::new("kill").arg("-KILL").args(&pids).output();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Err(e) = ip(&["netns", "del", ns]) {
        tracing::warn!(error = %e, "removing a pod network namespace");
    }
}

/// Names under /run/netns.
pub fn list_netns() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the host's links (from sysfs).
pub fn list_links() -> Vec<String> {
    fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Tests: a TCP connection to `ip:port` from inside the network namespace `netns` (python3's
/// socket module, as `ip netns exec` runs it).
#[cfg(test)]
pub(crate) fn connect_from(netns: &str, ip: Ipv4Addr, port: u16) -> std::process::Output {
    let connect = format!("import socket; socket.create_connection(('{ip}', {port}), 5).close()");
    Command::new("ip")
        .args(["netns", "exec", netns, "/usr/bin/python3", "-c", &connect])
        .output()
        .expect("ip netns exec runs")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only (CI runs as root): a pod namespace reaches a host listener on a service
    /// address, and shutdown removes every trace.
    #[test]
    fn pods_reach_service_addresses_and_shutdown_removes_everything() {
        preflight().unwrap_or_else(|e| panic!("this test needs root and namespaces: {e}"));
        let net = ClusterNetwork::create().unwrap();
        let slot = net.slot();
        let pod = net.add_pod().unwrap();
        assert_eq!(pod.ip.octets()[..3], [10, 244, slot]);
        assert!(pod.netns_path.exists());
        net.add_local_address(net.api_service_ip()).unwrap();
        let listener = std::net::TcpListener::bind((net.api_service_ip(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = connect_from(&pod.netns, net.api_service_ip(), port);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        listener.accept().unwrap();
        let second = net.add_pod().unwrap();
        assert_ne!(second.ip, pod.ip);
        net.remove_pod(&second);
        assert!(!second.netns_path.exists());
        drop(net);
        let left: Vec<String> = list_netns()
            .into_iter()
            .chain(list_links())
            .filter(|n| {
                *n == format!("kemu{slot}")
                    || n.starts_with(&format!("kemu{slot}-"))
                    || n.starts_with(&format!("kemu{slot}v"))
            })
            .collect();
        assert_eq!(left, Vec::<String>::new());
        assert!(!slot_dir(slot).exists());
    }

    #[test]
    fn addresses_follow_the_slot() {
        // Pure address arithmetic; the live bridge is covered by the process-mode tests.
        let lock = tempfile::tempfile().unwrap();
        let net = ClusterNetwork {
            slot: 7,
            dir: PathBuf::from("/nonexistent"),
            _lock: lock,
            pods: Mutex::new(Default::default()),
            pool: Mutex::new(Vec::new()),
            local_addresses: Mutex::new(BTreeSet::new()),
            shut: Mutex::new(true),
        };
        assert_eq!(net.bridge_name(), "kemu7");
        assert_eq!(net.gateway(), Ipv4Addr::new(10, 244, 7, 1));
        assert_eq!(net.api_service_ip(), Ipv4Addr::new(10, 96, 7, 1));
        assert_eq!(net.dns_service_ip(), Ipv4Addr::new(10, 96, 7, 10));
        assert!(matches!(
            net.add_local_address(Ipv4Addr::new(10, 96, 8, 1)),
            Err(Error::NotAServiceAddress(_, 7))
        ));
    }
}
