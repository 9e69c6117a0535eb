//! Rules shared by every namespaced kind copied down into the super namespace of its tenant namespace
//! (Service, Endpoints, ConfigMap, Secret, ServiceAccount, PersistentVolumeClaim, Ingress, NetworkPolicy,
//! PodDisruptionBudget): a [`DownKind`] says how one kind's body is translated, updated and reported back;
//! [`plan`] turns both sides' state into the writes needed, as a pure function.
//!
//! Down: the super copy is the tenant object translated ([`desired`]): metadata per
//! [`metadata::super_meta`] (marks, reserved keys stripped), the name per [`DownKind::super_name`] (with
//! [`ANNOTATION_NAME`] when it differs), the body per [`DownKind::translate`]. An existing copy is kept in
//! sync (labels, annotations, [`DownKind::update_body`]). A tenant object that is deleting or gone takes its
//! super copy with it (after a live check when it is gone).
//!
//! Up: transparent labels/annotations plus [`DownKind::up_annotations`] go into the tenant object's
//! metadata, [`DownKind::up_status`] into its status subresource.
//!
//! Safety, as for pods: only a super object whose marks name this tenant, this tenant namespace and this
//! tenant name is written. A copy of an older tenant object of the same name (uid mark differs) is deleted
//! with a precondition on its own uid once a live read shows that older object is gone, then re-created;
//! anything else under the name is left alone and reported (`SuperNameConflict`).

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource as KubeResource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::metadata::{self, Ownership, Placement, StringMap};
use super::pod::{REASON_INVALID, REASON_NAME_CONFLICT};
use super::tenants::TenantInfo;
use crate::log::{LogError, View};
use crate::naming::ANNOTATION_NAME;
use crate::record::WorkKey;

/// How one namespaced kind is copied down and reported back up.
pub trait DownKind: Send + Sync + 'static {
    /// The k8s-openapi type.
    type Object: KubeResource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// Kind name (work keys, view, metrics).
    const KIND: &'static str;

    /// On unless configured otherwise.
    const DEFAULT_ENABLED: bool = true;

    /// Name of the super copy of tenant object `tenant_name` (default: the same name).
    fn super_name(tenant_name: &str) -> String {
        tenant_name.to_owned()
    }

    /// Whether tenant object `key` is copied down at all, judged from the view (default: always). When not,
    /// nothing is written in either direction and an existing super copy is left alone.
    fn synced(view: &View, tenant: &TenantInfo, key: &WorkKey) -> Result<bool, LogError> {
        let _ = (view, tenant, key);
        Ok(true)
    }

    /// The super copy of `tenant_obj`, given its translated metadata `meta`; `Err` = not copyable (reported).
    fn translate(
        tenant_obj: &Self::Object,
        meta: ObjectMeta,
        tenant: &TenantInfo,
    ) -> Result<Self::Object, String>;

    /// `actual` with everything but metadata brought in line with `desired` (the translation of the current
    /// tenant object), keeping what the super cluster allocated or defaults; `None` when already in sync.
    fn update_body(desired: &Self::Object, actual: &Self::Object) -> Option<Self::Object>;

    /// Annotations the tenant object should carry from its super copy (beyond the transparent keys); they
    /// must be under [`crate::naming::TRANSPARENT_PREFIX`]. Default: none.
    fn up_annotations(super_obj: &Self::Object) -> StringMap {
        let _ = super_obj;
        StringMap::new()
    }

    /// The tenant object with the status its super copy reports; `None` when nothing flows up or it is
    /// already there. Default: nothing flows up.
    fn up_status(super_obj: &Self::Object, tenant_obj: &Self::Object) -> Option<Self::Object> {
        let _ = (super_obj, tenant_obj);
        None
    }
}

/// One write, in execution order. Down actions come first, then up actions.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectAction<K> {
    /// Create the super copy.
    CreateSuper(Box<K>),
    /// Replace the super copy (carries its resourceVersion).
    UpdateSuper(Box<K>),
    /// Delete the super copy with a precondition on its own uid.
    DeleteSuper {
        /// uid of the super object (precondition).
        super_uid: String,
        /// Check with a live read first that the tenant object with this uid is gone.
        verify_tenant_gone: Option<String>,
    },
    /// Replace the tenant object's labels and annotations (carries its resourceVersion).
    UpdateTenant(Box<K>),
    /// Replace the tenant object's status (status subresource).
    UpdateTenantStatus(Box<K>),
    /// Report on the tenant object (Warning event once per object and reason); no retry.
    Report {
        /// Event reason.
        reason: &'static str,
        /// Event message.
        message: String,
    },
}

impl<K> ObjectAction<K> {
    /// True for writes to the tenant (the upward part of the plan).
    #[must_use]
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            ObjectAction::UpdateTenant(_) | ObjectAction::UpdateTenantStatus(_)
        )
    }
}

fn deleting<K: KubeResource>(obj: &K) -> bool {
    obj.meta().deletion_timestamp.is_some()
}

fn uid<K: KubeResource>(obj: &K) -> String {
    obj.meta().uid.clone().unwrap_or_default()
}

/// The super copy of `tenant_obj` (named `tenant_name` in tenant namespace `tenant_ns`) in `super_ns`.
pub fn desired<D: DownKind>(
    tenant_obj: &D::Object,
    tenant: &TenantInfo,
    tenant_name: &str,
    super_ns: &str,
) -> Result<D::Object, String> {
    let mut meta = metadata::super_meta(
        tenant_obj.meta(),
        tenant,
        Placement::Namespaced {
            super_namespace: super_ns,
        },
    );
    let super_name = D::super_name(tenant_name);
    if super_name != tenant_name {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_NAME.into(), tenant_name.to_owned());
    }
    meta.name = Some(super_name);
    D::translate(tenant_obj, meta, tenant)
}

