//! The node: the simulated kubelet (default; outcomes chosen from the pod spec) and the process
//! runtime (containers as real host processes).

pub mod process;
pub mod simulated;

pub use crate::controllers::NODE_NAME;
