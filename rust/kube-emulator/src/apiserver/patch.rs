//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch
//! with the merge keys and directives the built-in types declare.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid JSON patch: {0}")]
    JsonPatchDecode(String),
    #[error("the JSON patch could not be applied: {0}")]
    JsonPatchApply(String),
    #[error("invalid strategic merge patch: {0}")]
    Strategic(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a list field merges: by key fields (associative), as a set of scalars, or atomically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ListKind {
    Keyed(&'static [&'static str]),
    Set,
    Atomic,
}

/// The list semantics of built-in types, from their `patchMergeKey` / `listMapKey` tags.
/// `sample` (an element of the list) disambiguates `ports` between containers and services.
pub fn list_kind(field: &str, sample: Option<&Value>) -> ListKind {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => ListKind::Keyed(&["name"]),
        "volumeMounts" => ListKind::Keyed(&["mountPath"]),
        "volumeDevices" => ListKind::Keyed(&["devicePath"]),
        "hostAliases" => ListKind::Keyed(&["ip"]),
        "ownerReferences" => ListKind::Keyed(&["uid"]),
        "conditions" => ListKind::Keyed(&["type"]),
        "topologySpreadConstraints" => ListKind::Keyed(&["topologyKey", "whenUnsatisfiable"]),
        "ports" => {
            if sample.is_some_and(|s| s.get("containerPort").is_some()) {
                ListKind::Keyed(&["containerPort"])
            } else {
                ListKind::Keyed(&["port"])
            }
        }
        "finalizers" => ListKind::Set,
        _ => ListKind::Atomic,
    }
}

fn same_key(a: &Value, b: &Value, keys: &[&str]) -> bool {
    // SMP merges on the first key only (patchMergeKey); extra keys matter for SSA.
    let k = keys[0];
    a.get(k).is_some() && a.get(k) == b.get(k)
}

pub fn json_patch(doc: &Value, patch: &[u8]) -> Result<Value> {
    let p: json_patch::Patch =
        serde_json::from_slice(patch).map_err(|e| Error::JsonPatchDecode(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &p).map_err(|e| Error::JsonPatchApply(e.to_string()))?;
    Ok(out)
}

pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut out = doc.clone();
    json_patch::merge(&mut out, patch);
    out
}

pub fn strategic_merge(doc: &Value, patch: &Value) -> Result<Value> {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            Ok(merge_map(d, p)?.map(Value::Object).unwrap_or(Value::Null))
        }
        (_, Value::Object(_)) => strategic_merge(&Value::Object(Map::new()), patch),
        _ => Err(Error::Strategic("the patch must be a JSON object".into())),
    }
}

/// Merges `patch` into `doc`; `None` means the map itself was deleted (`$patch: delete`).
fn merge_map(
    doc: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut p = patch.clone();
            p.remove("$patch");
            return Ok(Some(strip_directives(p)));
        }
        Some(other) => return Err(Error::Strategic(format!("unknown patch type {other:?}"))),
        None => {}
    }
    let mut out = doc.clone();
    for (k, pv) in patch {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let remove: Vec<&Value> = pv
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            if let Some(Value::Array(list)) = out.get_mut(field) {
                list.retain(|v| !remove.contains(&v));
            }
            continue;
        }
        match pv {
            Value::Null => {
                out.remove(k);
            }
            Value::Object(pm) => {
                let base = match out.get(k) {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                match merge_map(&base, pm)? {
                    Some(m) => out.insert(k.clone(), Value::Object(m)),
                    None => out.remove(k),
                };
            }
            Value::Array(pl) => {
                let base = out
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                out.insert(k.clone(), Value::Array(merge_list(k, &base, pl)?));
            }
            _ => {
                out.insert(k.clone(), pv.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        out.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(Some(out))
}

fn strip_directives(mut m: Map<String, Value>) -> Map<String, Value> {
    m.retain(|k, _| !k.starts_with('$'));
    m
}

fn merge_list(field: &str, base: &[Value], patch: &[Value]) -> Result<Vec<Value>> {
    if patch
        .iter()
        .any(|p| p.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|p| p.get("$patch").is_none())
            .cloned()
            .collect());
    }
    match list_kind(field, patch.first().or(base.first())) {
        ListKind::Atomic => Ok(patch.to_vec()),
        ListKind::Set => {
            let mut out = base.to_vec();
            for p in patch {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
            Ok(out)
        }
        ListKind::Keyed(keys) => {
            let mut out = base.to_vec();
            for p in patch {
                let Some(pm) = p.as_object() else {
                    return Err(Error::Strategic(format!(
                        "{field}: list elements must be objects"
                    )));
                };
                let pos = out.iter().position(|o| same_key(o, p, keys));
                let delete = pm.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let base = out[i].as_object().cloned().unwrap_or_default();
                        if let Some(m) = merge_map(&base, pm)? {
                            out[i] = Value::Object(m);
                        }
                    }
                    (None, false) => out.push(Value::Object(strip_directives(pm.clone()))),
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name_and_replaces_atomic_lists() {
        let doc = json!({"spec":{"containers":[{"name":"a","image":"x:1","args":["1"]},{"name":"b","image":"y:1"}]}});
        let patch = json!({"spec":{"containers":[{"name":"b","image":"y:2"},{"name":"c","image":"z"}],
            "$setElementOrder/containers":[{"name":"a"},{"name":"b"},{"name":"c"}]}});
        let out = strategic_merge(&doc, &patch).unwrap();
        let cs = out["spec"]["containers"].as_array().unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(cs[0]["image"], "x:1");
        assert_eq!(cs[1]["image"], "y:2");
        assert!(out["spec"].get("$setElementOrder/containers").is_none());
    }

    #[test]
    fn strategic_directives() {
        let doc = json!({"metadata":{"labels":{"a":"1","b":"2"},"finalizers":["x","y"]},
            "spec":{"containers":[{"name":"a"},{"name":"b"}]}});
        let patch = json!({"metadata":{"labels":{"a":null},"$deleteFromPrimitiveList/finalizers":["x"]},
            "spec":{"containers":[{"name":"a","$patch":"delete"}]}});
        let out = strategic_merge(&doc, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"b":"2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name":"b"}]));
        let replaced = strategic_merge(
            &doc,
            &json!({"metadata":{"labels":{"$patch":"replace","c":"3"}}}),
        )
        .unwrap();
        assert_eq!(replaced["metadata"]["labels"], json!({"c":"3"}));
    }

    #[test]
    fn json_and_merge_patch() {
        let doc = json!({"a":{"b":1,"c":2}});
        assert_eq!(
            merge_patch(&doc, &json!({"a":{"b":null,"d":3}})),
            json!({"a":{"c":2,"d":3}})
        );
        let out = json_patch(&doc, br#"[{"op":"replace","path":"/a/b","value":5}]"#).unwrap();
        assert_eq!(out["a"]["b"], 5);
        assert!(matches!(
            json_patch(&doc, br#"[{"op":"remove","path":"/zz"}]"#),
            Err(Error::JsonPatchApply(_))
        ));
        assert!(matches!(
            json_patch(&doc, b"{"),
            Err(Error::JsonPatchDecode(_))
        ));
    }
}
