//! OpenAPI v3: the /openapi/v3 index and one document per group-version, with the paths,
//! operations and parameters kubectl inspects (PATCH declaring `fieldValidation` makes kubectl
//! rely on server-side strict validation) and the component schemas.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::apiserver::resources::{RESOURCES, ResourceDef};
use crate::apiserver::schema::schemas;

const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut p = vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid value: All",
        ),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values: Ignore, Warn, Strict",
        ),
    ];
    if patch {
        p.push(query(
            "force",
            "boolean",
            "Force is going to \"force\" Apply requests.",
        ));
    }
    p
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn op_id(verb: &str, def: &ResourceDef, suffix: &str) -> String {
    let group: String = def
        .group
        .split('.')
        .next()
        .unwrap_or("")
        .split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let group = if group.is_empty() {
        "Core".to_string()
    } else {
        group
    };
    let scope = if def.namespaced { "Namespaced" } else { "" };
    format!("{verb}{group}V1{scope}{}{suffix}", def.kind)
}

fn operation(
    def: &ResourceDef,
    verb: &str,
    action: &str,
    schema: &str,
    suffix: &str,
    body: Option<Value>,
    params: Vec<Value>,
) -> Value {
    let mut op = json!({
        "tags": [def.group.replace('.', "_") + "_v1"],
        "operationId": op_id(verb, def, suffix),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema_ref(schema)}}},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": def.group, "version": def.version, "kind": def.kind},
    });
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    op
}

fn paths_for(def: &ResourceDef, schema: &str) -> Vec<(String, Value)> {
    let base = if def.group.is_empty() {
        format!("/api/{}", def.version)
    } else {
        format!("/apis/{}/{}", def.group, def.version)
    };
    let collection = if def.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", def.plural)
    } else {
        format!("{base}/{}", def.plural)
    };
    let json_body =
        json!({"content": {"application/json": {"schema": schema_ref(schema)}}, "required": true});
    // Strategic merge patch is deliberately not declared: the component schemas carry no
    // patch-merge-key metadata, so kubectl computes its patches from its built-in types instead.
    let patch_body = json!({"content": {
        "application/apply-patch+yaml": {"schema": schema_ref(PATCH_SCHEMA)},
        "application/json-patch+json": {"schema": schema_ref(PATCH_SCHEMA)},
        "application/merge-patch+json": {"schema": schema_ref(PATCH_SCHEMA)}}, "required": true});
    let mut path_params =
        vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})];
    let mut coll_params = Vec::new();
    if def.namespaced {
        let ns = json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}});
        path_params.push(ns.clone());
        coll_params.push(ns);
    }
    let list_schema = format!("{schema}List");
    let mut out = vec![
        (
            collection.clone(),
            json!({
                "get": operation(def, "list", "list", &list_schema, "", None, vec![]),
                "post": operation(def, "create", "post", schema, "", Some(json_body.clone()), write_params(false)),
                "parameters": coll_params,
            }),
        ),
        (
            format!("{collection}/{{name}}"),
            json!({
                "get": operation(def, "read", "get", schema, "", None, vec![]),
                "put": operation(def, "replace", "put", schema, "", Some(json_body.clone()), write_params(false)),
                "patch": operation(def, "patch", "patch", schema, "", Some(patch_body.clone()), write_params(true)),
                "delete": operation(def, "delete", "delete", schema, "", None, vec![query("dryRun", "string", "")]),
                "parameters": path_params.clone(),
            }),
        ),
    ];
    if def.has_status() {
        out.push((
            format!("{collection}/{{name}}/status"),
            json!({
                "get": operation(def, "read", "get", schema, "Status", None, vec![]),
                "put": operation(def, "replace", "put", schema, "Status", Some(json_body), write_params(false)),
                "patch": operation(def, "patch", "patch", schema, "Status", Some(patch_body), write_params(true)),
                "parameters": path_params,
            }),
        ));
    }
    out
}

/// Definitions reachable from `roots` through `$ref`s.
fn reachable(defs: &Map<String, Value>, roots: Vec<String>) -> BTreeSet<String> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r.rsplit('/').next().unwrap_or(r).to_string());
                }
                m.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo = roots;
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone())
            && let Some(s) = defs.get(&n)
        {
            refs(s, &mut todo);
        }
    }
    seen
}

fn build_document(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let s = schemas();
    let mut paths = BTreeMap::new();
    let mut components = Map::new();
    let mut roots = Vec::new();
    for d in &defs {
        let name = s.names[&(d.group, d.kind)].clone();
        for (p, item) in paths_for(d, &name) {
            paths.insert(p, item);
        }
        let list_name = format!("{name}List");
        components.insert(
            list_name,
            json!({"type": "object", "required": ["items"], "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": schema_ref(&name)},
                "metadata": schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")},
                "x-kubernetes-group-version-kind": [{"group": d.group, "version": d.version, "kind": format!("{}List", d.kind)}]}),
        );
        roots.push(name);
    }
    roots.push("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta".into());
    for n in reachable(&s.definitions, roots) {
        if let Some(v) = s.definitions.get(&n) {
            components.insert(n, v.clone());
        }
    }
    components.insert(
        PATCH_SCHEMA.into(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": components},
    }))
}

struct Documents {
    docs: HashMap<String, (Value, String)>,
}

fn documents() -> &'static Documents {
    static DOCS: OnceLock<Documents> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut gvs: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            if !gvs.contains(&(r.group, r.version)) {
                gvs.push((r.group, r.version));
            }
        }
        let docs = gvs
            .into_iter()
            .filter_map(|(g, v)| {
                let doc = build_document(g, v)?;
                let hash = content_hash(&doc.to_string());
                Some((gv_path(g, v), (doc, hash)))
            })
            .collect();
        Documents { docs }
    })
}

fn content_hash(s: &str) -> String {
    // FNV-1a, 64 bit: stable across processes, which keeps kubectl's cache keys stable.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

pub fn index() -> Value {
    let paths: Map<String, Value> = documents()
        .docs
        .iter()
        .map(|(p, (_, hash))| {
            (
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            )
        })
        .collect();
    json!({"paths": paths})
}

pub fn document(group: &str, version: &str) -> Option<&'static Value> {
    documents()
        .docs
        .get(&gv_path(group, version))
        .map(|(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_declare_field_validation_and_gvk() {
        let doc = document("apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        assert!(schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(
            index()["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
        assert!(
            document("", "v1").unwrap()["paths"]
                .get("/api/v1/namespaces/{name}")
                .is_some()
        );
    }
}
