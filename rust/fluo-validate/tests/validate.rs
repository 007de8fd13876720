//! Integration tests of the fluo-validate binary and the gate: the CLI over copies of the
//! repository's infra/, and the online checks against kube-emulator.

mod validate {
    pub mod cli;
    pub mod emulator;
    pub mod rendered_set;
    pub mod support;
}
