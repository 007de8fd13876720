//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply: who owns which
//! field, conflicts between managers, and removal of fields a manager stopped applying.

use serde_json::{Map, Value, json};

use crate::apiserver::patch::{ListKind, list_kind, strategic_merge};

/// One path element of FieldsV1: `f:name`, `k:{"name":"x"}`, `v:"x"` or `.`.
type Path = Vec<String>;

/// Metadata fields the server owns; they never appear in field sets.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
];

/// The FieldsV1 set of every field present in `obj` (apiVersion, kind and server metadata excluded).
pub fn field_set(obj: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        if k == "apiVersion" || k == "kind" {
            continue;
        }
        if k == "metadata" {
            let mut meta = v.clone();
            if let Some(mm) = meta.as_object_mut() {
                mm.retain(|mk, _| !SERVER_METADATA.contains(&mk.as_str()));
                if mm.is_empty() {
                    continue;
                }
            }
            out.insert("f:metadata".into(), Value::Object(child_set(k, &meta)));
            continue;
        }
        out.insert(format!("f:{k}"), Value::Object(child_set(k, v)));
    }
    out
}

fn element_key(elem: &Value, keys: &[&str]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = elem.get(*k) {
            m.insert((*k).to_string(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

fn child_set(name: &str, v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, c) in m {
                out.insert(format!("f:{k}"), Value::Object(child_set(k, c)));
            }
            out
        }
        Value::Array(list) => match list_kind(name, list.first()) {
            ListKind::Keyed(keys) => {
                let mut out = Map::new();
                for e in list {
                    let mut inner = child_set("", e);
                    inner.insert(".".into(), json!({}));
                    out.insert(element_key(e, keys), Value::Object(inner));
                }
                out
            }
            ListKind::Set => list.iter().map(|e| (format!("v:{e}"), json!({}))).collect(),
            ListKind::Atomic => Map::new(),
        },
        _ => Map::new(),
    }
}

/// Paths to the leaves of a field set (`.` markers included).
pub fn leaves(set: &Map<String, Value>) -> Vec<Path> {
    let mut out = Vec::new();
    for (k, v) in set {
        let child = v.as_object().cloned().unwrap_or_default();
        if child.is_empty() {
            out.push(vec![k.clone()]);
        } else {
            for mut p in leaves(&child) {
                p.insert(0, k.clone());
                out.push(p);
            }
        }
    }
    out
}

fn contains(set: &Map<String, Value>, path: &[String]) -> bool {
    let mut cur = set;
    for seg in path {
        match cur.get(seg).and_then(Value::as_object) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

/// Whether `path` is a leaf (not just a prefix) of `set`.
fn owns_leaf(set: &Map<String, Value>, path: &[String]) -> bool {
    let mut cur = set;
    for seg in path {
        match cur.get(seg).and_then(Value::as_object) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    cur.is_empty() || cur.contains_key(".")
}

fn remove_path_from_set(set: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        set.remove(first);
        return;
    }
    if let Some(Value::Object(child)) = set.get_mut(first) {
        remove_path_from_set(child, rest);
        if child.is_empty() {
            set.remove(first);
        }
    }
}

fn insert_path(set: &mut Map<String, Value>, path: &[String]) {
    let mut cur = set;
    for seg in path {
        cur = cur
            .entry(seg.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("field sets hold objects");
    }
}

fn element_matches(elem: &Value, seg: &str) -> bool {
    if let Some(k) = seg.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(k) else {
            return false;
        };
        keys.iter().all(|(kk, kv)| elem.get(kk) == Some(kv))
    } else if let Some(v) = seg.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| &v == elem)
    } else {
        false
    }
}

/// The value a path points at, if present.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path {
        if seg == "." {
            continue;
        }
        cur = match seg.strip_prefix("f:") {
            Some(f) => cur.get(f)?,
            None => cur.as_array()?.iter().find(|e| element_matches(e, seg))?,
        };
    }
    Some(cur)
}

