//! Namespace reconcile rules (down only), as a pure function from both sides' state to the writes needed.
//!
//! A tenant namespace `ns` is copied as the super namespace [`crate::naming::super_namespace`]`(key, ns)` with
//! the syncer's marks and the tenant's tenant-owned labels and annotations (labels and annotations are kept in
//! sync afterwards; the API server's own `kubernetes.io/metadata.name` label is never copied). When the tenant
//! namespace is deleted (terminating or gone), the super namespace is deleted with a precondition on its uid;
//! the super cluster's namespace controller then removes the super copies inside it. A super namespace left
//! over from an older tenant namespace of the same name is deleted (after a live check) and re-created; any
//! other object holding the name is left alone and reported.

use k8s_openapi::api::core::v1::Namespace;

use super::metadata::{self, NAMESPACE_NAME_LABEL, Ownership, Placement};
use super::tenants::TenantInfo;

/// One write the reconcile of a namespace needs.
#[derive(Clone, Debug, PartialEq)]
pub enum NamespaceAction {
    /// Create the super namespace.
    Create(Box<Namespace>),
    /// Replace the super namespace (labels/annotations; carries its resourceVersion).
    Update(Box<Namespace>),
    /// Delete the super namespace, with a precondition on its own uid.
    Delete {
        /// uid of the super namespace (precondition).
        super_uid: String,
        /// Check with a live read, before deleting, that the tenant namespace with this uid is gone.
        verify_tenant_gone: Option<String>,
    },
    /// The super name is held by an object the syncer does not own: left alone, logged and counted.
    NameConflict,
}

/// The super namespace for tenant namespace `tenant_ns`, named `super_name`.
#[must_use]
pub fn desired_super_namespace(
    tenant_ns: &Namespace,
    tenant: &TenantInfo,
    super_name: &str,
) -> Namespace {
    Namespace {
        metadata: metadata::super_meta(
            &tenant_ns.metadata,
            tenant,
            Placement::Namespace { super_name },
        ),
        spec: None,
        status: None,
    }
}

fn deleting(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
}

