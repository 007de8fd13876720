//! Every namespace gets its `default` ServiceAccount, as the serviceaccount controller does.

use serde_json::{Value, json};

use super::{def, is_deleting};
use crate::store::{State, meta_str};

pub fn reconcile(state: &mut State) {
    let sa_def = def("", "ServiceAccount");
    let namespaces: Vec<Value> = state.list(def("", "Namespace"), None).cloned().collect();
    for ns in namespaces {
        let name = meta_str(&ns, "name");
        if is_deleting(&ns) || state.get(sa_def, name, "default").is_some() {
            continue;
        }
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}});
        super::create(state, sa_def, sa);
    }
}
