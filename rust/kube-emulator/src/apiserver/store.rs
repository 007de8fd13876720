//! The object store: JSON objects per resource, one global resourceVersion counter and a bounded
//! ring of change events that watches replay from.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::apiserver::resources::ResourceDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch delivers it. `previous` lets selector-filtered watches turn a change
/// that moves an object out of (into) the selection into DELETED (ADDED), like the watch cache.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub def: &'static ResourceDef,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
}

/// A resource as (group, plural).
pub type ResKey = (&'static str, &'static str);
type ObjKey = (String, String);

/// Where one object lives: its resource and its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef {
    pub res: ResKey,
    pub ns: String,
    pub name: String,
}

impl ObjRef {
    pub fn of(def: &'static ResourceDef, obj: &Value) -> Self {
        Self {
            res: res_key(def),
            ns: meta_str(obj, "namespace").to_string(),
            name: meta_str(obj, "name").to_string(),
        }
    }

    pub fn def(&self) -> &'static ResourceDef {
        crate::apiserver::resources::RESOURCES
            .iter()
            .find(|r| (r.group, r.plural) == self.res)
            .expect("object references only name served resources")
    }
}

/// Owner-reference indexes, so the garbage collector and controllers find an object's owner and
/// dependents without scanning (the real ones keep the same in their informer indexers).
#[derive(Default)]
struct OwnerIndex {
    by_uid: HashMap<String, ObjRef>,
    dependents: HashMap<String, BTreeSet<ObjRef>>,
}

fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

impl OwnerIndex {
    fn add(&mut self, def: &'static ResourceDef, obj: &Value) {
        let at = ObjRef::of(def, obj);
        for owner in owner_uids(obj) {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert(at.clone());
        }
        self.by_uid.insert(meta_str(obj, "uid").to_string(), at);
    }

    fn remove(&mut self, def: &'static ResourceDef, obj: &Value) {
        let at = ObjRef::of(def, obj);
        for owner in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(&at);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        self.by_uid.remove(meta_str(obj, "uid"));
    }
}

