//! In-memory object storage with one global revision (like etcd's) and a bounded history of
//! pre-serialized events for resuming watches.
//!
//! Objects are kept as their JSON bytes plus the parsed labels (what label selectors need); everything else
//! is parsed on demand. Every write bumps the revision by exactly one and appends one event, so the history
//! holds consecutive revisions. Watchers are woken through a `tokio::sync::watch` of the revision and read
//! the history themselves (no per-watcher queues).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// One stored version of an object.
#[derive(Clone, Debug)]
pub struct StoredObject {
    /// The object as JSON (its `metadata.resourceVersion` equals `rv`).
    pub json: Bytes,
    /// `metadata.labels`.
    pub labels: Arc<Labels>,
    /// The revision that wrote this version.
    pub rv: u64,
}

impl StoredObject {
    /// Parses the JSON (stored JSON always parses; a failure yields `Value::Null`).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

/// Watch event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// Namespace + name of an object; the ordering is the order of etcd keys (and of list results).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// One change, kept in the history ring and shared by all watchers.
#[derive(Debug)]
pub struct Event {
    /// Revision of the change.
    pub rv: u64,
    /// What happened.
    pub event_type: EventType,
    /// Storage key of the type (`group/plural`).
    pub resource: Arc<str>,
    /// Which object.
    pub key: ObjectKey,
    /// The new version (for `Deleted`: the last state, carrying the deletion's resourceVersion).
    pub object: StoredObject,
    /// The version before the change (`None` for `Added`).
    pub prev: Option<StoredObject>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Create of an existing key.
    #[error("object already exists")]
    AlreadyExists,
    /// Update/delete of a missing key.
    #[error("object not found")]
    NotFound,
    /// The object's revision is not the expected one.
    #[error("object revision is {current}, expected {expected}")]
    Conflict {
        /// Current revision of the object.
        current: u64,
        /// Revision the caller expected.
        expected: u64,
    },
    /// The requested revision is older than the kept history.
    #[error("revision {requested} is compacted (oldest available: {oldest})")]
    Compacted {
        /// Requested revision.
        requested: u64,
        /// Oldest revision from which history is complete.
        oldest: u64,
    },
}

/// A consistent list of one type at one revision.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Objects in key order.
    pub items: Vec<(ObjectKey, StoredObject)>,
    /// Revision the snapshot reflects.
    pub revision: u64,
}

struct Inner {
    revision: u64,
    resources: HashMap<Arc<str>, BTreeMap<ObjectKey, StoredObject>>,
    history: VecDeque<Arc<Event>>,
    /// Every change after this revision is in `history`.
    oldest_resumable: u64,
    object_count: usize,
}

/// The storage of one simulator instance.
pub struct Store {
    inner: Mutex<Inner>,
    window: usize,
    revision_tx: watch::Sender<u64>,
}

fn labels_of(obj: &Value) -> Labels {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn set_resource_version(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_string(), Value::String(rv.to_string()));
    }
}

fn encode(obj: &mut Value, rv: u64) -> StoredObject {
    set_resource_version(obj, rv);
    let json = Bytes::from(serde_json::to_vec(obj).unwrap_or_default());
    StoredObject {
        json,
        labels: Arc::new(labels_of(obj)),
        rv,
    }
}

impl Store {
    /// An empty store keeping `window` events of history.
    pub fn new(window: usize) -> Store {
        let (revision_tx, _) = watch::channel(0);
        Store {
            inner: Mutex::new(Inner {
                revision: 0,
                resources: HashMap::new(),
                history: VecDeque::new(),
                oldest_resumable: 0,
                object_count: 0,
            }),
            window,
            revision_tx,
        }
    }

    /// Current global revision.
    pub fn revision(&self) -> u64 {
        self.inner.lock().revision
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        self.inner.lock().object_count
    }

