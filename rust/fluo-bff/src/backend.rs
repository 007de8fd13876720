//! The BFF's side of NATS: the connection, keeping the stream and bucket provisioned, and the
//! two job operations (submit, read).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use chrono::Utc;
use fluo_jobs::connect::NatsAuth;
use fluo_jobs::{JobId, JobMessage, JobRecord, NewJob, names, provision};

/// How long one NATS request (KV write, publish ack, stream info) may take before the request
/// that needed it fails with 503.
const NATS_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a job operation could not be done. All of these are the server's side: 503.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("NATS at {url} is not connected")]
    Disconnected { url: String },
    #[error("the job-state bucket {} is not provisioned yet", names::KV_BUCKET)]
    NotProvisioned,
    #[error("could not record job {id} in bucket {}: {reason}", names::KV_BUCKET)]
    Record { id: JobId, reason: String },
    #[error("could not queue job {id} on stream {}: {reason}", names::STREAM)]
    Enqueue { id: JobId, reason: String },
    #[error("could not read job {id} from bucket {}: {reason}", names::KV_BUCKET)]
    Read { id: JobId, reason: String },
    #[error(
        "job record {id} in bucket {} is not a job record: {reason}",
        names::KV_BUCKET
    )]
    Corrupt { id: JobId, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub struct Backend {
    url: String,
    client: Client,
    js: jetstream::Context,
    /// Shared, not cloned per request: a `kv::Store` holds several strings.
    bucket: RwLock<Option<Arc<kv::Store>>>,
}

impl Backend {
    /// Starts connecting in the background: the BFF serves /health at once and /ready turns
    /// 200 when NATS is reachable, whatever the start order.
    pub async fn connect(
        url: &str,
        auth: &NatsAuth,
    ) -> std::result::Result<Self, async_nats::ConnectError> {
        // The pod's name in the connection's (as the worker's), so that NATS' /connz says which
        // pod a connection belongs to (`fluo-deploy rotate nats` waits for the old pods' ones).
        let name = std::env::var("HOSTNAME")
            .map_or_else(|_| "fluo-bff".to_owned(), |pod| format!("fluo-bff {pod}"));
        let client = fluo_jobs::connect::connect(name, url, auth).await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(NATS_TIMEOUT);
        Ok(Backend {
            url: url.to_owned(),
            client,
            js,
            bucket: RwLock::new(None),
        })
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates the stream and the bucket if missing; call repeatedly (it is idempotent) so a
    /// NATS that lost its data is re-provisioned without restarting the BFF.
    pub async fn provision(&self) -> std::result::Result<(), provision::Error> {
        provision::ensure_stream(&self.js).await?;
        let store = provision::ensure_bucket(&self.js).await?;
        *self.bucket.write().expect("bucket lock poisoned") = Some(Arc::new(store));
        Ok(())
    }

    /// Ok when NATS is connected and the job stream exists, else the reason.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        if !self.is_connected() {
            return Err(format!("NATS at {} is not connected", self.url));
        }
        match tokio::time::timeout(NATS_TIMEOUT, self.js.get_stream_no_info(names::STREAM)).await {
            Err(_) => {
                return Err(format!(
                    "no answer from NATS about stream {}",
                    names::STREAM
                ));
            }
            Ok(Err(err)) => {
                return Err(format!(
                    "job stream {} is not available: {err}",
                    names::STREAM
                ));
            }
            Ok(Ok(_)) => {}
        }
        if self.bucket.read().expect("bucket lock poisoned").is_none() {
            return Err(Error::NotProvisioned.to_string());
        }
        Ok(())
    }

    /// Records the job `queued`, then queues it and waits for the stream's ack.
    ///
    /// If queueing fails, the record is moved to `failed` with a compare-and-set; if that
    /// compare-and-set loses, a worker already started the job, so the message was stored
    /// and the job is accepted after all.
    pub async fn submit(&self, job: NewJob) -> Result<JobRecord> {
        let store = self.store()?;
        let id = JobId::new_random();
        let record = JobRecord::queued(id, job.job_type, job.data, Utc::now());
        let revision =
            store
                .create(id.key(), encode(&record))
                .await
                .map_err(|e| Error::Record {
                    id,
                    reason: e.to_string(),
                })?;
        match self.enqueue(&record).await {
            Ok(()) => Ok(record),
            Err(reason) => {
                let failed = record
                    .fail(format!("could not be queued: {reason}"), Utc::now())
                    .expect("a queued job can fail");
                match store.update(id.key(), encode(&failed), revision).await {
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(record),
                    _ => Err(Error::Enqueue { id, reason }),
                }
            }
        }
    }

    async fn enqueue(&self, record: &JobRecord) -> std::result::Result<(), String> {
        let message = JobMessage {
            id: record.id,
            job_type: record.job_type,
        };
        let payload = Bytes::from(serde_json::to_vec(&message).expect("job messages serialise"));
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            record.id.to_string().as_str(),
        );
        let ack = self
            .js
            .publish_with_headers(names::subject_for(record.job_type), headers, payload)
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// The job's record, or None if no such job exists.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>> {
        let store = self.store()?;
        let entry = store.entry(id.key()).await.map_err(|e| Error::Read {
            id,
            reason: e.to_string(),
        })?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => {
                serde_json::from_slice(&entry.value)
                    .map(Some)
                    .map_err(|e| Error::Corrupt {
                        id,
                        reason: e.to_string(),
                    })
            }
            _ => Ok(None),
        }
    }

    /// Sends anything still buffered to NATS; called on shutdown. Bounded: a flush waits for a
    /// connection, and with NATS down the BFF would otherwise never exit on SIGTERM.
    pub async fn flush(&self) {
        const FLUSH_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
        match tokio::time::timeout(FLUSH_WITHIN, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "could not flush the NATS connection on shutdown")
            }
            Err(_) => tracing::warn!(
                "NATS connection not flushed within {FLUSH_WITHIN:?} on shutdown (NATS unreachable); stopping anyway"
            ),
        }
    }

    fn store(&self) -> Result<Arc<kv::Store>> {
        if !self.is_connected() {
            return Err(Error::Disconnected {
                url: self.url.clone(),
            });
        }
        self.bucket
            .read()
            .expect("bucket lock poisoned")
            .clone()
            .ok_or(Error::NotProvisioned)
    }
}

fn encode(record: &JobRecord) -> Bytes {
    Bytes::from(serde_json::to_vec(record).expect("job records serialise"))
}
