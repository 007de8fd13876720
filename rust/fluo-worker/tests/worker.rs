//! Integration tests of the worker against real nats-server and the real BFF (started by
//! fluo-teststack; `apt-get install nats-server prometheus` if they are missing).

mod worker {
    mod cli;
    mod crashes;
    mod give_back;
    mod restarts;
    mod shutdown;
    mod support;
}
