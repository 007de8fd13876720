//! fluo-smoke: run SOP-002's smoke tests against an environment.
//! Exit codes: 0 all passed; 1 a smoke test failed; 2 usage or configuration error.

use clap::Parser;
use fluo_core::cli::Global;
use fluo_core::cli::docs::DocsFlags;
use fluo_core::exit::Exit;
use fluo_health::cli::{self, TIMEOUT_HELP};

/// Run the SOP-002 smoke tests: BFF health through the ingress, submit the test job, wait for
/// it to complete with a result, and check that a bad payload is refused with 4xx.
///
/// Exit codes: 0 all passed, 1 a smoke test failed, 2 usage or configuration error.
#[derive(Debug, Parser)]
#[command(name = "fluo-smoke", version, mut_arg("timeout", |a| a.help(TIMEOUT_HELP)))]
struct Cli {
    #[command(flatten)]
    docs: DocsFlags,
    #[command(flatten)]
    global: Global,
    /// File holding the BFF API token to submit the test job with (scopes jobs:submit and
    /// jobs:read). Without it the token is read from the Secret fluo-smoke-api-token.
    #[arg(long, env = "FLUO_API_TOKEN_FILE")]
    api_token_file: Option<std::path::PathBuf>,
}

fn main() -> Exit {
    let cli = Cli::parse();
    if let Some(exit) = cli.docs.print::<Cli>() {
        return exit;
    }
    let timeout = cli::check_timeout(&cli.global);
    let token_file = cli.api_token_file;
    let run = cli::run_report("fluo-smoke", &cli.global, |config, cluster| async move {
        fluo_smoke::run_for(&config, cluster, timeout, token_file.as_deref()).await
    });
    fluo_core::cli::main(cli.global.verbose, run)
}