/// The mutable state behind the store lock.
pub struct State {
    objects: HashMap<ResKey, BTreeMap<ObjKey, Value>>,
    rv: u64,
    ring: VecDeque<Arc<Event>>,
    ring_capacity: usize,
    /// Lowest resourceVersion from which a watch can still be replayed without gaps.
    oldest_replayable: u64,
    tx: broadcast::Sender<Arc<Event>>,
    owners: OwnerIndex,
    next_ip: u32,
    next_cluster_ip: u32,
    /// Process mode: Services get clusterIPs from 10.96.<slot>.11..=254 (the instance's
    /// service CIDR; .1 is the API server, .10 the cluster DNS).
    service_slot: Option<u8>,
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

fn res_key(def: &ResourceDef) -> ResKey {
    (def.group, def.plural)
}

impl State {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn oldest_replayable(&self) -> u64 {
        self.oldest_replayable
    }

    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&res_key(def))?
            .get(&(ns.to_string(), name.to_string()))
    }

    pub fn get_ref(&self, at: &ObjRef) -> Option<&Value> {
        self.objects
            .get(&at.res)?
            .get(&(at.ns.clone(), at.name.clone()))
    }

    /// Where the object with this uid lives, if it exists.
    pub fn find_uid(&self, uid: &str) -> Option<&ObjRef> {
        self.owners.by_uid.get(uid)
    }

    /// Objects that list `owner_uid` among their ownerReferences.
    pub fn dependents_of(&self, owner_uid: &str) -> impl Iterator<Item = &ObjRef> {
        self.owners.dependents.get(owner_uid).into_iter().flatten()
    }

    /// Objects of one resource, in (namespace, name) order; `ns = None` means all namespaces.
    /// One namespace is a range of the sorted map, not a scan of every namespace's objects.
    pub fn list<'a>(
        &'a self,
        def: &ResourceDef,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let from = match ns {
            Some(n) => Bound::Included((n.to_string(), String::new())),
            None => Bound::Unbounded,
        };
        self.objects
            .get(&res_key(def))
            .into_iter()
            .flat_map(move |m| m.range((from.clone(), Bound::Unbounded)))
            .take_while(move |((ons, _), _)| ns.is_none_or(|n| n == ons))
            .map(|(_, v)| v)
    }

    /// Objects in namespace `ns` whose names start with `prefix`, found by a range of the
    /// sorted map instead of a scan (Events are looked up by their object's name this way).
    pub fn list_prefixed<'a>(
        &'a self,
        def: &ResourceDef,
        ns: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(&res_key(def))
            .into_iter()
            .flat_map(move |m| m.range((ns.to_string(), prefix.to_string())..))
            .take_while(move |((ons, name), _)| ons == ns && name.starts_with(prefix))
            .map(|(_, v)| v)
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.get(
            crate::apiserver::resources::by_kind("", "Namespace").expect("namespaces served"),
            "",
            ns,
        )
        .is_some()
    }

    fn emit(
        &mut self,
        def: &'static ResourceDef,
        kind: EventType,
        object: Value,
        previous: Option<Value>,
    ) -> Arc<Value> {
        let object = Arc::new(object);
        let ev = Arc::new(Event {
            rv: self.rv,
            def,
            kind,
            object: object.clone(),
            previous: previous.map(Arc::new),
        });
        if self.ring.len() == self.ring_capacity
            && let Some(dropped) = self.ring.pop_front()
        {
            self.oldest_replayable = dropped.rv;
        }
        self.ring.push_back(ev.clone());
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
        object
    }

    /// Stores a new object, stamping a fresh resourceVersion.
    pub fn insert(&mut self, def: &'static ResourceDef, mut obj: Value) -> Value {
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        self.objects
            .entry(res_key(def))
            .or_default()
            .insert(key, obj.clone());
        self.owners.add(def, &obj);
        self.emit(def, EventType::Added, obj.clone(), None);
        obj
    }

    /// Replaces an existing object; a write that changes nothing keeps the old resourceVersion
    /// and emits no event, as the apiserver does for no-op updates.
    pub fn replace(&mut self, def: &'static ResourceDef, mut obj: Value) -> Value {
        let key = (
            meta_str(&obj, "namespace").to_string(),
            meta_str(&obj, "name").to_string(),
        );
        let old = self
            .objects
            .get(&res_key(def))
            .and_then(|m| m.get(&key))
            .cloned();
        if let Some(old) = &old {
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            if *old == obj {
                return obj;
            }
        }
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        self.objects
            .entry(res_key(def))
            .or_default()
            .insert(key, obj.clone());
        if let Some(old) = &old {
            self.owners.remove(def, old);
        }
        self.owners.add(def, &obj);
        self.emit(def, EventType::Modified, obj.clone(), old);
        obj
    }

    /// Removes an object; the DELETED event carries a fresh resourceVersion.
    pub fn remove(&mut self, def: &'static ResourceDef, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(&res_key(def))?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.owners.remove(def, &obj);
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        self.emit(def, EventType::Deleted, obj.clone(), None);
        Some(obj)
    }

    /// Events of one resource after `rv` still held in the ring.
    pub fn events_since(&self, def: &ResourceDef, rv: u64) -> Vec<Arc<Event>> {
        self.ring
            .iter()
            .filter(|e| e.rv > rv && e.def.plural == def.plural && e.def.group == def.group)
            .cloned()
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn allocate_pod_ip(&mut self) -> String {
        self.next_ip += 1;
        let n = self.next_ip;
        format!("10.244.{}.{}", (n / 250) % 250, n % 250 + 1)
    }

    /// Allocates Service clusterIPs from 10.96.<slot>.0/24 from now on (process mode).
    pub fn use_service_cidr(&mut self, slot: u8) {
        self.service_slot = Some(slot);
    }

    pub fn allocate_cluster_ip(&mut self) -> String {
        if let Some(slot) = self.service_slot {
            return self.allocate_in_slot(slot);
        }
        self.next_cluster_ip += 1;
        let n = self.next_cluster_ip;
        format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1)
    }
}

impl State {
    /// The next clusterIP of 10.96.<slot>.11..=254 that no Service holds (after 244 Services the
    /// CIDR is full and addresses are reused; documented).
    fn allocate_in_slot(&mut self, slot: u8) -> String {
        let services = crate::apiserver::resources::by_kind("", "Service").expect("served");
        let used: std::collections::HashSet<String> = self
            .list(services, None)
            .filter_map(|s| s["spec"]["clusterIP"].as_str().map(str::to_string))
            .collect();
        for _ in 0..244 {
            let host = 11 + (self.next_cluster_ip % 244);
            self.next_cluster_ip += 1;
            let ip = format!("10.96.{slot}.{host}");
            if !used.contains(&ip) {
                return ip;
            }
        }
        format!("10.96.{slot}.{}", 11 + (self.next_cluster_ip % 244))
    }
}

