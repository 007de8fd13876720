//! fluo-validate: the mandatory pre-deployment gate of SOP-002.
//!
//! The deployer calls [`gate::Gate`] in-process before it applies anything; the `fluo-validate`
//! binary is a thin wrapper around the same call.

pub mod checklist;
pub mod cli;
pub mod crossref;
pub mod environment;
pub mod finding;
#[cfg(test)]
mod fixtures;
pub mod gate;
pub mod load;
pub mod manifests;
pub mod online;
pub mod path;
pub mod pods;
pub mod policy;
pub mod report;
pub mod rules;
pub mod scan;
pub mod schema;
pub mod secrets;
pub mod security;
pub mod service_config;
pub use checklist::{Checklist, Step};
pub use finding::Finding;
pub use fluo_core::manifest::Document;
pub use gate::{Cluster, Gate, GateOptions};
pub use report::{Report, Skip, StepStatus};

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    use crate::Document;

    /// One inline YAML document, as if read from `m.yaml`.
    pub fn doc(yaml: &str) -> Document {
        docs(yaml).remove(0)
    }

    pub fn docs(yaml: &str) -> Vec<Document> {
        fluo_core::manifest::parse_str(Path::new("m.yaml"), yaml).expect("fixture parses")
    }
}
