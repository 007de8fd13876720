//! DaemonSet controller for the emulator's single node: one pod per DaemonSet, replaced when the
//! template changes.

use serde_json::{Value, json};

use super::NODE_NAME;
use super::{
    Requeue, def, is_deleting, owned, owner_ref, pod_from_template, pod_is_ready, template_hash,
    write_status,
};
use crate::apiserver::store::{State, meta_str};

const REVISION_LABEL: &str = "controller-revision-hash";

pub fn reconcile(state: &mut State, ds: &Value) -> Requeue {
    let pod_def = def("", "Pod");
    let ns = meta_str(ds, "namespace").to_string();
    let revision = template_hash(&ds["spec"]["template"]);
    let mut pods: Vec<Value> = owned(state, pod_def, ds)
        .into_iter()
        .filter(|p| !is_deleting(p))
        .collect();
    // Outdated or surplus pods go; the replacement comes on the next pass.
    let mut keep = None;
    for p in pods.drain(..) {
        if keep.is_none() && p["metadata"]["labels"][REVISION_LABEL] == revision.as_str() {
            keep = Some(p);
        } else {
            state.remove(pod_def, &ns, meta_str(&p, "name"));
        }
    }
    let pod = match keep {
        Some(p) => Some(p),
        None => {
            let mut template = ds["spec"]["template"].clone();
            template["metadata"]["labels"][REVISION_LABEL] = json!(revision);
            template["metadata"]["labels"]["pod-template-generation"] = json!(
                ds["metadata"]["generation"]
                    .as_i64()
                    .unwrap_or(1)
                    .to_string()
            );
            let mut pod = pod_from_template(
                &template,
                &ns,
                None,
                &format!("{}-", meta_str(ds, "name")),
                owner_ref(ds, "DaemonSet", "apps/v1"),
            );
            pod["spec"]["nodeName"] = json!(NODE_NAME);
            super::create(state, pod_def, pod).ok()
        }
    };
    let scheduled = i64::from(pod.is_some());
    let ready = i64::from(pod.as_ref().is_some_and(pod_is_ready));
    let mut status = json!({"observedGeneration": ds["metadata"]["generation"].clone(), "desiredNumberScheduled": 1,
        "currentNumberScheduled": scheduled, "numberMisscheduled": 0, "numberReady": ready,
        "updatedNumberScheduled": scheduled, "numberAvailable": ready});
    if ready == 0 {
        status["numberUnavailable"] = json!(1);
        status
            .as_object_mut()
            .expect("status object")
            .remove("numberAvailable");
    }
    write_status(state, def("apps", "DaemonSet"), ds, status);
    None
}
