//! Turning a manifest that fluo-core cannot load (broken YAML, a document without kind or
//! name) into a `yaml.invalid` finding with file and line, so the gate reports it like any other
//! manifest finding instead of a bare error.

use fluo_core::config;
use fluo_core::manifest;

use crate::finding::{Finding, Location};
use crate::rules;

/// The finding for a manifest loading error; `None` for other configuration errors (those are
/// usage errors: exit 2).
pub fn manifest_error_finding(error: &config::Error) -> Option<Finding> {
    let config::Error::Manifest(error) = error else {
        return None;
    };
    let (path, line, message) = match error {
        manifest::Error::Yaml {
            path,
            line,
            message,
        } => (path, *line, format!("invalid YAML: {message}")),
        manifest::Error::Document {
            path,
            line,
            message,
        } => (path, *line, message.clone()),
        manifest::Error::Read(_) => return None,
    };
    let location = Location {
        file: path.clone(),
        line,
        object: None,
        path: None,
    };
    Some(rules::YAML_INVALID.located(Some(location), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load_error(yaml: &str) -> config::Error {
        config::Error::Manifest(manifest::parse_str(Path::new("infra/x.yaml"), yaml).unwrap_err())
    }

    #[test]
    fn broken_yaml_is_a_finding_with_file_and_line() {
        let error = load_error(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [oops\n",
        );
        let finding = manifest_error_finding(&error).expect("a finding");
        assert_eq!(finding.rule, "yaml.invalid");
        let location = finding.location.unwrap();
        assert_eq!(location.file, Path::new("infra/x.yaml"));
        assert!((5..=7).contains(&location.line), "line {}", location.line);
    }

    #[test]
    fn a_document_without_kind_is_a_finding_and_a_valid_file_is_none() {
        let error = load_error("apiVersion: v1\nmetadata: {name: a}\n");
        let finding = manifest_error_finding(&error).unwrap();
        assert!(finding.message.contains("kind"), "{}", finding.message);
        assert!(
            manifest::parse_str(
                Path::new("ok.yaml"),
                "apiVersion: v1\nkind: A\nmetadata: {name: a}\n"
            )
            .is_ok()
        );
        let other = config::Error::NoComponents {
            path: "infra/components".into(),
        };
        assert!(manifest_error_finding(&other).is_none());
    }
}
