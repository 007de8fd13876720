//! fluo-validate: the SOP-002 pre-deployment gate. Parses flags and runs
//! `fluo_validate::cli::run`, which prints the report and returns the exit status.
//!
//! Exit codes: 0 passed; 1 a step failed (named in the output); 2 usage or configuration
//! error; 5 refused by policy (--only/--skip where the environment forbids them).

use clap::Parser;
use fluo_core::exit::Exit;
use fluo_validate::cli::Args;

fn main() -> Exit {
    let args = Args::parse();
    fluo_core::cli::main(args.global.verbose, fluo_validate::cli::run(args))
}
