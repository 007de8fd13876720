//! Names and limits in NATS that the BFF, the worker, the manifests and the tests agree on.

use std::time::Duration;

use crate::model::JobType;

/// The JetStream stream that holds queued jobs (work-queue retention: a message leaves the
/// stream when a worker acks it, so the stream's message count is the backlog).
pub const STREAM: &str = "FLUO_JOBS";

/// Subjects of [`STREAM`]; a job of type `t` is published to `fluo.jobs.t`.
pub const STREAM_SUBJECTS: &str = "fluo.jobs.>";

/// The KV bucket that holds one record per job, keyed by job id (stream `KV_fluo-jobs`).
pub const KV_BUCKET: &str = "fluo-jobs";

/// The durable pull consumer shared by every worker replica.
pub const CONSUMER: &str = "fluo-workers";

/// How many times a job may be started before it is marked failed ("bounded retries").
pub const MAX_ATTEMPTS: u32 = 5;

/// The consumer never stops delivering a job (-1: no limit). Attempts are bounded by the job
/// record instead ([`MAX_ATTEMPTS`] starts, then the worker records it failed): deliveries
/// that never start the job, such as a stopping worker giving a job back or a retry while the
/// job store is unreachable, must not use the job up. With a delivery limit, a job bounced
/// between two stopping workers ran out of deliveries in milliseconds and stayed `queued`.
pub const CONSUMER_MAX_DELIVER: i64 = -1;

/// How long a job message stays in the stream before the server drops it, and how long a job
/// record is kept in the KV bucket.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The window in which the stream drops a second publish with the same `Nats-Msg-Id`.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The subject a job of `job_type` is published to.
pub fn subject_for(job_type: JobType) -> String {
    format!("fluo.jobs.{}", job_type.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_fall_under_the_stream_wildcard() {
        for job_type in JobType::ALL {
            let subject = subject_for(job_type);
            assert!(subject.starts_with(STREAM_SUBJECTS.trim_end_matches('>')));
        }
        assert_eq!(subject_for(JobType::Echo), "fluo.jobs.echo");
    }
}
