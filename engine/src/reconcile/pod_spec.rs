//! Pod spec translation (tenant → super): what a super pod's spec must differ in from its tenant pod.
//!
//! * No `nodeName` (the super scheduler places the pod) and no values the super cluster's admission computes
//!   itself and rejects when they disagree (`priority`, `preemptionPolicy`, `overhead`); no ephemeral
//!   containers (forbidden on create).
//! * No tenant service-account token: `automountServiceAccountToken: false`, the tenant's admission-injected
//!   token volume (mounted at `/var/run/secrets/kubernetes.io/serviceaccount`, or a projected `kube-api-access-*`)
//!   and its mounts are dropped, and `serviceAccountToken` sources are removed from user projected volumes, so a
//!   super kubelet never mints a super-cluster token into a tenant pod. The service account name is cleared (the
//!   super pod runs as its namespace's `default` account). Handing the tenant's own token to the pod is not done
//!   yet.
//! * Downward API `metadata.namespace` / `metadata.uid` (env and volumes) read the syncer's annotations, so the
//!   containers see their tenant namespace and uid, not the super ones.
//! * Pod (anti-)affinity terms: listed namespaces are translated to super namespaces, and a namespace selector
//!   is confined to this tenant's namespaces.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Container, ObjectFieldSelector, PodAffinityTerm, PodSpec, Volume,
};

use super::tenants::TenantInfo;
use crate::naming::{
    ANNOTATION_NAMESPACE, ANNOTATION_UID, ANNOTATION_VC_NAME, ANNOTATION_VC_NAMESPACE,
    super_namespace,
};

/// Where the service-account admission plugin mounts a pod's token.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Name prefix of the projected token volume the service-account admission plugin adds.
const KUBE_API_ACCESS_PREFIX: &str = "kube-api-access-";

/// The super pod's spec for a tenant pod spec (see the module docs).
#[must_use]
pub fn super_spec(tenant_spec: &PodSpec, tenant: &TenantInfo) -> PodSpec {
    let mut spec = tenant_spec.clone();
    spec.node_name = None;
    spec.priority = None;
    spec.preemption_policy = None;
    spec.overhead = None;
    spec.ephemeral_containers = None;
    spec.automount_service_account_token = Some(false);
    spec.service_account_name = None;
    spec.service_account = None;
    drop_token_volumes(&mut spec);
    for c in containers_mut(&mut spec) {
        rewrite_env_field_refs(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        rewrite_volume_field_refs(v);
    }
    if let Some(affinity) = spec.affinity.as_mut() {
        translate_affinity(affinity, tenant);
    }
    spec
}

/// Containers and init containers of a spec.
fn containers_mut(spec: &mut PodSpec) -> impl Iterator<Item = &mut Container> {
    spec.containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
}

/// Removes the tenant's token volume(s), their mounts, and `serviceAccountToken` projections.
fn drop_token_volumes(spec: &mut PodSpec) {
    let mut dropped: BTreeSet<String> = BTreeSet::new();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for m in c.volume_mounts.iter().flatten() {
            if m.mount_path.trim_end_matches('/') == SERVICE_ACCOUNT_MOUNT_PATH {
                dropped.insert(m.name.clone());
            }
        }
    }
    if let Some(volumes) = spec.volumes.as_mut() {
        for v in volumes.iter_mut() {
            let Some(projected) = v.projected.as_mut() else {
                continue;
            };
            let sources = projected.sources.get_or_insert_with(Vec::new);
            let had_token = sources.iter().any(|s| s.service_account_token.is_some());
            sources.retain(|s| s.service_account_token.is_none());
            if had_token && (v.name.starts_with(KUBE_API_ACCESS_PREFIX) || sources.is_empty()) {
                dropped.insert(v.name.clone());
            }
        }
        volumes.retain(|v| !dropped.contains(&v.name));
    }
    if dropped.is_empty() {
        return;
    }
    for c in containers_mut(spec) {
        if let Some(mounts) = c.volume_mounts.as_mut() {
            mounts.retain(|m| !dropped.contains(&m.name));
        }
    }
}

