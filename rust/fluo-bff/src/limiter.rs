//! Too many failed authentications from one address are answered 429 for the rest of a window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts one address may make per window before it gets 429 for the rest of it.
pub const MAX_FAILURES: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Failures per address in the current window.
#[derive(Default)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Seconds until `ip` may try again, when it is over the limit.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let windows = self.windows.lock().expect("limiter lock poisoned");
        let (started, failures) = windows.get(&ip)?;
        let left = FAILURE_WINDOW.checked_sub(started.elapsed())?;
        (*failures >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    /// Counts one failure of `ip`; returns true when it just reached the limit.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let mut windows = self.windows.lock().expect("limiter lock poisoned");
        // Forget finished windows so the map cannot grow without bound.
        if windows.len() > 10_000 {
            windows.retain(|_, (started, _)| started.elapsed() < FAILURE_WINDOW);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        entry.1 == MAX_FAILURES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_after_the_allowed_failures_only() {
        let limiter = FailureLimiter::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        for n in 1..MAX_FAILURES {
            assert!(!limiter.fail(ip));
            assert_eq!(limiter.blocked_for(ip), None, "after {n} failures");
        }
        assert!(limiter.fail(ip));
        let seconds = limiter.blocked_for(ip).unwrap();
        assert!((1..=60).contains(&seconds));
        assert_eq!(limiter.blocked_for(other), None);
    }
}
