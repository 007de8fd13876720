//! The network services of the process runtime, started together over one store: Service
//! virtual IPs ([`services`]), cluster DNS ([`dns`]), in-cluster API access
//! ([`apiserver_access`]) and the Ingress listener ([`ingress`]), all following one
//! [`ClusterView`] rebuilt from the store whenever a Service, Endpoints or Ingress changes.
//!
//! Addresses come from a [`NetworkConfig`]: [`NetworkConfig::for_bridge`] is the layout of the
//! instance's [`ClusterNetwork`] (service CIDR 10.96.N.0/24, API VIP 10.96.N.1:443, DNS
//! 10.96.N.10:53, apiserver endpoint on the gateway 10.244.N.1:6443), [`NetworkConfig::loopback`]
//! the same shape on 127.0.0.0/8 for tests without namespaces. Service IPs become local addresses
//! through [`LocalAddresses`] (the bridge adds them as /32s; on loopback they already are).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast::error::RecvError, watch};
use tokio::task::JoinSet;

use super::apiserver_access::{self, ApiserverAccess};
use super::bridge::ClusterNetwork;
use super::services::{self, LocalAddresses, Loopback};
use super::view::{self, ClusterView};
use super::{dns, ingress};
use crate::apiserver::store::Store;

/// Store changes arriving within this window are folded into one rebuild of the view.
const DEBOUNCE: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    ApiserverAccess(#[from] apiserver_access::Error),
    #[error("cannot make {ip} a local address: {message}")]
    LocalAddress { ip: Ipv4Addr, message: String },
    #[error("listening for cluster DNS on {addr}: {source}")]
    Dns {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("creating the service-account directory {path}: {source}")]
    CredentialsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listening for Ingress traffic on {addr}: {source}")]
    Ingress {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the Ingress listener goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngressListen {
    Off,
    /// 127.0.0.1:80 if it can be bound, otherwise off with a log line.
    #[default]
    DefaultPort80,
    /// This address or an error.
    At(SocketAddr),
}

impl std::str::FromStr for IngressListen {
    type Err = String;

    /// `off`, `default` (127.0.0.1:80 if possible) or an address such as `127.0.0.1:8080`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "default" => Ok(Self::DefaultPort80),
            addr => addr.parse().map(Self::At).map_err(|_| {
                format!("invalid --ingress-listen {addr:?}: use ADDR:PORT (e.g. 127.0.0.1:8080), default or off")
            }),
        }
    }
}

/// Addresses and files of one emulator's cluster network.
#[derive(Clone)]
pub struct NetworkConfig {
    /// Cluster domain (`cluster.local`).
    pub domain: String,
    /// The `kubernetes` Service's clusterIP (port 443).
    pub api_vip: Ipv4Addr,
    /// Where the TLS apiserver endpoint listens (the `kubernetes` Endpoints address).
    pub apiserver_endpoint: SocketAddr,
    /// Cluster DNS, UDP and TCP.
    pub dns_listen: SocketAddr,
    pub ingress: IngressListen,
    /// Where `ca.crt` and `token` are written (created if missing).
    pub credentials_dir: PathBuf,
    pub local_addresses: Arc<dyn LocalAddresses>,
}

impl std::fmt::Debug for NetworkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConfig")
            .field("domain", &self.domain)
            .field("api_vip", &self.api_vip)
            .field("apiserver_endpoint", &self.apiserver_endpoint)
            .field("dns_listen", &self.dns_listen)
            .field("ingress", &self.ingress)
            .field("credentials_dir", &self.credentials_dir)
            .finish_non_exhaustive()
    }
}

impl NetworkConfig {
    /// The layout of the instance's bridge: API VIP 10.96.N.1, DNS 10.96.N.10:53, apiserver
    /// endpoint on the gateway 10.244.N.1:6443, credentials in `<state dir>/serviceaccount`.
    pub fn for_bridge(bridge: Arc<ClusterNetwork>, ingress: IngressListen) -> Self {
        Self {
            domain: "cluster.local".into(),
            api_vip: bridge.api_service_ip(),
            apiserver_endpoint: SocketAddr::from((bridge.gateway(), 6443)),
            dns_listen: SocketAddr::from((bridge.dns_service_ip(), 53)),
            ingress,
            credentials_dir: bridge.state_dir().join("serviceaccount"),
            local_addresses: bridge,
        }
    }

    /// The same shape on 127.a.b.0/24 for tests: API VIP 127.a.b.1, DNS 127.a.b.10 on
    /// `dns_port` (53 needs root), apiserver endpoint 127.a.b.2 on a free port, no Ingress.
    pub fn loopback(a: u8, b: u8, dns_port: u16, credentials_dir: PathBuf) -> Self {
        Self {
            domain: "cluster.local".into(),
            api_vip: Ipv4Addr::new(127, a, b, 1),
            apiserver_endpoint: SocketAddr::from(([127, a, b, 2], 0)),
            dns_listen: SocketAddr::from(([127, a, b, 10], dns_port)),
            ingress: IngressListen::Off,
            credentials_dir,
            local_addresses: Arc::new(Loopback),
        }
    }
}

