//! The BFF jobs API as health checks and smoke tests use it: submit the SOP test job and wait
//! until a worker has completed it.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::endpoint::{Endpoint, excerpt};

pub const JOBS_PATH: &str = "/api/jobs";

/// How often a job's state is polled. Short: a test job completes in milliseconds.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The SOP-002 smoke-test job.
pub fn test_job() -> Value {
    json!({"type": "test", "data": {"validation": true}})
}

#[derive(Debug, Clone, Deserialize)]
pub struct Accepted {
    pub id: String,
    pub status: String,
}

/// A job record as `GET /api/jobs/{id}` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<Value>,
}

/// Submit a job; the BFF must answer 202 with `{"id", "status": "queued"}`.
pub async fn submit(
    http: &reqwest::Client,
    bff: &Endpoint,
    job: &Value,
) -> Result<Accepted, String> {
    let (status, body) = bff.post_json(http, JOBS_PATH, job).await?;
    if status != reqwest::StatusCode::ACCEPTED {
        return Err(format!(
            "POST {JOBS_PATH} answered {status}, expected 202: {}",
            excerpt(&body, 160)
        ));
    }
    let accepted: Accepted = serde_json::from_str(&body).map_err(|e| {
        format!(
            "POST {JOBS_PATH} answered 202 without {{id, status}} ({e}): {}",
            excerpt(&body, 160)
        )
    })?;
    if accepted.status != "queued" {
        return Err(format!(
            "job {} was accepted as {:?}, expected \"queued\"",
            accepted.id, accepted.status
        ));
    }
    Ok(accepted)
}

pub async fn fetch(http: &reqwest::Client, bff: &Endpoint, id: &str) -> Result<JobRecord, String> {
    let path = format!("{JOBS_PATH}/{id}");
    let (status, body) = bff.get(http, &path).await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "GET {path} answered {status}: {}",
            excerpt(&body, 160)
        ));
    }
    serde_json::from_str(&body).map_err(|e| {
        format!(
            "GET {path} answered a body that is not a job record ({e}): {}",
            excerpt(&body, 160)
        )
    })
}

/// Poll until the job is `completed` (Ok) or `failed` (Err). Unbounded: callers put it under
/// their check's timeout, and the last state seen is reported through `last_seen`.
pub async fn wait_completed(
    http: &reqwest::Client,
    bff: &Endpoint,
    id: &str,
    last_seen: &std::sync::Mutex<String>,
) -> Result<JobRecord, String> {
    loop {
        let record = fetch(http, bff, id).await?;
        *last_seen.lock().expect("poisoned only by a panic") = record.status.clone();
        match record.status.as_str() {
            "completed" => return Ok(record),
            "failed" => {
                return Err(format!(
                    "job {id} failed: {}",
                    record
                        .error
                        .as_ref()
                        .map_or("no error given".to_owned(), Value::to_string)
                ));
            }
            _ => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// A completed test job must carry a result (the worker's proof that it ran the job).
pub fn judge_test_result(record: &JobRecord) -> Result<String, String> {
    match &record.result {
        Some(result) if !result.is_null() => Ok(excerpt(&result.to_string(), 120)),
        _ => Err(format!("job {} is completed but has no result", record.id)),
    }
}

/// Submit the test job and wait up to `deadline` for it to complete with a result.
pub async fn run_test_job(
    http: &reqwest::Client,
    bff: &Endpoint,
    deadline: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    let accepted = submit(http, bff, &test_job()).await?;
    let last_seen = std::sync::Mutex::new(accepted.status.clone());
    let record = tokio::time::timeout(
        deadline,
        wait_completed(http, bff, &accepted.id, &last_seen),
    )
    .await
    .map_err(|_| {
        format!(
            "job {} still {} after {} (is a worker consuming?)",
            accepted.id,
            last_seen.lock().expect("poisoned only by a panic"),
            humantime::format_duration(deadline)
        )
    })??;
    let result = judge_test_result(&record)?;
    Ok(format!(
        "test job {} completed in {}ms, result {result}",
        record.id,
        started.elapsed().as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> JobRecord {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn completed_job_with_result_passes() {
        let r = record(r#"{"id":"j1","status":"completed","result":{"validation":true}}"#);
        assert_eq!(judge_test_result(&r), Ok(r#"{"validation":true}"#.into()));
    }

    #[test]
    fn completed_job_without_result_fails() {
        for json in [
            r#"{"id":"j1","status":"completed"}"#,
            r#"{"id":"j1","status":"completed","result":null}"#,
        ] {
            assert_eq!(
                judge_test_result(&record(json)),
                Err("job j1 is completed but has no result".into())
            );
        }
    }
}
