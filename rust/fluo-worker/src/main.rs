//! `fluo-worker`: parse flags into a validated config, run the worker, map the outcome to an
//! exit code (0 clean shutdown, 1 runtime failure, 2 bad flags).

use std::process::ExitCode;

use clap::Parser;
use fluo_worker::config::{Args, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::try_from(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("fluo-worker: {err}");
            return ExitCode::from(2);
        }
    };
    fluo_worker::telemetry::init();
    match fluo_worker::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "fluo-worker failed");
            ExitCode::from(1)
        }
    }
}
