//! Pod reconcile rules, both directions, as a pure function from the two sides' state to the writes needed
//! ([`plan`]). The executor (`super::SyncReconciler`) performs the writes in order.
//!
//! Down (tenant → super): the super pod is the tenant pod translated ([`desired_super_pod`]); of an existing
//! super pod only the mutable fields are kept in sync: labels, annotations, container and init-container
//! images, `activeDeadlineSeconds`, and tolerations added by the tenant. A tenant pod with `spec.nodeName`
//! preset is not created in the super cluster (no DaemonSet-style placement); a Warning event says so.
//!
//! Up (super → tenant): `status` is copied with the status subresource, the node binding with the tenant's
//! `pods/binding` subresource (status first, so a tenant pod bound by the syncer always shows
//! `PodScheduled=True`, which is how a later absence of its super pod is told apart from a preset node name),
//! transparent labels/annotations with a metadata update.
//!
//! Deletion:
//! * tenant pod deleting → super pod deleted with the tenant's grace period; once the super pod is gone, the
//!   tenant pod is deleted with grace 0 (there is no tenant kubelet to finish it);
//! * tenant pod gone → super pod deleted (after a live check that the tenant pod is really gone);
//! * super pod deleting or gone while the tenant pod is bound → tenant pod deleted (grace mirrored, or 0);
//!   while it is not bound → the super pod is re-created once the old one is gone.
//! * Exception: a bound tenant pod records the uid of the super namespace its copy lives in
//!   ([`ANNOTATION_SUPER_NAMESPACE_UID`]). When that namespace itself is gone (the tenant was unregistered,
//!   which deletes its super namespaces, and registered again), the missing super pod was not evicted: it is
//!   created again, on the node the tenant pod is bound to.
//!
//! Safety: only a super pod whose marks name this tenant and namespace is ever written ([`Ownership`]). One
//! whose uid mark names an older tenant pod (deleted and re-created under the same name, as StatefulSets do)
//! is deleted with a precondition on its own uid, after a live check that the tenant pod it stood for is gone,
//! and the new one is then created. Anything else occupying the name is left alone and reported.

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::metadata::{self, Ownership, Placement, StringMap};
use super::pod_spec::super_spec;
use super::tenants::TenantInfo;

/// Event reason for a tenant pod the syncer will not run.
pub const REASON_NOT_SUPPORTED: &str = "NotSupported";
/// Event reason for a tenant pod that cannot be translated.
pub const REASON_INVALID: &str = "InvalidPod";
/// Event reason when an API server rejects a translated write as invalid (tried again only when the object
/// changes).
pub const REASON_SYNC_REJECTED: &str = "SyncRejected";
/// Event reason for a tenant pod whose super name is taken by an object the syncer does not own.
pub const REASON_NAME_CONFLICT: &str = "SuperNameConflict";

/// Annotation on a bound tenant pod: uid of the super namespace its super copy was in. A bound tenant pod
/// without a super pod is deleted (mirroring the super pod's loss) only while this namespace is the current
/// one; a pod bound through an earlier incarnation of its super namespace gets its copy created again.
pub const ANNOTATION_SUPER_NAMESPACE_UID: &str = "tenancy.x-k8s.io/super-namespace-uid";

/// One write the reconcile of a pod needs, in execution order.
#[derive(Clone, Debug, PartialEq)]
pub enum PodAction {
    /// Create the super pod.
    CreateSuper(Box<Pod>),
    /// Replace the super pod (carries its resourceVersion: optimistic concurrency).
    UpdateSuper(Box<Pod>),
    /// Delete the super pod, with a precondition on its own uid.
    DeleteSuper {
        /// uid of the super pod (precondition).
        super_uid: String,
        /// Grace period; `None` = the pod's default.
        grace: Option<i64>,
        /// Check with a live read, before deleting, that the tenant pod named by `stale_tenant_uid` is gone.
        verify_tenant_gone: Option<String>,
    },
    /// Replace the tenant pod's status.
    UpdateTenantStatus(Box<PodStatus>),
    /// Bind the tenant pod to this node (`pods/binding`).
    BindTenant {
        /// Node name, as in the super pod.
        node: String,
    },
    /// Replace the tenant pod's labels and annotations (transparent keys copied up).
    UpdateTenantMeta {
        /// New labels.
        labels: StringMap,
        /// New annotations.
        annotations: StringMap,
    },
    /// Delete the tenant pod, with a precondition on its uid.
    DeleteTenant {
        /// Grace period (0 when the super pod is already gone).
        grace: i64,
        /// Check with a live read, before deleting, that the super pod is really gone.
        verify_super_gone: bool,
    },
    /// Report on the tenant pod with a Warning event (once per tenant pod and reason); no retry.
    Report {
        /// Event reason.
        reason: &'static str,
        /// Event message.
        message: String,
    },
}

