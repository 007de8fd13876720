//! `fluo-bff`: parse flags into a validated config, run the server, map the outcome to an exit
//! code (0 clean shutdown, 1 runtime failure, 2 bad flags).

use std::process::ExitCode;

use clap::Parser;
use fluo_bff::config::{Args, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("fluo-bff: {err}");
            return ExitCode::from(2);
        }
    };
    fluo_bff::telemetry::init();
    match fluo_bff::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "fluo-bff failed");
            ExitCode::from(1)
        }
    }
}
