//! Strict schema checks: every document is deserialized into its k8s-openapi type, recording
//! every field the type ignores (unknown fields, typos, wrong indentation) and the first type
//! error with its path; required fields come from the same types' OpenAPI schema.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api::{apps, batch, coordination, core, networking, policy, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Document;
use crate::finding::Finding;
use crate::path::FieldPath;
use crate::rules;
use crate::secrets::redact_quoted;

/// A kind the gate knows: its schema check and whether objects of it live in a namespace.
struct KindInfo {
    check: fn(&Value) -> Vec<Issue>,
    namespaced: bool,
    /// Name of the type's definition in the generated schema.
    schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

#[derive(Debug, PartialEq)]
enum Issue {
    Unknown(FieldPath),
    Invalid(FieldPath, String),
}

macro_rules! kinds {
    ($(($api:literal, $kind:literal, $ty:ty, $namespaced:literal)),* $(,)?) => {
        fn table() -> HashMap<(&'static str, &'static str), KindInfo> {
            HashMap::from([$(
                (($api, $kind), KindInfo {
                    check: deserialize_strict::<$ty>,
                    namespaced: $namespaced,
                    schema: |generator| generator.subschema_for::<$ty>(),
                }),
            )*])
        }
    };
}

kinds![
    ("v1", "Namespace", core::v1::Namespace, false),
    ("v1", "ConfigMap", core::v1::ConfigMap, true),
    ("v1", "Secret", core::v1::Secret, true),
    ("v1", "Service", core::v1::Service, true),
    ("v1", "ServiceAccount", core::v1::ServiceAccount, true),
    (
        "v1",
        "PersistentVolumeClaim",
        core::v1::PersistentVolumeClaim,
        true
    ),
    ("v1", "Pod", core::v1::Pod, true),
    ("v1", "LimitRange", core::v1::LimitRange, true),
    ("v1", "ResourceQuota", core::v1::ResourceQuota, true),
    ("apps/v1", "Deployment", apps::v1::Deployment, true),
    ("apps/v1", "StatefulSet", apps::v1::StatefulSet, true),
    ("apps/v1", "DaemonSet", apps::v1::DaemonSet, true),
    ("batch/v1", "Job", batch::v1::Job, true),
    ("batch/v1", "CronJob", batch::v1::CronJob, true),
    (
        "networking.k8s.io/v1",
        "Ingress",
        networking::v1::Ingress,
        true
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        networking::v1::NetworkPolicy,
        true
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        policy::v1::PodDisruptionBudget,
        true
    ),
    ("rbac.authorization.k8s.io/v1", "Role", rbac::v1::Role, true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        rbac::v1::RoleBinding,
        true
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        rbac::v1::ClusterRole,
        false
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        rbac::v1::ClusterRoleBinding,
        false
    ),
    (
        "coordination.k8s.io/v1",
        "Lease",
        coordination::v1::Lease,
        true
    ),
];

struct Schemas {
    kinds: HashMap<(&'static str, &'static str), KindInfo>,
    /// The root schema (a `$ref`) per kind, and all definitions they refer to.
    roots: HashMap<(&'static str, &'static str), Value>,
    definitions: Map<String, Value>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let kinds = table();
        let mut generator = schemars::SchemaGenerator::default();
        let roots = kinds
            .iter()
            .map(|(key, info)| (*key, (info.schema)(&mut generator).to_value()))
            .collect();
        // ObjectMeta is reached through every kind; make sure it is defined even if unused.
        generator.subschema_for::<ObjectMeta>();
        Schemas {
            kinds,
            roots,
            definitions: generator.take_definitions(true),
        }
    })
}

/// Whether objects of this kind live in a namespace; `None` for kinds the gate does not know.
pub fn is_namespaced(api_version: &str, kind: &str) -> Option<bool> {
    schemas()
        .kinds
        .get(&(api_version, kind))
        .map(|info| info.namespaced)
}

/// Schema findings for one document (empty when it is valid).
pub fn check(doc: &Document) -> Vec<Finding> {
    let schemas = schemas();
    let key = (doc.api_version(), doc.kind());
    let Some(info) = schemas.kinds.get(&key) else {
        return vec![rules::SCHEMA_UNKNOWN_KIND.at(
            doc,
            FieldPath::root().key("kind"),
            format!(
                "unknown kind {} in apiVersion {}: its schema cannot be checked",
                doc.kind(),
                doc.api_version()
            ),
        )];
    };
    let mut issues = (info.check)(&doc.object);
    if let Some(root) = schemas.roots.get(&key) {
        missing_required(
            root,
            &doc.object,
            &FieldPath::root(),
            &schemas.definitions,
            &mut issues,
        );
    }
    issues
        .into_iter()
        .map(|issue| match issue {
            Issue::Unknown(path) => {
                let message = format!("unknown field `{path}`");
                rules::SCHEMA_UNKNOWN_FIELD.at(doc, path, message)
            }
            Issue::Invalid(path, message) => {
                let message = if path.segments().is_empty() {
                    message
                } else {
                    format!("`{path}`: {message}")
                };
                rules::SCHEMA_INVALID.at(doc, path, message)
            }
        })
        .collect()
}