/// Why a tenant pod is not copied to the super cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// `spec.nodeName` was set by the tenant.
    #[error(
        "spec.nodeName is preset to {0:?}; pods placed on a node by the tenant are not supported"
    )]
    NodeNamePreset(String),
    /// The object has no spec.
    #[error("the pod has no spec")]
    NoSpec,
}

/// The super pod for a new tenant pod living in super namespace `super_namespace`; rejects a tenant pod
/// with a preset node name.
pub fn desired_super_pod(
    tenant_pod: &Pod,
    tenant: &TenantInfo,
    super_namespace: &str,
) -> Result<Pod, Rejection> {
    if let Some(node) = node_name(tenant_pod) {
        return Err(Rejection::NodeNamePreset(node.to_owned()));
    }
    translate(tenant_pod, tenant, super_namespace)
}

/// The translation of a tenant pod, whatever its node name (for comparing against an existing super pod
/// after the tenant pod was bound).
fn translate(
    tenant_pod: &Pod,
    tenant: &TenantInfo,
    super_namespace: &str,
) -> Result<Pod, Rejection> {
    let spec = tenant_pod.spec.as_ref().ok_or(Rejection::NoSpec)?;
    Ok(Pod {
        metadata: metadata::super_meta(
            &tenant_pod.metadata,
            tenant,
            Placement::Namespaced { super_namespace },
        ),
        spec: Some(super_spec(
            spec,
            tenant,
            tenant_pod.metadata.namespace.as_deref().unwrap_or_default(),
        )),
        status: None,
    })
}

