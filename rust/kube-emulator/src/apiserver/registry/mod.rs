//! The verbs on stored objects, with the apiserver's rules: scope and namespace checks,
//! preconditions, status separation, generation, defaulting, validation, field ownership,
//! dry-run, finalizers and deletion propagation.

use base64::Engine;
use serde_json::{Value, json};

use crate::apiserver::admission;
use crate::apiserver::managed;
use crate::apiserver::patch;
use crate::apiserver::resources::{ResourceDef, by_kind};
use crate::apiserver::schema;
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use crate::apiserver::status::{ApiError, Result};
use crate::apiserver::store::{State, Store, meta_str};

mod delete;
mod update;

pub use delete::*;
pub use update::*;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}; supported values: Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Options every write carries (query parameters of the request).
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
}

/// A successful write: the object plus warnings for the `Warning` header.
#[derive(Debug)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Lower-case consonant/digit alphabet the apiserver uses for generated name suffixes.
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn cannot_handle(def: &ResourceDef, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: {why}",
        def.kind, def.version, def.kind
    ))
}

/// Checks apiVersion/kind, drops (or rejects) unknown fields and type-checks the object.
fn decode(def: &ResourceDef, obj: &mut Value, validation: FieldValidation) -> Result<Vec<String>> {
    if !obj.is_object() {
        return Err(cannot_handle(def, "the object must be a JSON object"));
    }
    let kind = obj["kind"].as_str().unwrap_or("");
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{obj}'"
        )));
    }
    if kind != def.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    if api_version != def.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    let unknown = schema::prune_unknown(def, obj);
    let warnings: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if validation == FieldValidation::Strict && !warnings.is_empty() {
        return Err(cannot_handle(
            def,
            &format!("strict decoding error: {}", warnings.join(", ")),
        ));
    }
    (def.type_check)(obj).map_err(|e| cannot_handle(def, &e))?;
    Ok(if validation == FieldValidation::Warn {
        warnings
    } else {
        Vec::new()
    })
}

/// Everything but metadata and status: what bumps `metadata.generation` when it changes.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn check_namespace(state: &State, def: &ResourceDef, ns: &str) -> Result<()> {
    if def.namespaced && !state.namespace_exists(ns) {
        return Err(ApiError::namespace_not_found(ns));
    }
    Ok(())
}

pub fn get(store: &Store, def: &'static ResourceDef, ns: &str, name: &str) -> Result<Value> {
    store
        .lock()
        .get(def, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(def, name))
}

/// List query parameters.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

pub fn matches(opts_labels: &LabelSelector, opts_fields: &FieldSelector, obj: &Value) -> bool {
    opts_labels.matches_object(obj) && opts_fields.matches(obj)
}

pub fn list(
    store: &Store,
    def: &'static ResourceDef,
    ns: Option<&str>,
    opts: &ListOptions,
) -> Result<Value> {
    let start = match &opts.continue_token {
        Some(t) if !t.is_empty() => {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| {
                    ApiError::bad_request("continue key is not valid: illegal base64 data")
                })?;
            Some((
                raw["ns"].as_str().unwrap_or("").to_string(),
                raw["name"].as_str().unwrap_or("").to_string(),
            ))
        }
        _ => None,
    };
    let state = store.lock();
    let rv = state.current_rv();
    let mut items: Vec<Value> = state
        .list(def, ns)
        .filter(|o| {
            start.as_ref().is_none_or(|(sns, sname)| {
                (meta_str(o, "namespace"), meta_str(o, "name")) > (sns.as_str(), sname.as_str())
            })
        })
        .filter(|o| matches(&opts.labels, &opts.fields, o))
        .cloned()
        .collect();
    drop(state);
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(limit) = opts.limit.filter(|l| *l > 0 && items.len() > *l) {
        let remaining = items.len() - limit;
        items.truncate(limit);
        let last = items.last().expect("limit > 0");
        let token =
            json!({"ns": meta_str(last, "namespace"), "name": meta_str(last, "name"), "rv": rv});
        metadata["continue"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string()));
        metadata["remainingItemCount"] = json!(remaining);
    }
    for i in items.iter_mut() {
        if let Some(m) = i.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
    }
    Ok(
        json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(),
        "metadata": metadata, "items": items}),
    )
}

fn with_type(def: &ResourceDef, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    obj
}

pub fn create(
    store: &Store,
    def: &'static ResourceDef,
    ns: &str,
    mut obj: Value,
    opts: &WriteOptions,
) -> Result<Written> {
    let warnings = decode(def, &mut obj, opts.field_validation)?;
    let body_ns = meta_str(&obj, "namespace").to_string();
    if def.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        obj["metadata"]["namespace"] = json!(ns);
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    if !meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if meta_str(&obj, "name").is_empty() && !meta_str(&obj, "generateName").is_empty() {
        obj["metadata"]["name"] = json!(format!(
            "{}{}",
            meta_str(&obj, "generateName"),
            random_suffix(5)
        ));
    }
    let mut state = store.lock();
    check_namespace(&state, def, ns)?;
    let obj = create_in(&mut state, def, obj, opts, None)?;
    Ok(Written {
        object: obj,
        warnings,
        created: true,
    })
}

