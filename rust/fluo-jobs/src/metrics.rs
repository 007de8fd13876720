//! The Prometheus plumbing both services share: one registry per service holding its
//! collectors, and its text exposition for `GET /metrics`.

use prometheus::core::Collector;
use prometheus::{Encoder, Registry, TextEncoder};

/// A registry holding `collectors`. Panics on a name registered twice: metric names are fixed
/// at compile time, so that is a programming error.
pub fn registry(collectors: Vec<Box<dyn Collector>>) -> Registry {
    let registry = Registry::new();
    for collector in collectors {
        registry
            .register(collector)
            .expect("metric names are unique");
    }
    registry
}

/// The Prometheus text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("text encoding into memory cannot fail");
    String::from_utf8(buffer).expect("the text encoder writes UTF-8")
}

#[cfg(test)]
mod tests {
    use prometheus::{IntCounter, IntGauge};

    use super::*;

    #[test]
    fn renders_every_registered_collector() {
        let requests = IntCounter::new("x_requests_total", "Requests").unwrap();
        let up = IntGauge::new("x_up", "Up").unwrap();
        let registry = registry(vec![Box::new(requests.clone()), Box::new(up.clone())]);
        requests.inc();
        up.set(1);
        let text = render(&registry);
        assert!(
            text.contains("# TYPE x_requests_total counter\nx_requests_total 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE x_up gauge\nx_up 1\n"), "{text}");
    }

    #[test]
    #[should_panic(expected = "metric names are unique")]
    fn a_name_registered_twice_is_a_programming_error() {
        let a = IntGauge::new("x_up", "Up").unwrap();
        let b = IntGauge::new("x_up", "Up").unwrap();
        registry(vec![Box::new(a), Box::new(b)]);
    }
}
