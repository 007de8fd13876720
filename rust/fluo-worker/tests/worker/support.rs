//! Shared helpers for the worker tests.

use std::time::Duration;

use fluo_teststack::{JobsClient, NatsProbe};
use serde_json::Value;

/// How long a job may take to reach a state on a loaded CI machine.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(90);

/// How many stored revisions of a job's record say "completed". Exactly one means the job was
/// completed once, whatever the redeliveries.
pub async fn completions(probe: &NatsProbe, id: &str) -> usize {
    probe
        .job_history(id)
        .await
        .unwrap()
        .iter()
        .filter(|record| record["status"] == "completed")
        .count()
}

/// Waits until the job is being run by a worker.
pub async fn wait_until_running(api: &JobsClient, id: &str) -> Value {
    api.wait_for_status(id, "running", JOB_TIMEOUT)
        .await
        .unwrap()
}
