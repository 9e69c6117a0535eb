//! Patrol checks of the kinds synced today (Namespace, Pod): cheap comparisons on the JSON the view holds.
//!
//! A check only decides whether a pair *may* need a repair; the reconciler decides what to write (and
//! re-reads live before anything destructive), so a false "different" costs one reconcile that writes
//! nothing, while a missed difference waits for the next watch event. Each check compares what the
//! reconciler owns: the syncer's uid mark, the tenant's labels and images down, node and phase up.

use serde_json::Value;

use super::diff::Verdict;
use crate::naming::{ANNOTATION_UID, RESERVED_PREFIX};

fn deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn uid(object: &Value) -> Option<&str> {
    object.pointer("/metadata/uid").and_then(Value::as_str)
}

fn uid_mark(object: &Value) -> Option<&str> {
    object
        .get("metadata")?
        .get("annotations")?
        .get(ANNOTATION_UID)?
        .as_str()
}

/// Presence, deletions and the uid mark: what every kind shares. `None` = both present and the copy stands
/// for this tenant object (the kind compares further).
fn common(tenant: Option<&Value>, copy: Option<&Value>) -> Option<Verdict> {
    match (tenant, copy) {
        (None, None) => Some(Verdict::InSync),
        (Some(_), None) => Some(Verdict::Missing),
        // A copy already being deleted needs nothing more from the patrol.
        (None, Some(s)) if deleting(s) => Some(Verdict::InSync),
        (None, Some(_)) => Some(Verdict::Orphan),
        (Some(t), Some(s)) => {
            if uid_mark(s) != uid(t) {
                // A copy of an older tenant object of the same name.
                Some(Verdict::Different)
            } else if deleting(t) && !deleting(s) {
                Some(Verdict::Different)
            } else {
                None
            }
        }
    }
}

/// The Namespace check: presence and the uid mark.
#[must_use]
pub fn namespace(tenant: Option<&Value>, copy: Option<&Value>) -> Verdict {
    common(tenant, copy).unwrap_or(Verdict::InSync)
}

/// The Pod check: presence and the uid mark; down: the tenant's own labels and container images; up: the
/// node the super pod runs on and its phase.
#[must_use]
pub fn pod(tenant: Option<&Value>, copy: Option<&Value>) -> Verdict {
    if let Some(verdict) = common(tenant, copy) {
        return verdict;
    }
    let (Some(t), Some(s)) = (tenant, copy) else {
        return Verdict::InSync;
    };
    if deleting(s) {
        return Verdict::InSync;
    }
    let labels_differ = t
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_some_and(|labels| {
            labels.iter().any(|(key, value)| {
                !key.contains(RESERVED_PREFIX)
                    && s.get("metadata")
                        .and_then(|m| m.get("labels"))
                        .and_then(|l| l.get(key))
                        != Some(value)
            })
        });
    if labels_differ || images_differ(t, s) {
        return Verdict::Different;
    }
    let field = |o: &'_ Value, pointer: &str| {
        o.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let super_node = field(s, "/spec/nodeName");
    if super_node.is_some() && super_node != field(t, "/spec/nodeName") {
        return Verdict::Different;
    }
    let super_phase = field(s, "/status/phase");
    if super_phase.is_some() && super_phase != field(t, "/status/phase") {
        return Verdict::Different;
    }
    Verdict::InSync
}

fn images_differ(t: &Value, s: &Value) -> bool {
    ["/spec/containers", "/spec/initContainers"]
        .iter()
        .any(|pointer| {
            let (Some(want), Some(have)) = (
                t.pointer(pointer).and_then(Value::as_array),
                s.pointer(pointer).and_then(Value::as_array),
            ) else {
                return false;
            };
            want.iter().any(|w| {
                have.iter()
                    .find(|h| h.get("name") == w.get("name"))
                    .is_some_and(|h| h.get("image") != w.get("image"))
            })
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant_pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "team", "uid": "t-1",
                         "labels": {"app": "web", "tenancy.x-k8s.io/forged": "x"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.27"}]},
            "status": {"phase": "Running"}
        })
    }

    fn super_pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "k-team", "uid": "s-1",
                         "labels": {"app": "web", "tenancy.x-k8s.io/controlled": "true"},
                         "annotations": {"tenancy.x-k8s.io/uid": "t-1"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx:1.27"}]},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn a_synced_pod_pair_is_in_sync() {
        assert_eq!(
            pod(Some(&tenant_pod()), Some(&super_pod())),
            Verdict::InSync
        );
    }

    #[test]
    fn presence_decides_missing_and_orphan() {
        assert_eq!(pod(Some(&tenant_pod()), None), Verdict::Missing);
        assert_eq!(pod(None, Some(&super_pod())), Verdict::Orphan);
        assert_eq!(pod(None, None), Verdict::InSync);
        let mut going = super_pod();
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(
            pod(None, Some(&going)),
            Verdict::InSync,
            "a copy being deleted is not an orphan to repair"
        );
    }

    #[test]
    fn edited_labels_images_node_or_phase_are_different() {
        let t = tenant_pod();
        let mut s = super_pod();
        s["metadata"]["labels"]["app"] = json!("edited");
        assert_eq!(pod(Some(&t), Some(&s)), Verdict::Different);
        let mut s = super_pod();
        s["metadata"]["labels"]
            .as_object_mut()
            .map(|l| l.remove("app"));
        assert_eq!(pod(Some(&t), Some(&s)), Verdict::Different);
        let mut s = super_pod();
        s["spec"]["containers"][0]["image"] = json!("nginx:1.26");
        assert_eq!(pod(Some(&t), Some(&s)), Verdict::Different);
        let mut s = super_pod();
        s["status"]["phase"] = json!("Succeeded");
        assert_eq!(pod(Some(&t), Some(&s)), Verdict::Different);
        let mut s = super_pod();
        s["spec"]["nodeName"] = json!("n2");
        assert_eq!(pod(Some(&t), Some(&s)), Verdict::Different);
    }

    #[test]
    fn a_copy_of_an_older_tenant_object_is_different() {
        let mut s = super_pod();
        s["metadata"]["annotations"]["tenancy.x-k8s.io/uid"] = json!("t-0");
        assert_eq!(pod(Some(&tenant_pod()), Some(&s)), Verdict::Different);
        let ns_t = json!({"metadata": {"name": "team", "uid": "n-1"}});
        let ns_s =
            json!({"metadata": {"name": "k-team", "annotations": {"tenancy.x-k8s.io/uid": "n-0"}}});
        assert_eq!(namespace(Some(&ns_t), Some(&ns_s)), Verdict::Different);
        let ns_ok =
            json!({"metadata": {"name": "k-team", "annotations": {"tenancy.x-k8s.io/uid": "n-1"}}});
        assert_eq!(namespace(Some(&ns_t), Some(&ns_ok)), Verdict::InSync);
    }

    #[test]
    fn a_tenant_deletion_not_mirrored_is_different() {
        let mut t = tenant_pod();
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(pod(Some(&t), Some(&super_pod())), Verdict::Different);
    }
}
