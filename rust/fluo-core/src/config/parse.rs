//! Deserializers for the duration and time-of-day strings of the configuration files.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The one duration syntax of flags and files (`fluo_cli::duration`), zero allowed.
pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    fluo_cli::duration::parse(&text).map_err(serde::de::Error::custom)
}

pub(super) fn time_of_day<'de, D: Deserializer<'de>>(d: D) -> Result<chrono::NaiveTime, D::Error> {
    let text = String::deserialize(d)?;
    chrono::NaiveTime::parse_from_str(&text, "%H:%M").map_err(|_| {
        serde::de::Error::custom(format!("invalid time {text:?}; use \"HH:MM\" (UTC)"))
    })
}
