//! The command-line plumbing every fluo binary shares (flags -> validated config -> one library
//! call -> [`Exit`]):
//! - [`Global`]: --kubeconfig, --context, -n, --env, --infra, -o, --timeout, -q, -v;
//! - [`duration`]: the one duration syntax (flags and files), zero refused where it makes no
//!   sense;
//! - [`Output`]: `-o text|json`;
//! - [`docs`]: completions and man pages from the clap definitions;
//! - [`main`]: TLS provider, logging, runtime, exit status.

pub mod global;

// Below fluo-core so that every binary can share them (docs/adr/0004).
pub use fluo_cli::{docs, duration};

use std::future::Future;

pub use global::Global;
// Output lives with the reporter (report does not depend on the command line).
pub use crate::report::Output;

use crate::exit::Exit;

/// The body of every fluo `main`: logging at `verbosity` (RUST_LOG wins), the TLS provider, a
/// multi-threaded runtime, then `run` to its exit status.
///
/// ```no_run
/// # async fn run() -> fluo_core::exit::Exit { fluo_core::exit::Exit::Ok }
/// fn main() -> fluo_core::exit::Exit {
///     fluo_core::cli::main(0, run())
/// }
/// ```
pub fn main(verbosity: u8, run: impl Future<Output = Exit>) -> Exit {
    crate::telemetry::init(verbosity);
    crate::tls::install_crypto_provider();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run),
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            Exit::Failed
        }
    }
}