    /// Bytes of JSON held for the current objects and, separately, for the history (versions shared between
    /// the two are counted in both).
    pub fn stored_bytes(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        let objects = inner
            .resources
            .values()
            .flat_map(|m| m.values())
            .map(|o| o.json.len())
            .sum();
        let history = inner
            .history
            .iter()
            .map(|e| e.object.json.len() + e.prev.as_ref().map_or(0, |p| p.json.len()))
            .sum();
        (objects, history)
    }

    /// The oldest revision a watch can resume from.
    pub fn oldest_resumable(&self) -> u64 {
        self.inner.lock().oldest_resumable
    }

    /// A receiver that changes whenever the revision does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// Reads one object.
    pub fn get(&self, resource: &str, key: &ObjectKey) -> Option<StoredObject> {
        self.inner
            .lock()
            .resources
            .get(resource)
            .and_then(|m| m.get(key))
            .cloned()
    }

    fn commit(
        &self,
        mut inner: parking_lot::MutexGuard<'_, Inner>,
        event_type: EventType,
        resource: &str,
        key: ObjectKey,
        obj: &mut Value,
    ) -> StoredObject {
        inner.revision += 1;
        let rv = inner.revision;
        let stored = encode(obj, rv);
        let resource_arc: Arc<str> = match inner.resources.get_key_value(resource) {
            Some((k, _)) => k.clone(),
            None => Arc::from(resource),
        };
        let map = inner.resources.entry(resource_arc.clone()).or_default();
        let prev = if event_type == EventType::Deleted {
            map.remove(&key)
        } else {
            map.insert(key.clone(), stored.clone())
        };
        match (event_type, prev.is_some()) {
            (EventType::Added, _) => inner.object_count += 1,
            (EventType::Deleted, true) => inner.object_count -= 1,
            _ => {}
        }
        let event = Arc::new(Event {
            rv,
            event_type,
            resource: resource_arc,
            key,
            object: stored.clone(),
            prev,
        });
        inner.history.push_back(event);
        while inner.history.len() > self.window {
            if let Some(old) = inner.history.pop_front() {
                inner.oldest_resumable = old.rv;
            }
        }
        if self.window == 0 {
            inner.oldest_resumable = rv;
        }
        drop(inner);
        self.revision_tx.send_replace(rv);
        stored
    }

