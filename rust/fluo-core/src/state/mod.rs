//! Trust in the state kept in the cluster: signatures over release records, the anchor that
//! keeps the tip of each component's chain outside the records, verification of both, and
//! which records retention may remove.

pub mod anchor;
pub mod retention;
pub mod session;
pub mod signing;
pub mod verify;
