//! PersistentVolumeClaims bind immediately to a volume named after the claim's uid.

use serde_json::{Value, json};

use super::{def, is_deleting};
use crate::store::{State, meta_str};

pub fn reconcile(state: &mut State) {
    let pvc_def = def("", "PersistentVolumeClaim");
    let claims: Vec<Value> = state.list(pvc_def, None).cloned().collect();
    for c in claims {
        if is_deleting(&c) || c["status"]["phase"] == "Bound" {
            continue;
        }
        let mut next = c.clone();
        next["spec"]["volumeName"] = json!(format!("pvc-{}", meta_str(&c, "uid")));
        next["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
        next["status"] = json!({"phase": "Bound", "accessModes": c["spec"]["accessModes"].clone(),
            "capacity": {"storage": c["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("1Gi")}});
        state.replace(pvc_def, next);
    }
}
