//! PersistentVolumeClaims bind immediately to a volume named after the claim's uid.

use serde_json::{Value, json};

use super::{Requeue, def};
use crate::apiserver::store::{State, meta_str};

pub fn reconcile(state: &mut State, c: &Value) -> Requeue {
    if c["status"]["phase"] == "Bound" {
        return None;
    }
    let mut next = c.clone();
    next["spec"]["volumeName"] = json!(format!("pvc-{}", meta_str(c, "uid")));
    next["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
    next["status"] = json!({"phase": "Bound", "accessModes": c["spec"]["accessModes"].clone(),
        "capacity": {"storage": c["spec"]["resources"]["requests"]["storage"].as_str().unwrap_or("1Gi")}});
    state.replace(def("", "PersistentVolumeClaim"), next);
    None
}
