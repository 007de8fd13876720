//! Handling one delivered job message so that a job is never lost and never completed twice:
//! state is written with compare-and-set on the KV revision before the message is acked, and a
//! job whose record is already completed/failed is acked without running again.

use std::time::{Duration, Instant};

use async_nats::jetstream::{AckKind, Message, kv};
use bytes::Bytes;
use chrono::Utc;
use fluo_jobs::{JobMessage, JobRecord, names};

use crate::jobs::{RunContext, execute};
use crate::metrics::Metrics;

/// How long NATS waits before redelivering a job we could not handle for an infrastructure
/// reason (KV unreachable and the like).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// How many times to re-read the record when a compare-and-set loses a race.
const CAS_RETRIES: usize = 3;

/// What happened to one delivery; the label of `fluo_worker_jobs_processed_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and recorded completed.
    Completed,
    /// Ran (or gave up after too many attempts) and recorded failed.
    Failed,
    /// The record was already completed/failed: a redelivery, acked without running.
    Duplicate,
    /// No record exists (the BFF never accepted it, or it expired): acked without running.
    Orphaned,
    /// The message is not a job message: terminated without running.
    Invalid,
    /// An infrastructure failure: not acked, NATS redelivers it.
    Retry,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Duplicate => "duplicate",
            Outcome::Orphaned => "orphaned",
            Outcome::Invalid => "invalid",
            Outcome::Retry => "retry",
        }
    }
}

/// What to do with a delivery, given the job's current record.
#[derive(Debug, PartialEq)]
pub enum Plan {
    Skip(Outcome),
    /// The job has been started `MAX_ATTEMPTS` times without finishing: record it failed.
    GiveUp,
    Run,
}

/// The decision, as a pure function of the record.
pub fn plan(record: Option<&JobRecord>) -> Plan {
    match record {
        None => Plan::Skip(Outcome::Orphaned),
        Some(r) if r.status.is_terminal() => Plan::Skip(Outcome::Duplicate),
        Some(r) if r.attempts >= names::MAX_ATTEMPTS => Plan::GiveUp,
        Some(_) => Plan::Run,
    }
}

pub struct Processor {
    pub store: kv::Store,
    pub worker_id: String,
    pub ack_wait: Duration,
    pub metrics: Metrics,
}

impl Processor {
    /// Handles one delivery and acks, naks or terminates it accordingly.
    pub async fn handle(&self, message: Message) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        if delivered > 1 {
            self.metrics.redeliveries.inc();
        }
        let job: JobMessage = match serde_json::from_slice(&message.payload) {
            Ok(job) => job,
            Err(err) => {
                tracing::error!(subject = %message.subject, error = %err, "not a job message; terminating it");
                self.metrics
                    .processed
                    .with_label_values(&["unknown", Outcome::Invalid.label()])
                    .inc();
                self.acknowledge(&message, AckKind::Term).await;
                return;
            }
        };
        let outcome = self.run(&job, &message).await;
        self.metrics
            .processed
            .with_label_values(&[job.job_type.as_str(), outcome.label()])
            .inc();
        let ack = match outcome {
            Outcome::Retry => AckKind::Nak(Some(RETRY_DELAY)),
            Outcome::Invalid => AckKind::Term,
            _ => AckKind::Ack,
        };
        tracing::info!(job = %job.id, r#type = %job.job_type, delivered, outcome = outcome.label(), "job handled");
        self.acknowledge(&message, ack).await;
    }

    async fn run(&self, job: &JobMessage, message: &Message) -> Outcome {
        let key = job.id.key();
        let mut cas_attempts = 0;
        let (running, revision) = loop {
            let (record, revision) = match self.read(&key).await {
                Ok(Some(found)) => (found.0, found.1),
                Ok(None) => return Outcome::Orphaned,
                Err(()) => return Outcome::Retry,
            };
            if record.job_type != job.job_type {
                tracing::error!(job = %job.id, "message type {} disagrees with record type {}", job.job_type, record.job_type);
                return Outcome::Invalid;
            }
            let next = match plan(Some(&record)) {
                Plan::Skip(outcome) => return outcome,
                Plan::GiveUp => {
                    let failed = record
                        .fail(
                            format!(
                                "gave up after {} attempts that did not finish",
                                record.attempts
                            ),
                            Utc::now(),
                        )
                        .expect("a non-terminal job can fail");
                    return match self.write(&key, &failed, revision).await {
                        Ok(_) => Outcome::Failed,
                        Err(WriteError::Conflict) => Outcome::Duplicate,
                        Err(WriteError::Unavailable) => Outcome::Retry,
                    };
                }
                Plan::Run => record
                    .start(&self.worker_id, Utc::now())
                    .expect("plan checked the state"),
            };
            match self.write(&key, &next, revision).await {
                Ok(new_revision) => break (next, new_revision),
                Err(WriteError::Conflict) if cas_attempts < CAS_RETRIES => cas_attempts += 1,
                Err(WriteError::Conflict) => return Outcome::Retry,
                Err(WriteError::Unavailable) => return Outcome::Retry,
            }
        };

        let ctx = RunContext {
            worker_id: &self.worker_id,
            attempt: running.attempts,
        };
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let result = self
            .with_progress(message, execute(job.job_type, &running.data, &ctx))
            .await;
        self.metrics
            .duration
            .with_label_values(&[job.job_type.as_str()])
            .observe(started.elapsed().as_secs_f64());
        self.metrics.in_flight.dec();

        let (finished, outcome) = match result {
            Ok(value) => (running.complete(value, Utc::now()), Outcome::Completed),
            Err(reason) => (running.fail(reason, Utc::now()), Outcome::Failed),
        };
        let finished = finished.expect("a running job can finish");
        match self.write(&key, &finished, revision).await {
            Ok(_) => outcome,
            // Someone else moved the record on (a redelivered copy finished first): keep theirs.
            Err(WriteError::Conflict) => Outcome::Duplicate,
            Err(WriteError::Unavailable) => Outcome::Retry,
        }
    }

