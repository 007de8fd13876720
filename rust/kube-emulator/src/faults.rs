//! Fault injection for reliability tests: a share of resource requests answered 500 or 429,
//! added latency, and watches closed early. Discovery, OpenAPI and /version are never faulted,
//! so clients can always start.

use std::time::Duration;

use crate::status::ApiError;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share (0.0..=1.0) of resource requests answered `500 InternalError`.
    pub error_rate: f64,
    /// Share (0.0..=1.0) of resource requests answered `429 TooManyRequests` (Retry-After: 1).
    pub throttle_rate: f64,
    /// Delay added before every resource request is served.
    pub latency: Duration,
    /// Watches are closed by the server after this long (clients must re-watch).
    pub watch_close_after: Option<Duration>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{name} must be between 0 and 1, got {value}")]
    Rate { name: &'static str, value: f64 },
    #[error("error_rate + throttle_rate must not exceed 1, got {0}")]
    Sum(f64),
}

impl Faults {
    pub fn validate(&self) -> Result<(), Error> {
        for (name, value) in [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::Rate { name, value });
            }
        }
        let sum = self.error_rate + self.throttle_rate;
        if sum > 1.0 {
            return Err(Error::Sum(sum));
        }
        Ok(())
    }

    /// Decides the fate of one request given a uniform sample in [0, 1).
    pub fn outcome(&self, sample: f64) -> Option<ApiError> {
        if sample < self.error_rate {
            Some(ApiError::internal("injected fault: internal error"))
        } else if sample < self.error_rate + self.throttle_rate {
            Some(ApiError::too_many_requests())
        } else {
            None
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

    #[test]
    fn outcomes_split_the_unit_interval() {
        let f = Faults {
            error_rate: 0.2,
            throttle_rate: 0.3,
            ..Default::default()
        };
        assert_eq!(f.outcome(0.1).unwrap().code, 500);
        assert_eq!(f.outcome(0.4).unwrap().code, 429);
        assert!(f.outcome(0.6).is_none());
        assert!(Faults::default().outcome(0.0).is_none());
        for _ in 0..100 {
            let s = sample();
            assert!((0.0..1.0).contains(&s));
        }
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
            error_rate: 0.6,
            throttle_rate: 0.6,
            ..Default::default()
        };
        assert!(matches!(f.validate(), Err(Error::Sum(_))));
    }
}