/// Whose a super object is: ours only when its marks name this tenant, namespace *and* tenant name.
fn owner<K: KubeResource>(
    super_obj: &K,
    tenant: &TenantInfo,
    tenant_ns: &str,
    tenant_name: &str,
) -> Ownership {
    let meta = super_obj.meta();
    let marked_name = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_NAME))
        .or(meta.name.as_ref())
        .map(String::as_str)
        .unwrap_or_default();
    if marked_name != tenant_name {
        return Ownership::Foreign;
    }
    metadata::ownership(meta, tenant, tenant_ns)
}

/// The writes that bring both sides in line; empty when in sync. `synced` is [`DownKind::synced`].
#[must_use]
pub fn plan<D: DownKind>(
    tenant_obj: Option<&D::Object>,
    super_obj: Option<&D::Object>,
    tenant: &TenantInfo,
    key: &WorkKey,
    super_ns: &str,
    synced: bool,
) -> Vec<ObjectAction<D::Object>> {
    let ownership = super_obj.map(|s| owner(s, tenant, &key.namespace, &key.name));
    let Some(t) = tenant_obj else {
        return match (super_obj, ownership) {
            (Some(s), Some(Ownership::Ours { tenant_uid })) if !deleting(s) => {
                vec![ObjectAction::DeleteSuper {
                    super_uid: uid(s),
                    verify_tenant_gone: Some(tenant_uid),
                }]
            }
            _ => Vec::new(),
        };
    };
    if !synced {
        return Vec::new();
    }
    match (super_obj, ownership) {
        (None, _) if deleting(t) => Vec::new(),
        (None, _) => match desired::<D>(t, tenant, &key.name, super_ns) {
            Ok(obj) => vec![ObjectAction::CreateSuper(Box::new(obj))],
            Err(message) => vec![ObjectAction::Report {
                reason: REASON_INVALID,
                message,
            }],
        },
        (Some(s), Some(Ownership::Ours { tenant_uid })) if tenant_uid == uid(t) => {
            plan_both::<D>(t, s, tenant, key, super_ns)
        }
        (Some(s), Some(Ownership::Ours { tenant_uid })) => {
            if deleting(s) {
                Vec::new()
            } else {
                vec![ObjectAction::DeleteSuper {
                    super_uid: uid(s),
                    verify_tenant_gone: Some(tenant_uid),
                }]
            }
        }
        (Some(_), _) => vec![ObjectAction::Report {
            reason: REASON_NAME_CONFLICT,
            message: format!(
                "{} {super_ns}/{} exists in the super cluster and does not belong to this object; \
                 it is left alone",
                D::KIND,
                D::super_name(&key.name)
            ),
        }],
    }
}

/// Both present, the super object is this tenant object's copy.
fn plan_both<D: DownKind>(
    t: &D::Object,
    s: &D::Object,
    tenant: &TenantInfo,
    key: &WorkKey,
    super_ns: &str,
) -> Vec<ObjectAction<D::Object>> {
    if deleting(s) {
        return Vec::new();
    }
    if deleting(t) {
        return vec![ObjectAction::DeleteSuper {
            super_uid: uid(s),
            verify_tenant_gone: None,
        }];
    }
    let mut actions = Vec::new();
    match desired::<D>(t, tenant, &key.name, super_ns) {
        Ok(want) => {
            let mut updated = D::update_body(&want, s);
            let base = updated.as_ref().unwrap_or(s);
            if let Some((labels, annotations)) =
                metadata::down_update(want.meta(), base.meta(), tenant, &[])
            {
                let mut obj = base.clone();
                obj.meta_mut().labels = Some(labels);
                obj.meta_mut().annotations = Some(annotations);
                updated = Some(obj);
            }
            if let Some(obj) = updated {
                actions.push(ObjectAction::UpdateSuper(Box::new(obj)));
            }
        }
        Err(message) => actions.push(ObjectAction::Report {
            reason: REASON_INVALID,
            message,
        }),
    }
    if let Some(obj) = up_meta::<D>(s, t, tenant) {
        actions.push(ObjectAction::UpdateTenant(Box::new(obj)));
    }
    if let Some(obj) = D::up_status(s, t) {
        actions.push(ObjectAction::UpdateTenantStatus(Box::new(obj)));
    }
    actions
}

/// The tenant object with the super copy's transparent labels/annotations and [`DownKind::up_annotations`];
/// `None` when already there.
fn up_meta<D: DownKind>(s: &D::Object, t: &D::Object, tenant: &TenantInfo) -> Option<D::Object> {
    let extra = D::up_annotations(s);
    let (labels, mut annotations) =
        metadata::up_update(s.meta(), t.meta(), tenant).unwrap_or_else(|| {
            (
                t.meta().labels.clone().unwrap_or_default(),
                t.meta().annotations.clone().unwrap_or_default(),
            )
        });
    annotations.extend(extra.clone());
    // `up_update` drops transparent keys the super object does not carry; the computed ones are kept.
    annotations.retain(|k, _| {
        !metadata::is_transparent(k, tenant)
            || extra.contains_key(k)
            || s.meta()
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(k))
    });
    let same = metadata::same_map(Some(&labels), t.meta().labels.as_ref())
        && metadata::same_map(Some(&annotations), t.meta().annotations.as_ref());
    if same {
        return None;
    }
    let mut obj = t.clone();
    obj.meta_mut().labels = Some(labels);
    obj.meta_mut().annotations = Some(annotations);
    Some(obj)
}
