//! A small client for the BFF's jobs API and for the job state in NATS, so tests assert on
//! what users and operators see.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::wait::eventually;

/// One HTTP answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// Panics with the whole answer unless the status is `status`; returns the body.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected answer: {self:?}");
        &self.body
    }

    /// The `"error"` message of an error answer ("" if there is none).
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// Talks to the BFF like a user would.
#[derive(Debug, Clone)]
pub struct JobsClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl JobsClient {
    /// `base` is the BFF URL, e.g. `stack.bff_url()`.
    pub fn new(base: impl Into<String>) -> Self {
        JobsClient {
            base: base.into(),
            http: crate::http_client::http_client(),
            token: None,
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// POST /api/jobs `{"type": job_type, "data": data}`.
    pub async fn submit(&self, job_type: &str, data: Value) -> Result<Reply> {
        let body = serde_json::json!({ "type": job_type, "data": data }).to_string();
        self.submit_raw(body.into_bytes(), Some("application/json"))
            .await
    }

    /// POST /api/jobs with any body and content type (for bad-input tests).
    pub async fn submit_raw(&self, body: Vec<u8>, content_type: Option<&str>) -> Result<Reply> {
        let url = format!("{}/api/jobs", self.base);
        let mut request = self.authorized(self.http.post(&url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        reply(&url, request).await
    }

    /// GET any path of the BFF, e.g. `/ready` or `/api/jobs/<id>`.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        reply(&url, self.authorized(self.http.get(&url))).await
    }

    /// Submits a job that must be accepted and returns its id.
    pub async fn submit_ok(&self, job_type: &str, data: Value) -> Result<String> {
        let answer = self.submit(job_type, data).await?;
        match (answer.status, answer.body["id"].as_str()) {
            (202, Some(id)) => Ok(id.to_owned()),
            _ => Err(Error::Http {
                url: format!("{}/api/jobs", self.base),
                reason: format!(
                    "expected 202 with an id, got {} {}",
                    answer.status, answer.body
                ),
            }),
        }
    }

    /// Submits a valid test job and waits up to `timeout` for it to complete; returns its id.
    pub async fn run_test_job(&self, timeout: Duration) -> Result<String> {
        let id = self
            .submit_ok("test", serde_json::json!({"validation": true}))
            .await?;
        self.wait_for_status(&id, "completed", timeout).await?;
        Ok(id)
    }

    /// Polls GET /api/jobs/{id} until the job's status is `status`; returns the record.
    pub async fn wait_for_status(
        &self,
        id: &str,
        status: &str,
        timeout: Duration,
    ) -> Result<Value> {
        let path = format!("/api/jobs/{id}");
        eventually(&format!("job {id} to be {status}"), timeout, || async {
            let answer = self.get(&path).await?;
            if answer.status == 200 && answer.body["status"] == status {
                Ok(Some(answer.body))
            } else {
                Err(Error::Http {
                    url: path.clone(),
                    reason: format!("{} {}", answer.status, answer.body),
                })
            }
        })
        .await
    }
}

async fn reply(url: &str, request: reqwest::RequestBuilder) -> Result<Reply> {
    let http_err = |e: reqwest::Error| Error::Http {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let response = request.send().await.map_err(http_err)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(http_err)?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Reply { status, body })
}

/// Counters of a JetStream stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCounts {
    /// Messages in the stream now (for the job stream: the backlog).
    pub messages: u64,
    /// Sequence of the last message ever stored: rises with every accepted publish.
    pub last_sequence: u64,
}

/// Reads job state straight from NATS, bypassing the BFF.
pub struct NatsProbe {
    js: async_nats::jetstream::Context,
}

impl NatsProbe {
    pub async fn connect(nats_url: &str) -> Result<Self> {
        let client = async_nats::connect(nats_url)
            .await
            .map_err(|e| Error::Http {
                url: nats_url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(NatsProbe {
            js: async_nats::jetstream::new(client),
        })
    }

    /// Counts of the job stream (`FLUO_JOBS`).
    pub async fn job_stream(&self) -> Result<StreamCounts> {
        self.stream_counts(fluo_jobs::names::STREAM).await
    }

    /// Counts of the job-state bucket's stream (`KV_fluo-jobs`): one message per state write.
    pub async fn job_bucket(&self) -> Result<StreamCounts> {
        self.stream_counts(&format!("KV_{}", fluo_jobs::names::KV_BUCKET))
            .await
    }

    async fn stream_counts(&self, name: &str) -> Result<StreamCounts> {
        let nats_err = |reason: String| Error::Http {
            url: format!("stream {name}"),
            reason,
        };
        let stream = self
            .js
            .get_stream(name)
            .await
            .map_err(|e| nats_err(e.to_string()))?;
        let info = stream
            .get_info()
            .await
            .map_err(|e| nats_err(e.to_string()))?;
        Ok(StreamCounts {
            messages: info.state.messages,
            last_sequence: info.state.last_sequence,
        })
    }

    /// Every stored revision of a job's record, oldest first (the bucket keeps the last 5), so
    /// tests can prove a job was completed exactly once.
    pub async fn job_history(&self, id: &str) -> Result<Vec<Value>> {
        let nats_err = |reason: String| Error::Http {
            url: format!("bucket {} key {id}", fluo_jobs::names::KV_BUCKET),
            reason,
        };
        let store = self
            .js
            .get_key_value(fluo_jobs::names::KV_BUCKET)
            .await
            .map_err(|e| nats_err(e.to_string()))?;
        let mut history = store
            .history(id)
            .await
            .map_err(|e| nats_err(e.to_string()))?;
        let mut records = Vec::new();
        while let Some(entry) = history.next().await {
            let entry = entry.map_err(|e| nats_err(e.to_string()))?;
            records.push(serde_json::from_slice(&entry.value).unwrap_or(Value::Null));
        }
        Ok(records)
    }
}
