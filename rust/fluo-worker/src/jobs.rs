//! What each job type does. A job error here is the job's own failure (recorded as `failed`,
//! not retried); infrastructure errors are handled by the processor.

use std::time::Duration;

use chrono::Utc;
use fluo_jobs::JobType;
use serde_json::{Value, json};

/// The longest simulated work a `test` job may ask for (`data.duration_ms`).
pub const MAX_TEST_DURATION_MS: u64 = 600_000;

/// Who runs the job, for results that prove where and when it ran.
pub struct RunContext<'a> {
    pub worker_id: &'a str,
    pub attempt: u32,
}

/// Runs one job and returns its result, or why the job failed.
pub async fn execute(
    job_type: JobType,
    data: &Value,
    ctx: &RunContext<'_>,
) -> Result<Value, String> {
    match job_type {
        JobType::Echo => Ok(data.clone()),
        JobType::Test => run_test_job(data, ctx).await,
    }
}

/// The SOP-002 smoke job: `{"validation": true}` -> `{"validated": true, "worker", "attempt",
/// "ran_at"}`. An optional `duration_ms` simulates work (crash and drain tests use it).
async fn run_test_job(data: &Value, ctx: &RunContext<'_>) -> Result<Value, String> {
    match data.get("validation") {
        Some(Value::Bool(true)) => {}
        other => {
            return Err(format!(
                "test job needs data.validation = true, got {}",
                other.map_or("nothing".to_owned(), Value::to_string)
            ));
        }
    }
    let duration_ms = match data.get("duration_ms") {
        None => 0,
        Some(value) => value
            .as_u64()
            .filter(|ms| *ms <= MAX_TEST_DURATION_MS)
            .ok_or_else(|| {
                format!("test job data.duration_ms must be an integer from 0 to {MAX_TEST_DURATION_MS}, got {value}")
            })?,
    };
    if duration_ms > 0 {
        tokio::time::sleep(Duration::from_millis(duration_ms)).await;
    }
    Ok(json!({
        "validated": true,
        "worker": ctx.worker_id,
        "attempt": ctx.attempt,
        "ran_at": Utc::now(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: RunContext<'static> = RunContext {
        worker_id: "w1",
        attempt: 2,
    };

    #[tokio::test]
    async fn echo_returns_its_data() {
        let data = json!({"a": [1, 2]});
        assert_eq!(execute(JobType::Echo, &data, &CTX).await, Ok(data));
    }

    #[tokio::test]
    async fn the_test_job_proves_which_worker_ran_it() {
        let result = execute(JobType::Test, &json!({"validation": true}), &CTX)
            .await
            .unwrap();
        assert_eq!(result["validated"], true);
        assert_eq!(result["worker"], "w1");
        assert_eq!(result["attempt"], 2);
        assert!(result["ran_at"].is_string());
    }

    #[tokio::test]
    async fn the_test_job_fails_without_validation_or_with_a_bad_duration() {
        assert_eq!(
            execute(JobType::Test, &json!({}), &CTX).await.unwrap_err(),
            "test job needs data.validation = true, got nothing"
        );
        assert_eq!(
            execute(JobType::Test, &json!({"validation": "yes"}), &CTX)
                .await
                .unwrap_err(),
            "test job needs data.validation = true, got \"yes\""
        );
        let err = execute(
            JobType::Test,
            &json!({"validation": true, "duration_ms": -1}),
            &CTX,
        )
        .await
        .unwrap_err();
        assert!(
            err.contains("duration_ms must be an integer from 0 to 600000, got -1"),
            "{err}"
        );
    }
}
