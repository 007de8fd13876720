//! Flags and environment, validated into [`Config`] before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fluo_jobs::connect::{AuthError, NatsArgs, NatsAuth};
use fluo_jobs::flags::{self, FlagError};
use fluo_jobs::service::CheckArgs;
use fluo_jobs::tokens::{self, TokensFile};

/// The FLUO API layer: accepts jobs, queues them on NATS JetStream and reports their state.
///
/// Endpoints: GET /health, GET /ready (open), GET /metrics (on --metrics-listen when set),
/// POST /api/jobs (scope jobs:submit), GET /api/jobs/{id} (scope jobs:read), the last two with
/// `Authorization: Bearer <token>`: 401 without a valid token, 403 without the scope.
/// Exit codes: 0 clean shutdown after SIGTERM/SIGINT, 1 runtime failure, 2 bad flags.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Address to serve HTTP on.
    #[arg(long, env = "FLUO_BFF_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,

    /// Serve /metrics only here (the address Prometheus scrapes, kept off the API port).
    /// Without it /metrics is served on --listen.
    #[arg(long, env = "FLUO_BFF_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// NATS server URL (JetStream must be enabled).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// The API tokens file (`tokens.toml` of the Secret fluo-bff-api-tokens: SHA-256 hashes
    /// and scopes). Re-read when it changes, so tokens rotate without a restart.
    #[arg(long, env = "FLUO_BFF_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// Serve the jobs API to anyone, without tokens: local experiments only; fluo-validate
    /// refuses it in staging and production.
    #[arg(long, env = "FLUO_BFF_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,

    /// The commit this build came from, reported by /health.
    #[arg(long, env = "FLUO_COMMIT", default_value = "unknown")]
    pub commit: String,

    /// After SIGTERM, keep serving this long with /ready answering 503 before closing the
    /// listener, so that Services and Ingresses stop sending requests here first (they learn of
    /// the pod's end at about the time it gets the signal). 0s closes at once.
    #[arg(long, env = "FLUO_BFF_SHUTDOWN_DELAY", default_value = "0s")]
    pub shutdown_delay: String,

    /// FAILURE TESTING ONLY: fraction (0 to 1) of requests, on every route except /metrics,
    /// answered with an injected 500. Off (0) by default.
    #[arg(long, env = "FLUO_BFF_FAULT_5XX_RATIO", default_value = "0")]
    pub fault_5xx_ratio: String,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// Longer would eat most of a pod's default 30 s grace period.
const MAX_SHUTDOWN_DELAY: Duration = Duration::from_secs(20);

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub nats_url: String,
    pub nats_auth: NatsAuth,
    /// The tokens file; None only with --insecure-no-auth.
    pub auth_tokens_file: Option<PathBuf>,
    pub version: String,
    pub commit: String,
    pub fault_5xx_ratio: f64,
    pub shutdown_delay: Duration,
}

