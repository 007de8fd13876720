//! fluo-deploy: ordered deploys with fail-fast waits, release history, the deploy lock and
//! automatic and manual rollback (SOP-002). Flags are parsed here; the work is in fluo-core.

mod change;
mod cli;
mod gate;
mod interrupt;
mod monitor;
mod run;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    fluo_core::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let exit = runtime.block_on(run::run(cli));
    std::process::exit(exit.code());
}
