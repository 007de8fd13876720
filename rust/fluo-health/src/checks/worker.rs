//! Worker processing: a `test` job submitted through the BFF is completed by a worker within
//! the deadline.

use std::time::Duration;

use crate::check::ProbeResult;
use crate::endpoint::Endpoint;
use crate::jobs;

pub async fn probe(http: &reqwest::Client, bff: &Endpoint, deadline: Duration) -> ProbeResult {
    jobs::run_test_job(http, bff, deadline)
        .await
        .map(|ok| format!("{ok} ({})", bff.via()))
}
