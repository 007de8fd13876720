//! The one duration syntax of every flag and file: humantime ("90s", "5m", "1h30m"). A flag
//! parser's error names the value and what is wrong; clap adds the flag. Zero is refused by
//! [`positive`], the parser of every timeout, interval and TTL (a zero wait makes no sense).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("`{text}` is not a duration ({reason}); use e.g. 90s, 5m, 1h30m")]
    Invalid { text: String, reason: String },
    #[error("`{text}` is zero; give a duration above zero, e.g. 30s")]
    Zero { text: String },
}

/// A duration, zero allowed (e.g. `--since 0s`).
pub fn parse(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|e| Error::Invalid {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

/// A duration above zero: timeouts, intervals, TTLs, watch durations.
pub fn positive(text: &str) -> Result<Duration, Error> {
    let duration = parse(text)?;
    if duration.is_zero() {
        return Err(Error::Zero {
            text: text.to_string(),
        });
    }
    Ok(duration)
}

/// `#[serde(deserialize_with = "fluo_core::cli::duration::deserialize_positive")]` for files:
/// the same syntax and messages as the flags.
pub fn deserialize_positive<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    positive(&text).map_err(serde::de::Error::custom)
}

/// How a duration is printed back ("1m 30s").
pub fn display(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humantime_syntax_parses() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(positive("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(positive("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(positive("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        // A bare zero needs no unit (kube-emulator's `--latency 0`).
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn errors_name_the_value_and_show_the_syntax() {
        let soon = positive("soon").unwrap_err().to_string();
        assert!(soon.starts_with("`soon` is not a duration ("), "{soon}");
        assert!(soon.ends_with("use e.g. 90s, 5m, 1h30m"), "{soon}");
        assert_eq!(
            positive("0s").unwrap_err(),
            Error::Zero { text: "0s".into() }
        );
        assert!(positive("10").is_err(), "a unit is required");
    }

    #[test]
    fn files_use_the_same_parser() {
        #[derive(serde::Deserialize)]
        struct F {
            #[serde(deserialize_with = "deserialize_positive")]
            timeout: Duration,
        }
        let ok: F = toml::from_str("timeout = \"2m\"").unwrap();
        assert_eq!(ok.timeout, Duration::from_secs(120));
        let zero = toml::from_str::<F>("timeout = \"0s\"").err().unwrap();
        assert!(zero.to_string().contains("`0s` is zero"), "{zero}");
    }
}
