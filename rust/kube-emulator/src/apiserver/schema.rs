//! Schemas of the served types (derived from k8s-openapi through schemars) and the strict field
//! check the apiserver runs for `fieldValidation=Strict|Warn`.

use std::collections::HashMap;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::apiserver::resources::{RESOURCES, ResourceDef};

pub struct Schemas {
    /// `components.schemas`, keyed like the real spec (`io.k8s.api.apps.v1.Deployment`).
    pub definitions: Map<String, Value>,
    /// Schema name per (group, kind).
    pub names: HashMap<(&'static str, &'static str), String>,
}

/// The schemas, generated once per process.
pub fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut names = HashMap::new();
        for r in RESOURCES {
            names.insert((r.group, r.kind), (r.schema_of)(&mut generator));
        }
        let mut definitions = generator.take_definitions(true);
        for r in RESOURCES {
            if let Some(Value::Object(s)) = definitions.get_mut(&names[&(r.group, r.kind)]) {
                s.insert(
                    "x-kubernetes-group-version-kind".into(),
                    serde_json::json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
                );
            }
        }
        Schemas { definitions, names }
    })
}

fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or(r);
                match defs.get(name) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            }
            None => return schema,
        }
    }
    schema
}

/// Removes fields the schema does not declare from `obj` and returns their paths
/// (`spec.template.spec.containers[0].imagee`), as strict decoding reports them.
pub fn prune_unknown(def: &ResourceDef, obj: &mut Value) -> Vec<String> {
    let s = schemas();
    let Some(root) = s.definitions.get(&s.names[&(def.group, def.kind)]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&s.definitions, root, obj, "", &mut out);
    out.sort();
    out
}

fn walk(
    defs: &Map<String, Value>,
    schema: &Value,
    v: &mut Value,
    path: &str,
    out: &mut Vec<String>,
) {
    let schema = resolve(defs, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            walk(defs, s, v, path, out);
        }
        return;
    }
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if props.is_none() && additional.is_none() {
                return;
            }
            let mut unknown = Vec::new();
            for (k, child) in m.iter_mut() {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) | (None, Some(s)) => walk(defs, s, child, &child_path, out),
                    (None, None) => unknown.push((k.clone(), child_path)),
                }
            }
            for (k, p) in unknown {
                m.remove(&k);
                out.push(p);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(defs, item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::by_kind;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_with_their_path_and_removed() {
        let d = by_kind("apps", "Deployment").unwrap();
        let mut obj = json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","labels":{"a":"b"}},
            "spec":{"replicas":1,"bogus":true,"selector":{"matchLabels":{"a":"b"}},
              "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","imagee":"typo"}]}}}});
        let unknown = prune_unknown(d, &mut obj);
        assert_eq!(
            unknown,
            vec![
                "spec.bogus".to_string(),
                "spec.template.spec.containers[0].imagee".to_string()
            ]
        );
        assert!(obj["spec"].get("bogus").is_none());
        assert_eq!(obj["metadata"]["labels"]["a"], "b");
        let mut ok =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":"v"}});
        assert!(prune_unknown(by_kind("", "ConfigMap").unwrap(), &mut ok).is_empty());
    }
}
