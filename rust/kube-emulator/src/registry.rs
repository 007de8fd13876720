//! The verbs on stored objects, with the apiserver's rules: scope and namespace checks,
//! preconditions, status separation, generation, defaulting, validation, field ownership,
//! dry-run, finalizers and deletion propagation.

use base64::Engine;
use serde_json::{Value, json};

use crate::admission;
use crate::managed;
use crate::patch;
use crate::resources::{ResourceDef, by_kind};
use crate::schema;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Result};
use crate::store::{State, Store, meta_str};

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

/// Which part of the object a write may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    Main,
    Status,
    /// The `scale` subresource: only `spec.replicas` changes.
    Scale,
}

/// Stores `new` over `old` with update semantics. `new` must already be decoded.
fn update_in(
    state: &mut State,
    def: &'static ResourceDef,
    old: &Value,
    mut new: Value,
    part: Part,
    opts: &WriteOptions,
    ssa: bool,
) -> Result<Value> {
    let name = meta_str(old, "name").to_string();
    let body_rv = meta_str(&new, "resourceVersion");
    if !body_rv.is_empty() && body_rv != meta_str(old, "resourceVersion") {
        return Err(ApiError::stale(def, &name));
    }
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "namespace",
    ] {
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    if def.has_status() {
        match part {
            Part::Main | Part::Scale => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Part::Status => {
                let status = new.get("status").cloned();
                let mut kept = old.clone();
                match status {
                    Some(s) => kept["status"] = s,
                    None => {
                        if let Some(m) = kept.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                kept["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
                new = kept;
            }
        }
    }
    admission::apply_defaults(def, &mut new);
    if def.has_generation && spec_part(&new) != spec_part(old) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    admission::validate(def, &new, Some(old))?;
    let supplied_managed = new["metadata"]["managedFields"] != old["metadata"]["managedFields"];
    if !ssa && !supplied_managed {
        let sub = match part {
            Part::Main => "",
            Part::Status => "status",
            Part::Scale => "scale",
        };
        managed::record_update(
            Some(old),
            &mut new,
            &opts.field_manager,
            &def.api_version(),
            sub,
            &now(),
        );
    }
    if opts.dry_run {
        return Ok(new);
    }
    let finalized = !old["metadata"]["deletionTimestamp"].is_null()
        && new["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| f.is_empty());
    if finalized {
        return Ok(state
            .remove(def, meta_str(&new, "namespace"), &name)
            .unwrap_or(new));
    }
    Ok(state.replace(def, new))
}

pub fn update(
    store: &Store,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    mut obj: Value,
    part: Part,
    opts: &WriteOptions,
) -> Result<Written> {
    let warnings = decode(def, &mut obj, opts.field_validation)?;
    let body_name = meta_str(&obj, "name");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta_str(&obj, "namespace");
    if def.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut state = store.lock();
    check_namespace(&state, def, ns)?;
    let old = state
        .get(def, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(def, name))?;
    let object = update_in(&mut state, def, &old, obj, part, opts, false)?;
    Ok(Written {
        object,
        warnings,
        created: false,
    })
}

/// The PATCH flavours, by request Content-Type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Some(Self::Apply),
            _ => None,
        }
    }
}

fn parse_body(body: &[u8], yaml: bool) -> Result<Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if yaml => serde_yaml::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
        }),
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &Store,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    ty: PatchType,
    body: &[u8],
    part: Part,
    force: bool,
    opts: &WriteOptions,
) -> Result<Written> {
    if ty == PatchType::Apply && opts.field_manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH requests with apply content type require fieldManager",
        ));
    }
    let mut state = store.lock();
    check_namespace(&state, def, ns)?;
    let old = state.get(def, ns, name).cloned();
    let (mut candidate, ssa_managed) = match (ty, &old) {
        (PatchType::Apply, _) => {
            let config = parse_body(body, true)?;
            if !config.is_object() {
                return Err(ApiError::bad_request(
                    "the apply configuration must be an object",
                ));
            }
            let cname = meta_str(&config, "name");
            if cname != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({cname}) does not match the name on the URL ({name})"
                )));
            }
            let mut config = config;
            let warnings = decode(def, &mut config, opts.field_validation)?;
            drop(warnings);
            let merged = managed::apply(old.as_ref(), &config, &opts.field_manager, force, &now())
                .map_err(|c| conflict_error(def, name, &config, c))?;
            let mf = merged["metadata"]["managedFields"].clone();
            (merged, Some(mf))
        }
        (_, None) => return Err(ApiError::not_found(def, name)),
        (PatchType::Json, Some(o)) => (
            patch::json_patch(&with_type(def, o.clone()), body)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
            None,
        ),
        (PatchType::Merge, Some(o)) => (
            patch::merge_patch(&with_type(def, o.clone()), &parse_body(body, false)?),
            None,
        ),
        (PatchType::Strategic, Some(o)) => (
            patch::strategic_merge(&with_type(def, o.clone()), &parse_body(body, false)?)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
            None,
        ),
    };
    let warnings = decode(def, &mut candidate, opts.field_validation)?;
    if meta_str(&candidate, "name") != name {
        return Err(ApiError::bad_request(
            "metadata.name: the name of a patched object cannot change",
        ));
    }
    let (object, created) = match old {
        Some(o) => (
            update_in(
                &mut state,
                def,
                &o,
                candidate,
                part,
                opts,
                ssa_managed.is_some(),
            )?,
            false,
        ),
        None => {
            candidate["metadata"]["namespace"] = json!(if def.namespaced { ns } else { "" });
            if !def.namespaced
                && let Some(m) = candidate["metadata"].as_object_mut()
            {
                m.remove("namespace");
            }
            if let Some(m) = candidate["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            (
                create_in(&mut state, def, candidate, opts, ssa_managed)?,
                true,
            )
        }
    };
    Ok(Written {
        object,
        warnings,
        created,
    })
}

