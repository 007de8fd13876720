//! Flags and environment, validated into [`Config`] before anything starts.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use fluo_jobs::connect::{AuthError, NatsArgs, NatsAuth};
use fluo_jobs::flags::{self, FlagError};
use fluo_jobs::service::CheckArgs;

/// The FLUO background worker: pulls jobs from the durable JetStream consumer `fluo-workers`,
/// runs them and records the outcome in the `fluo-jobs` key-value bucket.
///
/// Serves GET /health, GET /ready and GET /metrics on --listen.
/// Exit codes: 0 clean shutdown after SIGTERM/SIGINT (in-flight jobs finished), 1 runtime
/// failure, 2 bad flags.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Address to serve /health, /ready and /metrics on.
    #[arg(long, env = "FLUO_WORKER_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: String,

    /// NATS server URL (JetStream must be enabled).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// Name recorded on the jobs this worker runs [default: $HOSTNAME, the pod name].
    #[arg(long, env = "FLUO_WORKER_ID")]
    pub worker_id: Option<String>,

    /// How many jobs to run at the same time.
    #[arg(long, env = "FLUO_WORKER_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,

    /// Seconds a delivered job may go without an ack or progress signal before NATS hands it to
    /// another worker. Applied when this worker creates the consumer.
    #[arg(long, env = "FLUO_WORKER_ACK_WAIT_SECS", default_value_t = 30)]
    pub ack_wait_secs: u64,

    /// The commit this build came from, reported by /health.
    #[arg(long, env = "FLUO_COMMIT", default_value = "unknown")]
    pub commit: String,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub nats_url: String,
    pub nats_auth: NatsAuth,
    pub worker_id: String,
    pub concurrency: usize,
    pub ack_wait: Duration,
    pub version: String,
    pub commit: String,
}

/// A flag value that is not acceptable; names the flag, its variable and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error(transparent)]
    Nats(#[from] AuthError),
    #[error("--concurrency (FLUO_WORKER_CONCURRENCY) {value} must be from 1 to 1024")]
    Concurrency { value: usize },
    #[error("--ack-wait-secs (FLUO_WORKER_ACK_WAIT_SECS) {value} must be from 1 to 3600")]
    AckWait { value: u64 },
    #[error("--worker-id (FLUO_WORKER_ID) {value:?} must be non-empty printable text")]
    WorkerId { value: String },
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(mut args: Args) -> Result<Self, ConfigError> {
        args.nats.skip_files = args.check.values_only();
        let listen = flags::listen_address(&args.listen, "FLUO_WORKER_LISTEN", "0.0.0.0:8081")?;
        let nats_url = flags::nats_url(args.nats_url)?;
        let nats_auth = NatsAuth::try_from(args.nats)?;
        if !(1..=1024).contains(&args.concurrency) {
            return Err(ConfigError::Concurrency {
                value: args.concurrency,
            });
        }
        if !(1..=3600).contains(&args.ack_wait_secs) {
            return Err(ConfigError::AckWait {
                value: args.ack_wait_secs,
            });
        }
        let worker_id = args
            .worker_id
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("worker-{}", std::process::id()));
        if worker_id.trim().is_empty() || worker_id.chars().any(char::is_control) {
            return Err(ConfigError::WorkerId { value: worker_id });
        }
        Ok(Config {
            listen,
            nats_url,
            nats_auth,
            worker_id,
            concurrency: args.concurrency,
            ack_wait: Duration::from_secs(args.ack_wait_secs),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: args.commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a full valid command line with `overrides` replacing flags of the same name.
    fn parse(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut flags = vec![
            ("--listen", "127.0.0.1:8081"),
            ("--nats-url", "nats://127.0.0.1:4222"),
            ("--worker-id", "w1"),
            ("--concurrency", "4"),
            ("--ack-wait-secs", "30"),
        ];
        for (flag, value) in overrides {
            flags.retain(|(f, _)| f != flag);
            flags.push((flag, value));
        }
        let argv = std::iter::once("fluo-worker").chain(flags.iter().flat_map(|(f, v)| [*f, *v]));
        Config::try_from(Args::try_parse_from(argv).unwrap())
    }

    #[test]
    fn valid_flags_make_a_config() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.worker_id, "w1");
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.ack_wait, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_name_the_flag_and_value() {
        assert_eq!(
            parse(&[("--concurrency", "0")]).unwrap_err().to_string(),
            "--concurrency (FLUO_WORKER_CONCURRENCY) 0 must be from 1 to 1024"
        );
        assert_eq!(
            parse(&[("--ack-wait-secs", "0")]).unwrap_err().to_string(),
            "--ack-wait-secs (FLUO_WORKER_ACK_WAIT_SECS) 0 must be from 1 to 3600"
        );
        assert!(
            parse(&[("--listen", "nowhere")])
                .unwrap_err()
                .to_string()
                .contains("\"nowhere\"")
        );
        assert!(parse(&[("--worker-id", " ")]).is_err());
    }
}
