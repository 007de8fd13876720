//! The one output format of every command: `-o text` (tables and sentences for people) or
//! `-o json` (one JSON document on stdout, JSON lines of progress on stderr).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    #[default]
    Text,
    Json,
}
