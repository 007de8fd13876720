//! fluo-deploy: ordered deploys with fail-fast waits, release history, the deploy lock and
//! automatic and manual rollback (SOP-002). Flags are parsed here; the wiring is fluo-ops and
//! the work is fluo-core's.

use clap::Parser;
use fluo_core::exit::Exit;
use fluo_ops::cli::Cli;

fn main() -> Exit {
    let cli = Cli::parse();
    fluo_core::cli::main(cli.global.verbose, fluo_ops::run(cli))
}
