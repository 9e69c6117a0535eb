//! Events about tenant objects, copied up: a super Event whose `involvedObject` is a Pod or Service in one of
//! a tenant's super namespaces becomes an Event of the same name in the tenant namespace, about the tenant
//! object (namespace and uid translated back). Repeats (`count`, `lastTimestamp`, `series`) update the copy;
//! the copy is never duplicated (same name) and is marked with the super event's uid.

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ANNOTATION_SUPER_UID;

/// Kinds of involved objects whose events are copied.
pub const COPIED_KINDS: &[&str] = &["Pod", "Service"];

/// The involved object of a super event, if it is of a kind whose events are copied: (kind, name).
#[must_use]
pub fn involved(event: &Event) -> Option<(&str, &str)> {
    let obj = &event.involved_object;
    let kind = obj.kind.as_deref()?;
    let name = obj.name.as_deref()?;
    if !COPIED_KINDS.contains(&kind) || name.is_empty() {
        return None;
    }
    Some((kind, name))
}

/// The tenant copy of `super_event`, which happened in super namespace `super_ns` (tenant namespace
/// `tenant_ns`) about the tenant object with uid `tenant_uid`.
#[must_use]
pub fn tenant_event(
    super_event: &Event,
    super_ns: &str,
    tenant_ns: &str,
    tenant_uid: &str,
) -> Event {
    let inv = &super_event.involved_object;
    let translate = |s: &str| s.replace(&format!("{super_ns}/"), &format!("{tenant_ns}/"));
    Event {
        metadata: ObjectMeta {
            name: super_event.metadata.name.clone(),
            namespace: Some(tenant_ns.to_owned()),
            annotations: super_event.metadata.uid.as_ref().map(|uid| {
                std::iter::once((ANNOTATION_SUPER_UID.to_owned(), uid.clone())).collect()
            }),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: inv.api_version.clone(),
            kind: inv.kind.clone(),
            name: inv.name.clone(),
            namespace: Some(tenant_ns.to_owned()),
            uid: Some(tenant_uid.to_owned()).filter(|u| !u.is_empty()),
            field_path: inv.field_path.clone(),
            resource_version: None,
        },
        action: super_event.action.clone(),
        count: super_event.count,
        event_time: super_event.event_time.clone(),
        first_timestamp: super_event.first_timestamp.clone(),
        last_timestamp: super_event.last_timestamp.clone(),
        message: super_event.message.as_deref().map(translate),
        reason: super_event.reason.clone(),
        related: None,
        reporting_component: super_event.reporting_component.clone(),
        reporting_instance: super_event.reporting_instance.clone(),
        series: super_event.series.clone(),
        source: super_event.source.clone(),
        type_: super_event.type_.clone(),
    }
}

/// True when a tenant event is a copy the syncer made of the super event with `super_uid`.
#[must_use]
pub fn is_copy_of(tenant_event: &Event, super_uid: &str) -> bool {
    tenant_event
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_SUPER_UID))
        .is_some_and(|u| u == super_uid)
}

/// The update that brings an existing tenant copy in line with `desired`, or `None` when it already is.
#[must_use]
pub fn update(existing: &Event, desired: &Event) -> Option<Event> {
    let mut probe = desired.clone();
    probe.metadata = existing.metadata.clone();
    if &probe == existing {
        return None;
    }
    Some(probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn super_event(count: i32, last: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1.17a2b3", "namespace": "k1-team", "uid": "ev-uid", "resourceVersion": "88"},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "k1-team", "name": "web-1",
                               "uid": "super-pod-uid", "resourceVersion": "80", "fieldPath": "spec.containers{web}"},
            "reason": "Scheduled",
            "message": "Successfully assigned k1-team/web-1 to node-1",
            "type": "Normal",
            "count": count,
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": last,
            "source": {"component": "default-scheduler"},
            "related": {"kind": "Node", "name": "node-1"}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_copy_names_the_tenant_object_in_the_tenant_namespace() {
        let ev = super_event(1, "2024-01-01T00:00:00Z");
        assert_eq!(involved(&ev), Some(("Pod", "web-1")));
        let copy = tenant_event(&ev, "k1-team", "team", "tenant-pod-uid");
        let v = serde_json::to_value(&copy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["metadata"]["name"], "web-1.17a2b3");
        assert_eq!(v["metadata"]["namespace"], "team");
        assert_eq!(v["metadata"]["annotations"][ANNOTATION_SUPER_UID], "ev-uid");
        assert!(v["metadata"].get("uid").is_none());
        assert!(v["metadata"].get("resourceVersion").is_none());
        assert_eq!(v["involvedObject"]["namespace"], "team");
        assert_eq!(v["involvedObject"]["uid"], "tenant-pod-uid");
        assert_eq!(v["involvedObject"]["name"], "web-1");
        assert_eq!(v["involvedObject"]["fieldPath"], "spec.containers{web}");
        assert!(v["involvedObject"].get("resourceVersion").is_none());
        assert_eq!(v["message"], "Successfully assigned team/web-1 to node-1");
        assert_eq!(v["reason"], "Scheduled");
        assert_eq!(v["source"]["component"], "default-scheduler");
        assert!(v.get("related").is_none());
        assert!(is_copy_of(&copy, "ev-uid"));
        assert!(!is_copy_of(&copy, "other"));
    }

    #[test]
    fn repeats_update_count_and_last_timestamp_and_an_in_sync_copy_is_left_alone() {
        let first = tenant_event(
            &super_event(1, "2024-01-01T00:00:00Z"),
            "k1-team",
            "team",
            "u",
        );
        let mut existing = first.clone();
        existing.metadata.resource_version = Some("5".into());
        existing.metadata.uid = Some("tenant-ev-uid".into());
        assert!(update(&existing, &first).is_none());
        let again = tenant_event(
            &super_event(3, "2024-01-01T00:05:00Z"),
            "k1-team",
            "team",
            "u",
        );
        let upd = update(&existing, &again).unwrap_or_else(|| panic!("count changed"));
        assert_eq!(upd.count, Some(3));
        assert_eq!(upd.metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(upd.metadata.uid.as_deref(), Some("tenant-ev-uid"));
        let v = serde_json::to_value(&upd).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            v["lastTimestamp"]
                .as_str()
                .is_some_and(|t| t.starts_with("2024-01-01T00:05:00"))
        );
    }

    #[test]
    fn events_about_other_kinds_are_not_copied() {
        let mut ev = super_event(1, "2024-01-01T00:00:00Z");
        ev.involved_object.kind = Some("Node".into());
        assert_eq!(involved(&ev), None);
        ev.involved_object.kind = Some("Service".into());
        assert_eq!(involved(&ev), Some(("Service", "web-1")));
    }
}
