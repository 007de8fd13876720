//! Secret detection in plain values (ConfigMap data, env literals, annotations): a value that
//! holds a secret `fluo_core::secrets` finds (the detector the log scan uses too), a literal
//! under a sensitive key name, or a high-entropy string. The verdict describes why a value looks
//! secret; it never contains the value.

use std::sync::OnceLock;

use regex::Regex;

/// Why a value looks like a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suspicion {
    /// Holds a secret of a known kind (`fluo_core::secrets::Span::kind`).
    Holds(&'static str),
    /// A literal value under a key that names a credential (`DB_PASSWORD`).
    SensitiveKey,
    /// A long random-looking string.
    HighEntropy,
}

impl std::fmt::Display for Suspicion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Holds(kind) => write!(f, "holds a secret ({kind})"),
            Self::SensitiveKey => f.write_str("the key names a credential and holds a literal"),
            Self::HighEntropy => f.write_str("high-entropy string"),
        }
    }
}

fn sensitive_key() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)(passw(or)?d|\bpwd\b|_pwd\b|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|credentials?\b|auth[_-]?key|signing[_-]?key)",
        )
        .expect("valid regex")
    })
}

/// fluo's own annotations (`fluo.dev/external-secrets`, `fluo.dev/secrets-access`) name
/// secrets or explain access; they never hold one.
const OWN_ANNOTATION_PREFIX: &str = "fluo.dev/";

/// Key suffixes that say the value points at a secret rather than being one.
fn names_a_reference(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "_file", "-file", "file", "_path", "-path", "path", "_name", "-name", "_ref", "_env",
        "_ttl", "_timeout", "_expiry", "_url_env",
    ]
    .iter()
    .any(|suffix| key.ends_with(suffix))
}

/// Values that are obviously not credentials even under a credential-sounding key.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v.starts_with('/')
        || v.starts_with("$(")
        || v.starts_with("${")
        || v.parse::<f64>().is_ok()
        || matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "none" | "null" | "disabled" | "enabled"
        )
}

/// Shannon entropy in bits per character.
fn entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    for byte in value.bytes() {
        counts[byte as usize] += 1;
    }
    let len = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Random tokens are long, drawn from the base64/hex alphabets, mix upper case, lower case and
/// several digits (or are long hex), and use most of the alphabet they draw from. Expressions, prose,
/// hostnames, URLs and paths fall out through their punctuation or their case.
fn is_high_entropy(value: &str) -> bool {
    let v = value.trim();
    if v.len() < 20
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'))
    {
        return false;
    }
    // CamelCase identifiers (`FluoBffHighErrorRatio5m`) mix case too, but rarely hold more
    // than one digit; random tokens of this length almost always do.
    let mixed = v.chars().any(|c| c.is_ascii_uppercase())
        && v.chars().any(|c| c.is_ascii_lowercase())
        && v.chars().filter(char::is_ascii_digit).count() >= 2;
    let long_hex = v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit());
    if !(mixed || long_hex) {
        return false;
    }
    let threshold = ((v.len() as f64).log2() - 0.75).min(4.0);
    entropy(v) >= threshold
}

/// Whether `value` (found under `key`, if any) looks like a secret.
pub fn inspect(key: Option<&str>, value: &str) -> Option<Suspicion> {
    if let Some(secret) = fluo_core::secrets::find(value).first() {
        return Some(Suspicion::Holds(secret.kind));
    }
    if let Some(key) = key
        && !key.starts_with(OWN_ANNOTATION_PREFIX)
        && sensitive_key().is_match(key)
        && !names_a_reference(key)
        && !is_placeholder(value)
    {
        return Some(Suspicion::SensitiveKey);
    }
    // Checksums and digests are random by design and not secret.
    if key.is_some_and(|k| {
        let k = k.to_ascii_lowercase();
        ["checksum", "hash", "digest", "sha256"]
            .iter()
            .any(|w| k.contains(w))
    }) {
        return None;
    }
    // Multi-line values (config files in ConfigMaps) are inspected line by line, word by word.
    value
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '=' | ',' | ';'))
        .any(is_high_entropy)
        .then_some(Suspicion::HighEntropy)
}

