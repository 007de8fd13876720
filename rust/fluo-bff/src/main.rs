//! `fluo-bff`: flags into a validated config, then the server until SIGTERM/SIGINT; exit codes
//! 0 clean shutdown, 1 runtime failure, 2 bad flags (see `fluo_jobs::service`);
//! `--check-config` validates and exits.

use clap::Parser;
use fluo_bff::config::Args;
use fluo_jobs::service::Exit;

#[tokio::main]
async fn main() -> Exit {
    let args = Args::parse();
    let check = args.check.check_config;
    fluo_jobs::service::main("fluo-bff", args, check, fluo_bff::run).await
}
