//! Fault injection for reliability tests: a share of resource requests answered 500 or 429, a
//! share of writes answered 500 or 503, a share of connections reset without an answer, added
//! latency, and watches closed early. Discovery, OpenAPI and /version are never faulted, so
//! clients can always start.

use std::time::Duration;

use crate::apiserver::status::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Share (0.0..=1.0) of resource requests answered `500 InternalError`.
    pub error_rate: f64,
    /// Share (0.0..=1.0) of resource requests answered `429 TooManyRequests` (Retry-After: 1).
    pub throttle_rate: f64,
    /// Share (0.0..=1.0) of write requests (POST, PUT, PATCH, DELETE) answered
    /// `500 InternalError`; the write is not performed.
    pub write_error_rate: f64,
    /// Share (0.0..=1.0) of write requests answered `503 ServiceUnavailable`; the write is not
    /// performed.
    pub write_unavailable_rate: f64,
    /// Share (0.0..=1.0) of resource requests whose TCP connection is reset (RST) without any
    /// response; the request is not performed.
    pub reset_rate: f64,
    /// Delay added before every resource request is served.
    pub latency: Duration,
    /// Watches are closed by the server after this long (clients must re-watch).
    pub watch_close_after: Option<Duration>,
    /// Share (0.0..=1.0) of watches closed early, at a uniformly random moment within
    /// [`Faults::watch_close_within`] after their initial events.
    pub watch_close_rate: f64,
    /// The window in which a watch picked by [`Faults::watch_close_rate`] is closed
    /// (zero: right after its initial events). Default 1 s.
    pub watch_close_within: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            throttle_rate: 0.0,
            write_error_rate: 0.0,
            write_unavailable_rate: 0.0,
            reset_rate: 0.0,
            latency: Duration::ZERO,
            watch_close_after: None,
            watch_close_rate: 0.0,
            watch_close_within: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{name} must be between 0 and 1, got {value}")]
    Rate { name: &'static str, value: f64 },
    #[error(
        "error_rate + throttle_rate + write_error_rate + write_unavailable_rate + reset_rate must not exceed 1, got {0}"
    )]
    Sum(f64),
}

/// What happens to one resource request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Served normally.
    Serve,
    /// Answered with this error instead.
    Fail(ApiError),
    /// The connection is reset without a response.
    Reset,
}

