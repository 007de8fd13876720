//! A local CA and the NATS server certificate it signs (local and rehearsal environments; in
//! production the operator's CA issues the certificate and only `ca.crt` is shared).
//! Files: `ca.crt` (what clients trust), `ca.key` (keep it away from the cluster), and
//! `tls.crt`/`tls.key` (the server's, the keys of a kubernetes.io/tls Secret).

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::files;

pub const FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// The names the in-cluster NATS Service answers to, in namespace `namespace`.
pub fn service_names(namespace: &str) -> Vec<String> {
    vec![
        "nats".into(),
        format!("nats.{namespace}"),
        format!("nats.{namespace}.svc"),
        format!("nats.{namespace}.svc.cluster.local"),
        "localhost".into(),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("making the certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error(transparent)]
    File(#[from] files::Error),
}

/// PEM texts of a CA and a server certificate signed by it.
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub server_cert: String,
    pub server_key: String,
}

/// A new CA named `ca_name` and a server certificate for `names` (DNS names or IP addresses).
pub fn generate(ca_name: &str, names: &[String]) -> Result<Bundle, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let (ips, dns): (Vec<_>, Vec<_>) = names.iter().partition(|n| n.parse::<IpAddr>().is_ok());
    let mut server = CertificateParams::new(dns.into_iter().cloned().collect::<Vec<_>>())?;
    for ip in ips {
        server.subject_alt_names.push(SanType::IpAddress(
            ip.parse().expect("partitioned as an IP"),
        ));
    }
    server.distinguished_name.push(DnType::CommonName, "nats");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?;
    Ok(Bundle {
        ca_cert: ca_cert.pem(),
        ca_key: issuer.key().serialize_pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
    })
}

/// Writes the bundle's four [`FILES`] into `dir` (new files, 0600); none when one exists.
pub fn write(dir: &Path, bundle: &Bundle) -> Result<(), Error> {
    files::check_free(dir, &FILES)?;
    for (name, text) in FILES.iter().zip([
        &bundle.ca_cert,
        &bundle.ca_key,
        &bundle.server_cert,
        &bundle.server_key,
    ]) {
        files::write_new(&dir.join(name), text)?;
    }
    Ok(())
}