/// Error messages from serde and the API server quote the offending value
/// (`invalid type: string "hunter2", expected i32`); the value might be a secret, so only its
/// type is kept.
pub fn redact_quoted(message: &str) -> String {
    static QUOTED: OnceLock<Regex> = OnceLock::new();
    QUOTED
        .get_or_init(|| Regex::new(r#""(?:[^"\\]|\\.)*""#).expect("valid regex"))
        .replace_all(message, "(value redacted)")
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted_from_messages() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "hunter2", expected i32"#),
            "invalid type: string (value redacted), expected i32"
        );
    }

    #[test]
    fn a_value_holding_a_secret_the_detector_finds_is_flagged_with_its_kind() {
        assert_eq!(
            inspect(None, "-----BEGIN RSA PRIVATE KEY-----\nMIIE..."),
            Some(Suspicion::Holds("private key"))
        );
        assert_eq!(
            inspect(
                Some("settings.ini"),
                "[db]\nhost = db\ndsn = postgres://app:hunter2@db:5432/app\n"
            ),
            Some(Suspicion::Holds("url credentials"))
        );
        assert_eq!(
            inspect(Some("UPSTREAM"), "nats://fluo:$(NATS_PASSWORD)@nats:4222"),
            None
        );
        let why = inspect(
            Some("ci/token"),
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
        )
        .unwrap()
        .to_string();
        assert_eq!(why, "holds a secret (github token)");
    }

    #[test]
    fn sensitive_keys_with_literals_are_detected() {
        assert_eq!(
            inspect(Some("DB_PASSWORD"), "changeme"),
            Some(Suspicion::SensitiveKey)
        );
        assert_eq!(
            inspect(Some("admin-token"), "abc"),
            Some(Suspicion::SensitiveKey)
        );
        assert_eq!(inspect(Some("api_key"), "k"), Some(Suspicion::SensitiveKey));
    }

    #[test]
    fn references_and_placeholders_are_not_secrets() {
        assert_eq!(
            inspect(Some("NATS_TOKEN_FILE"), "/var/run/secrets/token"),
            None
        );
        assert_eq!(
            inspect(Some("GF_SECURITY_ADMIN_PASSWORD"), "$(ADMIN_PASSWORD)"),
            None
        );
        assert_eq!(inspect(Some("TOKEN_TTL"), "3600"), None);
        assert_eq!(inspect(Some("existing_secret_name"), "grafana-admin"), None);
        assert_eq!(inspect(Some("AUTH_ENABLED"), "true"), None);
        assert_eq!(
            inspect(Some("fluo.dev/external-secrets"), "grafana-admin"),
            None
        );
        assert_eq!(
            inspect(
                Some("checksum/config"),
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            ),
            None
        );
    }

    #[test]
    fn high_entropy_strings_are_detected_and_ordinary_config_is_not() {
        assert_eq!(
            inspect(None, "q8Zr2LxV0pWn5TfKc7Ym3HsB"),
            Some(Suspicion::HighEntropy)
        );
        assert_eq!(
            inspect(
                Some("config.yaml"),
                "server:\n  key: Zq8r2LxV0pWn5TfKc7Ym3HsBa9\n"
            ),
            Some(Suspicion::HighEntropy)
        );
        for value in [
            "http://prometheus.fluo.svc.cluster.local:9090",
            "nats://nats:4222",
            "prometheus-operated-2024-11-26",
            "fluo/prometheus-nats-exporter:0.15",
            "scrape_interval: 15s\nevaluation_interval: 15s\n",
            "app.kubernetes.io/managed-by",
            "The FLUO API layer, version 2024.11 (jobs API)",
            "sum(rate(fluo_bff_http_requests_total[5m]))",
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))",
            "FluoBffHighErrorRatio5m",
        ] {
            assert_eq!(inspect(Some("value"), value), None, "{value}");
        }
    }
}