impl Faults {
    /// The per-request shares, in the order they split the unit interval.
    fn request_rates(&self) -> [(&'static str, f64); 5] {
        [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
            ("write_error_rate", self.write_error_rate),
            ("write_unavailable_rate", self.write_unavailable_rate),
            ("reset_rate", self.reset_rate),
        ]
    }

    pub fn validate(&self) -> Result<(), Error> {
        let rates = self.request_rates();
        for (name, value) in rates
            .iter()
            .copied()
            .chain([("watch_close_rate", self.watch_close_rate)])
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::Rate { name, value });
            }
        }
        let sum: f64 = rates.iter().map(|(_, v)| v).sum();
        // Tolerate rounding (1/3 + 1/3 + 1/3).
        if sum > 1.0 + 1e-9 {
            return Err(Error::Sum(sum));
        }
        Ok(())
    }

    /// Decides the fate of one request given a uniform sample in [0, 1). The shares split the
    /// interval in a fixed order (error, throttle, write error, write unavailable, reset); the
    /// write shares apply only when `write` is true (otherwise the request is served).
    pub fn outcome(&self, write: bool, sample: f64) -> Outcome {
        let mut upper = 0.0;
        for (name, rate) in self.request_rates() {
            upper += rate;
            if sample >= upper {
                continue;
            }
            return match name {
                "error_rate" => Outcome::Fail(ApiError::internal("injected fault: internal error")),
                "throttle_rate" => Outcome::Fail(ApiError::too_many_requests()),
                "write_error_rate" if write => Outcome::Fail(ApiError::internal(
                    "injected fault: internal error on write",
                )),
                "write_unavailable_rate" if write => Outcome::Fail(ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "injected fault: the server is currently unable to handle the request",
                )),
                "reset_rate" => Outcome::Reset,
                _ => Outcome::Serve,
            };
        }
        Outcome::Serve
    }

    /// When the server closes one watch: the earlier of `watch_close_after` and, for a watch
    /// picked by `watch_close_rate` (`pick` < rate), `position` (in [0, 1)) of the way through
    /// `watch_close_within`.
    pub fn watch_close(&self, pick: f64, position: f64) -> Option<Duration> {
        let early =
            (pick < self.watch_close_rate).then(|| self.watch_close_within.mul_f64(position));
        match (self.watch_close_after, early) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A uniform sample in [0, 1).
pub fn sample() -> f64 {
    let b = uuid::Uuid::new_v4().as_u128();
    (b >> 75) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(o: Outcome) -> Option<u16> {
        match o {
            Outcome::Fail(e) => Some(e.code),
            Outcome::Serve => None,
            Outcome::Reset => Some(0),
        }
    }

    #[test]
    fn outcomes_split_the_unit_interval() {
        let f = Faults {
            error_rate: 0.2,
            throttle_rate: 0.3,
            ..Default::default()
        };
        assert_eq!(code(f.outcome(false, 0.1)), Some(500));
        assert_eq!(code(f.outcome(true, 0.4)), Some(429));
        assert_eq!(code(f.outcome(true, 0.6)), None);
        assert_eq!(code(Faults::default().outcome(true, 0.0)), None);
        for _ in 0..100 {
            let s = sample();
            assert!((0.0..1.0).contains(&s));
        }
    }

    #[test]
    fn write_faults_spare_reads() {
        let f = Faults {
            write_error_rate: 0.25,
            write_unavailable_rate: 0.25,
            reset_rate: 0.25,
            ..Default::default()
        };
        assert_eq!(code(f.outcome(true, 0.1)), Some(500));
        assert_eq!(code(f.outcome(true, 0.3)), Some(503));
        assert_eq!(code(f.outcome(false, 0.1)), None);
        assert_eq!(code(f.outcome(false, 0.3)), None);
        // Resets hit reads and writes alike.
        assert_eq!(code(f.outcome(false, 0.6)), Some(0));
        assert_eq!(code(f.outcome(true, 0.6)), Some(0));
        assert_eq!(code(f.outcome(true, 0.9)), None);
        match f.outcome(true, 0.3) {
            Outcome::Fail(e) => assert_eq!(e.reason, "ServiceUnavailable"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watch_close_takes_the_earlier_of_both_faults() {
        let f = Faults {
            watch_close_rate: 0.5,
            watch_close_within: Duration::from_secs(2),
            ..Default::default()
        };
        assert_eq!(f.watch_close(0.1, 0.25), Some(Duration::from_millis(500)));
        assert_eq!(f.watch_close(0.7, 0.25), None, "not picked");
        let f = Faults {
            watch_close_after: Some(Duration::from_millis(300)),
            ..f
        };
        assert_eq!(f.watch_close(0.1, 0.25), Some(Duration::from_millis(300)));
        assert_eq!(f.watch_close(0.9, 0.0), Some(Duration::from_millis(300)));
        assert_eq!(Faults::default().watch_close(0.0, 0.5), None);
    }

    #[test]
    fn validation_names_the_bad_rate() {
        let f = Faults {
            error_rate: 1.5,
            ..Default::default()
        };
        assert_eq!(
            f.validate().unwrap_err().to_string(),
            "error_rate must be between 0 and 1, got 1.5"
        );
        let f = Faults {
            watch_close_rate: -0.1,
            ..Default::default()
        };
        assert_eq!(
            f.validate().unwrap_err(),
            Error::Rate {
                name: "watch_close_rate",
                value: -0.1
            }
        );
        let f = Faults {
            error_rate: 0.6,
            throttle_rate: 0.6,
            ..Default::default()
        };
        assert!(matches!(f.validate(), Err(Error::Sum(_))));
        let f = Faults {
            write_unavailable_rate: 0.5,
            reset_rate: 0.6,
            ..Default::default()
        };
        assert!(matches!(f.validate(), Err(Error::Sum(_))));
        let third = 1.0 / 3.0;
        let f = Faults {
            write_error_rate: third,
            write_unavailable_rate: third,
            reset_rate: third,
            watch_close_rate: 1.0,
            ..Default::default()
        };
        assert_eq!(f.validate(), Ok(()));
    }
}
