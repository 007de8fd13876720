//! The node: the simulated kubelet (default; outcomes chosen from the pod spec).

pub mod simulated;

pub use crate::controllers::NODE_NAME;
