//! fluo-health: run SOP-002's mandatory health and security checks against an environment.
//! Exit codes: 0 all checks passed; 1 a check failed; 2 usage or configuration error.

use std::sync::Arc;

use clap::Parser;
use fluo_core::cli::Global;
use fluo_core::cli::docs::DocsFlags;
use fluo_core::exit::Exit;
use fluo_health::access::Resolver;
use fluo_health::cli::{self, HealthFlags, TIMEOUT_HELP};
use fluo_health::health;

/// Run the mandatory health checks (pods, bff, nats, workers, grafana, prometheus, logs) and
/// the security checks (api-auth, nats-auth, nats-tls, rbac, pod-env) concurrently, each under
/// --timeout, and report a verdict with evidence per check.
///
/// Exit codes: 0 all passed, 1 a check failed, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "fluo-health", version, mut_arg("timeout", |a| a.help(TIMEOUT_HELP)))]
struct Cli {
    #[command(flatten)]
    health: HealthFlags,
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
    let options = cli.health.into_options(cli::check_timeout(&cli.global));
    let run = cli::run_report("fluo-health", &cli.global, |config, cluster| async move {
        let resolver = Arc::new(Resolver::from_config(&config, cluster));
        health::run(&config, resolver, &options).await
    });
    fluo_core::cli::main(cli.global.verbose, run)
}
