//! What kube-controller-manager, the scheduler and the kubelet would do. Like the real
//! controllers they are driven by a work queue: every store change enqueues the objects it can
//! affect (the object, its controlling owner, its dependents, the Services selecting a pod, ...),
//! time-driven transitions (ready delays, restarts, progress deadlines) requeue themselves at the
//! moment they are due, and a slow resync is the safety net. So a change costs work proportional
//! to what it touches, not to the size of the store.

mod daemonset;
mod deployment;
mod endpoints;
pub mod events;
mod gc;
mod job;
mod namespace;
mod pvc;
mod queue;
mod replicaset;
mod statefulset;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::apiserver::registry::{self, WriteOptions};
use crate::apiserver::resources::{ResourceDef, by_kind};
use crate::apiserver::store::{Event, State, Store, meta_str};
use queue::{Work, WorkQueue};

pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
/// The emulator's single node, where the scheduler binds every pod.
pub const NODE_NAME: &str = "kube-emulator-node";

/// How often every object is reconciled regardless of events.
const RESYNC: Duration = Duration::from_secs(10);
/// Queue rounds per lock hold, so API requests get the lock between bursts.
const ROUNDS_PER_LOCK: usize = 32;
/// The shortest requeue, so a timer computed as "now" cannot spin.
const MIN_REQUEUE: Duration = Duration::from_millis(5);

pub fn def(group: &str, kind: &str) -> &'static ResourceDef {
    by_kind(group, kind).expect("controller kinds are served")
}

/// When a reconcile wants to run again without any change (a timer is due), if ever.
pub type Requeue = Option<Duration>;

/// What runs pods on the node, driven by the controller loop like any controller: the
/// simulated kubelet or the process runtime (the kubelet module implements it).
pub trait PodRuntime: Send {
    /// Binds the pod and moves it towards what its spec asks for; returns when to look again.
    fn reconcile(&mut self, state: &mut State, pod: &Value, now: Instant) -> Requeue;
    /// A pod was deleted from the store.
    fn pod_deleted(&mut self, state: &mut State, pod: &Value);
    /// Forgets pods that no longer exist (in case a deletion was not observed).
    fn retain_live(&mut self, state: &State);
}

/// All controllers with the little state they keep between passes.
pub struct Controllers {
    kubelet: Box<dyn PodRuntime>,
    queue: WorkQueue,
    events: broadcast::Receiver<Arc<Event>>,
    next_resync: Instant,
}

impl Controllers {
    pub fn new(store: &Store, kubelet: Box<dyn PodRuntime>) -> Self {
        let state = store.lock();
        let mut queue = WorkQueue::default();
        queue.enqueue_all(&state);
        Self {
            kubelet,
            queue,
            events: state.subscribe(),
            next_resync: Instant::now() + RESYNC,
        }
    }

    /// Turns the store changes seen so far into work.
    fn observe_changes(&mut self, state: &mut State) {
        loop {
            match self.events.try_recv() {
                Ok(event) => self.observe(state, &event),
                Err(TryRecvError::Lagged(_)) => self.queue.enqueue_all(state),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            }
        }
    }

    fn observe(&mut self, state: &mut State, event: &Event) {
        if event.def.kind == "Pod" && event.kind == crate::apiserver::store::EventType::Deleted {
            self.kubelet.pod_deleted(state, &event.object);
        }
        self.queue.enqueue_affected(state, event);
    }

    /// Reconciles one queued object; returns when it wants to run again.
    fn reconcile(&mut self, state: &mut State, work: &Work, now: Instant) -> Requeue {
        let at = match work {
            Work::CollectGarbage(at) => {
                gc::collect(state, at);
                return None;
            }
            Work::Reconcile(at) => at,
        };
        let obj = state.get_ref(at)?.clone();
        if is_deleting(&obj) {
            return None;
        }
        match at.res {
            ("", "namespaces") => namespace::reconcile(state, &obj),
            ("apps", "deployments") => deployment::reconcile(state, &obj),
            ("apps", "replicasets") => replicaset::reconcile(state, &obj),
            ("apps", "statefulsets") => statefulset::reconcile(state, &obj),
            ("apps", "daemonsets") => daemonset::reconcile(state, &obj),
            ("batch", "jobs") => job::reconcile(state, &obj),
            ("", "pods") => self.kubelet.reconcile(state, &obj, now),
            ("", "services") => endpoints::reconcile(state, &obj),
            ("", "persistentvolumeclaims") => pvc::reconcile(state, &obj),
            _ => None,
        }
    }

    /// Works the queue until it is empty or the round budget is spent; returns whether work
    /// is left (the caller releases the lock and comes back).
    pub fn settle(&mut self, store: &Store) -> bool {
        let mut state = store.lock();
        let now = Instant::now();
        if now >= self.next_resync {
            self.queue.enqueue_all(&state);
            self.kubelet.retain_live(&state);
            events::expire(&mut state, chrono::Utc::now());
            self.next_resync = now + RESYNC;
        }
        self.queue.promote_due(now);
        for _ in 0..ROUNDS_PER_LOCK {
            self.observe_changes(&mut state);
            let batch = self.queue.take_ready();
            if batch.is_empty() {
                return false;
            }
            for work in batch {
                if let Some(after) = self.reconcile(&mut state, &work, now) {
                    self.queue.enqueue_after(work, now + after.max(MIN_REQUEUE));
                }
            }
        }
        self.observe_changes(&mut state);
        self.queue.has_ready()
    }

    /// When the next timer or resync is due.
    fn next_wakeup(&self) -> Instant {
        self.queue
            .next_due()
            .map_or(self.next_resync, |t| t.min(self.next_resync))
    }
}

/// Runs the controllers until `shutdown` fires: on every store change and whenever a timer is due.
pub async fn run(
    store: Arc<Store>,
    mut controllers: Controllers,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if controllers.settle(&store) {
            tokio::task::yield_now().await;
            continue;
        }
        let wake = tokio::time::Instant::from_std(controllers.next_wakeup());
        tokio::select! {
            event = controllers.events.recv() => match event {
                Ok(event) => {
                    let mut state = store.lock();
                    controllers.observe(&mut state, &event);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    controllers.queue.enqueue_all(&store.lock());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep_until(wake) => {}
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

/// Objects of `def` controlled by `owner`, found through the owner index.
pub fn owned(state: &State, def: &ResourceDef, owner: &Value) -> Vec<Value> {
    let uid = meta_str(owner, "uid");
    state
        .dependents_of(uid)
        .filter(|at| at.res == (def.group, def.plural))
        .filter_map(|at| state.get_ref(at))
        .filter(|o| is_owned_by(o, uid))
        .cloned()
        .collect()
}

/// Creates an object through the same admission path as API clients.
pub fn create(
    state: &mut State,
    def: &'static ResourceDef,
    obj: Value,
) -> Result<Value, crate::apiserver::status::ApiError> {
    let opts = WriteOptions {
        field_manager: CONTROLLER_MANAGER.into(),
        ..Default::default()
    };
    registry::create_in(state, def, obj, &opts, None).inspect_err(|e| {
        tracing::debug!(error = %e, kind = def.kind, "controller create failed");
    })
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