/// A flag value that is not acceptable; names the flag, its variable and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("--fault-5xx-ratio (FLUO_BFF_FAULT_5XX_RATIO) {value:?} must be a number from 0 to 1")]
    FaultRatio { value: String },
    #[error(
        "--shutdown-delay (FLUO_BFF_SHUTDOWN_DELAY) {value:?} must be a duration like 3s, at most {MAX_SHUTDOWN_DELAY:?}"
    )]
    ShutdownDelay { value: String },
    #[error(
        "--metrics-listen (FLUO_BFF_METRICS_LISTEN) {value:?} is not a socket address like 0.0.0.0:9091"
    )]
    MetricsListen { value: String },
    #[error(transparent)]
    Nats(#[from] AuthError),
    #[error(transparent)]
    Tokens(#[from] tokens::Error),
    #[error(
        "the jobs API needs --auth-tokens-file (FLUO_BFF_AUTH_TOKENS_FILE), or --insecure-no-auth (FLUO_BFF_INSECURE_NO_AUTH) to serve it without authentication"
    )]
    NoAuth,
    #[error("--auth-tokens-file and --insecure-no-auth contradict each other: give one")]
    BothAuth,
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(mut args: Args) -> Result<Self, ConfigError> {
        args.nats.skip_files = args.check.values_only();
        let listen = flags::listen_address(&args.listen, "FLUO_BFF_LISTEN", "0.0.0.0:8080")?;
        let metrics_listen = args
            .metrics_listen
            .as_deref()
            .map(|value| {
                value.parse().map_err(|_| ConfigError::MetricsListen {
                    value: value.to_owned(),
                })
            })
            .transpose()?;
        let nats_url = flags::nats_url(args.nats_url)?;
        let nats_auth = NatsAuth::try_from(args.nats)?;
        let fault_5xx_ratio = args
            .fault_5xx_ratio
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| ConfigError::FaultRatio {
                value: args.fault_5xx_ratio.clone(),
            })?;
        let shutdown_delay = humantime::parse_duration(&args.shutdown_delay)
            .ok()
            .filter(|d| *d <= MAX_SHUTDOWN_DELAY)
            .ok_or_else(|| ConfigError::ShutdownDelay {
                value: args.shutdown_delay.clone(),
            })?;
        let auth_tokens_file = match (args.auth_tokens_file, args.insecure_no_auth) {
            (Some(_), true) => return Err(ConfigError::BothAuth),
            (None, false) => return Err(ConfigError::NoAuth),
            (Some(path), false) => {
                if !args.check.values_only() {
                    TokensFile::load(&path)?;
                }
                Some(path)
            }
            (None, true) => None,
        };
        Ok(Config {
            listen,
            metrics_listen,
            nats_url,
            nats_auth,
            auth_tokens_file,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: args.commit,
            fault_5xx_ratio,
            shutdown_delay,
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
            "--insecure-no-auth",
        ]))
        .unwrap();
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.fault_5xx_ratio, 0.0);
        assert_eq!(config.commit, "abc");
        assert_eq!(config.auth_tokens_file, None);
        assert_eq!(config.metrics_listen, None);
    }

    #[test]
    fn authentication_is_chosen_explicitly_and_the_tokens_file_must_be_valid() {
        let err = Config::try_from(args(&[])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the jobs API needs --auth-tokens-file")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"x\"\nsha256 = \"abc\"\nscopes = [\"jobs:read\"]\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let err = Config::try_from(args(&["--auth-tokens-file", file])).unwrap_err();
        assert!(
            err.to_string()
                .contains("tokens.toml is not valid: tokens[0]"),
            "{err}"
        );
        let err = Config::try_from(args(&["--auth-tokens-file", file, "--insecure-no-auth"]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::BothAuth));
        std::fs::write(&path, TokensFile::default().render()).unwrap();
        let config = Config::try_from(args(&[
            "--auth-tokens-file",
            file,
            "--metrics-listen",
            "127.0.0.1:9091",
        ]))
        .unwrap();
        assert_eq!(config.auth_tokens_file.as_deref(), Some(path.as_path()));
        assert_eq!(config.metrics_listen.unwrap().port(), 9091);
        let err = Config::try_from(args(&["--insecure-no-auth", "--metrics-listen", "metrics"]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--metrics-listen (FLUO_BFF_METRICS_LISTEN) \"metrics\""),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_flag_and_value() {
        for delay in ["soon", "21s"] {
            let err = Config::try_from(args(&["--shutdown-delay", delay, "--insecure-no-auth"]))
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "--shutdown-delay (FLUO_BFF_SHUTDOWN_DELAY) {delay:?} must be a duration like 3s, at most 20s"
                )
            );
        }
        let ok = Config::try_from(args(&["--shutdown-delay", "3s", "--insecure-no-auth"]));
        assert_eq!(ok.unwrap().shutdown_delay, Duration::from_secs(3));
        let err =
            Config::try_from(args(&["--listen", "localhost", "--insecure-no-auth"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--listen (FLUO_BFF_LISTEN) \"localhost\" is not a socket address like 0.0.0.0:8080"
        );
        let err = Config::try_from(args(&[
            "--listen",
            "127.0.0.1:1",
            "--nats-url",
            "http://x",
            "--insecure-no-auth",
        ]))
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
            "--insecure-no-auth",
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("\"1.5\" must be a number from 0 to 1")
        );
    }
}