fn conflict_error(
    def: &ResourceDef,
    name: &str,
    config: &Value,
    conflicts: Vec<managed::Conflict>,
) -> ApiError {
    let api_version = config["apiVersion"].as_str().unwrap_or("");
    let n = conflicts.len();
    let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
    for c in &conflicts {
        match by_manager.iter_mut().find(|(m, _)| *m == c.manager) {
            Some((_, fields)) => fields.push(c.field.clone()),
            None => by_manager.push((c.manager.clone(), vec![c.field.clone()])),
        }
    }
    let mut message = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(m, fields)| {
            if fields.len() == 1 {
                format!("conflict with \"{m}\" using {api_version}: {}", fields[0])
            } else {
                let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
                format!(
                    "conflicts with \"{m}\" using {api_version}:\n{}",
                    list.join("\n")
                )
            }
        })
        .collect();
    message.push_str(&parts.join("\n"));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {api_version}", c.manager), "field": c.field}))
        .collect();
    let mut e = ApiError::new(409, "Conflict", message);
    e.details =
        Some(json!({"name": name, "group": def.group, "kind": def.plural, "causes": causes}));
    e
}

/// DeleteOptions that matter here.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub orphan: bool,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (may be empty) merged over query-derived defaults.
    pub fn from_body(mut self, body: &[u8]) -> Result<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(self);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            self.dry_run = true;
        }
        if v["propagationPolicy"] == "Orphan" || v["orphanDependents"] == true {
            self.orphan = true;
        }
        self.precondition_uid = v["preconditions"]["uid"].as_str().map(str::to_string);
        self.precondition_rv = v["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        Ok(self)
    }
}

pub fn delete(
    store: &Store,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value> {
    let mut state = store.lock();
    delete_in(&mut state, def, ns, name, opts)
}

fn delete_in(
    state: &mut State,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value> {
    let old = state
        .get(def, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(def, name))?;
    if let Some(uid) = &opts.precondition_uid
        && uid != meta_str(&old, "uid")
    {
        return Err(ApiError::conflict(
            def,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&old, "uid")
            ),
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && rv != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::conflict(
            def,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&old, "resourceVersion")
            ),
        ));
    }
    if opts.dry_run {
        return Ok(with_type(def, old));
    }
    if opts.orphan {
        orphan_dependents(state, meta_str(&old, "uid"));
    }
    if old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        let mut marked = old.clone();
        if marked["metadata"]["deletionTimestamp"].is_null() {
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        return Ok(with_type(def, state.replace(def, marked)));
    }
    let removed = state
        .remove(def, ns, name)
        .expect("object present under lock");
    if def.kind == "Namespace" && def.group.is_empty() {
        for r in crate::resources::RESOURCES.iter().filter(|r| r.namespaced) {
            let names: Vec<String> = state
                .list(r, Some(name))
                .map(|o| meta_str(o, "name").to_string())
                .collect();
            for n in names {
                state.remove(r, name, &n);
            }
        }
    }
    Ok(with_type(def, removed))
}

