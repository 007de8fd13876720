//! update and patch (JSON, merge, strategic merge, server-side apply with conflicts).

use super::*;

/// Which part of the object a write may change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Part {
    Main,
    Status,
    /// The `scale` subresource: only `spec.replicas` changes.
    Scale,
}

/// Stores `new` over `old` with update semantics. `new` must already be decoded.
pub(super) fn update_in(
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