    /// Creates an object; sets its `metadata.resourceVersion`.
    pub fn create(
        &self,
        resource: &str,
        key: ObjectKey,
        obj: &mut Value,
    ) -> Result<StoredObject, StoreError> {
        let inner = self.inner.lock();
        if inner
            .resources
            .get(resource)
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(StoreError::AlreadyExists);
        }
        Ok(self.commit(inner, EventType::Added, resource, key, obj))
    }

    /// Replaces an object if its revision is still `expected_rv`.
    pub fn update(
        &self,
        resource: &str,
        key: ObjectKey,
        expected_rv: u64,
        obj: &mut Value,
    ) -> Result<StoredObject, StoreError> {
        let inner = self.inner.lock();
        let current = inner
            .resources
            .get(resource)
            .and_then(|m| m.get(&key))
            .ok_or(StoreError::NotFound)?;
        if current.rv != expected_rv {
            return Err(StoreError::Conflict {
                current: current.rv,
                expected: expected_rv,
            });
        }
        Ok(self.commit(inner, EventType::Modified, resource, key, obj))
    }

    /// Removes an object if its revision is still `expected_rv`; returns its last state carrying the
    /// deletion's resourceVersion (what DELETED events and DELETE responses show).
    pub fn delete(
        &self,
        resource: &str,
        key: ObjectKey,
        expected_rv: u64,
    ) -> Result<StoredObject, StoreError> {
        let inner = self.inner.lock();
        let current = inner
            .resources
            .get(resource)
            .and_then(|m| m.get(&key))
            .ok_or(StoreError::NotFound)?;
        if current.rv != expected_rv {
            return Err(StoreError::Conflict {
                current: current.rv,
                expected: expected_rv,
            });
        }
        let mut last = current.value();
        Ok(self.commit(inner, EventType::Deleted, resource, key, &mut last))
    }

    /// Objects of one type (optionally one namespace) at the current revision.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Snapshot {
        let inner = self.inner.lock();
        Snapshot {
            items: collect(&inner, resource, namespace),
            revision: inner.revision,
        }
    }

    /// Objects of one type at a past revision, rebuilt by undoing the kept history; `Compacted` when the
    /// history no longer reaches back that far.
    pub fn list_at(
        &self,
        resource: &str,
        namespace: Option<&str>,
        revision: u64,
    ) -> Result<Snapshot, StoreError> {
        let inner = self.inner.lock();
        if revision >= inner.revision {
            return Ok(Snapshot {
                items: collect(&inner, resource, namespace),
                revision: inner.revision,
            });
        }
        if revision < inner.oldest_resumable {
            return Err(StoreError::Compacted {
                requested: revision,
                oldest: inner.oldest_resumable,
            });
        }
        let mut items: BTreeMap<ObjectKey, StoredObject> =
            collect(&inner, resource, namespace).into_iter().collect();
        for event in inner.history.iter().rev().take_while(|e| e.rv > revision) {
            if &*event.resource != resource || namespace.is_some_and(|ns| ns != event.key.namespace)
            {
                continue;
            }
            match &event.prev {
                Some(prev) => {
                    items.insert(event.key.clone(), prev.clone());
                }
                None => {
                    items.remove(&event.key);
                }
            }
        }
        Ok(Snapshot {
            items: items.into_iter().collect(),
            revision,
        })
    }

    /// Events with a revision above `after` (at most `max`), or `Compacted` if some were forgotten.
    pub fn events_after(&self, after: u64, max: usize) -> Result<Vec<Arc<Event>>, StoreError> {
        let inner = self.inner.lock();
        if after < inner.oldest_resumable {
            return Err(StoreError::Compacted {
                requested: after,
                oldest: inner.oldest_resumable,
            });
        }
        let start = inner.history.partition_point(|e| e.rv <= after);
        Ok(inner
            .history
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect())
    }

    /// Forgets all history: watches and continue tokens from before now get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.inner.lock();
        inner.history.clear();
        inner.oldest_resumable = inner.revision;
    }

    /// Keys of all objects of one type in one namespace (or all).
    pub fn keys(&self, resource: &str, namespace: Option<&str>) -> Vec<ObjectKey> {
        let inner = self.inner.lock();
        collect(&inner, resource, namespace)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// Storage keys of every type that has objects in `namespace`.
    pub fn resources_with_objects_in(&self, namespace: &str) -> Vec<String> {
        let inner = self.inner.lock();
        inner
            .resources
            .iter()
            .filter(|(_, m)| m.keys().any(|k| k.namespace == namespace))
            .map(|(r, _)| r.to_string())
            .collect()
    }
}

