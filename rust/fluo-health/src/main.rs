//! fluo-health: run SOP-002's mandatory health checks against an environment.
//! Exit codes: 0 all checks passed; 1 a check failed; 2 usage or configuration error.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use fluo_health::access::Resolver;
use fluo_health::cli::{GlobalArgs, Output};
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
    cli.global.init_logging();
    fluo_core::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fluo-health: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = cli
        .global
        .load_config()
        .context("loading the configuration")?;
    let cluster = cli
        .global
        .cluster(&config)
        .await
        .context("connecting to the cluster")?;
    let resolver = Arc::new(Resolver::from_config(&config, cluster));
    let mut options = Options::new(cli.global.timeout);
    options.grafana_token = cli.grafana_token;
    if !cli.checks.is_empty() {
        options.only = Some(cli.checks.into_iter().collect());
    }
    let report = health::run(&config, resolver, &options).await;
    match cli.global.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Text => print!("{}", report.to_text(cli.global.color())),
    }
    Ok(u8::try_from(report.exit_code()).unwrap_or(1))
}
