//! Writes that must land even when the API server is flaky: release-record writes and deletes
//! are repeated on transient errors (5xx, throttling, connection errors) with a doubling delay
//! within a bounded budget. The kube client's retry layer (`crate::retry`) repeats only what
//! is safe for any request; these are safe to repeat by construction (a record's
//! patches carry the full content; a create that landed before its answer was lost is found
//! as 409 AlreadyExists on the retry; a delete that landed is 404).

use std::future::Future;
use std::time::Duration;

/// Attempts per write (about 6 s of waiting in the worst case).
pub const ATTEMPTS: u32 = 7;
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Whether a request may succeed when repeated: the server failed (5xx), shed load (429) or
/// the request never got an answer (connection reset, refused, timed out).
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Runs `write` until it succeeds, fails for good, or `ATTEMPTS` are used up. `transient`
/// tells a passing failure from a lasting one.
pub async fn retry<T, E, F, Fut>(transient: impl Fn(&E) -> bool, write: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_from(FIRST_DELAY, transient, write).await
}

/// `retry` whose first delay is `delay`.
async fn retry_from<T, E, F, Fut>(
    mut delay: Duration,
    transient: impl Fn(&E) -> bool,
    mut write: F,
) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match write(attempt).await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("injected", "InternalError")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn server_errors_and_throttling_are_transient_client_errors_are_not() {
        assert!(is_transient(&api(500)));
        assert!(is_transient(&api(503)));
        assert!(is_transient(&api(429)));
        assert!(!is_transient(&api(409)));
        assert!(!is_transient(&api(404)));
        assert!(!is_transient(&api(422)));
    }

    /// Runs `retry_from` (1 ms delays) over `outcome(attempt)`: the result and the calls made.
    async fn attempts(outcome: fn(u32) -> Result<u32, u16>) -> (Result<u32, u16>, u32) {
        let calls = AtomicU32::new(0);
        let result = retry_from(
            Duration::from_millis(1),
            |code| *code >= 500,
            |attempt| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { outcome(attempt) }
            },
        )
        .await;
        (result, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_write_is_repeated_until_it_lands_and_a_lasting_error_ends_at_once() {
        let landing_third = |attempt| if attempt < 3 { Err(503) } else { Ok(attempt) };
        assert_eq!(attempts(landing_third).await, (Ok(3), 3));
        assert_eq!(attempts(|_| Err(404)).await, (Err(404), 1));
        assert_eq!(attempts(|_| Err(500)).await, (Err(500), ATTEMPTS));
    }
}
