//! `fluo-bff`: flags into a validated config, then the server until SIGTERM/SIGINT; exit codes
//! 0 clean shutdown, 1 runtime failure, 2 bad flags (see `fluo_jobs::service`).

use std::process::ExitCode;

use clap::Parser;
use fluo_bff::config::Args;

#[tokio::main]
async fn main() -> ExitCode {
    fluo_jobs::service::main("fluo-bff", Args::parse(), fluo_bff::run).await
}