/// The writes that bring the super namespace in line with tenant namespace `tenant_ns_name`.
#[must_use]
pub fn plan(
    tenant_ns: Option<&Namespace>,
    super_ns: Option<&Namespace>,
    tenant: &TenantInfo,
    tenant_ns_name: &str,
    super_name: &str,
) -> Vec<NamespaceAction> {
    let ownership = super_ns.map(|s| metadata::ownership(&s.metadata, tenant, tenant_ns_name));
    let super_uid = |s: &Namespace| s.metadata.uid.clone().unwrap_or_default();
    match (tenant_ns, super_ns, ownership) {
        (None, Some(s), Some(Ownership::Ours { tenant_uid })) if !deleting(s) => {
            vec![NamespaceAction::Delete {
                super_uid: super_uid(s),
                verify_tenant_gone: Some(tenant_uid),
            }]
        }
        (None, _, _) => Vec::new(),
        (Some(t), None, _) if !deleting(t) => vec![NamespaceAction::Create(Box::new(
            desired_super_namespace(t, tenant, super_name),
        ))],
        (Some(_), None, _) => Vec::new(),
        (Some(_), Some(_), Some(Ownership::Foreign) | None) => vec![NamespaceAction::NameConflict],
        (Some(t), Some(s), Some(Ownership::Ours { tenant_uid })) => {
            if deleting(s) {
                // Wait until it is gone; its Deleted event brings us back to re-create it if still wanted.
                return Vec::new();
            }
            let t_uid = t.metadata.uid.clone().unwrap_or_default();
            if tenant_uid != t_uid {
                return vec![NamespaceAction::Delete {
                    super_uid: super_uid(s),
                    verify_tenant_gone: Some(tenant_uid),
                }];
            }
            if deleting(t) {
                return vec![NamespaceAction::Delete {
                    super_uid: super_uid(s),
                    verify_tenant_gone: None,
                }];
            }
            let desired = desired_super_namespace(t, tenant, super_name);
            match metadata::down_update(
                &desired.metadata,
                &s.metadata,
                tenant,
                &[NAMESPACE_NAME_LABEL],
            ) {
                Some((labels, annotations)) => {
                    let mut updated = s.clone();
                    updated.metadata.labels = Some(labels);
                    updated.metadata.annotations = Some(annotations);
                    vec![NamespaceAction::Update(Box::new(updated))]
                }
                None => Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::{ANNOTATION_CLUSTER, ANNOTATION_UID};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    const SUPER: &str = "team-ba7816-vc1-web";

    fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        }
    }

    fn tenant_ns() -> Namespace {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "uid": "t-uid", "resourceVersion": "5",
            "labels": {"kubernetes.io/metadata.name": "web", "env": "prod"}}}),
        )
        .unwrap_or_default()
    }

    /// The super namespace as the API server returns it (its own name label added).
    fn super_of(t: &Namespace) -> Namespace {
        let mut s = desired_super_namespace(t, &tenant(), SUPER);
        s.metadata.uid = Some("s-uid".into());
        s.metadata.resource_version = Some("77".into());
        s.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(NAMESPACE_NAME_LABEL.into(), SUPER.into());
        s
    }

    fn run(t: Option<&Namespace>, s: Option<&Namespace>) -> Vec<NamespaceAction> {
        plan(t, s, &tenant(), "web", SUPER)
    }

    #[test]
    fn created_then_in_sync() {
        let t = tenant_ns();
        let actions = run(Some(&t), None);
        let [NamespaceAction::Create(s)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        assert_eq!(s.metadata.name.as_deref(), Some(SUPER));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("env").map(String::as_str), Some("prod"));
        assert!(!labels.contains_key(NAMESPACE_NAME_LABEL));
        assert_eq!(run(Some(&t), Some(&super_of(&t))), Vec::new());
    }

    #[test]
    fn label_change_flows_down_keeping_the_server_label() {
        let t = tenant_ns();
        let s = super_of(&t);
        let mut t2 = t.clone();
        t2.metadata.labels = Some([("env".to_owned(), "dev".to_owned())].into());
        let actions = run(Some(&t2), Some(&s));
        let [NamespaceAction::Update(u)] = actions.as_slice() else {
            panic!("{actions:?}");
        };
        let labels = u.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("env").map(String::as_str), Some("dev"));
        assert_eq!(
            labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some(SUPER)
        );
    }

    #[test]
    fn deletion_follows_the_tenant() {
        let t = tenant_ns();
        let s = super_of(&t);
        let mut terminating = t.clone();
        terminating.metadata.deletion_timestamp =
            Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(
            run(Some(&terminating), Some(&s)),
            vec![NamespaceAction::Delete {
                super_uid: "s-uid".into(),
                verify_tenant_gone: None
            }]
        );
        assert_eq!(
            run(None, Some(&s)),
            vec![NamespaceAction::Delete {
                super_uid: "s-uid".into(),
                verify_tenant_gone: Some("t-uid".into())
            }]
        );
        assert_eq!(run(Some(&terminating), None), Vec::new());
    }

    #[test]
    fn foreign_and_stale_super_namespaces() {
        let t = tenant_ns();
        let mut foreign = super_of(&t);
        if let Some(a) = foreign.metadata.annotations.as_mut() {
            a.insert(ANNOTATION_CLUSTER.into(), "other".into());
        }
        assert_eq!(
            run(Some(&t), Some(&foreign)),
            vec![NamespaceAction::NameConflict]
        );
        assert_eq!(run(None, Some(&foreign)), Vec::new());
        let mut stale = super_of(&t);
        if let Some(a) = stale.metadata.annotations.as_mut() {
            a.insert(ANNOTATION_UID.into(), "old".into());
        }
        assert_eq!(
            run(Some(&t), Some(&stale)),
            vec![NamespaceAction::Delete {
                super_uid: "s-uid".into(),
                verify_tenant_gone: Some("old".into())
            }]
        );
    }
}
