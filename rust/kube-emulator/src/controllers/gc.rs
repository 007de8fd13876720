//! Garbage collector: objects whose owners are all gone are deleted (background cascade);
//! owner references to missing owners are dropped while another owner remains.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::is_deleting;
use crate::resources::RESOURCES;
use crate::store::{State, meta_str};

pub fn reconcile(state: &mut State) {
    let uids: HashSet<String> = RESOURCES
        .iter()
        .flat_map(|r| {
            state
                .list(r, None)
                .map(|o| meta_str(o, "uid").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for r in RESOURCES {
        let dependents: Vec<Value> = state
            .list(r, None)
            .filter(|o| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|x| !uids.contains(x["uid"].as_str().unwrap_or("")))
                    })
            })
            .cloned()
            .collect();
        for d in dependents {
            let refs = d["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let alive: Vec<Value> = refs
                .into_iter()
                .filter(|x| uids.contains(x["uid"].as_str().unwrap_or("")))
                .collect();
            let (ns, name) = (
                meta_str(&d, "namespace").to_string(),
                meta_str(&d, "name").to_string(),
            );
            if !alive.is_empty() {
                let mut next = d.clone();
                next["metadata"]["ownerReferences"] = json!(alive);
                state.replace(r, next);
            } else if d["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty())
            {
                if !is_deleting(&d) {
                    let mut next = d.clone();
                    next["metadata"]["deletionTimestamp"] = json!(super::now_str());
                    state.replace(r, next);
                }
            } else {
                state.remove(r, &ns, &name);
            }
        }
    }
}
