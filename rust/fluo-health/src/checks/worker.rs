//! Worker processing: a `test` job submitted through the BFF is completed by a worker within
//! the deadline.

use std::time::Duration;

use crate::check::ProbeResult;
use crate::endpoint::Endpoint;
use crate::jobs;

/// `timeout` is the check's; the job gets 90% of it so that a job that never completes is
/// reported with its last state rather than as a bare timeout.
pub async fn probe(http: &reqwest::Client, bff: &Endpoint, timeout: Duration) -> ProbeResult {
    jobs::run_test_job(http, bff, timeout.mul_f64(0.9))
        .await
        .map(|ok| format!("{ok} ({})", bff.via()))
}
