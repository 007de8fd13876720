//! Fault injection for failure tests (FLUO_BFF_FAULT_5XX_RATIO): answer a fixed fraction of
//! requests with 500 so alerting and post-deploy monitoring can be tested against a real BFF.
//! Deterministic (a counter, not randomness) so tests know how many requests fail.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Fault {
    ratio: f64,
    seen: AtomicU64,
}

impl Fault {
    pub fn new(ratio: f64) -> Self {
        Fault {
            ratio,
            seen: AtomicU64::new(0),
        }
    }

    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Whether the next request gets an injected 500: request n (from 1) fails when
    /// floor(n * ratio) moved past floor((n - 1) * ratio), so any window of requests fails at
    /// the configured ratio, e.g. every other request for 0.5.
    pub fn should_fail(&self) -> bool {
        if self.ratio <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        (n as f64 * self.ratio).floor() > ((n - 1) as f64 * self.ratio).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(ratio: f64, requests: usize) -> usize {
        let fault = Fault::new(ratio);
        (0..requests).filter(|_| fault.should_fail()).count()
    }

    #[test]
    fn fails_the_configured_fraction() {
        assert_eq!(failures(0.0, 100), 0);
        assert_eq!(failures(1.0, 100), 100);
        assert_eq!(failures(0.5, 100), 50);
        assert_eq!(failures(0.1, 100), 10);
    }
}
