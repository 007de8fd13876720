//! JetStream state around NATS changes: a backup of every stream (configuration, consumers,
//! messages) to files before a deploy that changes the NATS StatefulSet, and `restore` from
//! such a backup. The deployer reaches NATS as `[backup]` says: `nats_url`, else a port-forward
//! to port 4222 of the Service `nats`; with the user, password file and CA given there, or
//! the `backup` user and CA read from the Secrets (`secrets`). And what `diagnose` reads from
//! the monitoring endpoint (`observe`).

pub mod backup;
pub mod observe;
pub mod restore;
pub mod secrets;

use std::path::PathBuf;

use std::time::Duration;

use async_nats::ConnectOptions;
use fluo_core::config::Backup;
use fluo_core::portforward::PortForward;

/// How long one JetStream request may take before the backup or restore fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection and the port-forward it runs over (kept open as long as the connection).
pub struct Connection {
    pub jetstream: async_nats::jetstream::Context,
    pub client: async_nats::Client,
    _forward: Option<PortForward>,
    /// Kept while connected: a reconnect reads the roots again.
    _ca: Option<CaFile>,
}

/// Connects to NATS as `[backup]` says.
pub async fn connect(
    backup: &Backup,
    cluster: &kube::Client,
    namespace: &str,
) -> Result<Connection, String> {
    let from_secrets = match backup.credentials_from_secrets {
        true => Some(secrets::read(cluster, namespace).await?),
        false => None,
    };
    let tls = backup.nats_ca_file.is_some() || from_secrets.is_some();
    let (url, forward) = match &backup.nats_url {
        Some(url) => (url.clone(), None),
        None => {
            let forward = PortForward::to_service(cluster.clone(), namespace, "nats", 4222)
                .await
                .map_err(|e| format!("port-forward to Service {namespace}/nats:4222: {e}"))?;
            // With TLS, the name `fluo-secrets tls` puts in the certificate for local clients.
            let url = match tls {
                true => format!("tls://localhost:{}", forward.local_addr().port()),
                false => format!("nats://{}", forward.local_addr()),
            };
            (url, Some(forward))
        }
    };
    let mut options = ConnectOptions::new()
        .name("fluo-deploy backup")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(REQUEST_TIMEOUT));
    let mut user = None;
    if let (Some(name), Some(file)) = (&backup.nats_user, &backup.nats_password_file) {
        let password = std::fs::read_to_string(file)
            .map_err(|e| format!("backup.nats_password_file {}: {e}", file.display()))?;
        user = Some((name.clone(), password.trim_end().to_string()));
    }
    let mut ca_file = backup.nats_ca_file.clone().map(CaFile::Given);
    if let Some(c) = from_secrets {
        user = Some((c.user, c.password));
        ca_file = Some(CaFile::written(&c.ca_pem)?);
    }
    if let Some((name, password)) = user {
        // Replies come on the user's own inbox prefix, the only one its permissions allow.
        options = options
            .custom_inbox_prefix(format!("_INBOX_{name}"))
            .user_and_password(name, password);
    }
    if let Some(ca) = &ca_file {
        options = options
            .require_tls(true)
            .add_root_certificates(ca.path().clone());
    }
    let client = options
        .connect(&url)
        .await
        .map_err(|e| format!("cannot connect to NATS at {url}: {e}"))?;
    Ok(Connection {
        jetstream: async_nats::jetstream::new(client.clone()),
        client,
        _forward: forward,
        _ca: ca_file,
    })
}

/// The CA file the connection trusts: given in `[backup]`, or the Secret's CA written to a
/// temporary file (removed when dropped) because async-nats reads roots from a file.
pub(crate) enum CaFile {
    Given(PathBuf),
    Written(PathBuf),
}

impl CaFile {
    pub(crate) fn written(pem: &str) -> Result<CaFile, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("fluo-backup-ca-{}-{nanos}.crt", std::process::id()));
        std::fs::write(&path, pem).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(CaFile::Written(path))
    }

    pub(crate) fn path(&self) -> &PathBuf {
        match self {
            CaFile::Given(p) | CaFile::Written(p) => p,
        }
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        if let CaFile::Written(path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}
