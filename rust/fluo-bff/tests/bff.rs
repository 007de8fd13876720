//! Integration tests of the BFF against real nats-server, a real worker and real Prometheus
//! (started by fluo-teststack; `apt-get install nats-server prometheus` if they are missing).

mod bff {
    mod auth;
    mod bad_input;
    mod cli;
    mod end_to_end;
    mod faults;
    mod nats_outage;
    mod prometheus;
    mod support;
}
