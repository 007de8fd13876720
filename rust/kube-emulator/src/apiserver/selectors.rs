//! Label selectors (equality and set-based) and field selectors, parsed like apimachinery's
//! `labels.Parse` and `fields.ParseSelector`.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid field selector {0:?}: {1}")]
    Field(String, String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn set_values(rest: &str, req: &str) -> Result<Vec<String>> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| Error::Label(format!("{req}: expected a parenthesised value set")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self> {
        let mut reqs = Vec::new();
        for raw in split_top(s) {
            let req = raw.trim();
            if req.is_empty() {
                continue;
            }
            let (key, op) = if let Some(k) = req.strip_prefix('!') {
                (k.trim().to_string(), Op::NotExists)
            } else if let Some((k, v)) = req.split_once("!=") {
                (k.trim().to_string(), Op::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = req.split_once("==") {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = req.split_once('=') {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some(idx) = req.find(" notin ") {
                (
                    req[..idx].trim().to_string(),
                    Op::NotIn(set_values(&req[idx + 7..], req)?),
                )
            } else if let Some(idx) = req.find(" in ") {
                (
                    req[..idx].trim().to_string(),
                    Op::In(set_values(&req[idx + 4..], req)?),
                )
            } else {
                (req.to_string(), Op::Exists)
            };
            if !valid_key(&key) {
                return Err(Error::Label(format!("{req}: invalid label key {key:?}")));
            }
            reqs.push((key, op));
        }
        Ok(Self { reqs })
    }

    /// Builds a selector from a `metav1.LabelSelector` object (matchLabels + matchExpressions).
    pub fn from_object(sel: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = sel["matchLabels"].as_object() {
            for (k, v) in m {
                reqs.push((k.clone(), Op::Eq(v.as_str().unwrap_or("").to_string())));
            }
        }
        for e in sel["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or("").to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let op = match e["operator"].as_str().unwrap_or("") {
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                _ => Op::NotExists,
            };
            reqs.push((key, op));
        }
        Self { reqs }
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, labels: &Value) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = labels.get(k).and_then(Value::as_str);
            match op {
                Op::Eq(want) => v == Some(want.as_str()),
                Op::NotEq(want) => v != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&obj["metadata"]["labels"])
    }
}

/// A field selector: `path=value` / `path!=value` terms over dotted object paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Fields the apiserver accepts in field selectors for every resource, plus the per-kind extras
/// kubectl and controllers use.
const SUPPORTED: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "status.phase",
    "spec.nodeName",
    "spec.serviceAccountName",
    "type",
    "involvedObject.name",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
];

/// Field labels that name a different object path (the Event's `source` is its component).
fn object_path(label: &str) -> &str {
    match label {
        "source" => "source.component",
        other => other,
    }
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self> {
        let mut terms = Vec::new();
        for raw in s.split(',') {
            let t = raw.trim();
            if t.is_empty() {
                continue;
            }
            let (path, eq, value) = if let Some((p, v)) = t.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = t.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = t.split_once('=') {
                (p, true, v)
            } else {
                return Err(Error::Field(
                    t.to_string(),
                    "invalid selector: expected = or !=".into(),
                ));
            };
            let path = path.trim();
            if !SUPPORTED.contains(&path) {
                return Err(Error::Field(
                    t.to_string(),
                    format!("field label not supported: {path}"),
                ));
            }
            terms.push((path.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self { terms })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|(path, eq, want)| {
            let got = object_path(path)
                .split('.')
                .try_fold(obj, |v, seg| v.get(seg))
                .and_then(Value::as_str)
                .unwrap_or("");
            (got == want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_and_set_based_labels() {
        let labels = json!({"app": "web", "tier": "front"});
        let t = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(t("app=web"));
        assert!(t("app==web,tier"));
        assert!(!t("app!=web"));
        assert!(t("app in (web, api),tier notin (back)"));
        assert!(!t("app in (api)"));
        assert!(t("!missing"));
        assert!(!t("!app"));
        assert!(t(""));
        assert!(LabelSelector::parse("app in web").is_err());
    }

    #[test]
    fn label_selector_object() {
        let sel = json!({"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["front"]}]});
        let s = LabelSelector::from_object(&sel);
        assert!(s.matches(&json!({"app":"web","tier":"front","x":"y"})));
        assert!(!s.matches(&json!({"app":"web"})));
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata":{"name":"a","namespace":"ns"},"status":{"phase":"Running"}});
        assert!(
            FieldSelector::parse("metadata.name=a,metadata.namespace==ns")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=a")
                .unwrap()
                .matches(&obj)
        );
        assert!(
            FieldSelector::parse("status.phase=Running")
                .unwrap()
                .matches(&obj)
        );
        assert!(FieldSelector::parse("spec.foo=bar").is_err());
    }

    #[test]
    fn event_field_selectors() {
        let event = json!({"involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "type": "Warning", "source": {"component": "kubelet", "host": "n"},
            "reportingComponent": "kubelet"});
        let t = |s: &str| FieldSelector::parse(s).unwrap().matches(&event);
        assert!(t(
            "involvedObject.name=web-0,involvedObject.kind=Pod,type=Warning"
        ));
        assert!(t(
            "source=kubelet,reason=BackOff,reportingComponent=kubelet"
        ));
        assert!(t("involvedObject.fieldPath=spec.containers{app}"));
        assert!(!t("source=default-scheduler"));
        assert!(!t("involvedObject.name=web-1"));
    }
}