/// The super pod with its mutable fields brought in line with `desired`; `None` when already in sync.
#[must_use]
pub fn super_update(desired: &Pod, actual: &Pod, tenant: &TenantInfo) -> Option<Pod> {
    let mut out = actual.clone();
    let mut changed = false;
    if let Some((labels, annotations)) =
        metadata::down_update(&desired.metadata, &actual.metadata, tenant, &[])
    {
        out.metadata.labels = Some(labels);
        out.metadata.annotations = Some(annotations);
        changed = true;
    }
    if let (Some(want), Some(have)) = (desired.spec.as_ref(), out.spec.as_mut()) {
        let images = |cs: &[k8s_openapi::api::core::v1::Container], name: &str| {
            cs.iter().find(|c| c.name == name).map(|c| c.image.clone())
        };
        let want_init = want.init_containers.clone().unwrap_or_default();
        let pairs = have
            .containers
            .iter_mut()
            .map(|c| (c, &want.containers[..]))
            .chain(
                have.init_containers
                    .iter_mut()
                    .flatten()
                    .map(|c| (c, &want_init[..])),
            );
        for (container, wanted) in pairs {
            if let Some(image) = images(wanted, &container.name)
                && image != container.image
            {
                container.image = image;
                changed = true;
            }
        }
        if want.active_deadline_seconds.is_some()
            && want.active_deadline_seconds != have.active_deadline_seconds
        {
            have.active_deadline_seconds = want.active_deadline_seconds;
            changed = true;
        }
        for toleration in want.tolerations.iter().flatten() {
            let present = have.tolerations.iter().flatten().any(|t| t == toleration);
            if !present {
                have.tolerations
                    .get_or_insert_with(Vec::new)
                    .push(toleration.clone());
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The status the tenant pod should show: the super pod's, without `observedGeneration` (top level and per
/// condition), which counts the *super* pod's generations and means nothing against the tenant pod's.
#[must_use]
pub fn tenant_status(super_pod: &Pod) -> PodStatus {
    let mut status = super_pod.status.clone().unwrap_or_default();
    status.observed_generation = None;
    for condition in status.conditions.iter_mut().flatten() {
        condition.observed_generation = None;
    }
    status
}

/// True when the tenant pod was bound by the syncer (node name set and `PodScheduled=True`, which the
/// syncer copies up before binding), as opposed to a node name preset by the tenant.
#[must_use]
pub fn bound_by_syncer(tenant_pod: &Pod) -> bool {
    node_name(tenant_pod).is_some()
        && tenant_pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "PodScheduled" && c.status == "True")
            })
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The writes that bring the super pod and the tenant pod in line; empty when both are in sync.
///
/// `tenant_pod` and `super_pod` are the latest known states (`None` = absent), `super_namespace` the
/// translated namespace and `super_namespace_uid` its uid when it is known to exist.
#[must_use]
pub fn plan(
    tenant_pod: Option<&Pod>,
    super_pod: Option<&Pod>,
    tenant: &TenantInfo,
    tenant_namespace: &str,
    super_namespace: &str,
    super_namespace_uid: Option<&str>,
) -> Vec<PodAction> {
    let ownership = super_pod.map(|s| metadata::ownership(&s.metadata, tenant, tenant_namespace));
    let Some(t) = tenant_pod else {
        // Tenant pod gone: delete our super copy (after a live check), leave anything else alone.
        return match (super_pod, ownership) {
            (Some(s), Some(Ownership::Ours { tenant_uid })) if !deleting(s) => {
                vec![PodAction::DeleteSuper {
                    super_uid: s.metadata.uid.clone().unwrap_or_default(),
                    grace: None,
                    verify_tenant_gone: Some(tenant_uid),
                }]
            }
            _ => Vec::new(),
        };
    };
    let t_uid = t.metadata.uid.clone().unwrap_or_default();
    match (super_pod, ownership) {
        (Some(s), Some(Ownership::Ours { tenant_uid })) if tenant_uid == t_uid => {
            plan_both(t, s, tenant, super_namespace, super_namespace_uid)
        }
        (Some(s), Some(Ownership::Ours { tenant_uid })) => {
            // A copy of an older tenant pod of the same name: replace it once that one is verifiably gone.
            if deleting(s) {
                Vec::new()
            } else {
                vec![PodAction::DeleteSuper {
                    super_uid: s.metadata.uid.clone().unwrap_or_default(),
                    grace: None,
                    verify_tenant_gone: Some(tenant_uid),
                }]
            }
        }
        (Some(_), _) => vec![PodAction::Report {
            reason: REASON_NAME_CONFLICT,
            message: format!(
                "pod {super_namespace}/{} exists in the super cluster and does not belong to this pod; \
                 it is left alone",
                t.metadata.name.as_deref().unwrap_or_default()
            ),
        }],
        (None, _) => plan_missing_super(t, tenant, super_namespace, super_namespace_uid),
    }
}

/// Tenant pod present, no super pod.
fn plan_missing_super(
    t: &Pod,
    tenant: &TenantInfo,
    super_namespace: &str,
    super_namespace_uid: Option<&str>,
) -> Vec<PodAction> {
    if !deleting(t)
        && bound_by_syncer(t)
        && let Some(through) = bound_through(t)
        && super_namespace_uid != Some(through)
    {
        // Its copy went with an earlier incarnation of the super namespace (the tenant was removed and
        // registered again): nothing evicted it, so it is created again where the tenant pod is bound.
        return match recreate_on_node(t, tenant, super_namespace) {
            Ok(pod) => vec![PodAction::CreateSuper(Box::new(pod))],
            Err(rejection) => vec![PodAction::Report {
                reason: REASON_INVALID,
                message: rejection.to_string(),
            }],
        };
    }
    if deleting(t) || bound_by_syncer(t) {
        // Its super pod is gone: finish (or mirror) the deletion in the tenant.
        return vec![PodAction::DeleteTenant {
            grace: 0,
            verify_super_gone: true,
        }];
    }
    match desired_super_pod(t, tenant, super_namespace) {
        Ok(pod) => vec![PodAction::CreateSuper(Box::new(pod))],
        Err(rejection @ Rejection::NodeNamePreset(_)) => vec![PodAction::Report {
            reason: REASON_NOT_SUPPORTED,
            message: rejection.to_string(),
        }],
        Err(rejection @ Rejection::NoSpec) => vec![PodAction::Report {
            reason: REASON_INVALID,
            message: rejection.to_string(),
        }],
    }
}

/// The super namespace uid recorded on a bound tenant pod ([`ANNOTATION_SUPER_NAMESPACE_UID`]).
#[must_use]
pub fn bound_through(tenant_pod: &Pod) -> Option<&str> {
    tenant_pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_SUPER_NAMESPACE_UID))
        .map(String::as_str)
        .filter(|u| !u.is_empty())
}