/// Removes the owner reference to `owner_uid` from every object that has one.
fn orphan_dependents(state: &mut State, owner_uid: &str) {
    let dependents: Vec<_> = state.dependents_of(owner_uid).cloned().collect();
    for at in dependents {
        let Some(mut d) = state.get_ref(&at).cloned() else {
            continue;
        };
        if let Some(refs) = d["metadata"]["ownerReferences"].as_array_mut() {
            refs.retain(|x| x["uid"] != owner_uid);
            if refs.is_empty()
                && let Some(m) = d["metadata"].as_object_mut()
            {
                m.remove("ownerReferences");
            }
        }
        state.replace(at.def(), d);
    }
}

pub fn delete_collection(
    store: &Store,
    def: &'static ResourceDef,
    ns: Option<&str>,
    list_opts: &ListOptions,
    opts: &DeleteOptions,
) -> Result<Value> {
    let mut state = store.lock();
    let targets: Vec<(String, String)> = state
        .list(def, ns)
        .filter(|o| matches(&list_opts.labels, &list_opts.fields, o))
        .map(|o| {
            (
                meta_str(o, "namespace").to_string(),
                meta_str(o, "name").to_string(),
            )
        })
        .collect();
    let mut items = Vec::new();
    for (ons, name) in targets {
        items.push(delete_in(&mut state, def, &ons, &name, opts)?);
    }
    let rv = state.current_rv();
    Ok(
        json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    )
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
mod tests {
    use super::*;

    fn cm(name: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name},"data":{"a":"1"}})
    }

    fn setup() -> (std::sync::Arc<Store>, &'static ResourceDef, WriteOptions) {
        let store = Store::new(64);
        bootstrap(&store);
        (
            store,
            by_kind("", "ConfigMap").unwrap(),
            WriteOptions {
                field_manager: "test".into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn create_get_conflicts_and_stale_updates() {
        let (store, def, opts) = setup();
        let w = create(&store, def, "default", cm("a"), &opts).unwrap();
        assert_eq!(w.object["metadata"]["namespace"], "default");
        assert!(!meta_str(&w.object, "uid").is_empty());
        assert_eq!(
            create(&store, def, "default", cm("a"), &opts)
                .unwrap_err()
                .code,
            409
        );
        assert_eq!(
            create(&store, def, "nope", cm("b"), &opts)
                .unwrap_err()
                .message,
            "namespaces \"nope\" not found"
        );
        let mut stale = w.object.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        stale["data"]["a"] = json!("2");
        let e = update(&store, def, "default", "a", stale, Part::Main, &opts).unwrap_err();
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        assert_eq!(get(&store, def, "default", "a").unwrap()["data"]["a"], "1");
    }

    #[test]
    fn dry_run_and_strict_validation_change_nothing() {
        let (store, def, mut opts) = setup();
        opts.dry_run = true;
        let w = create(&store, def, "default", cm("dry"), &opts).unwrap();
        assert_eq!(w.object["metadata"]["name"], "dry");
        assert_eq!(get(&store, def, "default", "dry").unwrap_err().code, 404);
        opts.dry_run = false;
        opts.field_validation = FieldValidation::Strict;
        let mut bad = cm("bad");
        bad["bogus"] = json!(1);
        let e = create(&store, def, "default", bad, &opts).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("unknown field \"bogus\""),
            "{}",
            e.message
        );
        assert_eq!(get(&store, def, "default", "bad").unwrap_err().code, 404);
    }

    #[test]
    fn list_paginates_with_continue() {
        let (store, def, opts) = setup();
        for n in ["a", "b", "c"] {
            create(&store, def, "default", cm(n), &opts).unwrap();
        }
        let first = list(
            &store,
            def,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        assert_eq!(first["metadata"]["remainingItemCount"], 1);
        let token = first["metadata"]["continue"].as_str().unwrap().to_string();
        let rest = list(
            &store,
            def,
            Some("default"),
            &ListOptions {
                continue_token: Some(token),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rest["items"][0]["metadata"]["name"], "c");
    }
}
