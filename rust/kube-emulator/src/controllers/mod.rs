//! What kube-controller-manager, the scheduler and the kubelet would do, run as one loop over the
//! store: each pass reconciles every object, writes only real changes, and repeats until quiet.

mod daemonset;
mod deployment;
mod endpoints;
mod gc;
mod job;
mod namespace;
mod pvc;
mod replicaset;
mod statefulset;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::pods::Kubelet;
use crate::registry::{self, WriteOptions};
use crate::resources::{ResourceDef, by_kind};
use crate::store::{State, Store, meta_str};

pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";

pub fn def(group: &str, kind: &str) -> &'static ResourceDef {
    by_kind(group, kind).expect("controller kinds are served")
}

/// All controllers with the little state they keep between passes.
pub struct Controllers {
    kubelet: Kubelet,
}

impl Controllers {
    pub fn new(ready_after: Duration) -> Self {
        Self {
            kubelet: Kubelet::new(ready_after),
        }
    }

    /// One pass over everything.
    pub fn reconcile(&mut self, state: &mut State, now: Instant) {
        namespace::reconcile(state);
        gc::reconcile(state);
        deployment::reconcile(state);
        replicaset::reconcile(state);
        statefulset::reconcile(state);
        daemonset::reconcile(state);
        job::reconcile(state);
        self.kubelet.reconcile(state, now);
        endpoints::reconcile(state);
        pvc::reconcile(state);
    }

    /// Runs passes until the store stops changing (bounded, so a flapping rule cannot spin).
    pub fn settle(&mut self, store: &Store) {
        for _ in 0..16 {
            let mut state = store.lock();
            let before = state.current_rv();
            self.reconcile(&mut state, Instant::now());
            if state.current_rv() == before {
                return;
            }
        }
    }
}

/// Runs the controllers until `shutdown` fires: on every change and on a short tick for
/// time-driven transitions (ready delays, restarts, progress deadlines).
pub async fn run(
    store: Arc<Store>,
    mut controllers: Controllers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        controllers.settle(&store);
        tokio::select! {
            _ = store.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

pub fn owner_ref(owner: &Value, kind: &str, api_version: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"), "controller": true, "blockOwnerDeletion": true})
}

pub fn is_owned_by(obj: &Value, owner_uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == owner_uid && r["controller"] == true)
        })
}

pub fn is_deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

/// Objects of `def` in `ns` controlled by `owner`.
pub fn owned(state: &State, def: &ResourceDef, ns: &str, owner: &Value) -> Vec<Value> {
    let uid = meta_str(owner, "uid");
    state
        .list(def, Some(ns))
        .filter(|o| is_owned_by(o, uid))
        .cloned()
        .collect()
}

/// Creates an object through the same admission path as API clients.
pub fn create(state: &mut State, def: &'static ResourceDef, obj: Value) -> Option<Value> {
    let opts = WriteOptions {
        field_manager: CONTROLLER_MANAGER.into(),
        ..Default::default()
    };
    match registry::create_in(state, def, obj, &opts, None) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(error = %e, kind = def.kind, "controller create failed");
            None
        }
    }
}

/// Writes `status` if it differs from the stored one.
pub fn write_status(state: &mut State, def: &'static ResourceDef, obj: &Value, status: Value) {
    if obj["status"] != status {
        let mut next = obj.clone();
        next["status"] = status;
        state.replace(def, next);
    }
}

pub fn now_str() -> String {
    registry::now()
}

/// Sets a condition the way the controllers' SetCondition helpers do: unchanged status and
/// reason is a no-op; a changed status moves lastTransitionTime.
pub fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    with_update_time: bool,
) {
    let now = now_str();
    if let Some(existing) = conditions.iter_mut().find(|c| c["type"] == kind) {
        if existing["status"] == status && existing["reason"] == reason {
            return;
        }
        let transition = if existing["status"] == status {
            existing["lastTransitionTime"].clone()
        } else {
            json!(now)
        };
        *existing = json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": transition});
        if with_update_time {
            existing["lastUpdateTime"] = json!(now);
        }
        return;
    }
    let mut c = json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now});
    if with_update_time {
        c["lastUpdateTime"] = json!(now);
    }
    conditions.push(c);
}

pub fn condition<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| c["type"] == kind)
}

pub fn pod_is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// A template hash like the controllers' (FNV-32a over the template, encoded with the
/// apimachinery safe alphabet).
pub fn template_hash(template: &Value) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in template.to_string().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = u64::from(h);
    let mut out = String::new();
    loop {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
        if n == 0 {
            break;
        }
    }
    out
}

/// A pod object for a workload's pod template.
pub fn pod_from_template(
    template: &Value,
    ns: &str,
    name: Option<&str>,
    generate_name: &str,
    owner: Value,
) -> Value {
    let mut meta = json!({"namespace": ns, "labels": template["metadata"]["labels"].clone(),
        "ownerReferences": [owner]});
    match name {
        Some(n) => meta["name"] = json!(n),
        None => meta["name"] = json!(format!("{generate_name}{}", registry::random_suffix(5))),
    }
    meta["generateName"] = json!(generate_name);
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        meta["annotations"] = json!(a);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"].clone()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_transition_time_when_status_is_unchanged() {
        let mut cs = vec![
            json!({"type":"Available","status":"True","reason":"A","message":"m","lastTransitionTime":"old"}),
        ];
        set_condition(&mut cs, "Available", "True", "B", "m2", false);
        assert_eq!(cs[0]["lastTransitionTime"], "old");
        assert_eq!(cs[0]["reason"], "B");
        set_condition(&mut cs, "Available", "False", "C", "m3", false);
        assert_ne!(cs[0]["lastTransitionTime"], "old");
        set_condition(&mut cs, "Progressing", "True", "R", "m", true);
        assert!(cs[1]["lastUpdateTime"].is_string());
    }

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let a = json!({"spec":{"containers":[{"image":"a"}]}});
        let b = json!({"spec":{"containers":[{"image":"b"}]}});
        assert_eq!(template_hash(&a), template_hash(&a.clone()));
        assert_ne!(template_hash(&a), template_hash(&b));
    }
}
