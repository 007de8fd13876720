//! `api-auth`: the jobs API refuses a request without a token (401) and a token without the
//! route's scope (403), and accepts a valid token. No job is created: the refused POSTs carry an
//! empty payload (a BFF without authentication answers 400 to it, which the check reports as
//! "accepted without a token"), and the accepted request reads a job that does not exist.

use reqwest::StatusCode;

use crate::check::ProbeResult;
use crate::endpoint::{ApiToken, Endpoint, excerpt};

/// A job id no job has (the nil UUID): reading it with a valid token answers 404.
const NO_SUCH_JOB: &str = "/api/jobs/00000000-0000-0000-0000-000000000000";

/// The tokens the check presents.
pub struct Tokens {
    /// jobs:submit and jobs:read (the smoke token).
    pub full: Option<ApiToken>,
    /// jobs:read only: POST /api/jobs must answer 403 to it.
    pub read_only: Option<ApiToken>,
}

pub async fn probe(http: &reqwest::Client, bff: &Endpoint, tokens: Tokens) -> ProbeResult {
    let full = tokens.full.ok_or_else(|| {
        "no API token to show a valid one is accepted: give --api-token-file or create the \
         Secret fluo-smoke-api-token (docs/security.md)"
            .to_owned()
    })?;
    let read_only = tokens.read_only.ok_or_else(|| {
        "no jobs:read-only API token for the wrong-scope check: give --api-read-token-file or add \
         key read-token to the Secret fluo-smoke-api-token (docs/security.md)"
            .to_owned()
    })?;
    let empty = serde_json::json!({});
    let anonymous = bff.clone().with_token(None);
    let (status, body) = anonymous.post_json(http, "/api/jobs", &empty).await?;
    expect(
        status,
        StatusCode::UNAUTHORIZED,
        "POST /api/jobs without a token",
        &body,
        bff,
    )?;
    let reader = bff.clone().with_token(Some(read_only));
    let (status, body) = reader.post_json(http, "/api/jobs", &empty).await?;
    expect(
        status,
        StatusCode::FORBIDDEN,
        "POST /api/jobs with a jobs:read-only token",
        &body,
        bff,
    )?;
    let valid = bff.clone().with_token(Some(full));
    let (status, body) = valid.get(http, NO_SUCH_JOB).await?;
    if status != StatusCode::NOT_FOUND {
        return Err(format!(
            "GET /api/jobs/{{id}} with the smoke token answered {status}, want 404 (a valid token \
             accepted): {} ({})",
            excerpt(&body, 120),
            bff.via()
        ));
    }
    Ok(format!(
        "POST /api/jobs without a token 401, with a jobs:read-only token 403; GET /api/jobs/{{id}} \
         with the smoke token accepted (404 for no such job) ({})",
        bff.via()
    ))
}

fn expect(
    status: StatusCode,
    want: StatusCode,
    what: &str,
    body: &str,
    bff: &Endpoint,
) -> Result<(), String> {
    if status == want {
        return Ok(());
    }
    let verdict = if status.is_success() || status == StatusCode::BAD_REQUEST {
        "the request got past authorization"
    } else {
        "unexpected answer"
    };
    Err(format!(
        "{what} answered {status}, want {want}: {verdict}: {} ({})",
        excerpt(body, 120),
        bff.via()
    ))
}
