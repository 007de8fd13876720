//! End-to-end scenarios across the FLUO binaries (one test binary; a module per scenario).

mod validate_deploy_health;
