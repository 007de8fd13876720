//! The deploy lock: a coordination.k8s.io/v1 Lease `fluo-deploy` in fluo-system. Taken with an
//! optimistic create/replace (resourceVersion), renewed in the background while held, taken over
//! only once expired (renewTime + leaseDurationSeconds in the past), released on drop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use crate::SYSTEM_NAMESPACE;

pub const LEASE_NAME: &str = "fluo-deploy";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another deploy holds the lock: lease {SYSTEM_NAMESPACE}/{LEASE_NAME} held by `{holder}` for {age} (expires unless renewed within {ttl}s); wait for it, or if it is dead use --force-unlock"
    )]
    Held {
        holder: String,
        age: String,
        ttl: i32,
    },
    #[error("lease {SYSTEM_NAMESPACE}/{LEASE_NAME}: {source}")]
    Kube { source: kube::Error },
}

/// A held lock; renewed until `release` (or drop).
pub struct DeployLock {
    api: Api<Lease>,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
    /// Holder of a previous lease removed by force or taken over after expiry.
    pub replaced: Option<String>,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn to_chrono(t: &MicroTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(t.0.as_nanosecond() as i64)
}

fn expired(spec: &LeaseSpec, at: DateTime<Utc>) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let ttl = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    to_chrono(renewed) + chrono::Duration::seconds(ttl) < at
}

fn spec_for(holder: &str, ttl: Duration) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(ttl.as_secs().max(1) as i32),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        ..Default::default()
    }
}

impl DeployLock {
    /// Takes the lock for `holder` or fails with `Error::Held`. With `force`, an unexpired
    /// lease of someone else is removed first (the removed holder is in `replaced`).
    pub async fn acquire(
        client: &Client,
        holder: &str,
        ttl: Duration,
        force: bool,
    ) -> Result<DeployLock> {
        let api: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
        let kube_err = |source| Error::Kube { source };
        let mut replaced = None;
        for _ in 0..3 {
            let existing = api.get_opt(LEASE_NAME).await.map_err(kube_err)?;
            let result = match existing {
                None => {
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(LEASE_NAME.into()),
                            namespace: Some(SYSTEM_NAMESPACE.into()),
                            ..Default::default()
                        },
                        spec: Some(spec_for(holder, ttl)),
                    };
                    api.create(&PostParams::default(), &lease).await
                }
                Some(mut lease) => {
                    let spec = lease.spec.clone().unwrap_or_default();
                    let current = spec.holder_identity.clone().unwrap_or_default();
                    if !current.is_empty() && !expired(&spec, Utc::now()) && !force {
                        let since = spec
                            .acquire_time
                            .as_ref()
                            .map(to_chrono)
                            .unwrap_or_else(Utc::now);
                        let age = (Utc::now() - since).to_std().unwrap_or_default();
                        return Err(Error::Held {
                            holder: current,
                            age: humantime::format_duration(Duration::from_secs(age.as_secs()))
                                .to_string(),
                            ttl: spec.lease_duration_seconds.unwrap_or(0),
                        });
                    }
                    if !current.is_empty() {
                        replaced = Some(current);
                    }
                    lease.spec = Some(spec_for(holder, ttl));
                    // Replace carries the resourceVersion we read: a concurrent taker makes it 409.
                    api.replace(LEASE_NAME, &PostParams::default(), &lease)
                        .await
                }
            };
            match result {
                Ok(_) => {
                    return Ok(DeployLock {
                        renewer: tokio::spawn(renew(api.clone(), holder.to_string(), ttl)),
                        api,
                        holder: holder.to_string(),
                        replaced,
                    });
                }
                // Lost a race with another deploy: look again (it now holds an unexpired lease).
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(source) => return Err(Error::Kube { source }),
            }
        }
        Err(Error::Held {
            holder: "(changing hands)".into(),
            age: "0s".into(),
            ttl: ttl.as_secs() as i32,
        })
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops renewing and deletes the lease if it is still ours.
    pub async fn release(self) {
        self.renewer.abort();
        if let Ok(Some(lease)) = self.api.get_opt(LEASE_NAME).await
            && lease.spec.and_then(|s| s.holder_identity).as_deref() == Some(self.holder.as_str())
        {
            let _ = self.api.delete(LEASE_NAME, &DeleteParams::default()).await;
        }
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the lease every third of its duration while we still hold it.
async fn renew(api: Api<Lease>, holder: String, ttl: Duration) {
    let period = (ttl / 3).max(Duration::from_millis(200));
    loop {
        tokio::time::sleep(period).await;
        let Ok(Some(mut lease)) = api.get_opt(LEASE_NAME).await else {
            continue;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(holder.as_str()) {
            tracing::warn!("deploy lock was taken by {:?}", spec.holder_identity);
            return;
        }
        spec.renew_time = Some(now());
        lease.spec = Some(spec);
        if let Err(e) = api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "renewing the deploy lock failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expires_after_renew_time_plus_duration() {
        let mut spec = spec_for("a", Duration::from_secs(10));
        let renewed = to_chrono(spec.renew_time.as_ref().unwrap());
        assert!(!expired(&spec, renewed + chrono::Duration::seconds(9)));
        assert!(expired(&spec, renewed + chrono::Duration::seconds(11)));
        spec.renew_time = None;
        spec.acquire_time = None;
        assert!(expired(&spec, renewed), "a lease without times is free");
    }
}
