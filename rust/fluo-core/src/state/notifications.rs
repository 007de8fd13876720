//! The notification log: one record per command run listing every message, its receiver and
//! whether it was delivered (never a URL). A failed notification is visible here after the
//! run's warning has scrolled away.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::notify::Delivery;

pub use super::store::{Error, Result};

pub const KIND: &str = "notifications";
/// Logs kept (oldest deleted first).
pub const RETENTION: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Log {
    /// The command run (deploy id, incident id, announcement id ...).
    pub reference: String,
    pub environment: String,
    pub at: DateTime<Utc>,
    pub deliveries: Vec<serde_json::Value>,
}

impl Log {
    pub fn new(reference: &str, environment: &str, deliveries: &[Delivery]) -> Log {
        Log {
            reference: reference.to_string(),
            environment: environment.to_string(),
            at: Utc::now(),
            deliveries: deliveries
                .iter()
                .filter_map(|d| serde_json::to_value(d).ok())
                .collect(),
        }
    }
}