fn remove_value(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let (last, parent) = if last == "." {
        match parent.split_last() {
            Some((l, p)) => (l, p),
            None => return,
        }
    } else {
        (last, parent)
    };
    let mut cur = obj;
    for seg in parent {
        let next = match seg.strip_prefix("f:") {
            Some(f) => cur.get_mut(f),
            None => cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|e| element_matches(e, seg))),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last.strip_prefix("f:") {
        Some(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        None => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|e| !element_matches(e, last));
            }
        }
    }
}

/// Renders a path like the apiserver's conflict messages: `.spec.template.spec.containers[name="app"].image`.
pub fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let keys: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = keys.iter().map(|(a, b)| format!("{a}={b}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = seg.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry_set(e: &Value) -> Map<String, Value> {
    e["fieldsV1"].as_object().cloned().unwrap_or_default()
}

fn same_identity(e: &Value, manager: &str, operation: &str, subresource: &str) -> bool {
    e["manager"] == manager
        && e["operation"] == operation
        && e["subresource"].as_str().unwrap_or("") == subresource
}

fn entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: &str,
    set: Map<String, Value>,
    now: &str,
) -> Value {
    let mut e = json!({"manager": manager, "operation": operation, "apiVersion": api_version,
        "time": now, "fieldsType": "FieldsV1", "fieldsV1": set});
    if !subresource.is_empty() {
        e["subresource"] = json!(subresource);
    }
    e
}

fn set_entries(obj: &mut Value, list: Vec<Value>) {
    let list: Vec<Value> = list
        .into_iter()
        .filter(|e| !entry_set(e).is_empty())
        .collect();
    if list.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(list);
    }
}

/// Records an Update operation: `manager` takes the fields whose values changed from `old` to `new`.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) {
    let changed: Vec<Path> = leaves(&field_set(new))
        .into_iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)))
        .collect();
    let mut list = old.map(entries).unwrap_or_default();
    if changed.is_empty() && old.is_some() {
        set_entries(new, list);
        return;
    }
    for e in list.iter_mut() {
        let mut set = entry_set(e);
        for p in &changed {
            remove_path_from_set(&mut set, p);
        }
        e["fieldsV1"] = Value::Object(set);
    }
    let pos = list
        .iter()
        .position(|e| same_identity(e, manager, "Update", subresource));
    let mut set = pos.map(|i| entry_set(&list[i])).unwrap_or_default();
    for p in &changed {
        insert_path(&mut set, p);
    }
    let e = entry(manager, "Update", api_version, subresource, set, now);
    match pos {
        Some(i) => list[i] = e,
        None => list.push(e),
    }
    set_entries(new, list);
}

