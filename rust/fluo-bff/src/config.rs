//! Flags and environment, validated into [`Config`] before anything starts.

use std::net::SocketAddr;

use clap::Parser;
use fluo_jobs::flags::{self, FlagError};

/// The FLUO API layer: accepts jobs, queues them on NATS JetStream and reports their state.
///
/// Endpoints: GET /health, GET /ready, GET /metrics, POST /api/jobs, GET /api/jobs/{id}.
/// Exit codes: 0 clean shutdown after SIGTERM/SIGINT, 1 runtime failure, 2 bad flags.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Address to serve HTTP on.
    #[arg(long, env = "FLUO_BFF_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,

    /// NATS server URL (JetStream must be enabled).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// The commit this build came from, reported by /health.
    #[arg(long, env = "FLUO_COMMIT", default_value = "unknown")]
    pub commit: String,

    /// FAILURE TESTING ONLY: fraction (0 to 1) of requests, on every route except /metrics,
    /// answered with an injected 500. Off (0) by default.
    #[arg(long, env = "FLUO_BFF_FAULT_5XX_RATIO", default_value = "0")]
    pub fault_5xx_ratio: String,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub nats_url: String,
    pub version: String,
    pub commit: String,
    pub fault_5xx_ratio: f64,
}

/// A flag value that is not acceptable; names the flag, its variable and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("--fault-5xx-ratio (FLUO_BFF_FAULT_5XX_RATIO) {value:?} must be a number from 0 to 1")]
    FaultRatio { value: String },
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, ConfigError> {
        let listen = flags::listen_address(&args.listen, "FLUO_BFF_LISTEN", "0.0.0.0:8080")?;
        let nats_url = flags::nats_url(args.nats_url)?;
        let fault_5xx_ratio = args
            .fault_5xx_ratio
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| ConfigError::FaultRatio {
                value: args.fault_5xx_ratio.clone(),
            })?;
        Ok(Config {
            listen,
            nats_url,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: args.commit,
            fault_5xx_ratio,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["fluo-bff"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let config = Config::try_from(args(&[
            "--listen",
            "0.0.0.0:8080",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--commit",
            "abc",
            "--fault-5xx-ratio",
            "0",
        ]))
        .unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.fault_5xx_ratio, 0.0);
        assert_eq!(config.commit, "abc");
    }

    #[test]
    fn bad_values_name_the_flag_and_value() {
        let err = Config::try_from(args(&["--listen", "localhost"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--listen (FLUO_BFF_LISTEN) \"localhost\" is not a socket address like 0.0.0.0:8080"
        );
        let err = Config::try_from(args(&["--listen", "127.0.0.1:1", "--nats-url", "http://x"]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--nats-url (NATS_URL) \"http://x\"")
        );
        let err = Config::try_from(args(&[
            "--listen",
            "127.0.0.1:1",
            "--nats-url",
            "nats://x:1",
            "--fault-5xx-ratio",
            "1.5",
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"1.5\" must be a number from 0 to 1")
        );
    }
}
