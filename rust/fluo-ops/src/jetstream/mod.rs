//! JetStream state around NATS changes: a backup of every stream (configuration, consumers,
//! messages) to files before a deploy that changes the NATS StatefulSet, and `restore` from
//! such a backup. The deployer reaches NATS as `[backup]` says: `nats_url`, else a port-forward
//! to port 4222 of the Service `nats`; with the user, password file and CA given there. And
//! what `diagnose` reads from the monitoring endpoint (`observe`).

pub mod backup;
pub mod observe;
pub mod restore;

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
}

/// Connects to NATS as `[backup]` says.
pub async fn connect(
    backup: &Backup,
    cluster: &kube::Client,
    namespace: &str,
) -> Result<Connection, String> {
    let (url, forward) = match &backup.nats_url {
        Some(url) => (url.clone(), None),
        None => {
            let forward = PortForward::to_service(cluster.clone(), namespace, "nats", 4222)
                .await
                .map_err(|e| format!("port-forward to Service {namespace}/nats:4222: {e}"))?;
            let scheme = if backup.nats_ca_file.is_some() {
                "tls"
            } else {
                "nats"
            };
            (
                format!("{scheme}://{}", forward.local_addr()),
                Some(forward),
            )
        }
    };
    let mut options = ConnectOptions::new()
        .name("fluo-deploy backup")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(REQUEST_TIMEOUT));
    if let (Some(user), Some(file)) = (&backup.nats_user, &backup.nats_password_file) {
        let password = std::fs::read_to_string(file)
            .map_err(|e| format!("backup.nats_password_file {}: {e}", file.display()))?;
        options = options.user_and_password(user.clone(), password.trim_end().to_string());
    }
    if let Some(ca) = &backup.nats_ca_file {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    let client = options
        .connect(&url)
        .await
        .map_err(|e| format!("cannot connect to NATS at {url}: {e}"))?;
    Ok(Connection {
        jetstream: async_nats::jetstream::new(client.clone()),
        client,
        _forward: forward,
    })
}
