//! Service virtual IPs, as kube-proxy's userspace mode did: one TCP listener per clusterIP:port
//! that has at least one ready endpoint, relaying each connection to the next ready endpoint in
//! round robin (trying the others when one refuses). A Service port without ready endpoints has
//! no listener, so clients get "connection refused" as with kube-proxy's REJECT rule.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::bridge::ClusterNetwork;
use super::view::{ClusterView, Frontend};

/// Makes addresses local so host listeners can bind them (the bridge adds a /32 to `kemu<N>`).
pub trait LocalAddresses: Send + Sync {
    fn add(&self, ip: Ipv4Addr) -> Result<(), String>;
    fn remove(&self, ip: Ipv4Addr) -> Result<(), String>;
}

/// The bridge puts Service addresses on `kemu<N>` as /32s (a short `ip` run each).
impl LocalAddresses for ClusterNetwork {
    fn add(&self, ip: Ipv4Addr) -> Result<(), String> {
        self.add_local_address(ip).map_err(|e| e.to_string())
    }

    fn remove(&self, ip: Ipv4Addr) -> Result<(), String> {
        self.remove_local_address(ip).map_err(|e| e.to_string())
    }
}

/// 127.0.0.0/8 is local on Linux already: nothing to do.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loopback;

impl LocalAddresses for Loopback {
    fn add(&self, ip: Ipv4Addr) -> Result<(), String> {
        if ip.is_loopback() {
            Ok(())
        } else {
            Err(format!("{ip} is not a loopback address"))
        }
    }

    fn remove(&self, _ip: Ipv4Addr) -> Result<(), String> {
        Ok(())
    }
}

/// How long connecting to one endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often listeners that could not be bound are retried.
const RETRY: Duration = Duration::from_secs(1);

/// Ready endpoints of one frontend, replaced in place when the Endpoints change.
#[derive(Default)]
struct Backends {
    addrs: RwLock<Vec<SocketAddr>>,
    next: AtomicUsize,
}

impl Backends {
    /// The endpoints in the order this connection tries them (round robin start).
    fn rotation(&self) -> Vec<SocketAddr> {
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner()).clone();
        if addrs.is_empty() {
            return addrs;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % addrs.len();
        addrs[start..]
            .iter()
            .chain(&addrs[..start])
            .copied()
            .collect()
    }
}

struct Listener {
    backends: Arc<Backends>,
    task: AbortHandle,
}

/// Connects to the first endpoint of `rotation` that accepts.
pub async fn connect_any(rotation: &[SocketAddr]) -> Option<TcpStream> {
    for addr in rotation {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => tracing::debug!(%addr, error = %e, "endpoint refused"),
            Err(_) => tracing::debug!(%addr, "endpoint did not answer in time"),
        }
    }
    None
}

async fn relay(mut client: TcpStream, backends: Arc<Backends>) {
    let Some(mut upstream) = connect_any(&backends.rotation()).await else {
        return; // dropping the client closes it: no endpoint accepted
    };
    for s in [&client, &upstream] {
        let _ = s.set_nodelay(true);
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

async fn accept_loop(listener: TcpListener, backends: Arc<Backends>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                conns.spawn(relay(stream, backends.clone()));
            }
            Err(e) => {
                tracing::debug!(error = %e, "service proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
}

/// The set of listeners, reconciled against each new view.
pub struct ServiceProxy {
    local: Arc<dyn LocalAddresses>,
    listeners: BTreeMap<Frontend, Listener>,
    addresses: BTreeSet<Ipv4Addr>,
    tasks: tokio::task::JoinSet<()>,
}

impl ServiceProxy {
    pub fn new(local: Arc<dyn LocalAddresses>) -> Self {
        Self {
            local,
            listeners: BTreeMap::new(),
            addresses: BTreeSet::new(),
            tasks: tokio::task::JoinSet::new(),
        }
    }

    /// Frontends that currently have a listener.
    pub fn listening(&self) -> impl Iterator<Item = &Frontend> {
        self.listeners.keys()
    }

    /// Brings listeners and local addresses in line with `view`; returns false if some listener
    /// could not be bound yet (the caller retries).
    pub async fn reconcile(&mut self, view: &ClusterView) -> bool {
        let wanted: BTreeMap<Frontend, Vec<SocketAddr>> = view
            .frontends
            .keys()
            .map(|f| (*f, view.backends(f).to_vec()))
            .filter(|(_, b)| !b.is_empty())
            .collect();
        self.listeners.retain(|f, l| {
            let keep = wanted.contains_key(f);
            if !keep {
                l.task.abort();
            }
            keep
        });
        let mut complete = true;
        for (frontend, addrs) in wanted {
            if let Some(l) = self.listeners.get(&frontend) {
                *l.backends.addrs.write().unwrap_or_else(|p| p.into_inner()) = addrs;
                continue;
            }
            if let Err(e) = self.ensure_address(frontend.ip) {
                tracing::warn!(ip = %frontend.ip, error = %e, "cannot add the Service IP");
                complete = false;
                continue;
            }
            let listener = match TcpListener::bind((frontend.ip, frontend.port)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(ip = %frontend.ip, port = frontend.port, error = %e,
                        "cannot listen on the Service address");
                    complete = false;
                    continue;
                }
            };
            let backends = Arc::new(Backends {
                addrs: RwLock::new(addrs),
                next: AtomicUsize::new(0),
            });
            let task = self.tasks.spawn(accept_loop(listener, backends.clone()));
            self.listeners.insert(frontend, Listener { backends, task });
        }
        let in_use: BTreeSet<Ipv4Addr> = view.frontends.keys().map(|f| f.ip).collect();
        for ip in self.addresses.clone().difference(&in_use) {
            if let Err(e) = self.local.remove(*ip) {
                tracing::debug!(%ip, error = %e, "cannot remove the Service IP");
            }
            self.addresses.remove(ip);
        }
        while self.tasks.try_join_next().is_some() {}
        complete
    }

    fn ensure_address(&mut self, ip: Ipv4Addr) -> Result<(), String> {
        if !self.addresses.contains(&ip) {
            self.local.add(ip)?;
            self.addresses.insert(ip);
        }
        Ok(())
    }

    /// Follows the view until `stop` fires, then closes every listener.
    pub async fn run(
        mut self,
        mut view: watch::Receiver<Arc<ClusterView>>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let current = view.borrow_and_update().clone();
            let complete = self.reconcile(&current).await;
            tokio::select! {
                changed = view.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(RETRY), if !complete => {}
                _ = stop.changed() => break,
            }
        }
        self.reconcile(&ClusterView::default()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connection_starts_at_the_next_endpoint_and_tries_the_rest_in_order() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let b = Backends {
            addrs: RwLock::new(addrs.clone()),
            next: AtomicUsize::new(0),
        };
        assert_eq!(b.rotation(), addrs);
        assert_eq!(b.rotation(), [addrs[1], addrs[2], addrs[0]]);
        assert_eq!(b.rotation(), [addrs[2], addrs[0], addrs[1]]);
        assert_eq!(b.rotation(), addrs);
        *b.addrs.write().unwrap() = Vec::new();
        assert!(b.rotation().is_empty());
    }

    #[test]
    fn loopback_refuses_addresses_it_cannot_make_local() {
        assert!(Loopback.add(Ipv4Addr::new(127, 9, 9, 9)).is_ok());
        let err = Loopback.add(Ipv4Addr::new(10, 96, 1, 20)).unwrap_err();
        assert!(err.contains("10.96.1.20"), "{err}");
    }
}
