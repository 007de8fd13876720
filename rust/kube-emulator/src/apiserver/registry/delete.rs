//! delete and deletecollection: preconditions, finalizers, propagation (Orphan, Background,
//! Foreground).

use super::*;

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
        for r in crate::apiserver::resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced)
        {
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
