//! fluo-smoke: SOP-002 "Run smoke tests", exactly:
//!
//! 1. `bff-health`: BFF `GET /health` answers 200, reached the way the environment says
//!    (through the ingress with `Host: fluo-api.localhost` locally);
//! 2. `job-submit`: `POST /api/jobs {"type": "test", "data": {"validation": true}}` answers 202
//!    `{"id", "status": "queued"}`;
//! 3. `job-complete`: polling `GET /api/jobs/{id}` reaches `completed` with a result;
//! 4. `bad-payload-refused`: a malformed and an invalid payload are both refused with 4xx.
//!
//! Steps 2 and 3 carry the API token (`fluo_health::api_token`: `--api-token-file`, else the
//! Secret fluo-smoke-api-token). The steps run concurrently where they can (`job-complete` waits for `job-submit`'s id), each
//! under the timeout, and report like the health checks (`fluo_health::report`).

use std::path::Path;
use std::time::Duration;

use fluo_health::access::{self, Resolver};
use fluo_health::api_token;
use fluo_health::check::{self, Check};
use fluo_health::endpoint::{ApiToken, Endpoint, excerpt};
use fluo_health::jobs;
use fluo_health::report::Report;
use serde_json::json;

/// A payload that is JSON but not a job (unknown type, data not an object).
fn invalid_job() -> serde_json::Value {
    json!({"type": "no-such-job-type", "data": 42})
}

/// A body that is not JSON at all.
const MALFORMED_BODY: &str = "{\"type\": \"test\", \"data\": ";

/// Run the smoke tests against the BFF the resolver reaches, submitting with `token`;
/// `environment` names the report.
pub async fn run(
    resolver: &Resolver,
    environment: &str,
    timeout: Duration,
    token: Option<ApiToken>,
) -> Report {
    let http = fluo_health::endpoint::http_client(timeout);
    let bff = match resolver.endpoint(access::BFF).await {
        Ok(bff) => bff.with_token(token),
        Err(e) => {
            let failed = Check::new("bff-endpoint", timeout, async move { Err(e.to_string()) });
            return Report::new("smoke", environment, check::run_all(vec![failed]).await);
        }
    };
    let (id_tx, id_rx) = tokio::sync::oneshot::channel::<String>();
    let steps = vec![
        Check::new("bff-health", timeout, health(http.clone(), bff.clone())),
        Check::new(
            "job-submit",
            timeout,
            submit(http.clone(), bff.clone(), id_tx),
        ),
        Check::new(
            "job-complete",
            timeout,
            complete(http.clone(), bff.clone(), id_rx),
        ),
        Check::new(
            "bad-payload-refused",
            timeout,
            refuse_bad_payloads(http, bff),
        ),
    ];
    Report::new("smoke", environment, check::run_all(steps).await)
}

async fn health(http: reqwest::Client, bff: Endpoint) -> Result<String, String> {
    let (status, body) = bff.get(&http, "/health").await?;
    if status == reqwest::StatusCode::OK {
        Ok(format!("GET /health 200 ({})", bff.via()))
    } else {
        Err(format!(
            "GET /health answered {status} ({}): {}",
            bff.via(),
            excerpt(&body, 120)
        ))
    }
}

async fn submit(
    http: reqwest::Client,
    bff: Endpoint,
    id_tx: tokio::sync::oneshot::Sender<String>,
) -> Result<String, String> {
    let accepted = jobs::submit(&http, &bff, &jobs::test_job()).await?;
    let evidence = format!("POST {} 202, job {} queued", jobs::JOBS_PATH, accepted.id);
    // job-complete may already have timed out and gone; the submission itself still passed.
    let _ = id_tx.send(accepted.id);
    Ok(evidence)
}

async fn complete(
    http: reqwest::Client,
    bff: Endpoint,
    id_rx: tokio::sync::oneshot::Receiver<String>,
) -> Result<String, String> {
    let id = id_rx
        .await
        .map_err(|_| "not attempted: the test job was not submitted (see job-submit)".to_owned())?;
    let last_seen = std::sync::Mutex::new("queued".to_owned());
    let polled = jobs::wait_completed(&http, &bff, &id, &last_seen);
    let record = polled.await?;
    let result = jobs::judge_test_result(&record)?;
    Ok(format!("job {id} completed, result {result}"))
}

async fn refuse_bad_payloads(http: reqwest::Client, bff: Endpoint) -> Result<String, String> {
    let (malformed, _) = bff
        .post_raw(&http, jobs::JOBS_PATH, "application/json", MALFORMED_BODY)
        .await?;
    let (invalid, body) = bff
        .post_json(&http, jobs::JOBS_PATH, &invalid_job())
        .await?;
    if !malformed.is_client_error() {
        return Err(format!("malformed JSON answered {malformed}, expected 4xx"));
    }
    if !invalid.is_client_error() {
        return Err(format!(
            "invalid job {} answered {invalid}, expected 4xx: {}",
            invalid_job(),
            excerpt(&body, 120)
        ));
    }
    Ok(format!(
        "malformed JSON -> {}, unknown job type -> {}",
        malformed.as_u16(),
        invalid.as_u16()
    ))
}

/// The smoke tests for an environment as configured: what `fluo-deploy` runs after a rollout
/// (`cluster` is the deploy's client and namespace; None in direct access mode). The API
/// token comes from `token_file`, else from the cluster (`fluo_health::api_token`).
pub async fn run_for(
    config: &fluo_core::config::Config,
    cluster: Option<access::Cluster>,
    timeout: Duration,
    token_file: Option<&Path>,
) -> Report {
    let environment = &config.environment.environment.name;
    let token = match api_token::find(token_file, cluster.as_ref()).await {
        Ok(token) => token,
        Err(e) => {
            let failed = Check::new("api-token", timeout, async move { Err(e) });
            return Report::new("smoke", environment, check::run_all(vec![failed]).await);
        }
    };
    let resolver = Resolver::from_config(config, cluster);
    run(&resolver, environment, timeout, token).await
}