    /// Runs `work` while telling NATS every third of the ack wait that the job is still in
    /// progress, so long jobs are not redelivered while alive.
    async fn with_progress<T>(
        &self,
        message: &Message,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let mut ticker = tokio::time::interval(self.ack_wait / 3);
        ticker.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = ticker.tick() => self.acknowledge(message, AckKind::Progress).await,
            }
        }
    }

    async fn read(&self, key: &str) -> Result<Option<(JobRecord, u64)>, ()> {
        match self.store.entry(key).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                match serde_json::from_slice::<JobRecord>(&entry.value) {
                    Ok(record) => Ok(Some((record, entry.revision))),
                    Err(err) => {
                        tracing::error!(key, error = %err, "job record is not a job record; treating as orphaned");
                        Ok(None)
                    }
                }
            }
            Ok(_) => Ok(None),
            Err(err) => {
                tracing::warn!(key, error = %err, "could not read job state");
                self.metrics
                    .failures
                    .with_label_values(&["read_state"])
                    .inc();
                Err(())
            }
        }
    }

    async fn write(&self, key: &str, record: &JobRecord, revision: u64) -> Result<u64, WriteError> {
        let value = Bytes::from(serde_json::to_vec(record).expect("job records serialise"));
        match self.store.update(key, value, revision).await {
            Ok(new_revision) => Ok(new_revision),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(WriteError::Conflict)
            }
            Err(err) => {
                tracing::warn!(key, status = %record.status, error = %err, "could not write job state");
                self.metrics
                    .failures
                    .with_label_values(&["write_state"])
                    .inc();
                Err(WriteError::Unavailable)
            }
        }
    }

    async fn acknowledge(&self, message: &Message, kind: AckKind) {
        if let Err(err) = message.ack_with(kind).await {
            tracing::warn!(error = %err, "could not acknowledge a job message; it will be redelivered");
            self.metrics.failures.with_label_values(&["ack"]).inc();
        }
    }
}

enum WriteError {
    /// The revision moved: another delivery changed the record first.
    Conflict,
    Unavailable,
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluo_jobs::{JobId, JobType};
    use serde_json::json;

    fn record() -> JobRecord {
        JobRecord::queued(
            JobId::new_random(),
            JobType::Test,
            json!({"validation": true}),
            Utc::now(),
        )
    }

    #[test]
    fn a_queued_job_runs() {
        assert_eq!(plan(Some(&record())), Plan::Run);
    }

    #[test]
    fn a_job_left_running_by_a_dead_worker_runs_again() {
        let running = record().start("dead", Utc::now()).unwrap();
        assert_eq!(plan(Some(&running)), Plan::Run);
    }

    #[test]
    fn finished_jobs_are_never_run_again() {
        let done = record()
            .start("w", Utc::now())
            .unwrap()
            .complete(json!(1), Utc::now())
            .unwrap();
        assert_eq!(plan(Some(&done)), Plan::Skip(Outcome::Duplicate));
        let failed = record().fail("x".into(), Utc::now()).unwrap();
        assert_eq!(plan(Some(&failed)), Plan::Skip(Outcome::Duplicate));
    }

    #[test]
    fn a_job_without_a_record_is_not_run() {
        assert_eq!(plan(None), Plan::Skip(Outcome::Orphaned));
    }

    #[test]
    fn retries_are_bounded() {
        let mut r = record();
        for _ in 0..names::MAX_ATTEMPTS {
            assert_eq!(plan(Some(&r)), Plan::Run);
            r = r.start("w", Utc::now()).unwrap();
        }
        assert_eq!(plan(Some(&r)), Plan::GiveUp);
    }
}