fn collect(
    inner: &Inner,
    resource: &str,
    namespace: Option<&str>,
) -> Vec<(ObjectKey, StoredObject)> {
    let Some(map) = inner.resources.get(resource) else {
        return Vec::new();
    };
    match namespace {
        None => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(ns) => {
            let start = ObjectKey::new(ns, "");
            map.range(start..)
                .take_while(|(k, _)| k.namespace == ns)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, v: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "labels": {"v": v}}})
    }

    #[test]
    fn writes_bump_one_global_revision_and_record_events() {
        let store = Store::new(100);
        let a = store
            .create("/pods", ObjectKey::new("ns", "a"), &mut obj("a", "1"))
            .expect("create");
        assert_eq!(a.rv, 1);
        assert!(
            std::str::from_utf8(&a.json)
                .expect("utf8")
                .contains("\"resourceVersion\":\"1\"")
        );
        let b = store
            .create("/configmaps", ObjectKey::new("ns", "b"), &mut obj("b", "1"))
            .expect("create");
        assert_eq!(b.rv, 2);
        assert_eq!(
            store
                .create("/pods", ObjectKey::new("ns", "a"), &mut obj("a", "1"))
                .unwrap_err(),
            StoreError::AlreadyExists
        );
        let err = store
            .update("/pods", ObjectKey::new("ns", "a"), 7, &mut obj("a", "2"))
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::Conflict {
                current: 1,
                expected: 7
            }
        );
        let a2 = store
            .update("/pods", ObjectKey::new("ns", "a"), 1, &mut obj("a", "2"))
            .expect("update");
        assert_eq!(a2.rv, 3);
        assert_eq!(a2.labels.get("v").map(String::as_str), Some("2"));
        let gone = store
            .delete("/pods", ObjectKey::new("ns", "a"), 3)
            .expect("delete");
        assert_eq!(gone.rv, 4);
        assert!(
            std::str::from_utf8(&gone.json)
                .expect("utf8")
                .contains("\"resourceVersion\":\"4\"")
        );
        let events = store.events_after(0, 100).expect("history");
        let types: Vec<_> = events.iter().map(|e| (e.rv, e.event_type)).collect();
        assert_eq!(
            types,
            vec![
                (1, EventType::Added),
                (2, EventType::Added),
                (3, EventType::Modified),
                (4, EventType::Deleted)
            ]
        );
        assert_eq!(store.object_count(), 1);
        assert_eq!(store.events_after(2, 100).expect("history").len(), 2);
    }

    #[test]
    fn history_window_and_compaction_make_old_revisions_gone() {
        let store = Store::new(2);
        for i in 0..5 {
            store
                .create(
                    "/cm",
                    ObjectKey::new("ns", &format!("o{i}")),
                    &mut obj("o", "1"),
                )
                .expect("create");
        }
        assert!(store.events_after(2, 10).is_err());
        assert_eq!(store.events_after(3, 10).expect("kept").len(), 2);
        store.compact();
        assert!(store.events_after(4, 10).is_err());
        assert_eq!(store.events_after(5, 10).expect("current").len(), 0);
    }

    #[test]
    fn list_at_rebuilds_past_state_from_history() {
        let store = Store::new(100);
        let key = ObjectKey::new("ns", "a");
        store
            .create("/cm", key.clone(), &mut obj("a", "1"))
            .expect("create");
        store
            .update("/cm", key.clone(), 1, &mut obj("a", "2"))
            .expect("update");
        store
            .create("/cm", ObjectKey::new("ns", "b"), &mut obj("b", "1"))
            .expect("create");
        store.delete("/cm", key.clone(), 2).expect("delete");
        let at1 = store.list_at("/cm", Some("ns"), 1).expect("rebuild");
        assert_eq!(at1.items.len(), 1);
        assert_eq!(at1.items[0].1.rv, 1);
        let at3 = store.list_at("/cm", None, 3).expect("rebuild");
        assert_eq!(
            at3.items
                .iter()
                .map(|(k, _)| k.name.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let now = store.list("/cm", Some("ns"));
        assert_eq!(now.items.len(), 1);
        assert_eq!(now.revision, 4);
        store.compact();
        assert!(store.list_at("/cm", None, 3).is_err());
    }

    #[test]
    fn namespace_list_is_in_key_order_and_scoped() {
        let store = Store::new(10);
        for (ns, name) in [("b", "x"), ("a", "z"), ("a", "y"), ("c", "w")] {
            store
                .create("/cm", ObjectKey::new(ns, name), &mut obj(name, "1"))
                .expect("create");
        }
        let all: Vec<_> = store
            .list("/cm", None)
            .items
            .into_iter()
            .map(|(k, _)| (k.namespace, k.name))
            .collect();
        assert_eq!(all[0], ("a".to_string(), "y".to_string()));
        assert_eq!(all[1], ("a".to_string(), "z".to_string()));
        assert_eq!(store.list("/cm", Some("a")).items.len(), 2);
        assert_eq!(store.list("/cm", Some("b")).items.len(), 1);
    }
}
