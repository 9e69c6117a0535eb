//! Pod invalidations for the Translation API: a [`SourceLog`] in front of the super cluster's sources that,
//! before a batch is appended, notices super pods that were deleted or replaced by a pod of another uid and
//! publishes them as [`ControlEvent::PodInvalidated`]. Only does work while someone watches translations.

use serde_json::Value;
use tenancy_proto::v1;
use tokio::sync::broadcast;

use super::lifecycle::ControlEvent;
use crate::log::View;
use crate::naming;
use crate::record::{EventType, Record, SUPER_CLUSTER};
use crate::source::relist::Known;
use crate::source::{PortError, SourceLog};

/// A [`SourceLog`] that publishes super pod invalidations, then appends through `inner`.
#[derive(Clone)]
pub struct InvalidationTap<L> {
    inner: L,
    view: View,
    events: broadcast::Sender<ControlEvent>,
}

impl<L> InvalidationTap<L> {
    /// Wraps `inner`; `view` is read for the previous state of a pod.
    pub fn new(inner: L, view: View, events: broadcast::Sender<ControlEvent>) -> Self {
        Self {
            inner,
            view,
            events,
        }
    }
}

/// Where a super pod (JSON) stands for a tenant pod, if it carries the syncer's marks.
pub fn pod_location(super_pod: &Value) -> Option<v1::PodLocation> {
    let id = naming::tenant_identity_from_json(super_pod)?;
    let meta = super_pod.get("metadata")?;
    let field = |f: &str| {
        meta.get(f)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Some(v1::PodLocation {
        cluster_key: id.cluster_key,
        tenant_namespace: id.namespace,
        tenant_pod: id.name,
        tenant_uid: id.uid,
        super_namespace: field("namespace"),
        super_pod: field("name"),
        super_uid: field("uid"),
        node_name: super_pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

impl<L: SourceLog> InvalidationTap<L> {
    fn publish(&self, cluster: &str, kind: &str, records: &[Record]) {
        if cluster != SUPER_CLUSTER || kind != "Pod" || self.events.receiver_count() == 0 {
            return;
        }
        for r in records {
            let gone = match r.event {
                EventType::Deleted => Some(r.object.clone()),
                _ => match self.view.get(SUPER_CLUSTER, "Pod", &r.namespace, &r.name) {
                    Ok(Some(old)) if !old.uid.is_empty() && old.uid != r.uid => Some(old.object),
                    _ => None,
                },
            };
            if let Some(location) = gone.as_ref().and_then(pod_location) {
                let _ = self.events.send(ControlEvent::PodInvalidated(location));
            }
        }
    }
}

impl<L: SourceLog> SourceLog for InvalidationTap<L> {
    async fn append(
        &self,
        cluster: &str,
        kind: &str,
        records: Vec<Record>,
        resume_rv: Option<String>,
    ) -> Result<(), PortError> {
        self.publish(cluster, kind, &records);
        self.inner.append(cluster, kind, records, resume_rv).await
    }

    fn resume_point(&self, cluster: &str, kind: &str) -> Result<Option<String>, PortError> {
        self.inner.resume_point(cluster, kind)
    }

    fn known_version(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, PortError> {
        self.inner.known_version(cluster, kind, namespace, name)
    }

    fn known_all(&self, cluster: &str, kind: &str) -> Result<Vec<Known>, PortError> {
        self.inner.known_all(cluster, kind)
    }

    fn known_object(
        &self,
        cluster: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, PortError> {
        self.inner.known_object(cluster, kind, namespace, name)
    }
}