/// Shared store handle: a lock over [`State`]; changes reach watchers and controllers as events.
pub struct Store {
    state: Mutex<State>,
}

impl Store {
    pub fn new(ring_capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(ring_capacity.max(16));
        Arc::new(Self {
            state: Mutex::new(State {
                objects: HashMap::new(),
                rv: 0,
                ring: VecDeque::with_capacity(ring_capacity),
                ring_capacity: ring_capacity.max(1),
                oldest_replayable: 0,
                tx,
                owners: OwnerIndex::default(),
                next_ip: 0,
                next_cluster_ip: 0,
                service_slot: None,
            }),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::by_kind;
    use serde_json::json;

    fn cm(name: &str, v: &str) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default"},"data":{"k":v}})
    }

    #[test]
    fn versions_grow_and_noop_updates_keep_them() {
        let store = Store::new(4);
        let def = by_kind("", "ConfigMap").unwrap();
        let mut s = store.lock();
        let a = s.insert(def, cm("a", "1"));
        assert_eq!(meta_str(&a, "resourceVersion"), "1");
        let same = s.replace(def, cm("a", "1"));
        assert_eq!(meta_str(&same, "resourceVersion"), "1");
        let changed = s.replace(def, cm("a", "2"));
        assert_eq!(meta_str(&changed, "resourceVersion"), "2");
        assert_eq!(s.events_since(def, 0).len(), 2);
    }

    #[test]
    fn a_namespace_lists_its_own_objects_in_name_order() {
        let store = Store::new(16);
        let def = by_kind("", "ConfigMap").unwrap();
        let mut s = store.lock();
        // "team" sorts between "a" and "team-b", and is a prefix of the latter.
        for (ns, name) in [("team-b", "x"), ("team", "b"), ("a", "z"), ("team", "a")] {
            let mut o = cm(name, "1");
            o["metadata"]["namespace"] = json!(ns);
            s.insert(def, o);
        }
        let names = |ns: Option<&str>| -> Vec<String> {
            s.list(def, ns)
                .map(|o| format!("{}/{}", meta_str(o, "namespace"), meta_str(o, "name")))
                .collect()
        };
        assert_eq!(names(Some("team")), ["team/a", "team/b"]);
        assert_eq!(names(Some("team-b")), ["team-b/x"]);
        assert!(names(Some("nobody")).is_empty());
        assert_eq!(names(None), ["a/z", "team/a", "team/b", "team-b/x"]);
    }

    #[test]
    fn owner_index_follows_inserts_replaces_and_removes() {
        let store = Store::new(16);
        let def = by_kind("", "ConfigMap").unwrap();
        let mut s = store.lock();
        let owned_by = |uid: &str| json!([{"uid": uid, "controller": true}]);
        let mut a = cm("a", "1");
        a["metadata"]["uid"] = json!("uid-a");
        a["metadata"]["ownerReferences"] = owned_by("owner-1");
        s.insert(def, a.clone());
        assert_eq!(s.find_uid("uid-a").map(|r| r.name.as_str()), Some("a"));
        assert_eq!(s.dependents_of("owner-1").count(), 1);
        a["metadata"]["ownerReferences"] = owned_by("owner-2");
        s.replace(def, a);
        assert_eq!(s.dependents_of("owner-1").count(), 0);
        assert_eq!(s.dependents_of("owner-2").count(), 1);
        s.remove(def, "default", "a");
        assert_eq!(s.dependents_of("owner-2").count(), 0);
        assert!(s.find_uid("uid-a").is_none());
    }

    #[test]
    fn ring_is_bounded_and_reports_its_horizon() {
        let store = Store::new(4);
        let def = by_kind("", "ConfigMap").unwrap();
        let mut s = store.lock();
        for i in 0..10 {
            s.insert(def, cm(&format!("c{i}"), "x"));
        }
        assert_eq!(s.events_since(def, 0).len(), 4);
        assert_eq!(s.oldest_replayable(), 6);
        assert!(s.remove(def, "default", "c1").is_some());
        assert_eq!(s.list(def, Some("default")).count(), 9);
    }
}
