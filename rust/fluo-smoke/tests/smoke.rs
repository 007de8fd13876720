//! fluo-smoke integration tests: the SOP smoke tests through an ingress stand-in in front of the
//! real BFF and worker (real nats-server), and each step failing when its target is broken.

mod smoke {
    pub mod support;

    mod cli;
    mod local_stack;
}
