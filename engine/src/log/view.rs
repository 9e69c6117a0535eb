//! The view: the latest known object per (cluster, kind, namespace, name), kept in sled.
//!
//! The log writer updates it in the same atomic batch as the log entries it appends (a `Deleted` event
//! removes the entry), so a reconciler that runs after an entry was appended always sees at least that
//! state. Reconcilers add what the API servers answered to their own writes with [`View::record_write`].
//! Objects stay in sled (whose cache is bounded by configuration); nothing here keeps a map in memory.

use std::sync::Arc;

use parking_lot::Mutex;

use super::format::{self, FormatError};
use super::{LogError, StoredObject};

/// Read access to the latest objects, plus a way for reconcilers to record their own writes.
///
/// Cheap to clone (two reference counts). Reads are sled point gets or prefix scans.
#[derive(Clone)]
pub struct View {
    tree: sled::Tree,
    /// Serialises read-compare-write of view entries between the log writer and reconcilers, so an older
    /// state never overwrites a newer one.
    write_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").finish_non_exhaustive()
    }
}

impl View {
    pub(crate) fn new(tree: sled::Tree, write_lock: Arc<Mutex<()>>) -> Self {
        Self { tree, write_lock }
    }

    /// The lock the log writer holds while it compares and writes view entries.
    pub(crate) fn write_lock(&self) -> &Mutex<()> {
        &self.write_lock
    }

    /// The latest object `namespace/name` of `kind` in `cluster` (`""` namespace for cluster-scoped kinds).
    pub fn get(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredObject>, LogError> {
        let key = format::view_key(cluster, kind, namespace, name);
        match self.tree.get(key).map_err(LogError::Read)? {
            Some(bytes) => Ok(Some(format::decode_stored(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every object of `kind` in `cluster`, as (namespace, name, object), sorted by namespace then name.
    pub fn list(
        &self,
        cluster: &str,
        kind: &str,
    ) -> Result<Vec<(String, String, StoredObject)>, LogError> {
        let prefix = format::view_prefix_kind(cluster, kind);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (key, value) = item.map_err(LogError::Read)?;
            let (ns, name) = format::split_namespace_name(&key[prefix.len()..])?;
            out.push((ns, name, format::decode_stored(&value)?));
        }
        Ok(out)
    }

    /// Visits every object of `kind` in `cluster` in key order without collecting them:
    /// `visit(namespace, name, resourceVersion, object)`, the object decoded as `T` (any shape serde can
    /// read from the object's JSON, e.g. a struct of the few fields needed, or `serde_json::Value`); an
    /// error from `visit` stops the walk and is returned. Memory stays at one object whatever the count
    /// (the patroller walks every object this way).
    pub fn visit<T: serde::de::DeserializeOwned>(
        &self,
        cluster: &str,
        kind: &str,
        mut visit: impl FnMut(&str, &str, &str, T) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let prefix = format::view_prefix_kind(cluster, kind);
        for item in self.tree.scan_prefix(&prefix) {
            let (key, value) = item.map_err(LogError::Read)?;
            let (ns, name) = format::split_namespace_name(&key[prefix.len()..])?;
            let (rv, object) = format::decode_stored_as::<T>(&value)?;
            visit(&ns, &name, rv, object)?;
        }
        Ok(())
    }

    /// The (namespace, name) of every object of `kind` in `cluster`, sorted, without decoding the objects.
    pub fn names(&self, cluster: &str, kind: &str) -> Result<Vec<(String, String)>, LogError> {
        let prefix = format::view_prefix_kind(cluster, kind);
        let mut out = Vec::new();
        for key in self.tree.scan_prefix(&prefix).keys() {
            let key = key.map_err(LogError::Read)?;
            out.push(format::split_namespace_name(&key[prefix.len()..])?);
        }
        Ok(out)
    }

    /// How many objects of `kind` the view holds in one namespace of `cluster` (keys only, nothing decoded).
    pub fn count_namespace(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<usize, LogError> {
        let prefix = format::view_prefix_namespace(cluster, kind, namespace);
        let mut n = 0;
        for key in self.tree.scan_prefix(&prefix).keys() {
            key.map_err(LogError::Read)?;
            n += 1;
        }
        Ok(n)
    }

    /// Every object of `kind` in one namespace of `cluster`, as (name, object), sorted by name.
    pub fn list_namespace(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Vec<(String, StoredObject)>, LogError> {
        let prefix = format::view_prefix_namespace(cluster, kind, namespace);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&prefix) {
            let (key, value) = item.map_err(LogError::Read)?;
            let name = std::str::from_utf8(&key[prefix.len()..])
                .map_err(|_| LogError::Format(FormatError::Malformed))?;
            out.push((name.to_owned(), format::decode_stored(&value)?));
        }
        Ok(out)
    }

    /// Records what a reconciler itself wrote (the API server's answer); kept only if not older than what is
    /// stored (resourceVersions compared numerically when both parse as u64). `None` = the object is gone.
    ///
    /// Not flushed on its own: it is a cache of the API server's state, made durable by the next log flush
    /// (or sled's periodic flush). After a crash the watch events of the same writes restore it.
    pub fn record_write(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        obj: Option<&serde_json::Value>,
    ) -> Result<(), LogError> {
        for (field, value) in [
            ("cluster", cluster),
            ("kind", kind),
            ("namespace", namespace),
            ("name", name),
        ] {
            format::check_component(field, value)?;
        }
        let key = format::view_key(cluster, kind, namespace, name);
        let _guard = self.write_lock.lock();
        let Some(obj) = obj else {
            self.tree.remove(key).map_err(LogError::Commit)?;
            return Ok(());
        };
        let stored = StoredObject::from_object(obj);
        if let Some(current) = self.tree.get(&key).map_err(LogError::Read)? {
            let current = format::decode_stored(&current)?;
            if !format::not_older(&stored.resource_version, &current.resource_version) {
                return Ok(());
            }
        }
        let bytes = format::encode_stored(&stored)?;
        self.tree.insert(key, bytes).map_err(LogError::Commit)?;
        Ok(())
    }
}
