//! The few Prometheus HTTP API calls the checks and the monitor need (`/-/ready`,
//! `/api/v1/targets`, `/api/v1/query`, `/api/v1/alerts`), with typed answers.

use serde::Deserialize;

use crate::endpoint::{Endpoint, excerpt};

#[derive(Debug, Deserialize)]
struct ApiResponse<T> {
    status: String,
    #[serde(default = "none")]
    data: Option<T>,
    #[serde(default)]
    error: Option<String>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Debug, Clone, Deserialize)]
pub struct Targets {
    #[serde(rename = "activeTargets")]
    pub active: Vec<Target>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Target {
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "scrapeUrl")]
    pub scrape_url: String,
    /// "up", "down" or "unknown" (not scraped yet).
    pub health: String,
    #[serde(rename = "lastError", default)]
    pub last_error: String,
}

impl Target {
    pub fn job(&self) -> &str {
        self.labels.get("job").map_or("?", String::as_str)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Alerts {
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Alert {
    pub labels: std::collections::BTreeMap<String, String>,
    /// "pending" or "firing".
    pub state: String,
}

impl Alert {
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("?", String::as_str)
    }
}

#[derive(Debug, Deserialize)]
struct Vector {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    value: (f64, String),
}

async fn api<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    path: &str,
) -> Result<T, String> {
    let (status, body) = endpoint.get(http, path).await?;
    parse_api(path, status, &body)
}

fn parse_api<T: serde::de::DeserializeOwned>(
    path: &str,
    status: reqwest::StatusCode,
    body: &str,
) -> Result<T, String> {
    let parsed: ApiResponse<T> = serde_json::from_str(body).map_err(|e| {
        format!(
            "GET {path} answered {status} with a body that is not the Prometheus API's ({e}): {}",
            excerpt(body, 120)
        )
    })?;
    match (parsed.status.as_str(), parsed.data) {
        ("success", Some(data)) => Ok(data),
        _ => Err(format!(
            "GET {path} answered {status}: {}",
            parsed.error.unwrap_or(parsed.status)
        )),
    }
}

/// `/-/ready` answers 200.
pub async fn ready(http: &reqwest::Client, endpoint: &Endpoint) -> Result<(), String> {
    let (status, body) = endpoint.get(http, "/-/ready").await?;
    if status == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "GET /-/ready answered {status}: {}",
            excerpt(&body, 120)
        ))
    }
}

pub async fn targets(http: &reqwest::Client, endpoint: &Endpoint) -> Result<Targets, String> {
    api(http, endpoint, "/api/v1/targets?state=active").await
}

pub async fn alerts(http: &reqwest::Client, endpoint: &Endpoint) -> Result<Alerts, String> {
    api(http, endpoint, "/api/v1/alerts").await
}

/// Evaluate an instant query that yields at most one sample; `None` when it yields none
/// (e.g. a ratio over no traffic). Errors name the query.
pub async fn query_value(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    promql: &str,
) -> Result<Option<f64>, String> {
    evaluate(http, endpoint, promql)
        .await
        .map_err(|e| format!("query `{promql}`: {e}"))
}

/// [`query_value`] whose errors name the endpoint and the cause but not the query, neither as
/// written nor URL-encoded: for callers that evaluate the same query again and again (the
/// monitor prints its queries once).
pub async fn evaluate(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    promql: &str,
) -> Result<Option<f64>, String> {
    const PATH: &str = "/api/v1/query";
    let query = format!("query={}", encode_query(promql));
    let (status, body) = endpoint.get_with_query(http, PATH, &query).await?;
    let vector: Vector = parse_api(PATH, status, &body)?;
    if vector.result_type != "vector" {
        return Err(format!(
            "returned a {}, expected a vector",
            vector.result_type
        ));
    }
    match vector.result.as_slice() {
        [] => Ok(None),
        [sample] => sample
            .value
            .1
            .parse::<f64>()
            .map(Some)
            .map_err(|e| format!("returned {:?}: {e}", sample.value.1)),
        many => Err(format!(
            "returned {} series, expected one (aggregate it with sum())",
            many.len()
        )),
    }
}

/// Percent-encode a query string value (RFC 3986 unreserved characters pass through).
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_percent_encoded() {
        assert_eq!(
            encode_query(r#"count({__name__=~"fluo_bff_.+"})"#),
            "count%28%7B__name__%3D~%22fluo_bff_.%2B%22%7D%29"
        );
    }

    #[test]
    fn targets_parse_from_the_api_shape() {
        let body = r#"{"status":"success","data":{"activeTargets":[
            {"labels":{"job":"fluo-bff","instance":"127.0.0.1:8080"},"scrapeUrl":"http://127.0.0.1:8080/metrics",
             "health":"down","lastError":"connection refused","discoveredLabels":{}}],"droppedTargets":[]}}"#;
        let parsed: ApiResponse<Targets> = serde_json::from_str(body).unwrap();
        let target = &parsed.data.unwrap().active[0];
        assert_eq!((target.job(), target.health.as_str()), ("fluo-bff", "down"));
        assert_eq!(target.last_error, "connection refused");
    }
}