/// One field two managers both want to set to different values.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// Server-side apply of `config` by `manager` onto `live` (None when creating).
/// Returns the merged object, or the conflicts when `force` is false.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let base = live.cloned().unwrap_or_else(|| json!({}));
    let applied = field_set(config);
    let applied_leaves: Vec<Path> = leaves(&applied)
        .into_iter()
        .filter(|p| p.last().is_some_and(|l| l != "."))
        .collect();
    let mut list = entries(&base);
    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        if same_identity(e, manager, "Apply", "") {
            continue;
        }
        let set = entry_set(e);
        for p in &applied_leaves {
            // Maps are granular: only leaf values two managers both set can conflict.
            if value_at(config, p).is_some_and(Value::is_object) {
                continue;
            }
            if owns_leaf(&set, p) && value_at(&base, p) != value_at(config, p) {
                conflicts.push(Conflict {
                    manager: e["manager"].as_str().unwrap_or("").to_string(),
                    field: render_path(p),
                });
                taken.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, p) in taken {
        let mut set = entry_set(&list[i]);
        remove_path_from_set(&mut set, &p);
        list[i]["fieldsV1"] = Value::Object(set);
    }
    let mut merged =
        strategic_merge(&base, &strip_nulls(config)).unwrap_or_else(|_| config.clone());
    // Fields this manager applied before but no longer does, and nobody else owns, are removed.
    let pos = list
        .iter()
        .position(|e| same_identity(e, manager, "Apply", ""));
    if let Some(i) = pos {
        let previous = entry_set(&list[i]);
        let others: Vec<Map<String, Value>> = list
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, e)| entry_set(e))
            .collect();
        let mut dropped: Vec<Path> = leaves(&previous)
            .into_iter()
            .filter(|p| !contains(&applied, p))
            .filter(|p| !others.iter().any(|o| contains(o, p)))
            .collect();
        // Remove deeper paths first so element markers (`.`) go after their fields.
        dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in dropped {
            remove_value(&mut merged, &p);
            // Containers left empty by the removal go too unless someone still owns them.
            for k in (1..p.len()).rev() {
                let prefix = &p[..k];
                let empty = value_at(&merged, prefix).is_some_and(|v| {
                    v.as_object().is_some_and(Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty)
                });
                let owned = contains(&applied, prefix)
                    && leaves(&applied).iter().any(|l| l.starts_with(prefix));
                if !empty || owned || others.iter().any(|o| contains(o, prefix)) {
                    break;
                }
                remove_value(&mut merged, prefix);
            }
        }
    }
    let api_version = config["apiVersion"].as_str().unwrap_or("");
    let e = entry(manager, "Apply", api_version, "", applied, now);
    match pos {
        Some(i) => list[i] = e,
        None => list.push(e),
    }
    set_entries(&mut merged, list);
    Ok(merged)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        _ => v.clone(),
    }
}

/// Managers from the User-Agent the way the apiserver derives a default: the part before `/`.
pub fn manager_from_user_agent(ua: Option<&str>) -> String {
    let ua = ua.unwrap_or("unknown");
    ua.split('/').next().unwrap_or("unknown").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":{"a":"1"}},
            "spec":{"replicas":replicas,"template":{"spec":{"containers":[{"name":"app","image":image}]}}}})
    }

    #[test]
    fn apply_conflicts_with_other_manager_unless_forced() {
        let first = apply(None, &deploy(1, "x:1"), "alice", false, "t").unwrap();
        let err = apply(Some(&first), &deploy(3, "x:1"), "bob", false, "t").unwrap_err();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "alice".into(),
                field: ".spec.replicas".into()
            }]
        );
        // Same values are shared, not conflicting.
        assert!(apply(Some(&first), &deploy(1, "x:1"), "bob", false, "t").is_ok());
        let forced = apply(Some(&first), &deploy(3, "x:1"), "bob", true, "t").unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let alice = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "alice")
            .unwrap()
            .clone();
        assert!(alice["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    }

    #[test]
    fn apply_removes_fields_no_longer_applied() {
        let first = apply(None, &deploy(1, "x:1"), "alice", false, "t").unwrap();
        let mut smaller = deploy(1, "x:1");
        smaller["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let out = apply(Some(&first), &smaller, "alice", false, "t").unwrap();
        assert!(out["metadata"].get("labels").is_none(), "{out}");
        let path = render_path(&[
            "f:spec".into(),
            "k:{\"name\":\"app\"}".into(),
            "f:image".into(),
        ]);
        assert_eq!(path, ".spec[name=\"app\"].image");
    }

    #[test]
    fn update_moves_changed_fields_to_the_updater() {
        let created = apply(None, &deploy(1, "x:1"), "alice", false, "t").unwrap();
        let mut updated = created.clone();
        updated["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut updated, "scaler", "apps/v1", "", "t");
        let e = apply(Some(&updated), &deploy(1, "x:1"), "alice", false, "t").unwrap_err();
        assert_eq!(e[0].manager, "scaler");
        assert_eq!(
            manager_from_user_agent(Some("kubectl-client-side-apply/v1.32.4 (linux)")),
            "kubectl-client-side-apply"
        );
    }
}
