//! Retrying API requests the server did not (or safely can) process: a busy API server sheds
//! load with 429 (API Priority and Fairness) exactly when an engineer deploys during an incident,
//! and one throttled request must not turn into a failed rollout and an automatic rollback.
//!
//! kube's built-in policy (429/503/504, up to 15 retries, Retry-After honoured without a cap) is
//! replaced by this one (see `cluster::Cluster::connect`) so that waits stay bounded and
//! transient failures of requests that are safe to repeat are covered too:
//! - 429, 503, 504 and any 5xx carrying Retry-After: retried for every method (the server did
//!   not process the request, or asks for the retry);
//! - 500, 502 and connection errors: retried only for GET, HEAD and server-side apply, which
//!   are safe to repeat (an etcd timeout surfaces as a 500); connection errors at most
//!   [`MAX_CONNECTION_RETRIES`] times, so an unreachable cluster is reported in well under a
//!   second;
//! - Retry-After is honoured up to [`MAX_DELAY`]; otherwise the delay doubles from
//!   [`FIRST_DELAY`]; at most [`MAX_RETRIES`] retries (about 16 s in the worst case).
//!
//! Watches are retried only when the request itself fails, never mid-stream.

use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use kube::client::Body;
use tower::retry::Policy;

/// Retries after the first attempt.
pub const MAX_RETRIES: u32 = 8;
/// Retries after a connection error (refused, reset): a server that is down stays down, and
/// is reported after 0.1 + 0.2 + 0.4 s; three retries make a lost rollback step under a 5 %
/// reset rate a one-in-160 000 event per request (two left it at one in 8 000).
pub const MAX_CONNECTION_RETRIES: u32 = 3;
/// The first back-off when the server names no delay; it doubles per retry.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait for one retry, even if Retry-After asks for more.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// The retry policy for one request (tower clones it per request).
#[derive(Debug, Clone)]
pub struct TransientErrors {
    retries_left: u32,
    connection_retries_left: u32,
    next_delay: Duration,
}

impl Default for TransientErrors {
    fn default() -> Self {
        Self {
            retries_left: MAX_RETRIES,
            connection_retries_left: MAX_CONNECTION_RETRIES,
            next_delay: FIRST_DELAY,
        }
    }
}

/// Whether repeating `req` cannot change the outcome (a second server-side apply of the same
/// object is a no-op).
fn is_idempotent(req: &Request<Body>) -> bool {
    let apply_patch = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/apply-patch"));
    matches!(*req.method(), Method::GET | Method::HEAD)
        || (req.method() == Method::PATCH && apply_patch)
}

/// Seconds the server asked to wait, if it did.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// How long to wait before retrying a request that got `status` (with `headers`), or None if
/// it must not be retried.
pub fn delay_for(
    idempotent: bool,
    status: StatusCode,
    headers: &HeaderMap,
    backoff: Duration,
) -> Option<Duration> {
    let asked = retry_after(headers);
    let retry = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    ) || (status.is_server_error() && asked.is_some())
        || (idempotent
            && matches!(
                status,
                StatusCode::INTERNAL_SERVER_ERROR | StatusCode::BAD_GATEWAY
            ));
    retry.then(|| asked.unwrap_or(backoff).min(MAX_DELAY))
}

