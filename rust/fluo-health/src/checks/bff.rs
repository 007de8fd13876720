//! BFF: every health path (`/health`, `/ready`) answers 200.

use crate::check::ProbeResult;
use crate::endpoint::{Endpoint, excerpt};

pub async fn probe(http: &reqwest::Client, endpoint: &Endpoint, paths: &[String]) -> ProbeResult {
    let mut seen = Vec::new();
    for path in paths {
        let (status, body) = endpoint.get(http, path).await?;
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "GET {path} answered {status} ({}): {}",
                endpoint.via(),
                excerpt(&body, 120)
            ));
        }
        seen.push(format!("GET {path} 200"));
    }
    Ok(format!("{} ({})", seen.join(", "), endpoint.via()))
}
