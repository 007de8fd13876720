//! State: JetStream as the NATS monitoring endpoint reports it: `/healthz` (the server's own
//! JetStream health: streams and consumers current), `/jsz?streams=true` (storage used against
//! the configured maximum, and the streams). Fetching is the caller's (it needs an endpoint the
//! environment's `[access]` reaches); judging is here, pure.

use serde_json::Value;

use super::{Diagnosis, Family, Finding};

/// The streams the services create at start (fluo-jobs `names.rs`): the job queue and the
/// key-value bucket of job states.
pub const PLATFORM_STREAMS: [&str; 2] = ["FLUO_JOBS", "KV_fluo-jobs"];

/// File storage used above this share of `max_file_store` is reported.
pub const STORAGE_WARN_RATIO: f64 = 0.9;

/// What the monitoring endpoint answered.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `/healthz` status code and body.
    pub healthz: (u16, String),
    /// `/jsz?streams=true&config=true` body.
    pub jsz: String,
    /// The BFF is deployed, so the platform's streams should exist.
    pub expect_streams: bool,
}

/// Adds the JetStream findings, or what kept them from being made, to `diagnosis`.
pub fn add(diagnosis: &mut Diagnosis, observed: Result<Observed, String>) {
    match observed {
        Ok(o) => {
            diagnosis.findings.extend(findings(&o));
            diagnosis.findings.sort();
            diagnosis.ok = diagnosis.findings.is_empty();
        }
        Err(why) => diagnosis.not_checked.push(format!(
            "JetStream stream health and free space: the NATS monitoring endpoint did not answer ({why})"
        )),
    }
}

pub fn findings(o: &Observed) -> Vec<Finding> {
    let finding = |pattern, object: &str, evidence: Vec<String>, hint: &str| Finding {
        family: Family::State,
        pattern,
        component: Some("nats".into()),
        object: object.to_string(),
        evidence,
        hint: hint.to_string(),
    };
    let mut out = Vec::new();
    let (status, body) = &o.healthz;
    if *status != 200 {
        out.push(finding(
            "jetstream-unhealthy",
            "JetStream/nats",
            vec![format!("/healthz answered {status}: {}", body.trim())],
            "read the nats-server log (`fluo-deploy logs nats`); a stream or consumer that is not current recovers after a restart of the pod, a corrupt store needs `fluo-deploy restore`",
        ));
    }
    let Ok(jsz) = serde_json::from_str::<Value>(&o.jsz) else {
        out.push(finding(
            "jetstream-unhealthy",
            "JetStream/nats",
            vec![format!("/jsz is not JSON: {}", excerpt(&o.jsz))],
            "check that the monitoring port (8222) is the NATS server's",
        ));
        return out;
    };
    let max = jsz["config"]["max_storage"].as_f64().unwrap_or(0.0);
    if jsz.get("config").is_none_or(Value::is_null)
        || jsz.get("disabled") == Some(&Value::Bool(true))
    {
        out.push(finding(
            "jetstream-disabled",
            "JetStream/nats",
            vec!["/jsz reports no JetStream configuration".into()],
            "enable the jetstream block in nats.conf (ConfigMap nats-config): the job queue needs it",
        ));
        return out;
    }
    let used = jsz["storage"].as_f64().unwrap_or(0.0);
    if max > 0.0 && used / max >= STORAGE_WARN_RATIO {
        out.push(finding(
            "jetstream-storage-low",
            "JetStream/nats",
            vec![format!(
                "file storage {} of {} used ({:.0}%)",
                mib(used),
                mib(max),
                100.0 * used / max
            )],
            "raise max_file_store in nats.conf with the volume (PVC) size, or set limits (max_bytes, max_age) on the streams",
        ));
    }
    if o.expect_streams {
        let names = stream_names(&jsz);
        for missing in PLATFORM_STREAMS
            .iter()
            .filter(|s| !names.contains(&s.to_string()))
        {
            out.push(finding(
                "stream-missing",
                &format!("Stream/{missing}"),
                vec![format!(
                    "the BFF is deployed but JetStream has no stream {missing} (streams: {})",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )],
                "the BFF and workers create it at start: check their logs for NATS permission errors; after a lost volume, `fluo-deploy restore` brings the backed-up state back",
            ));
        }
    }
    out
}

/// Stream names of every account in `/jsz?streams=true`.
fn stream_names(jsz: &Value) -> Vec<String> {
    let mut names: Vec<String> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

fn mib(bytes: f64) -> String {
    format!("{:.0} MiB", bytes / (1024.0 * 1024.0))
}

fn excerpt(text: &str) -> String {
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observed(status: u16, jsz: Value, expect_streams: bool) -> Observed {
        Observed {
            healthz: (status, r#"{"status":"ok"}"#.into()),
            jsz: jsz.to_string(),
            expect_streams,
        }
    }

    fn jsz(storage: u64, streams: &[&str]) -> Value {
        let detail: Vec<Value> = streams.iter().map(|s| json!({"name": s})).collect();
        json!({"config": {"max_storage": 1000u64}, "storage": storage,
               "account_details": [{"name": "$G", "stream_detail": detail}]})
    }

    #[test]
    fn a_healthy_jetstream_has_no_findings() {
        assert!(findings(&observed(200, jsz(10, &PLATFORM_STREAMS), true)).is_empty());
        // Before the BFF is deployed, no stream is expected.
        assert!(findings(&observed(200, jsz(10, &[]), false)).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        let f = findings(&observed(200, jsz(950, &["FLUO_JOBS"]), true));
        let patterns: Vec<&str> = f.iter().map(|f| f.pattern).collect();
        assert_eq!(
            patterns,
            ["jetstream-storage-low", "stream-missing"],
            "{f:?}"
        );
        assert!(f[0].evidence[0].contains("(95%)"), "{:?}", f[0].evidence);
        assert_eq!(f[1].object, "Stream/KV_fluo-jobs");
        let mut o = observed(200, json!({"disabled": true}), false);
        assert_eq!(findings(&o)[0].pattern, "jetstream-disabled");
        o = observed(503, jsz(1, &[]), false);
        o.healthz.1 =
            r#"{"status":"unavailable","error":"JetStream stream 'FLUO_JOBS' is not current"}"#
                .into();
        let f = findings(&o);
        assert_eq!(f[0].pattern, "jetstream-unhealthy");
        assert!(f[0].evidence[0].contains("is not current"));
    }
}