/// The running network. Dropping it (or [`Network::shutdown`]) stops every listener.
pub struct Network {
    access: ApiserverAccess,
    dns_addr: SocketAddr,
    ingress_addr: Option<SocketAddr>,
    view: watch::Receiver<Arc<ClusterView>>,
    stop: watch::Sender<bool>,
    /// Ends by itself on `stop` after closing its listeners and releasing its addresses.
    proxy: Option<tokio::task::JoinHandle<()>>,
    /// The view follower and the servers (aborted on shutdown).
    tasks: JoinSet<()>,
}

impl Network {
    /// Starts everything against `store`; `api` is the emulator's plain-HTTP API address.
    pub async fn start(store: Arc<Store>, api: SocketAddr, config: NetworkConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.credentials_dir).map_err(|source| {
            Error::CredentialsDir {
                path: config.credentials_dir.clone(),
                source,
            }
        })?;
        let local = config.local_addresses.clone();
        for ip in [Some(config.api_vip), ipv4(config.dns_listen)]
            .into_iter()
            .flatten()
        {
            local
                .add(ip)
                .map_err(|message| Error::LocalAddress { ip, message })?;
        }
        let endpoint = apiserver_access::ApiserverAccess::bind(
            config.api_vip,
            config.apiserver_endpoint,
            &config.domain,
            &config.credentials_dir,
        )
        .await?;
        let access = endpoint.access.clone();
        let dns = dns::DnsServer::bind(config.dns_listen)
            .await
            .map_err(|source| Error::Dns {
                addr: config.dns_listen,
                source,
            })?;
        let dns_addr = dns.local_addr().map_err(|source| Error::Dns {
            addr: config.dns_listen,
            source,
        })?;
        let ingress = bind_ingress(config.ingress).await?;
        let ingress_addr = ingress.as_ref().and_then(|l| l.local_addr().ok());
        access.register_service(&store)?;

        let (stop, stop_rx) = watch::channel(false);
        let (view_tx, view) = watch::channel(Arc::new(ClusterView::default()));
        let mut tasks = JoinSet::new();
        tasks.spawn(follow(
            store,
            config.domain.clone(),
            view_tx,
            stop_rx.clone(),
        ));
        let proxy = tokio::spawn(services::ServiceProxy::new(local).run(view.clone(), stop_rx));
        tasks.spawn(endpoint.serve(api));
        tasks.spawn(dns.serve(view.clone(), config.domain.clone()));
        if let Some(listener) = ingress {
            tasks.spawn(ingress::serve(listener, view.clone()));
        }
        Ok(Self {
            access,
            dns_addr,
            ingress_addr,
            view,
            stop,
            proxy: Some(proxy),
            tasks,
        })
    }

    /// CA, token and env for pods (the process kubelet's side of the contract).
    pub fn apiserver_access(&self) -> &ApiserverAccess {
        &self.access
    }

    /// The bound DNS address (the `nameserver` of pods' resolv.conf).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// The bound Ingress address, if the listener is on.
    pub fn ingress_addr(&self) -> Option<SocketAddr> {
        self.ingress_addr
    }

    /// The current view (for tests and diagnostics).
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// Waits until the view satisfies `cond` (bounded by the caller).
    pub async fn wait_for_view(&self, cond: impl Fn(&ClusterView) -> bool) {
        let mut rx = self.view.clone();
        let _ = rx.wait_for(|v| cond(v)).await;
    }

    /// Stops the listeners (the Service proxy closes its own and releases its addresses).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(proxy) = self.proxy.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), proxy).await;
        }
        self.tasks.shutdown().await;
    }
}

fn ipv4(addr: SocketAddr) -> Option<Ipv4Addr> {
    match addr {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(_) => None,
    }
}

async fn bind_ingress(listen: IngressListen) -> Result<Option<tokio::net::TcpListener>> {
    match listen {
        IngressListen::Off => Ok(None),
        IngressListen::At(addr) => ingress::bind(addr)
            .await
            .map(Some)
            .map_err(|source| Error::Ingress { addr, source }),
        IngressListen::DefaultPort80 => {
            let addr = SocketAddr::from(([127, 0, 0, 1], 80));
            match ingress::bind(addr).await {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    tracing::warn!(%addr, error = %e,
                        "Ingress listener off: cannot bind its default address (use --ingress-listen ADDR)");
                    Ok(None)
                }
            }
        }
    }
}

/// Rebuilds the view after every relevant store change (debounced) until `stop` fires.
async fn follow(
    store: Arc<Store>,
    domain: String,
    tx: watch::Sender<Arc<ClusterView>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = store.lock().subscribe();
    loop {
        let next = view::build(&store.lock(), &domain);
        tx.send_if_modified(|current| {
            let changed = **current != next;
            if changed {
                *current = Arc::new(next);
            }
            changed
        });
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                ev = events.recv() => match ev {
                    Ok(ev) if matches!(ev.def.kind, "Service" | "Endpoints" | "Ingress") => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
        tokio::time::sleep(DEBOUNCE).await;
        while events.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_listen_parses_off_default_and_addresses_and_names_bad_values() {
        assert_eq!("off".parse(), Ok(IngressListen::Off));
        assert_eq!("default".parse(), Ok(IngressListen::DefaultPort80));
        assert_eq!(
            "127.0.0.1:8080".parse(),
            Ok(IngressListen::At(SocketAddr::from(([127, 0, 0, 1], 8080))))
        );
        let err = "localhost".parse::<IngressListen>().unwrap_err();
        assert!(
            err.contains("\"localhost\"") && err.contains("--ingress-listen"),
            "{err}"
        );
    }
}
