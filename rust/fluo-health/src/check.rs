//! The check model: a named probe with a timeout, and the outcome it produced (verdict, evidence,
//! duration). Checks run concurrently; a probe that overruns its timeout fails with that as
//! evidence instead of holding the whole run.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::Serialize;

/// What a probe returns: `Ok(evidence)` when healthy, `Err(evidence)` when not. Evidence is one
/// human sentence saying what was observed (never a secret).
pub type ProbeResult = Result<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub verdict: Verdict,
    pub evidence: String,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    #[serde(rename = "timeout_ms", serialize_with = "millis")]
    pub timeout: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A probe that has not run yet.
pub struct Check {
    name: String,
    timeout: Duration,
    probe: BoxFuture<'static, ProbeResult>,
}

impl Check {
    pub fn new(
        name: impl Into<String>,
        timeout: Duration,
        probe: impl Future<Output = ProbeResult> + Send + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            timeout,
            probe: Box::pin(probe),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run the probe under its timeout.
    pub async fn run(self) -> Outcome {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.probe)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "timed out after {}",
                    humantime::format_duration(self.timeout)
                ))
            });
        let (verdict, evidence) = match result {
            Ok(evidence) => (Verdict::Pass, evidence),
            Err(evidence) => (Verdict::Fail, evidence),
        };
        Outcome {
            name: self.name,
            verdict,
            evidence,
            duration: started.elapsed(),
            timeout: self.timeout,
        }
    }
}

/// Run all checks concurrently; outcomes keep the order of `checks`.
pub async fn run_all(checks: Vec<Check>) -> Vec<Outcome> {
    futures::future::join_all(checks.into_iter().map(Check::run)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ok_probe_passes_with_its_evidence() {
        let out = Check::new("a", Duration::from_secs(5), async { Ok("fine".into()) })
            .run()
            .await;
        assert_eq!(
            (out.verdict, out.evidence.as_str()),
            (Verdict::Pass, "fine")
        );
    }

    #[tokio::test]
    async fn failing_probe_fails_with_its_evidence() {
        let out = Check::new("a", Duration::from_secs(5), async { Err("down".into()) })
            .run()
            .await;
        assert_eq!(
            (out.verdict, out.evidence.as_str()),
            (Verdict::Fail, "down")
        );
    }

    #[tokio::test]
    async fn overrunning_probe_fails_with_the_timeout_as_evidence() {
        let never = futures::future::pending::<ProbeResult>();
        let out = Check::new("slow", Duration::from_millis(20), never)
            .run()
            .await;
        assert_eq!(out.verdict, Verdict::Fail);
        assert_eq!(out.evidence, "timed out after 20ms");
    }

    #[tokio::test]
    async fn run_all_keeps_order_and_runs_concurrently() {
        // Each probe waits for the other: only concurrent execution lets both finish.
        let (tx_a, rx_a) = tokio::sync::oneshot::channel::<()>();
        let (tx_b, rx_b) = tokio::sync::oneshot::channel::<()>();
        let a = Check::new("a", Duration::from_secs(30), async move {
            tx_b.send(()).map_err(|_| "b gone".to_string())?;
            rx_a.await.map_err(|e| e.to_string())?;
            Ok("a".into())
        });
        let b = Check::new("b", Duration::from_secs(30), async move {
            tx_a.send(()).map_err(|_| "a gone".to_string())?;
            rx_b.await.map_err(|e| e.to_string())?;
            Ok("b".into())
        });
        let outcomes = run_all(vec![a, b]).await;
        let names: Vec<_> = outcomes
            .iter()
            .map(|o| (o.name.as_str(), o.verdict))
            .collect();
        assert_eq!(names, [("a", Verdict::Pass), ("b", Verdict::Pass)]);
    }
}