impl<B, E> Policy<Request<Body>, Response<B>, E> for TransientErrors {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        if self.retries_left == 0 {
            return None;
        }
        let idempotent = is_idempotent(req);
        let (delay, cause) = match result {
            Ok(resp) => (
                delay_for(idempotent, resp.status(), resp.headers(), self.next_delay)?,
                resp.status().to_string(),
            ),
            // The request may not have reached the server; repeat only what is safe to repeat.
            Err(_) if idempotent && self.connection_retries_left > 0 => {
                self.connection_retries_left -= 1;
                (self.next_delay, "connection error".to_string())
            }
            Err(_) => return None,
        };
        tracing::debug!(method = %req.method(), uri = %req.uri(), %cause, ?delay,
            "retrying a transient API error");
        self.retries_left -= 1;
        self.next_delay = (self.next_delay * 2).min(MAX_DELAY);
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Streaming bodies cannot be replayed; every kube request body is a single buffer.
        let body = req.body().try_clone()?;
        let mut copy = Request::new(body);
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.version_mut() = req.version();
        *copy.headers_mut() = req.headers().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = retry_after {
            h.insert(http::header::RETRY_AFTER, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn throttling_is_retried_for_every_method_honouring_retry_after_up_to_the_cap() {
        let b = FIRST_DELAY;
        let throttled = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(delay_for(false, throttled, &headers(None), b), Some(b));
        assert_eq!(
            delay_for(false, throttled, &headers(Some("1")), b),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            delay_for(false, throttled, &headers(Some("60")), b),
            Some(MAX_DELAY)
        );
    }

    #[test]
    fn server_errors_are_retried_only_when_asked_or_safe() {
        let b = FIRST_DELAY;
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(delay_for(false, unavailable, &headers(None), b), Some(b));
        assert_eq!(
            delay_for(false, StatusCode::BAD_GATEWAY, &headers(Some("2")), b),
            Some(Duration::from_secs(2))
        );
        let ise = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(delay_for(false, ise, &headers(None), b), None);
        assert_eq!(delay_for(true, ise, &headers(None), b), Some(b));
        assert_eq!(
            delay_for(
                false,
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(Some("1")),
                b
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            delay_for(true, StatusCode::NOT_IMPLEMENTED, &headers(None), b),
            None
        );
        for ok_or_client_error in [StatusCode::OK, StatusCode::CONFLICT, StatusCode::NOT_FOUND] {
            assert_eq!(delay_for(true, ok_or_client_error, &headers(None), b), None);
        }
    }

    fn request(method: Method, content_type: Option<&str>) -> Request<Body> {
        let mut r = Request::new(Body::from(b"{}".to_vec()));
        *r.method_mut() = method;
        if let Some(ct) = content_type {
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        }
        r
    }

    #[test]
    fn only_reads_and_server_side_apply_are_safe_to_repeat() {
        assert!(is_idempotent(&request(Method::GET, None)));
        assert!(is_idempotent(&request(
            Method::PATCH,
            Some("application/apply-patch+yaml")
        )));
        assert!(!is_idempotent(&request(
            Method::PATCH,
            Some("application/merge-patch+json")
        )));
        assert!(!is_idempotent(&request(Method::POST, None)));
        assert!(!is_idempotent(&request(Method::DELETE, None)));
    }

    #[tokio::test]
    async fn the_policy_stops_after_max_retries_and_doubles_its_delay() {
        let mut policy = TransientErrors::default();
        let mut req = request(Method::GET, None);
        let mut delays = Vec::new();
        loop {
            let mut result: Result<Response<()>, ()> = Ok(Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(())
                .unwrap());
            let before = policy.next_delay;
            if policy.retry(&mut req, &mut result).is_none() {
                break;
            }
            delays.push(before);
        }
        assert_eq!(delays.len() as u32, MAX_RETRIES);
        assert_eq!(delays[0], FIRST_DELAY);
        assert_eq!(delays[1], FIRST_DELAY * 2);
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
        let mut unreachable = TransientErrors::default();
        let mut refused: Result<Response<()>, ()> = Err(());
        let mut connection_retries = 0;
        while unreachable.retry(&mut req, &mut refused).is_some() {
            connection_retries += 1;
        }
        assert_eq!(connection_retries, MAX_CONNECTION_RETRIES);
        let copy = Policy::<_, Response<()>, ()>::clone_request(&mut policy, &req)
            .expect("buffered bodies replay");
        assert_eq!(copy.method(), Method::GET);
    }
}
