//! NATS: the monitoring endpoint's `/varz` answers, with the server version, the number of
//! client connections and JetStream enabled.

use serde::Deserialize;

use crate::check::ProbeResult;
use crate::endpoint::{Endpoint, excerpt};

/// The parts of `/varz` we judge on.
#[derive(Debug, Deserialize)]
pub struct Varz {
    pub version: String,
    pub connections: u64,
    /// Present with a `config` object when JetStream is enabled; `{}` or absent otherwise.
    #[serde(default)]
    pub jetstream: Option<serde_json::Value>,
}

impl Varz {
    pub fn jetstream_enabled(&self) -> bool {
        self.jetstream
            .as_ref()
            .and_then(|js| js.get("config"))
            .is_some_and(serde_json::Value::is_object)
    }
}

/// Judge a `/varz` body.
pub fn judge(body: &str) -> ProbeResult {
    let varz: Varz = serde_json::from_str(body).map_err(|e| {
        format!(
            "/varz is not the NATS varz document ({e}): {}",
            excerpt(body, 120)
        )
    })?;
    let summary = format!(
        "nats-server {}, {} connection(s), JetStream {}",
        varz.version,
        varz.connections,
        if varz.jetstream_enabled() {
            "enabled"
        } else {
            "disabled"
        }
    );
    if varz.jetstream_enabled() {
        Ok(summary)
    } else {
        Err(format!("{summary}: the job queue needs JetStream"))
    }
}

pub async fn probe(http: &reqwest::Client, endpoint: &Endpoint) -> ProbeResult {
    let (status, body) = endpoint.get(http, "/varz").await?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("GET /varz answered {status} ({})", endpoint.via()));
    }
    judge(&body).map(|ok| format!("{ok} ({})", endpoint.via()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varz_with_jetstream_config_passes() {
        let body = r#"{"server_id":"N1","version":"2.9.10","connections":3,
            "jetstream":{"config":{"max_memory":1024,"store_dir":"/tmp/js"},"stats":{}}}"#;
        assert_eq!(
            judge(body),
            Ok("nats-server 2.9.10, 3 connection(s), JetStream enabled".into())
        );
    }

    #[test]
    fn varz_without_jetstream_fails_saying_why() {
        for body in [
            r#"{"version":"2.9.10","connections":0,"jetstream":{}}"#,
            r#"{"version":"2.9.10","connections":0}"#,
        ] {
            assert_eq!(
                judge(body),
                Err("nats-server 2.9.10, 0 connection(s), JetStream disabled: the job queue needs JetStream".into())
            );
        }
    }

    #[test]
    fn non_varz_body_fails_with_an_excerpt() {
        let err = judge("<html>bad gateway</html>").unwrap_err();
        assert!(
            err.starts_with("/varz is not the NATS varz document"),
            "{err}"
        );
        assert!(err.ends_with("<html>bad gateway</html>"), "{err}");
    }
}