/// The field path a downward-API reference should read in the super pod.
fn super_field_path(path: &str) -> Option<String> {
    let annotation = match path {
        "metadata.namespace" => ANNOTATION_NAMESPACE,
        "metadata.uid" => ANNOTATION_UID,
        _ => return None,
    };
    Some(format!("metadata.annotations['{annotation}']"))
}

fn rewrite_field_ref(selector: &mut ObjectFieldSelector) {
    if let Some(path) = super_field_path(&selector.field_path) {
        selector.field_path = path;
    }
}

fn rewrite_env_field_refs(c: &mut Container) {
    for env in c.env.iter_mut().flatten() {
        if let Some(sel) = env.value_from.as_mut().and_then(|s| s.field_ref.as_mut()) {
            rewrite_field_ref(sel);
        }
    }
}

fn rewrite_volume_field_refs(v: &mut Volume) {
    let downward = v
        .downward_api
        .iter_mut()
        .flat_map(|d| d.items.iter_mut().flatten());
    let projected = v
        .projected
        .iter_mut()
        .flat_map(|p| p.sources.iter_mut().flatten())
        .flat_map(|s| s.downward_api.iter_mut())
        .flat_map(|d| d.items.iter_mut().flatten());
    for item in downward.chain(projected) {
        if let Some(sel) = item.field_ref.as_mut() {
            rewrite_field_ref(sel);
        }
    }
}

