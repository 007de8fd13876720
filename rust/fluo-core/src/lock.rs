//! The deploy lock: a coordination.k8s.io/v1 Lease `fluo-deploy` in fluo-system. Taken with an
//! optimistic create/replace (resourceVersion), renewed in the background while held, taken over
//! only once expired (renewTime + leaseDurationSeconds in the past), released at the end.
//!
//! Losing it is reported once through the `on_lost` callback given to `acquire`: when another
//! holder took the lease, or when renewals kept failing until only one renewal period of the
//! lease's lifetime was left (so the run stops before the lease could expire unrenewed).
//! Transient renewal failures are retried within that lifetime.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};

use crate::{SYSTEM_NAMESPACE, durable};

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
        on_lost: impl FnOnce(String) + Send + 'static,
    ) -> Result<DeployLock> {
        let api: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
        let kube_err = |source| Error::Kube { source };
        let mut replaced = None;
        let mut on_lost = Some(on_lost);
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
                    let on_lost = on_lost.take().expect("the lock is taken once");
                    return Ok(DeployLock {
                        renewer: tokio::spawn(renew(api.clone(), holder.to_string(), ttl, on_lost)),
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

    /// Stops renewing and deletes the lease if it is still ours. The delete carries the
    /// lease's uid and resourceVersion as preconditions, so a lease that changed hands in the
    /// meantime is never touched.
    pub async fn release(self) {
        self.renewer.abort();
        let read = durable::retry(durable::is_transient, |_| self.api.get_opt(LEASE_NAME));
        let Ok(Some(lease)) = read.await else {
            return;
        };
        if holder_of(&lease) != Some(self.holder.as_str()) {
            return;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lease.metadata.uid.clone(),
                resource_version: lease.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match durable::retry(durable::is_transient, |_| {
            self.api.delete(LEASE_NAME, &params)
        })
        .await
        {
            // Gone already (an earlier attempt landed), or changed hands: not ours to delete.
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(error = %e, "releasing the deploy lock failed (it expires on its own)")
            }
        }
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

fn holder_of(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// What one renewal attempt found.
enum Renewal {
    Renewed,
    /// Someone else holds the lease now (or nobody: it was deleted).
    Lost(String),
}

async fn renew_once(api: &Api<Lease>, holder: &str) -> std::result::Result<Renewal, kube::Error> {
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        return Ok(Renewal::Lost(format!(
            "lease {SYSTEM_NAMESPACE}/{LEASE_NAME} was deleted"
        )));
    };
    if holder_of(&lease) != Some(holder) {
        return Ok(Renewal::Lost(format!(
            "lease {SYSTEM_NAMESPACE}/{LEASE_NAME} is now held by `{}`",
            holder_of(&lease).unwrap_or("nobody")
        )));
    }
    let mut spec = lease.spec.clone().unwrap_or_default();
    spec.renew_time = Some(now());
    lease.spec = Some(spec);
    // Carries the resourceVersion read above: a concurrent takeover makes this a 409, and the
    // next attempt sees the new holder.
    api.replace(LEASE_NAME, &PostParams::default(), &lease)
        .await?;
    Ok(Renewal::Renewed)
}

/// How often the lease is renewed: a third of its lifetime.
pub fn renew_period(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(200))
}

/// Renews every `renew_period` while the lease is ours. Failed attempts are retried quickly
/// until only one period of the lease's lifetime is left; then, or when another holder shows
/// up, `on_lost` is called once and renewing ends.
async fn renew(
    api: Api<Lease>,
    holder: String,
    ttl: Duration,
    on_lost: impl FnOnce(String) + Send + 'static,
) {
    let period = renew_period(ttl);
    let retry = (period / 4).max(Duration::from_millis(50));
    let mut renewed_at = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let give_up_at = renewed_at + ttl.saturating_sub(period);
        loop {
            let left = give_up_at.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(left, renew_once(&api, &holder)).await;
            let error = match attempt {
                Ok(Ok(Renewal::Renewed)) => {
                    renewed_at = Instant::now();
                    break;
                }
                Ok(Ok(Renewal::Lost(detail))) => {
                    tracing::warn!("deploy lock lost: {detail}");
                    on_lost(detail);
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer".to_string(),
            };
            tracing::debug!(error, "renewing the deploy lock failed; retrying");
            if Instant::now() + retry >= give_up_at {
                on_lost(format!(
                    "could not renew lease {SYSTEM_NAMESPACE}/{LEASE_NAME} within its lifetime ({}): {error}",
                    humantime::format_duration(ttl)
                ));
                return;
            }
            tokio::time::sleep(retry).await;
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

    #[test]
    fn renewals_come_three_times_per_lifetime_and_not_too_often() {
        assert_eq!(
            renew_period(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(
            renew_period(Duration::from_millis(300)),
            Duration::from_millis(200)
        );
    }
}
