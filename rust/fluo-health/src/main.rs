//! fluo-health: run SOP-002's mandatory health checks against an environment.
//! Exit codes: 0 all checks passed; 1 a check failed; 2 usage or configuration error.

use std::sync::Arc;

use clap::Parser;
use fluo_core::cli::Global;
use fluo_core::cli::docs::DocsFlags;
use fluo_core::exit::Exit;
use fluo_health::access::Resolver;
use fluo_health::cli::{self, TIMEOUT_HELP};
use fluo_health::health::{self, CheckName, Options};

/// Run the mandatory health checks (pods, bff, nats, workers, grafana, prometheus, logs)
/// concurrently, each under --timeout, and report a verdict with evidence per check.
///
/// Exit codes: 0 all passed, 1 a check failed, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "fluo-health", version, mut_arg("timeout", |a| a.help(TIMEOUT_HELP)))]
struct Cli {
    /// Run only these checks (comma-separated): pods, bff, nats, workers, grafana, prometheus, logs.
    #[arg(long = "check", value_delimiter = ',')]
    checks: Vec<CheckName>,
    /// Bearer token for Grafana's search API, when anonymous access is off.
    #[arg(long, env = "FLUO_GRAFANA_TOKEN", hide_env_values = true)]
    grafana_token: Option<String>,
    /// File holding the BFF API token (scopes jobs:submit, jobs:read) the workers check submits
    /// its test job with. Without it the token is read from the Secret fluo-smoke-api-token.
    #[arg(long, env = "FLUO_API_TOKEN_FILE")]
    api_token_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    docs: DocsFlags,
    #[command(flatten)]
    global: Global,
}

fn main() -> Exit {
    let cli = Cli::parse();
    if let Some(exit) = cli.docs.print::<Cli>() {
        return exit;
    }
    let mut options = Options::new(cli::check_timeout(&cli.global));
    options.grafana_token = cli.grafana_token;
    options.api_token_file = cli.api_token_file;
    if !cli.checks.is_empty() {
        options.only = Some(cli.checks.into_iter().collect());
    }
    let run = cli::run_report("fluo-health", &cli.global, |config, cluster| async move {
        let resolver = Arc::new(Resolver::from_config(&config, cluster));
        health::run(&config, resolver, &options).await
    });
    fluo_core::cli::main(cli.global.verbose, run)
}
