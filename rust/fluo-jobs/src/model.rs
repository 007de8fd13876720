//! Job types, states and the job record with its state machine.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The kinds of job a worker knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    /// The SOP-002 smoke job: `{"validation": true}` -> a result proving a worker ran it.
    Test,
    /// Returns its data unchanged.
    Echo,
}

impl JobType {
    /// Every job type, for error messages and metrics.
    pub const ALL: [JobType; 2] = [JobType::Test, JobType::Echo];

    /// The wire name, as used in `{"type": ...}`, subjects and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Test => "test",
            JobType::Echo => "echo",
        }
    }

    /// The wire names joined for error messages: `test, echo`.
    pub fn known_names() -> String {
        Self::ALL.map(JobType::as_str).join(", ")
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobType {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| format!("unknown job type {name:?} (known: {})", Self::known_names()))
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }

    /// Completed and failed jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job id: a UUID, rendered hyphenated lowercase. Parsing it first keeps arbitrary client
/// input out of KV keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

impl JobId {
    pub fn new_random() -> Self {
        JobId(Uuid::new_v4())
    }

    /// The KV key of this job's record.
    pub fn key(&self) -> String {
        self.0.hyphenated().to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl FromStr for JobId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text)
            .map(JobId)
            .map_err(|_| format!("job id {text:?} is not a UUID"))
    }
}

/// What the BFF publishes to the stream; the record in the KV bucket holds everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub id: JobId,
    #[serde(rename = "type")]
    pub job_type: JobType,
}

/// The state of one job as stored in the KV bucket and returned by `GET /api/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub status: JobStatus,
    pub data: Value,
    /// Set when completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Set when failed: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times a worker started this job.
    pub attempts: u32,
    /// The worker that ran (or is running) the latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A state change that the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job {id} cannot go from {from} to {to}")]
pub struct TransitionError {
    pub id: JobId,
    pub from: JobStatus,
    pub to: JobStatus,
}

impl JobRecord {
    /// A freshly submitted job.
    pub fn queued(id: JobId, job_type: JobType, data: Value, now: DateTime<Utc>) -> Self {
        JobRecord {
            id,
            job_type,
            status: JobStatus::Queued,
            data,
            result: None,
            error: None,
            attempts: 0,
            worker: None,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
        }
    }

    /// A worker starts an attempt. Allowed from `queued`, and from `running` because a
    /// record left `running` means the previous worker died mid-job and the job was redelivered.
    pub fn start(&self, worker: &str, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.check(&[JobStatus::Queued, JobStatus::Running], JobStatus::Running)?;
        Ok(JobRecord {
            status: JobStatus::Running,
            attempts: self.attempts + 1,
            worker: Some(worker.to_owned()),
            started_at: Some(now),
            updated_at: now,
            ..self.clone()
        })
    }

    /// The running attempt finished with `result`.
    pub fn complete(&self, result: Value, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.check(&[JobStatus::Running], JobStatus::Completed)?;
        Ok(JobRecord {
            status: JobStatus::Completed,
            result: Some(result),
            finished_at: Some(now),
            updated_at: now,
            ..self.clone()
        })
    }

    /// The job failed for good: the job itself failed, it ran out of attempts, or it could not be
    /// enqueued. Allowed from any non-terminal state.
    pub fn fail(&self, error: String, now: DateTime<Utc>) -> Result<Self, TransitionError> {
        self.check(&[JobStatus::Queued, JobStatus::Running], JobStatus::Failed)?;
        Ok(JobRecord {
            status: JobStatus::Failed,
            error: Some(error),
            finished_at: Some(now),
            updated_at: now,
            ..self.clone()
        })
    }

    fn check(&self, allowed_from: &[JobStatus], to: JobStatus) -> Result<(), TransitionError> {
        if allowed_from.contains(&self.status) {
            Ok(())
        } else {
            Err(TransitionError {
                id: self.id,
                from: self.status,
                to,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn queued() -> JobRecord {
        JobRecord::queued(
            JobId::new_random(),
            JobType::Test,
            json!({"validation": true}),
            Utc::now(),
        )
    }

    #[test]
    fn job_types_round_trip_through_their_wire_names() {
        for job_type in JobType::ALL {
            assert_eq!(job_type.as_str().parse::<JobType>(), Ok(job_type));
        }
        let err = "build".parse::<JobType>().unwrap_err();
        assert_eq!(err, "unknown job type \"build\" (known: test, echo)");
    }

    #[test]
    fn job_ids_must_be_uuids() {
        let id = JobId::new_random();
        assert_eq!(id.to_string().parse::<JobId>(), Ok(id));
        assert_eq!(
            "../etc".parse::<JobId>().unwrap_err(),
            "job id \"../etc\" is not a UUID"
        );
    }

    #[test]
    fn a_job_runs_then_completes() {
        let record = queued().start("w1", Utc::now()).unwrap();
        assert_eq!(record.status, JobStatus::Running);
        assert_eq!(record.attempts, 1);
        assert_eq!(record.worker.as_deref(), Some("w1"));
        let done = record.complete(json!({"ok": 1}), Utc::now()).unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(done.result, Some(json!({"ok": 1})));
        assert!(done.finished_at.is_some());
    }

    #[test]
    fn a_redelivered_running_job_starts_again_and_counts_the_attempt() {
        let first = queued().start("w1", Utc::now()).unwrap();
        let second = first.start("w2", Utc::now()).unwrap();
        assert_eq!(second.attempts, 2);
        assert_eq!(second.worker.as_deref(), Some("w2"));
    }

    #[test]
    fn terminal_jobs_never_change_again() {
        let done = queued()
            .start("w1", Utc::now())
            .unwrap()
            .complete(json!(null), Utc::now())
            .unwrap();
        assert!(done.status.is_terminal());
        let err = done.start("w2", Utc::now()).unwrap_err();
        assert_eq!(
            (err.from, err.to),
            (JobStatus::Completed, JobStatus::Running)
        );
        assert!(done.fail("late".into(), Utc::now()).is_err());
        assert!(done.complete(json!(1), Utc::now()).is_err());
    }

    #[test]
    fn a_queued_job_cannot_complete_without_running() {
        assert!(queued().complete(json!(1), Utc::now()).is_err());
        let failed = queued()
            .fail("could not enqueue".into(), Utc::now())
            .unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
    }

    #[test]
    fn records_serialise_with_the_api_field_names() {
        let record = queued();
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["type"], "test");
        assert_eq!(value["status"], "queued");
        assert!(value.get("result").is_none());
        let back: JobRecord = serde_json::from_value(value).unwrap();
        assert_eq!(back, record);
    }
}
