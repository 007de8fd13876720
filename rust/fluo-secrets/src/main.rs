//! fluo-secrets: make the platform's credentials (docs/security.md). Flags are parsed here; the
//! work and the exit status are `fluo_secrets::cli`'s.

use clap::Parser;
use fluo_cli::exit::Exit;
use fluo_secrets::cli::{self, Cli};

fn main() -> Exit {
    cli::main(Cli::parse())
}
