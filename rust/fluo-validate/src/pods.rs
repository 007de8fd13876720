//! Finding the pod template inside workload objects, and label selector matching, shared by
//! the policy and cross-reference checks. Works on raw JSON so that it also runs on documents
//! that failed the schema check.

use serde_json::{Map, Value};

use crate::Document;
use crate::path::FieldPath;

/// The pod template of a workload object.
pub struct PodTemplate<'a> {
    pub doc: &'a Document,
    /// Path of the pod's `metadata` (labels, annotations).
    pub meta_path: FieldPath,
    /// Path of the PodSpec.
    pub spec_path: FieldPath,
    pub labels: Option<&'a Map<String, Value>>,
    pub spec: &'a Value,
    /// Batch pods (Job, CronJob) run to completion and need no probes.
    pub runs_to_completion: bool,
}

/// One container of a pod spec.
pub struct Container<'a> {
    pub path: FieldPath,
    pub name: &'a str,
    pub value: &'a Value,
    pub init: bool,
}

impl<'a> PodTemplate<'a> {
    pub fn of(doc: &'a Document) -> Option<Self> {
        let (template, runs_to_completion) = match (doc.api_version(), doc.kind()) {
            ("v1", "Pod") => (FieldPath::root(), false),
            ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
                (FieldPath::parse("spec.template"), false)
            }
            ("batch/v1", "Job") => (FieldPath::parse("spec.template"), true),
            ("batch/v1", "CronJob") => (FieldPath::parse("spec.jobTemplate.spec.template"), true),
            _ => return None,
        };
        let meta_path = template.key("metadata");
        let spec_path = template.key("spec");
        let spec = get(&doc.object, &spec_path)?;
        let labels = get(&doc.object, &meta_path.key("labels")).and_then(Value::as_object);
        Some(Self {
            doc,
            meta_path,
            spec_path,
            labels,
            spec,
            runs_to_completion,
        })
    }

    pub fn containers(&self) -> Vec<Container<'a>> {
        let mut out = Vec::new();
        for (field, init) in [("initContainers", true), ("containers", false)] {
            let Some(list) = self.spec.get(field).and_then(Value::as_array) else {
                continue;
            };
            for (i, value) in list.iter().enumerate() {
                out.push(Container {
                    path: self.spec_path.key(field).index(i),
                    name: value.get("name").and_then(Value::as_str).unwrap_or("?"),
                    value,
                    init,
                });
            }
        }
        out
    }
}

/// The value at `path`, if every step exists.
pub fn get<'a>(value: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    path.segments()
        .iter()
        .try_fold(value, |v, segment| match segment {
            crate::path::Segment::Key(k) => v.get(k),
            crate::path::Segment::Index(i) => v.get(i),
        })
}

/// Whether a label selector (`{matchLabels, matchExpressions}` form) selects `labels`.
/// An empty selector selects everything.
pub fn selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    let labels_ok = match_labels.is_none_or(|m| {
        m.iter()
            .all(|(k, v)| v.as_str().is_some_and(|v| label(k) == Some(v)))
    });
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    let expressions_ok = expressions.is_none_or(|list| {
        list.iter().all(|expr| {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match expr.get("operator").and_then(Value::as_str) {
                Some("In") => label(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => label(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && expressions_ok
}

/// Whether a Service-style selector (a plain `key: value` map) selects `labels`.
pub fn map_selector_matches(
    selector: &Map<String, Value>,
    labels: Option<&Map<String, Value>>,
) -> bool {
    selector.iter().all(|(k, v)| {
        labels
            .and_then(|l| l.get(k))
            .is_some_and(|label| label.as_str() == v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::doc;
    use serde_json::json;

    #[test]
    fn finds_templates_of_workload_kinds() {
        let d = doc(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        metadata:\n          labels: {app: c}\n        spec:\n          containers:\n          - name: x\n",
        );
        let t = PodTemplate::of(&d).unwrap();
        assert!(t.runs_to_completion);
        assert_eq!(
            t.containers()[0].path.to_string(),
            "spec.jobTemplate.spec.template.spec.containers[0]"
        );
        assert_eq!(t.labels.unwrap()["app"], "c");
        let svc = doc("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
        assert!(PodTemplate::of(&svc).is_none());
    }

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let labels = labels.as_object();
        assert!(selector_matches(&json!({}), labels));
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
            labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
            labels
        ));
        assert!(map_selector_matches(
            json!({"app": "web"}).as_object().unwrap(),
            labels
        ));
        assert!(!map_selector_matches(
            json!({"app": "web", "x": "y"}).as_object().unwrap(),
            labels
        ));
    }
}
