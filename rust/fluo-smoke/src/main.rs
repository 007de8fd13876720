//! fluo-smoke: run SOP-002's smoke tests against an environment.
//! Exit codes: 0 all passed; 1 a smoke test failed; 2 usage or configuration error.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use fluo_health::cli::{GlobalArgs, Output};

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
    cli.global.init_logging();
    fluo_core::tls::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("fluo-smoke: {err:#}");
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
    let report = fluo_smoke::run_for(&config, cluster, cli.global.timeout).await;
    match cli.global.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Text => print!("{}", report.to_text(cli.global.color())),
    }
    Ok(u8::try_from(report.exit_code()).unwrap_or(1))
}
