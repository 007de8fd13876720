//! State kept in the cluster besides the release records themselves:
//! - trust in the records: signatures over them, the anchor that keeps the tip of each
//!   component's chain outside the records, verification of both, and which records retention
//!   may remove;
//! - change management: announcements (the notice period), incidents (the escalation ladder)
//!   and the notification log, and the rollback drills, each a JSON document in a labelled ConfigMap (`store`).

pub mod anchor;
pub mod announcements;
pub mod drills;
pub mod incidents;
pub mod notifications;
pub mod retention;
pub mod signing;
pub mod store;
pub mod verify;
