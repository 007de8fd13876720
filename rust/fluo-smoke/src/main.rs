//! fluo-smoke: run SOP-002's smoke tests against an environment.
//! Exit codes: 0 all passed; 1 a smoke test failed; 2 usage or configuration error.

use std::process::ExitCode;

use clap::Parser;
use fluo_health::cli::{self, GlobalArgs};

/// Run the SOP-002 smoke tests: BFF health through the ingress, submit the test job, wait for
/// it to complete with a result, and check that a bad payload is refused with 4xx.
///
/// Exit codes: 0 all passed, 1 a smoke test failed, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "fluo-smoke", version)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeout = cli.global.timeout;
    cli::run_report("fluo-smoke", &cli.global, |config, cluster| async move {
        fluo_smoke::run_for(&config, cluster, timeout).await
    })
}
