//! The super-side verification: a paged LIST of the syncer's super objects of one kind (the kind's super
//! selector, `tenancy.x-k8s.io/controlled=true` for copied-down kinds; the first page at `resourceVersion=0` so a real API server answers
//! from its watch cache), compared with the view. It catches what the view cannot: drift behind the super
//! watch (an event the syncer never received).
//!
//! Differences go into the log as records, exactly like a relist's: a listed object the view does not have
//! (or has at an older version) becomes `Added`/`Modified`, a known object missing from the list a
//! synthetic `Deleted` carrying its last state. The log updates the view and hands each record's work key to
//! its shard, so the reconciler repairs it through the normal path. No resume point is written: the super
//! watch keeps its own position. Objects the view holds at a *newer* version than the list are left alone
//! both ways (the cache may lag, and the reconciler may have written after the snapshot).

use std::collections::HashMap;

use kube::api::{Api, DynamicObject, ListParams};
use serde::de::IgnoredAny;

use crate::log::{LogError, LogSink, View};
use crate::record::{EventType, Record};
use crate::source::mapping::{self, ClusterRole};
use crate::source::relist;

/// Records appended in one call.
const BATCH: usize = 500;

/// What one verification found and appended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Corrections {
    /// Objects listed.
    pub listed: usize,
    /// Listed objects the view did not know.
    pub added: usize,
    /// Listed objects the view knew at an older version.
    pub modified: usize,
    /// Known objects the list did not return.
    pub deleted: usize,
}

impl Corrections {
    /// Corrections appended in total.
    #[must_use]
    pub fn total(&self) -> usize {
        self.added + self.modified + self.deleted
    }
}

/// Why a verification stopped (what was appended before stays).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The LIST failed.
    #[error("failed to list super {kind} objects")]
    List {
        /// Kind.
        kind: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Reading the view or appending to the log failed.
    #[error("failed to read the view or append for {kind}")]
    Log {
        /// Kind.
        kind: String,
        /// Cause.
        #[source]
        source: LogError,
    },
}

/// Lists the super objects of `kind` matching `selector` through `api` (pages of `page_size`), compares
/// them with `view` and appends what differs through `sink`. `role` is the super role with the served
/// tenants (objects of other tenants are ignored).
pub async fn verify(
    api: &Api<DynamicObject>,
    kind: &str,
    selector: Option<&str>,
    role: &ClusterRole,
    view: &View,
    sink: &LogSink,
    page_size: u32,
) -> Result<Corrections, VerifyError> {
    let cluster = role.cluster().to_owned();
    let log_err = |source| VerifyError::Log {
        kind: kind.to_owned(),
        source,
    };
    // What the view knows: (namespace, name) → resourceVersion, without decoding the objects. Taken
    // before the list, so an object the view learns of meanwhile is not mistaken for a deleted one.
    let mut known: HashMap<(String, String), String> = HashMap::new();
    view.visit::<IgnoredAny>(&cluster, kind, |namespace, name, rv, _| {
        known.insert((namespace.to_owned(), name.to_owned()), rv.to_owned());
        Ok(())
    })
    .map_err(log_err)?;
    let mut out = Corrections::default();
    let mut list_rv: Option<String> = None;
    let mut continue_token: Option<String> = None;
    let mut records = Vec::new();
    loop {
        let mut lp = ListParams::default().limit(page_size);
        if let Some(selector) = selector {
            lp = lp.labels(selector);
        }
        lp = match &continue_token {
            Some(token) => lp.continue_token(token),
            None => lp.match_any(),
        };
        let page = api.list(&lp).await.map_err(|source| VerifyError::List {
            kind: kind.to_owned(),
            source,
        })?;
        if list_rv.is_none() {
            list_rv = page.metadata.resource_version.clone();
        }
        let now = mapping::now_micros();
        for object in page.items {
            out.listed += 1;
            let ns = object.metadata.namespace.clone().unwrap_or_default();
            let name = object.metadata.name.clone().unwrap_or_default();
            let rv = object.metadata.resource_version.clone().unwrap_or_default();
            let known_rv = known.remove(&(ns, name));
            let Some(event) = relist::listed_event(known_rv.as_deref(), &rv) else {
                continue;
            };
            let Ok(value) = serde_json::to_value(&object) else {
                continue;
            };
            if let Some(record) = mapping::to_record(role, kind, event, value, now) {
                match event {
                    EventType::Added => out.added += 1,
                    _ => out.modified += 1,
                }
                records.push(record);
            }
            if records.len() >= BATCH {
                flush(sink, &mut records).await.map_err(log_err)?;
            }
        }
        continue_token = page.metadata.continue_.filter(|t| !t.is_empty());
        if continue_token.is_none() {
            break;
        }
    }
    // Known objects the list did not return: gone, unless the view holds them at a newer version than the
    // list's snapshot. Their last state is read again now (it may have gone from the view meanwhile).
    let list_rv = list_rv.unwrap_or_default();
    let now = mapping::now_micros();
    for ((namespace, name), resource_version) in known {
        if !relist::is_gone(&resource_version, &list_rv) {
            continue;
        }
        let Some(stored) = view
            .get(&cluster, kind, &namespace, &name)
            .map_err(log_err)?
        else {
            continue;
        };
        if stored.resource_version != resource_version {
            continue;
        }
        if let Some(mut record) =
            mapping::to_record(role, kind, EventType::Deleted, stored.object, now)
        {
            record.resource_version = list_rv.clone();
            out.deleted += 1;
            records.push(record);
        }
        if records.len() >= BATCH {
            flush(sink, &mut records).await.map_err(log_err)?;
        }
    }
    flush(sink, &mut records).await.map_err(log_err)?;
    Ok(out)
}

async fn flush(sink: &LogSink, records: &mut Vec<Record>) -> Result<(), LogError> {
    if records.is_empty() {
        return Ok(());
    }
    sink.append(std::mem::take(records), None).await
}
