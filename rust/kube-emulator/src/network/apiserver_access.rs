//! In-cluster access to the API: what a pod needs to talk to "the apiserver" the way client-go's
//! in-cluster config does.
//!
//! Per emulator instance: a CA (rcgen, ECDSA P-256) and a serving certificate for the `kubernetes`
//! Service's clusterIP, the apiserver endpoint and the `kubernetes.default.svc.<domain>` names; a
//! TLS listener at the apiserver endpoint that relays the decrypted stream to the emulator's plain
//! HTTP API; the `default/kubernetes` Service (clusterIP = API VIP, port 443) with Endpoints
//! naming that listener, so the Service proxy carries VIP:443 to it like any other Service.
//!
//! The contract with the process kubelet (projected service-account volume and env):
//! - [`ApiserverAccess::ca_pem`] / [`ApiserverAccess::ca_file`]: `ca.crt` of the volume;
//! - [`ApiserverAccess::token`] / [`ApiserverAccess::token_file`]: `token` of the volume (the
//!   emulator does not check tokens: every caller is cluster-admin);
//! - [`ApiserverAccess::service_env`]: the KUBERNETES_SERVICE_* / KUBERNETES_PORT* variables the
//!   kubelet gives every container.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};

use crate::apiserver::registry::{self, WriteOptions};
use crate::apiserver::resources::by_kind;
use crate::apiserver::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating the cluster CA or the apiserver certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("configuring TLS for the apiserver endpoint: {0}")]
    Tls(#[from] rustls::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("listening on the apiserver endpoint {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("creating {what}: {message}")]
    Object { what: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `kubernetes` Service's port, as on every cluster.
pub const SERVICE_PORT: u16 = 443;

/// Credentials and addresses pods use to reach the API in-cluster.
#[derive(Clone)]
pub struct ApiserverAccess {
    ca_pem: String,
    token: String,
    vip: Ipv4Addr,
    endpoint: SocketAddr,
    dir: PathBuf,
}

impl std::fmt::Debug for ApiserverAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiserverAccess")
            .field("vip", &self.vip)
            .field("endpoint", &self.endpoint)
            .field("dir", &self.dir)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The serving certificate and key plus the CA, generated fresh per emulator.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn generate_pki(vip: Ipv4Addr, endpoint_ip: IpAddr, domain: &str) -> Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kube-emulator-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let names = [
        "kubernetes".to_string(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
        "localhost".into(),
    ];
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    for ip in [
        IpAddr::V4(vip),
        endpoint_ip,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    ] {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The running TLS endpoint; [`ApiserverAccess`] is what others need of it.
pub struct ApiserverEndpoint {
    pub access: ApiserverAccess,
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl ApiserverAccess {
    /// Generates the PKI and token, writes `ca.crt` and `token` into `dir`, and binds the TLS
    /// endpoint (port 0: a free port). Nothing is served until [`ApiserverEndpoint::serve`].
    pub async fn bind(
        vip: Ipv4Addr,
        endpoint: SocketAddr,
        domain: &str,
        dir: &Path,
    ) -> Result<ApiserverEndpoint> {
        let pki = generate_pki(vip, endpoint.ip(), domain)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert], pki.key)?;
        // The relay is a byte stream to an HTTP/1.1 server: offer nothing else.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = TcpListener::bind(endpoint)
            .await
            .map_err(|source| Error::Bind {
                addr: endpoint,
                source,
            })?;
        let endpoint = listener.local_addr().map_err(|source| Error::Bind {
            addr: endpoint,
            source,
        })?;
        let token = format!("kube-emulator-{}", uuid::Uuid::new_v4().simple());
        let access = ApiserverAccess {
            ca_pem: pki.ca_pem,
            token,
            vip,
            endpoint,
            dir: dir.to_path_buf(),
        };
        write(&access.ca_file(), &access.ca_pem)?;
        write(&access.token_file(), &access.token)?;
        Ok(ApiserverEndpoint {
            access,
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
        })
    }

    /// PEM of the cluster CA (`ca.crt` of the service-account volume).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The service-account token every pod gets (never log it).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `<dir>/ca.crt`, written at start.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `<dir>/token`, written at start.
    pub fn token_file(&self) -> PathBuf {
        self.dir.join("token")
    }

    /// The `kubernetes` Service's clusterIP.
    pub fn service_host(&self) -> Ipv4Addr {
        self.vip
    }

    pub fn service_port(&self) -> u16 {
        SERVICE_PORT
    }

    /// Where the TLS endpoint listens (the `kubernetes` Endpoints address).
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }

    /// The environment the kubelet sets for the `kubernetes` Service in every container.
    pub fn service_env(&self) -> Vec<(String, String)> {
        let (host, port) = (self.vip.to_string(), SERVICE_PORT.to_string());
        let url = format!("tcp://{host}:{port}");
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), host.clone()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.clone()),
            ("KUBERNETES_PORT".into(), url.clone()),
            (format!("KUBERNETES_PORT_{port}_TCP"), url),
            (format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp".into()),
            (format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.clone()),
            (format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host),
        ]
    }

    /// Creates `default/kubernetes` and its Endpoints, as the apiserver does at start.
    pub fn register_service(&self, store: &Store) -> Result<()> {
        let opts = WriteOptions {
            field_manager: "kube-apiserver".into(),
            ..Default::default()
        };
        let labels = json!({"component": "apiserver", "provider": "kubernetes"});
        let service = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
            "spec": {"type": "ClusterIP", "clusterIP": self.vip.to_string(),
                "sessionAffinity": "None",
                "ports": [{"name": "https", "port": SERVICE_PORT, "protocol": "TCP",
                    "targetPort": self.endpoint.port()}]}});
        let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
            "subsets": [{"addresses": [{"ip": self.endpoint.ip().to_string()}],
                "ports": [{"name": "https", "port": self.endpoint.port(), "protocol": "TCP"}]}]});
        for (kind, obj) in [("Service", service), ("Endpoints", endpoints)] {
            let def = by_kind("", kind).expect("core kinds served");
            registry::create(store, def, "default", obj, &opts).map_err(|e| Error::Object {
                what: format!("{kind} default/kubernetes"),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

impl ApiserverEndpoint {
    /// Terminates TLS and relays each connection to the plain-HTTP API at `api`, until dropped.
    pub async fn serve(self, api: SocketAddr) {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    conns.spawn(relay(self.acceptor.clone(), stream, peer, api));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "apiserver endpoint accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            while conns.try_join_next().is_some() {}
        }
    }
}

async fn relay(acceptor: TlsAcceptor, stream: TcpStream, peer: SocketAddr, api: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut tls = match acceptor.accept(stream).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "TLS handshake with an in-cluster client failed");
            return;
        }
    };
    let mut upstream = match TcpStream::connect(api).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%api, error = %e, "cannot reach the emulator's API");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
}
