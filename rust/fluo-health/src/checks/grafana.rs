//! Grafana: `/api/health` reports the database ok, and the FLUO dashboard is found by
//! `/api/search?query=FLUO`.

use serde::Deserialize;

use crate::check::ProbeResult;
use crate::endpoint::{Endpoint, excerpt};

/// The dashboard search term (the FLUO dashboard's title contains it).
pub const DASHBOARD_QUERY: &str = "FLUO";

#[derive(Debug, Deserialize)]
struct Health {
    database: String,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SearchHit {
    title: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    uid: String,
}

/// Judge an `/api/health` answer.
pub fn judge_health(status: reqwest::StatusCode, body: &str) -> Result<String, String> {
    let health: Health = serde_json::from_str(body).map_err(|e| {
        format!(
            "/api/health answered {status} with an unexpected body ({e}): {}",
            excerpt(body, 120)
        )
    })?;
    let version = health
        .version
        .unwrap_or_else(|| "unknown version".to_owned());
    if status == reqwest::StatusCode::OK && health.database == "ok" {
        Ok(format!("grafana {version}, database ok"))
    } else {
        Err(format!(
            "/api/health answered {status}: database {:?} (grafana {version})",
            health.database
        ))
    }
}

/// Judge an `/api/search` answer: a dashboard whose title contains the query.
pub fn judge_search(status: reqwest::StatusCode, body: &str) -> Result<String, String> {
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "/api/search answered {status}: {}",
            excerpt(body, 120)
        ));
    }
    let hits: Vec<SearchHit> = serde_json::from_str(body).map_err(|e| {
        format!(
            "/api/search answered an unexpected body ({e}): {}",
            excerpt(body, 120)
        )
    })?;
    hits.iter()
        .find(|h| h.kind == "dash-db" && h.title.to_uppercase().contains(DASHBOARD_QUERY))
        .map(|h| format!("dashboard {:?} (uid {})", h.title, h.uid))
        .ok_or_else(|| {
            format!(
                "no dashboard titled *{DASHBOARD_QUERY}* ({} search hit(s))",
                hits.len()
            )
        })
}

pub async fn probe(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    token: Option<&str>,
) -> ProbeResult {
    let (status, body) = endpoint.get(http, "/api/health").await?;
    let health = judge_health(status, &body)?;
    let path = format!("/api/search?query={DASHBOARD_QUERY}&type=dash-db");
    let mut request = endpoint.request(http, reqwest::Method::GET, &path);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| {
        format!(
            "GET {} ({}): {}",
            endpoint.url(&path),
            endpoint.via(),
            crate::endpoint::root_cause(&e)
        )
    })?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading /api/search: {}", crate::endpoint::root_cause(&e)))?;
    let dashboard = judge_search(status, &body)?;
    Ok(format!("{health}, {dashboard} ({})", endpoint.via()))
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    #[test]
    fn healthy_answer_passes() {
        let body = r#"{"commit":"abc","database":"ok","version":"11.3.0"}"#;
        assert_eq!(
            judge_health(StatusCode::OK, body),
            Ok("grafana 11.3.0, database ok".into())
        );
    }

    #[test]
    fn failing_database_fails_even_with_200() {
        let body = r#"{"commit":"abc","database":"failing","version":"11.3.0"}"#;
        assert_eq!(
            judge_health(StatusCode::OK, body),
            Err(r#"/api/health answered 200 OK: database "failing" (grafana 11.3.0)"#.into())
        );
        assert!(judge_health(StatusCode::SERVICE_UNAVAILABLE, body).is_err());
    }

    #[test]
    fn search_finds_the_fluo_dashboard_only_as_dash_db() {
        let hit = r#"[{"uid":"fluo","title":"FLUO Overview","type":"dash-db"}]"#;
        assert_eq!(
            judge_search(StatusCode::OK, hit),
            Ok(r#"dashboard "FLUO Overview" (uid fluo)"#.into())
        );
        let folder = r#"[{"uid":"f","title":"FLUO","type":"dash-folder"}]"#;
        assert_eq!(
            judge_search(StatusCode::OK, folder),
            Err("no dashboard titled *FLUO* (1 search hit(s))".into())
        );
        assert!(judge_search(StatusCode::UNAUTHORIZED, "{}").is_err());
    }
}