/// Creates a decoded object whose namespace is set; `managed` carries server-side apply ownership.
pub(crate) fn create_in(
    state: &mut State,
    def: &'static ResourceDef,
    mut obj: Value,
    opts: &WriteOptions,
    managed: Option<Value>,
) -> Result<Value> {
    let name = meta_str(&obj, "name").to_string();
    let ns = meta_str(&obj, "namespace").to_string();
    if def.has_status()
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    admission::apply_defaults(def, &mut obj);
    admission::validate(def, &obj, None)?;
    admission::check_service_account(state, def, &obj)?;
    if !name.is_empty() && state.get(def, &ns, &name).is_some() {
        return Err(ApiError::already_exists(def, &name));
    }
    let meta = &mut obj["metadata"];
    meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
    meta["creationTimestamp"] = json!(now());
    if def.has_generation {
        meta["generation"] = json!(1);
    }
    if let Some(m) = meta.as_object_mut() {
        m.remove("deletionTimestamp");
    }
    if def.kind == "Job" {
        let uid = obj["metadata"]["uid"].clone();
        admission::default_job_selector(&mut obj, &uid);
    }
    match managed {
        Some(mf) => obj["metadata"]["managedFields"] = mf,
        None if obj["metadata"]["managedFields"]
            .as_array()
            .is_none_or(|a| a.is_empty()) =>
        {
            managed::record_update(
                None,
                &mut obj,
                &opts.field_manager,
                &def.api_version(),
                "",
                &now(),
            );
        }
        None => {}
    }
    initial_status(state, def, &mut obj, opts.dry_run);
    if opts.dry_run {
        return Ok(obj);
    }
    Ok(state.insert(def, obj))
}

/// Fields the apiserver itself fills on create (allocations, initial phases).
fn initial_status(state: &mut State, def: &ResourceDef, obj: &mut Value, dry_run: bool) {
    match (def.group, def.kind) {
        ("", "Namespace") => obj["status"] = json!({"phase": "Active"}),
        ("", "Service") => {
            let ty = obj["spec"]["type"]
                .as_str()
                .unwrap_or("ClusterIP")
                .to_string();
            if ty != "ExternalName"
                && obj["spec"]["clusterIP"] != "None"
                && obj["spec"]["clusterIP"].as_str().is_none_or(str::is_empty)
            {
                let ip = if dry_run {
                    "10.96.0.0".to_string()
                } else {
                    state.allocate_cluster_ip()
                };
                obj["spec"]["clusterIP"] = json!(ip);
            }
            if let Some(ip) = obj["spec"]["clusterIP"].as_str().map(str::to_string) {
                obj["spec"]["clusterIPs"] = json!([ip]);
                obj["spec"]["ipFamilies"] = json!(["IPv4"]);
                obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            }
            obj["status"] = if ty == "LoadBalancer" {
                json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}})
            } else {
                json!({"loadBalancer": {}})
            };
        }
        ("", "Pod") => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        ("", "PersistentVolumeClaim") => obj["status"] = json!({"phase": "Pending"}),
        _ => {}
    }
}

/// Creates the namespaces every cluster starts with.
pub fn bootstrap(store: &Store) {
    let ns_def = by_kind("", "Namespace").expect("namespaces served");
    let opts = WriteOptions {
        field_manager: "kube-apiserver".into(),
        ..Default::default()
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        create(store, ns_def, "", obj, &opts).expect("bootstrap namespaces are valid");
    }
}

/// The autoscaling/v1 Scale view of a scalable object.
pub fn scale_of(obj: &Value) -> Value {
    let mut selector: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    selector.sort();
    let m = &obj["metadata"];
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")}})
}

pub fn get_scale(store: &Store, def: &'static ResourceDef, ns: &str, name: &str) -> Result<Value> {
    get(store, def, ns, name).map(|o| scale_of(&o))
}

/// Applies a new Scale (already patched or sent with PUT) to the object's `spec.replicas`.
pub fn update_scale(
    store: &Store,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    scale: &Value,
    opts: &WriteOptions,
) -> Result<Value> {
    let replicas = scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0).ok_or_else(|| {
        let mut e = ApiError::invalid(def, name, vec![("spec.replicas".into(), format!("Invalid value: {}: must be greater than or equal to 0", scale["spec"]["replicas"]))]);
        e.message = format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {}: must be greater than or equal to 0", scale["spec"]["replicas"]);
        e
    })?;
    let mut state = store.lock();
    let old = state
        .get(def, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(def, name))?;
    let body_rv = meta_str(scale, "resourceVersion");
    if !body_rv.is_empty() && body_rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(def, name));
    }
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(replicas);
    if let Some(m) = new["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let stored = update_in(&mut state, def, &old, new, Part::Scale, opts, false)?;
    Ok(scale_of(&stored))
}

#[cfg(test)]
mod tests;
