//! One HTTP POST of a message to a webhook, retried with exponential back-off inside a time
//! budget. The URL is a secret: it is kept in [`WebhookUrl`] (redacted in Debug) and stripped
//! from every error text.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// A webhook URL (a secret: Slack's URL is its credential).
#[derive(Clone)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn new(url: String) -> WebhookUrl {
        WebhookUrl(url)
    }

    /// Removes the URL (and its path, which holds the token) from `text`.
    fn redact(&self, text: &str) -> String {
        let mut out = text.replace(&self.0, "<webhook>");
        if let Ok(url) = reqwest::Url::parse(&self.0)
            && url.path().len() > 1
        {
            out = out.replace(url.path(), "/<redacted>");
        }
        out
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

/// First pause between attempts; doubled after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// How one message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub attempts: u32,
    /// None when delivered.
    pub error: Option<String>,
}

/// POSTs `body` until a 2xx answer, a permanent refusal (4xx other than 408/429) or the
/// `budget` is spent, whichever comes first.
pub async fn post(
    http: &reqwest::Client,
    url: &WebhookUrl,
    body: &Value,
    budget: Duration,
) -> Outcome {
    let deadline = Instant::now() + budget;
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let sent = tokio::time::timeout(remaining, http.post(&url.0).json(body).send()).await;
        let error = match sent {
            Ok(Ok(response)) if response.status().is_success() => {
                return Outcome {
                    attempts,
                    error: None,
                };
            }
            Ok(Ok(response)) => {
                let status = response.status();
                let error = format!("HTTP {status}");
                let retryable = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    return Outcome {
                        attempts,
                        error: Some(format!("{error} (not retried)")),
                    };
                }
                error
            }
            Ok(Err(e)) => url.redact(&error_chain(&e.without_url())),
            Err(_) => format!("no answer within {}", humantime::format_duration(budget)),
        };
        let now = Instant::now();
        if now + backoff >= deadline {
            return Outcome {
                attempts,
                error: Some(format!(
                    "{error} (gave up after {attempts} attempt{} in {:.1}s)",
                    if attempts == 1 { "" } else { "s" },
                    (budget.saturating_sub(deadline.saturating_duration_since(now))).as_secs_f64()
                )),
            };
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// "error sending request: connection refused"-style text of an error and its causes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_the_url() {
        let url = WebhookUrl::new("http://127.0.0.1:9/services/T0/B0/SECRET".into());
        assert_eq!(format!("{url:?}"), "WebhookUrl(<redacted>)");
        let text = url.redact(
            "error for http://127.0.0.1:9/services/T0/B0/SECRET and /services/T0/B0/SECRET",
        );
        assert!(!text.contains("SECRET"), "{text}");
    }
}