fn deserialize_strict<T: DeserializeOwned>(value: &Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result: Result<T, _> = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(value, &mut track),
        |ignored| issues.push(Issue::Unknown(ignored_path(&ignored))),
    );
    if let Err(error) = result {
        let path = error_path(&track.path());
        issues.push(Issue::Invalid(path, redact_quoted(&error.to_string())));
    }
    issues
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> FieldPath {
    match path {
        serde_ignored::Path::Root => FieldPath::root(),
        serde_ignored::Path::Seq { parent, index } => ignored_path(parent).index(*index),
        serde_ignored::Path::Map { parent, key } => ignored_path(parent).key(key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

fn error_path(path: &serde_path_to_error::Path) -> FieldPath {
    path.iter()
        .fold(FieldPath::root(), |acc, segment| match segment {
            serde_path_to_error::Segment::Seq { index } => acc.index(*index),
            serde_path_to_error::Segment::Map { key } => acc.key(key),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {
                acc
            }
        })
}

/// Walks `value` along `schema`, reporting required properties that are absent.
fn missing_required(
    schema: &Value,
    value: &Value,
    path: &FieldPath,
    definitions: &Map<String, Value>,
    out: &mut Vec<Issue>,
) {
    let schema = resolve(schema, definitions);
    match value {
        Value::Object(object) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if object.get(name).is_none_or(Value::is_null) {
                        out.push(Issue::Invalid(
                            path.clone(),
                            format!("missing required field `{name}`"),
                        ));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            for (key, child) in object {
                let child_schema = properties.and_then(|p| p.get(key)).or(additional);
                if let Some(child_schema) = child_schema {
                    missing_required(child_schema, child, &path.key(key), definitions, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    missing_required(item_schema, item, &path.index(i), definitions, out);
                }
            }
        }
        _ => {}
    }
}

fn resolve<'a>(schema: &'a Value, definitions: &'a Map<String, Value>) -> &'a Value {
    let mut current = schema;
    // A handful of hops at most; the bound guards against a self-referencing definition.
    for _ in 0..8 {
        match current
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| definitions.get(name))
        {
            Some(next) => current = next,
            None => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::doc;

    #[test]
    fn valid_deployment_has_no_findings() {
        let d = doc(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        ports:\n        - containerPort: 80\n",
        );
        assert_eq!(check(&d), vec![]);
    }

    #[test]
    fn unknown_field_reported_with_path_and_line() {
        let d = doc(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n        imagePullPolicyy: Always\n",
        );
        let findings = check(&d);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.rule, "schema.unknown-field");
        let loc = f.location.as_ref().unwrap();
        assert_eq!(loc.line, 15);
        assert_eq!(
            loc.path.as_ref().unwrap().to_string(),
            "spec.template.spec.containers[0].imagePullPolicyy"
        );
        assert!(f.message.contains("imagePullPolicyy"));
    }

    #[test]
    fn wrong_type_reported_with_path_and_value_redacted() {
        let d = doc(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: \"three-s3cr3t\"\n  selector: {}\n  template: {}\n",
        );
        let findings = check(&d);
        let invalid: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == "schema.invalid")
            .collect();
        assert_eq!(invalid.len(), 1, "{findings:?}");
        assert_eq!(invalid[0].location.as_ref().unwrap().line, 6);
        assert!(
            invalid[0].message.contains("spec.replicas"),
            "{}",
            invalid[0].message
        );
        assert!(
            !invalid[0].message.contains("s3cr3t"),
            "{}",
            invalid[0].message
        );
    }

    #[test]
    fn missing_required_fields_reported() {
        let d = doc(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - image: web:1\n",
        );
        let findings = check(&d);
        let messages: Vec<_> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("`spec`: missing required field `selector`")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m
                    .contains("`spec.template.spec.containers[0]`: missing required field `name`")),
            "{messages:?}"
        );
        assert_eq!(findings.len(), 2, "{messages:?}");
    }

    #[test]
    fn unknown_kind_is_a_finding() {
        let d = doc("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n");
        let findings = check(&d);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, "schema.unknown-kind");
        assert_eq!(findings[0].location.as_ref().unwrap().line, 2);
    }

    #[test]
    fn every_kind_used_by_infra_is_known() {
        for (api, kind) in [
            ("v1", "Namespace"),
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Service"),
            ("v1", "ServiceAccount"),
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("networking.k8s.io/v1", "Ingress"),
            ("networking.k8s.io/v1", "NetworkPolicy"),
            ("policy/v1", "PodDisruptionBudget"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("v1", "PersistentVolumeClaim"),
        ] {
            assert!(is_namespaced(api, kind).is_some(), "{api} {kind}");
        }
        assert_eq!(is_namespaced("v1", "Namespace"), Some(false));
        assert_eq!(is_namespaced("v1", "Service"), Some(true));
    }

    #[test]
    fn service_and_rbac_schema() {
        let ok = doc(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  selector: {app: a}\n  ports:\n  - port: 80\n    targetPort: http\n",
        );
        assert_eq!(check(&ok), vec![]);
        let bad = doc(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - name: http\n",
        );
        let findings = check(&bad);
        assert!(
            findings
                .iter()
                .any(|f| f.message.contains("missing required field `port`")),
            "{findings:?}"
        );
        let role = doc(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: r\nrules:\n- apiGroups: [\"\"]\n  resources: [pods]\n  verb: [get]\n",
        );
        let findings = check(&role);
        assert!(
            findings
                .iter()
                .any(|f| f.rule == "schema.unknown-field" && f.message.contains("rules[0].verb")),
            "{findings:?}"
        );
        assert!(
            findings
                .iter()
                .any(|f| f.message.contains("missing required field `verbs`")),
            "{findings:?}"
        );
    }
}