fn translate_affinity(affinity: &mut Affinity, tenant: &TenantInfo) {
    let mut terms: Vec<&mut PodAffinityTerm> = Vec::new();
    if let Some(a) = affinity.pod_affinity.as_mut() {
        terms.extend(
            a.required_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten(),
        );
        terms.extend(
            a.preferred_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten()
                .map(|w| &mut w.pod_affinity_term),
        );
    }
    if let Some(a) = affinity.pod_anti_affinity.as_mut() {
        terms.extend(
            a.required_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten(),
        );
        terms.extend(
            a.preferred_during_scheduling_ignored_during_execution
                .iter_mut()
                .flatten()
                .map(|w| &mut w.pod_affinity_term),
        );
    }
    for term in terms {
        if let Some(namespaces) = term.namespaces.as_mut() {
            for ns in namespaces.iter_mut() {
                *ns = super_namespace(&tenant.cluster_key, ns);
            }
        }
        if let Some(selector) = term.namespace_selector.as_mut() {
            let labels = selector.match_labels.get_or_insert_with(BTreeMap::new);
            labels.insert(ANNOTATION_VC_NAME.into(), tenant.vc_name.clone());
            labels.insert(ANNOTATION_VC_NAMESPACE.into(), tenant.vc_namespace.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        }
    }

    /// A pod as a tenant API server stores it after admission: init container, token volume injected by
    /// the service-account plugin, a user projected volume with a token and a downward-API file, env from
    /// fields, affinity with namespaces and a namespace selector.
    fn realistic_spec() -> PodSpec {
        let spec = json!({
            "nodeName": "",
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority",
            "serviceAccountName": "builder",
            "serviceAccount": "builder",
            "initContainers": [{
                "name": "init", "image": "busybox:1.36",
                "volumeMounts": [{"name": "kube-api-access-x7k2p",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
            }],
            "containers": [{
                "name": "app", "image": "nginx:1.27",
                "env": [
                    {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "PLAIN", "value": "x"}
                ],
                "volumeMounts": [
                    {"name": "kube-api-access-x7k2p",
                     "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true},
                    {"name": "vault", "mountPath": "/vault"},
                    {"name": "info", "mountPath": "/info"}
                ]
            }],
            "volumes": [
                {"name": "kube-api-access-x7k2p", "projected": {"sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]}},
                {"name": "vault", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "vault", "path": "vault-token"}},
                    {"secret": {"name": "vault-ca"}}
                ]}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                ]}}
            ],
            "affinity": {
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "namespaces": ["web", "db"]
                    }],
                    "preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 10,
                        "podAffinityTerm": {"topologyKey": "zone", "namespaceSelector": {}}
                    }]
                }
            }
        });
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("test spec must parse: {e}"))
    }

    #[test]
    fn token_volume_and_mounts_are_dropped_and_projections_cleaned() {
        let out = super_spec(&realistic_spec(), &tenant());
        assert_eq!(out.automount_service_account_token, Some(false));
        assert_eq!(
            (out.service_account_name, out.service_account),
            (None, None)
        );
        let names: Vec<&str> = out
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["vault", "info"]);
        let vault = out.volumes.iter().flatten().find(|v| v.name == "vault");
        let sources = vault
            .and_then(|v| v.projected.as_ref())
            .and_then(|p| p.sources.clone())
            .unwrap_or_default();
        assert_eq!(sources.len(), 1);
        assert!(sources.iter().all(|s| s.service_account_token.is_none()));
        let mounts = |c: &Container| -> Vec<String> {
            c.volume_mounts
                .iter()
                .flatten()
                .map(|m| m.name.clone())
                .collect()
        };
        assert_eq!(
            out.containers.first().map(mounts),
            Some(vec!["vault".into(), "info".into()])
        );
        let init = out.init_containers.unwrap_or_default();
        assert_eq!(init.first().map(mounts), Some(vec![]));
    }

    #[test]
    fn scheduler_and_admission_fields_are_cleared() {
        let mut spec = realistic_spec();
        spec.node_name = Some("tenant-node".into());
        let out = super_spec(&spec, &tenant());
        assert_eq!(
            (
                out.node_name,
                out.priority,
                out.preemption_policy,
                out.ephemeral_containers
            ),
            (None, None, None, None)
        );
    }

    #[test]
    fn downward_api_reads_tenant_namespace_and_uid() {
        let out = super_spec(&realistic_spec(), &tenant());
        let env: Vec<(String, String)> = out
            .containers
            .first()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| Some((e.name, e.value_from?.field_ref?.field_path)))
            .collect();
        assert_eq!(
            env,
            [
                (
                    "POD_NS".into(),
                    "metadata.annotations['tenancy.x-k8s.io/namespace']".into()
                ),
                (
                    "POD_UID".into(),
                    "metadata.annotations['tenancy.x-k8s.io/uid']".into()
                ),
                ("POD_NAME".into(), "metadata.name".into()),
            ]
        );
        let info = out.volumes.iter().flatten().find(|v| v.name == "info");
        let paths: Vec<String> = info
            .and_then(|v| v.downward_api.clone())
            .and_then(|d| d.items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| Some(i.field_ref?.field_path))
            .collect();
        assert_eq!(
            paths,
            [
                "metadata.annotations['tenancy.x-k8s.io/namespace']",
                "metadata.labels"
            ]
        );
    }

    #[test]
    fn affinity_namespaces_are_translated_and_selectors_confined() {
        let t = tenant();
        let out = super_spec(&realistic_spec(), &t);
        let anti = out
            .affinity
            .and_then(|a| a.pod_anti_affinity)
            .unwrap_or_default();
        let required = anti
            .required_during_scheduling_ignored_during_execution
            .unwrap_or_default();
        assert_eq!(
            required.first().and_then(|t| t.namespaces.clone()),
            Some(vec![
                super_namespace(&t.cluster_key, "web"),
                super_namespace(&t.cluster_key, "db"),
            ])
        );
        let preferred = anti
            .preferred_during_scheduling_ignored_during_execution
            .unwrap_or_default();
        let labels = preferred
            .first()
            .and_then(|w| w.pod_affinity_term.namespace_selector.clone())
            .and_then(|s| s.match_labels)
            .unwrap_or_default();
        assert_eq!(
            labels.get(ANNOTATION_VC_NAME).map(String::as_str),
            Some("vc1")
        );
        assert_eq!(
            labels.get(ANNOTATION_VC_NAMESPACE).map(String::as_str),
            Some("team")
        );
    }

    #[test]
    fn containers_and_other_fields_are_kept() {
        let spec = realistic_spec();
        let out = super_spec(&spec, &tenant());
        let images: Vec<Option<String>> = out.containers.iter().map(|c| c.image.clone()).collect();
        assert_eq!(images, [Some("nginx:1.27".to_owned())]);
        assert_eq!(out.init_containers.map(|c| c.len()), Some(1));
    }
}