/// The super copy of a tenant pod already bound to a node, placed on that node (no scheduling).
fn recreate_on_node(
    tenant_pod: &Pod,
    tenant: &TenantInfo,
    super_namespace: &str,
) -> Result<Pod, Rejection> {
    let mut pod = translate(tenant_pod, tenant, super_namespace)?;
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = node_name(tenant_pod).map(str::to_owned);
    }
    Ok(pod)
}

/// Both present, the super pod is this tenant pod's copy.
fn plan_both(
    t: &Pod,
    s: &Pod,
    tenant: &TenantInfo,
    super_namespace: &str,
    super_namespace_uid: Option<&str>,
) -> Vec<PodAction> {
    let mut actions = Vec::new();
    if deleting(t) {
        if !deleting(s) {
            actions.push(PodAction::DeleteSuper {
                super_uid: s.metadata.uid.clone().unwrap_or_default(),
                grace: t.metadata.deletion_grace_period_seconds,
                verify_tenant_gone: None,
            });
        }
    } else if deleting(s) {
        if node_name(t).is_none() {
            // Not bound yet: this super pod is going away and will be replaced; nothing of it flows up.
            return actions;
        }
        actions.push(PodAction::DeleteTenant {
            grace: s.metadata.deletion_grace_period_seconds.unwrap_or(0),
            verify_super_gone: false,
        });
    } else if let Ok(desired) = translate(t, tenant, super_namespace)
        && let Some(updated) = super_update(&desired, s, tenant)
    {
        actions.push(PodAction::UpdateSuper(Box::new(updated)));
    }
    // Up: status, then binding, then transparent metadata.
    let status = tenant_status(s);
    if t.status.clone().unwrap_or_default() != status {
        actions.push(PodAction::UpdateTenantStatus(Box::new(status)));
    }
    if let Some(node) = node_name(s)
        && node_name(t).is_none()
        && !deleting(t)
    {
        actions.push(PodAction::BindTenant {
            node: node.to_owned(),
        });
    }
    let meta = metadata::up_update(&s.metadata, &t.metadata, tenant);
    let mut changed = meta.is_some();
    let (labels, mut annotations) = meta.unwrap_or_else(|| {
        (
            t.metadata.labels.clone().unwrap_or_default(),
            t.metadata.annotations.clone().unwrap_or_default(),
        )
    });
    // Once bound, remember which super namespace the copy lives in (see `ANNOTATION_SUPER_NAMESPACE_UID`).
    if let Some(uid) = super_namespace_uid.filter(|u| !u.is_empty())
        && node_name(s).is_some()
        && !deleting(t)
        && !deleting(s)
        && annotations
            .get(ANNOTATION_SUPER_NAMESPACE_UID)
            .map(String::as_str)
            != Some(uid)
    {
        annotations.insert(ANNOTATION_SUPER_NAMESPACE_UID.into(), uid.to_owned());
        changed = true;
    }
    if changed {
        actions.push(PodAction::UpdateTenantMeta {
            labels,
            annotations,
        });
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{ANNOTATION_CLUSTER, ANNOTATION_NAMESPACE, ANNOTATION_UID};
    use serde_json::json;

    const SNS: &str = "team-ba7816-vc1-web";

    fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        }
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("test pod must parse: {e}"))
    }

    fn tenant_pod() -> Pod {
        pod(json!({
            "metadata": {"name": "nginx", "namespace": "web", "uid": "t-uid", "resourceVersion": "10",
                "labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}],
                "tolerations": [{"key": "a", "operator": "Exists"}]}
        }))
    }

    /// The super pod as the super API server would return it after creation and scheduling.
    fn super_pod_of(t: &Pod) -> Pod {
        let mut s = desired_super_pod(t, &tenant(), SNS).unwrap_or_else(|e| panic!("{e}"));
        s.metadata.uid = Some("s-uid".into());
        s.metadata.resource_version = Some("500".into());
        s
    }

    fn scheduled(mut s: Pod) -> Pod {
        if let Some(spec) = s.spec.as_mut() {
            spec.node_name = Some("node-1".into());
        }
        s.status = Some(
            serde_json::from_value(
                json!({"phase": "Running", "podIP": "10.1.0.5", "hostIP": "192.168.0.1",
                "conditions": [{"type": "PodScheduled", "status": "True"}]}),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        s
    }

    /// The tenant pod after the syncer copied status and binding up.
    fn synced_tenant(t: &Pod, s: &Pod) -> Pod {
        let mut t = t.clone();
        t.status = s.status.clone();
        if let Some(spec) = t.spec.as_mut() {
            spec.node_name = s.spec.as_ref().and_then(|s| s.node_name.clone());
        }
        t
    }

    fn run(t: Option<&Pod>, s: Option<&Pod>) -> Vec<PodAction> {
        plan(t, s, &tenant(), "web", SNS, None)
    }

    #[test]
    fn new_tenant_pod_is_created_in_super() {
        let t = tenant_pod();
        let actions = run(Some(&t), None);
        let [PodAction::CreateSuper(s)] = actions.as_slice() else {
            panic!("expected one create, got {actions:?}");
        };
        assert_eq!(s.metadata.namespace.as_deref(), Some(SNS));
        assert_eq!(s.metadata.uid, None);
        assert_eq!(
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_UID))
                .map(String::as_str),
            Some("t-uid")
        );
        assert_eq!(
            s.spec
                .as_ref()
                .and_then(|s| s.automount_service_account_token),
            Some(false)
        );
    }

    #[test]
    fn in_sync_pair_needs_no_write() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let t = synced_tenant(&t, &s);
        assert_eq!(run(Some(&t), Some(&s)), Vec::new());
    }

    #[test]
    fn preset_node_name_is_reported_not_created() {
        let mut t = tenant_pod();
        if let Some(spec) = t.spec.as_mut() {
            spec.node_name = Some("n1".into());
        }
        let actions = run(Some(&t), None);
        assert!(
            matches!(actions.as_slice(), [PodAction::Report { reason, .. }] if *reason == REASON_NOT_SUPPORTED),
            "{actions:?}"
        );
    }

    #[test]
    fn scheduling_flows_up_status_before_binding() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let actions = run(Some(&t), Some(&s));
        assert!(
            matches!(
                actions.as_slice(),
                [PodAction::UpdateTenantStatus(_), PodAction::BindTenant { node }] if node == "node-1"
            ),
            "{actions:?}"
        );
    }

    #[test]
    fn mutable_fields_flow_down() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let mut t2 = synced_tenant(&t, &s);
        let changed = json!({"name": "app", "image": "nginx:1.28"});
        if let Some(spec) = t2.spec.as_mut() {
            spec.containers = vec![serde_json::from_value(changed).unwrap_or_default()];
            spec.active_deadline_seconds = Some(60);
            spec.tolerations.get_or_insert_with(Vec::new).push(
                serde_json::from_value(json!({"key": "b", "operator": "Exists"}))
                    .unwrap_or_default(),
            );
        }
        t2.metadata.labels = Some([("app".to_owned(), "nginx2".to_owned())].into());
        let actions = run(Some(&t2), Some(&s));
        let [PodAction::UpdateSuper(u)] = actions.as_slice() else {
            panic!("expected one update, got {actions:?}");
        };
        let spec = u.spec.clone().unwrap_or_default();
        assert_eq!(
            spec.containers.first().and_then(|c| c.image.as_deref()),
            Some("nginx:1.28")
        );
        assert_eq!(spec.active_deadline_seconds, Some(60));
        assert_eq!(spec.tolerations.map(|t| t.len()), Some(2));
        assert_eq!(
            spec.node_name.as_deref(),
            Some("node-1"),
            "super-side fields are kept"
        );
        assert_eq!(u.metadata.resource_version.as_deref(), Some("500"));
        let labels = u.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("nginx2"));
        assert_eq!(
            labels
                .get("tenancy.x-k8s.io/controlled")
                .map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn tenant_deletion_deletes_super_with_its_grace_then_finishes_tenant() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let mut t = synced_tenant(&t, &s);
        t.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        t.metadata.deletion_grace_period_seconds = Some(15);
        assert_eq!(
            run(Some(&t), Some(&s)),
            vec![PodAction::DeleteSuper {
                super_uid: "s-uid".into(),
                grace: Some(15),
                verify_tenant_gone: None
            }]
        );
        assert_eq!(
            run(Some(&t), None),
            vec![PodAction::DeleteTenant {
                grace: 0,
                verify_super_gone: true
            }]
        );
    }

    #[test]
    fn super_pod_gone_deletes_bound_tenant_and_recreates_unbound() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let bound = synced_tenant(&t, &s);
        assert_eq!(
            run(Some(&bound), None),
            vec![PodAction::DeleteTenant {
                grace: 0,
                verify_super_gone: true
            }]
        );
        assert!(matches!(
            run(Some(&t), None).as_slice(),
            [PodAction::CreateSuper(_)]
        ));
    }

    fn bound_through_ns(mut t: Pod, uid: &str) -> Pod {
        t.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANNOTATION_SUPER_NAMESPACE_UID.into(), uid.into());
        t
    }

    #[test]
    fn binding_records_the_super_namespace_uid_on_the_tenant_pod() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let bound = synced_tenant(&t, &s);
        let actions = plan(Some(&bound), Some(&s), &tenant(), "web", SNS, Some("ns-1"));
        let [PodAction::UpdateTenantMeta { annotations, .. }] = actions.as_slice() else {
            panic!("expected one metadata update, got {actions:?}");
        };
        assert_eq!(
            annotations
                .get(ANNOTATION_SUPER_NAMESPACE_UID)
                .map(String::as_str),
            Some("ns-1")
        );
        let recorded = bound_through_ns(bound, "ns-1");
        assert!(
            plan(
                Some(&recorded),
                Some(&s),
                &tenant(),
                "web",
                SNS,
                Some("ns-1")
            )
            .is_empty()
        );
        // Not bound yet: nothing recorded.
        let unscheduled = super_pod_of(&t);
        assert!(
            plan(
                Some(&t),
                Some(&unscheduled),
                &tenant(),
                "web",
                SNS,
                Some("ns-1")
            )
            .is_empty()
        );
    }

    #[test]
    fn bound_pod_whose_super_namespace_was_replaced_is_created_again_on_its_node() {
        let t = tenant_pod();
        let s = scheduled(super_pod_of(&t));
        let bound = bound_through_ns(synced_tenant(&t, &s), "ns-old");
        for current in [Some("ns-new"), None] {
            let actions = plan(Some(&bound), None, &tenant(), "web", SNS, current);
            let [PodAction::CreateSuper(pod)] = actions.as_slice() else {
                panic!("expected a re-creation, got {actions:?}");
            };
            assert_eq!(
                pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
                Some("node-1")
            );
            assert_eq!(pod.metadata.namespace.as_deref(), Some(SNS));
        }
        // Its super pod went away in the namespace it was bound through: the loss is mirrored.
        assert_eq!(
            plan(Some(&bound), None, &tenant(), "web", SNS, Some("ns-old")),
            vec![PodAction::DeleteTenant {
                grace: 0,
                verify_super_gone: true
            }]
        );
    }

    #[test]
    fn graceful_super_deletion_is_mirrored_on_a_bound_tenant_pod_only() {
        let t = tenant_pod();
        let mut s = scheduled(super_pod_of(&t));
        let bound = synced_tenant(&t, &s);
        s.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        s.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(
            run(Some(&bound), Some(&s)),
            vec![PodAction::DeleteTenant {
                grace: 30,
                verify_super_gone: false
            }]
        );
        // Not bound: nothing flows up from a super pod that is going away (no binding to a node it is
        // leaving); once it is gone the super pod is created again.
        assert_eq!(run(Some(&t), Some(&s)), Vec::new());
    }

    #[test]
    fn tenant_gone_deletes_our_super_pod_only() {
        let t = tenant_pod();
        let s = super_pod_of(&t);
        assert_eq!(
            run(None, Some(&s)),
            vec![PodAction::DeleteSuper {
                super_uid: "s-uid".into(),
                grace: None,
                verify_tenant_gone: Some("t-uid".into())
            }]
        );
        let mut foreign = s.clone();
        if let Some(a) = foreign.metadata.annotations.as_mut() {
            a.insert(ANNOTATION_CLUSTER.into(), "someone-else".into());
        }
        assert_eq!(run(None, Some(&foreign)), Vec::new());
    }

    #[test]
    fn foreign_or_stale_super_pods() {
        let t = tenant_pod();
        let mut foreign = super_pod_of(&t);
        if let Some(a) = foreign.metadata.annotations.as_mut() {
            a.insert(ANNOTATION_NAMESPACE.into(), "other-ns".into());
        }
        let actions = run(Some(&t), Some(&foreign));
        assert!(
            matches!(actions.as_slice(), [PodAction::Report { reason, .. }] if *reason == REASON_NAME_CONFLICT),
            "{actions:?}"
        );
        let mut stale = super_pod_of(&t);
        if let Some(a) = stale.metadata.annotations.as_mut() {
            a.insert(ANNOTATION_UID.into(), "old-uid".into());
        }
        assert_eq!(
            run(Some(&t), Some(&stale)),
            vec![PodAction::DeleteSuper {
                super_uid: "s-uid".into(),
                grace: None,
                verify_tenant_gone: Some("old-uid".into())
            }]
        );
    }

    #[test]
    fn super_generations_do_not_flow_up() {
        let t = tenant_pod();
        let mut s = scheduled(super_pod_of(&t));
        if let Some(status) = s.status.as_mut() {
            status.observed_generation = Some(7);
            for c in status.conditions.iter_mut().flatten() {
                c.observed_generation = Some(7);
            }
        }
        let actions = run(Some(&t), Some(&s));
        let Some(PodAction::UpdateTenantStatus(status)) = actions.first() else {
            panic!("{actions:?}");
        };
        assert_eq!(status.observed_generation, None);
        assert!(
            status
                .conditions
                .iter()
                .flatten()
                .all(|c| c.observed_generation.is_none())
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        // Once copied, the pair is in sync although the super pod still carries its generations.
        let mut synced = synced_tenant(&t, &s);
        synced.status = Some((**status).clone());
        assert_eq!(run(Some(&synced), Some(&s)), Vec::new());
    }

    #[test]
    fn transparent_annotations_flow_up() {
        let t = tenant_pod();
        let mut s = scheduled(super_pod_of(&t));
        let t = synced_tenant(&t, &s);
        if let Some(a) = s.metadata.annotations.as_mut() {
            a.insert("transparency.tenancy.x-k8s.io/zone".into(), "z1".into());
        }
        let actions = run(Some(&t), Some(&s));
        let [PodAction::UpdateTenantMeta { annotations, .. }] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert_eq!(
            annotations
                .get("transparency.tenancy.x-k8s.io/zone")
                .map(String::as_str),
            Some("z1")
        );
    }
}
