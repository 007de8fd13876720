//! Garbage collector: objects whose owners are all gone are deleted (background cascade);
//! owner references to missing owners are dropped while another owner remains.

use serde_json::{Value, json};

use super::is_deleting;
use crate::apiserver::store::{ObjRef, State};

pub fn collect(state: &mut State, at: &ObjRef) {
    let Some(d) = state.get_ref(at).cloned() else {
        return;
    };
    let refs = d["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (alive, gone): (Vec<Value>, Vec<Value>) = refs
        .into_iter()
        .partition(|r| state.find_uid(r["uid"].as_str().unwrap_or("")).is_some());
    if gone.is_empty() {
        return;
    }
    let def = at.def();
    if !alive.is_empty() {
        let mut next = d.clone();
        next["metadata"]["ownerReferences"] = json!(alive);
        state.replace(def, next);
    } else if d["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        if !is_deleting(&d) {
            let mut next = d.clone();
            next["metadata"]["deletionTimestamp"] = json!(super::now_str());
            state.replace(def, next);
        }
    } else {
        state.remove(def, &at.ns, &at.name);
    }
}
