//! fluo-secrets: make the platform's credentials (docs/security.md).

use std::process::ExitCode;

use clap::Parser;
use fluo_secrets::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fluo-secrets: {err:#}");
            ExitCode::from(1)
        }
    }
}
