//! Every namespace gets its `default` ServiceAccount, as the serviceaccount controller does.

use serde_json::{Value, json};

use super::{Requeue, def};
use crate::apiserver::store::{State, meta_str};

pub fn reconcile(state: &mut State, ns: &Value) -> Requeue {
    let sa_def = def("", "ServiceAccount");
    let name = meta_str(ns, "name");
    if state.get(sa_def, name, "default").is_none() {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}});
        super::create(state, sa_def, sa).ok();
    }
    None
}
