//! fluo-health integration tests: the CLI and library against a real local stack (nats-server,
//! prometheus, fluo-bff, fluo-worker), kube-emulator (port-forward, pods, logs) and the monitor
//! against real Prometheus scraping a BFF made to fail.

mod health {
    pub mod grafana_stand_in;
    pub mod support;

    mod cli;
    mod cluster_security;
    pub mod emulator;
    mod local_stack;
    mod monitor;
    mod security;
}
