//! Polling helpers with generous timeouts: tests wait for a condition, never sleep a fixed time.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Calls `check` until it returns `Ok(Some(value))` or `timeout` passes. `Ok(None)` and `Err`
/// mean "not yet"; the last of them is reported in the timeout error.
pub async fn eventually<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "condition not met yet".to_owned(),
            Err(err) => format!("{err:?}"),
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// GET `url` and return the status code and body, or an error naming the URL.
pub async fn http_get(client: &reqwest::Client, url: &str) -> Result<(u16, String)> {
    let http_err = |e: reqwest::Error| Error::Http {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let response = client.get(url).send().await.map_err(http_err)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(http_err)?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_success() {
        let mut calls = 0;
        let value = eventually("third call", Duration::from_secs(10), || {
            calls += 1;
            let n = calls;
            async move { Ok::<_, String>((n == 3).then_some(n)) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn eventually_reports_the_last_error_on_timeout() {
        let err = eventually("never", Duration::from_millis(250), || async {
            Err::<Option<()>, _>("still broken")
        })
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("waiting for never"), "{text}");
        assert!(text.contains("still broken"), "{text}");
    }
}
