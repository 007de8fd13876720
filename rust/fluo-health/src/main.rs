//! fluo-health: run SOP-002's mandatory health checks against an environment.
//! Exit codes: 0 all checks passed; 1 a check failed; 2 usage or configuration error.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use fluo_health::access::Resolver;
use fluo_health::cli::{self, GlobalArgs};
use fluo_health::health::{self, CheckName, Options};

/// Run the mandatory health checks (pods, bff, nats, workers, grafana, prometheus, logs)
/// concurrently, each under --timeout, and report a verdict with evidence per check.
///
/// Exit codes: 0 all passed, 1 a check failed, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "fluo-health", version)]
struct Cli {
    /// Run only these checks (comma-separated): pods, bff, nats, workers, grafana, prometheus, logs.
    #[arg(long = "check", value_delimiter = ',')]
    checks: Vec<CheckName>,
    /// Bearer token for Grafana's search API, when anonymous access is off.
    #[arg(long, env = "FLUO_GRAFANA_TOKEN", hide_env_values = true)]
    grafana_token: Option<String>,
    #[command(flatten)]
    global: GlobalArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut options = Options::new(cli.global.timeout);
    options.grafana_token = cli.grafana_token;
    if !cli.checks.is_empty() {
        options.only = Some(cli.checks.into_iter().collect());
    }
    cli::run_report("fluo-health", &cli.global, |config, cluster| async move {
        let resolver = Arc::new(Resolver::from_config(&config, cluster));
        health::run(&config, resolver, &options).await
    })
}
