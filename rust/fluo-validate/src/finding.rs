//! A finding: one rule violated at one place. Messages never carry secret values (the rules
//! that look at values describe them, never quote them).

use std::path::PathBuf;

use serde::Serialize;

use crate::Document;
use crate::path::{FieldPath, locate};
use crate::rules::Rule;

/// Where a finding is: file, 1-based line, the object (`Kind/name`) and the field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<FieldPath>,
}

impl Location {
    /// The location of `path` inside `doc`, on the field's own line where it can be found.
    pub fn field(doc: &Document, path: FieldPath) -> Self {
        let line = locate(&doc.text, &path).map_or(doc.line, |offset| doc.line + offset);
        Self {
            file: doc.file.clone(),
            line,
            object: Some(doc.display_name()),
            path: (!path.segments().is_empty()).then_some(path),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(object) = &self.object {
            write!(f, " {object}")?;
        }
        if let Some(path) = &self.path {
            write!(f, " {path}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub message: String,
    pub fix: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl Rule {
    /// A finding about the field `path` of `doc`.
    pub fn at(&self, doc: &Document, path: FieldPath, message: impl Into<String>) -> Finding {
        self.located(Some(Location::field(doc, path)), message)
    }

    /// A finding that is not about one manifest field (environment, cluster, scanner).
    pub fn general(&self, message: impl Into<String>) -> Finding {
        self.located(None, message)
    }

    pub fn located(&self, location: Option<Location>, message: impl Into<String>) -> Finding {
        Finding {
            rule: self.id,
            message: message.into(),
            fix: self.fix,
            location,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(f, "[{}] {} (fix: {})", self.rule, self.message, self.fix)
    }
}
