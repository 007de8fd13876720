//! End-to-end scenarios across the FLUO binaries (one test binary; a module per scenario).

mod canary;
mod cli_feel;
mod faults;
mod process_stack;
mod rehearsal;
mod rotation;
mod validate_deploy_health;
