//! Pod spec translation (tenant → super): what a super pod's spec must differ in from its tenant pod.
//!
//! Context-free rules ([`super_spec`], used by the plan):
//! * No `nodeName` (the super scheduler places the pod) and no values the super cluster's admission computes
//!   itself and rejects when they disagree (`priority`, `preemptionPolicy`, `overhead`); no ephemeral
//!   containers (forbidden on create).
//! * No super service-account token: `automountServiceAccountToken: false`, the service account name cleared
//!   (the super pod runs as its namespace's `default` account), and the tenant's own token mounted instead
//!   ([`super::pod_token`]: `serviceAccountToken` projections read a token secret the syncer fills from the
//!   tenant; `kube-root-ca.crt` references read its super copy).
//! * `enableServiceLinks: false`: the super kubelet must not inject the super cluster's services; the
//!   tenant's are written explicitly ([`super::pod_env`]).
//! * Downward API `metadata.namespace` / `metadata.uid` (env and volumes) read the syncer's annotations, so the
//!   containers see their tenant namespace and uid, not the super ones; env `spec.serviceAccountName` becomes
//!   the tenant service account's name as a literal.
//! * Pod (anti-)affinity terms: listed namespaces are translated to super namespaces, a term with neither
//!   namespaces nor a selector (the pod's own namespace) names the super namespace explicitly, and a
//!   namespace selector is confined to this tenant's super namespaces (it must also match the
//!   `tenancy.x-k8s.io/vcname`/`vcnamespace` labels every super namespace of the tenant carries; values of
//!   `kubernetes.io/metadata.name` are translated to super names). Limit: other labels of a selector match
//!   the super namespaces' labels, which mirror the tenant namespaces' own labels.
//!
//! Rules that depend on other objects ([`complete_spec`], applied by the executor right before a create):
//! cluster DNS ([`super::pod_dns`]) and service environment variables ([`super::pod_env`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, ObjectFieldSelector, PodAffinityTerm, PodSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::metadata::NAMESPACE_NAME_LABEL;
use super::pod_dns::{ClusterDns, apply_cluster_dns};
use super::pod_env::apply_service_env;
use super::pod_token::{rewrite_token_sources, service_account, token_secret_name};
use super::tenants::TenantInfo;
use crate::naming::{
    ANNOTATION_NAMESPACE, ANNOTATION_UID, ANNOTATION_VC_NAME, ANNOTATION_VC_NAMESPACE,
    super_namespace,
};

/// Where the service-account admission plugin mounts a pod's token.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The super pod's spec for the spec of a tenant pod in tenant namespace `tenant_namespace` (the
/// context-free rules of the module docs).
#[must_use]
pub fn super_spec(tenant_spec: &PodSpec, tenant: &TenantInfo, tenant_namespace: &str) -> PodSpec {
    let mut spec = tenant_spec.clone();
    let sa = service_account(tenant_spec).to_owned();
    spec.node_name = None;
    spec.priority = None;
    spec.preemption_policy = None;
    spec.overhead = None;
    spec.ephemeral_containers = None;
    spec.automount_service_account_token = Some(false);
    spec.service_account_name = None;
    spec.service_account = None;
    spec.enable_service_links = Some(false);
    rewrite_token_sources(&mut spec, &token_secret_name(&sa));
    for c in containers_mut(&mut spec) {
        rewrite_env_field_refs(c, &sa);
    }
    for v in spec.volumes.iter_mut().flatten() {
        rewrite_volume_field_refs(v);
    }
    if let Some(affinity) = spec.affinity.as_mut() {
        translate_affinity(affinity, tenant, tenant_namespace);
    }
    spec
}

/// What the object-dependent rules need, resolved by the executor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dependencies {
    /// The tenant's cluster DNS; `None` = leave the DNS policy alone (the tenant's Services are not synced).
    pub dns: Option<ClusterDns>,
    /// Service variables for every container (super IPs), `None` = the rule is off (Services not synced).
    pub service_env: Option<Vec<EnvVar>>,
    /// Names set by each container's `envFrom` sources, by container name, where the sources are known.
    pub envfrom_keys: BTreeMap<String, BTreeSet<String>>,
}

/// Applies the object-dependent rules to a super spec made by [`super_spec`] for tenant namespace
/// `tenant_namespace`. `tenant_spec` is the tenant pod's spec (the DNS rule reads its policy).
pub fn complete_spec(
    spec: &mut PodSpec,
    tenant: &TenantInfo,
    tenant_namespace: &str,
    deps: &Dependencies,
) {
    if let Some(dns) = deps.dns.as_ref() {
        apply_cluster_dns(spec, tenant_namespace, &tenant.cluster_domain, dns);
    }
    if let Some(vars) = deps.service_env.as_ref() {
        let keys = |c: &Container| deps.envfrom_keys.get(&c.name).cloned().unwrap_or_default();
        apply_service_env(spec, vars, &keys);
    }
}

/// Containers and init containers of a spec.
fn containers_mut(spec: &mut PodSpec) -> impl Iterator<Item = &mut Container> {
    spec.containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
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

fn rewrite_env_field_refs(c: &mut Container, service_account: &str) {
    for env in c.env.iter_mut().flatten() {
        let Some(sel) = env.value_from.as_mut().and_then(|s| s.field_ref.as_mut()) else {
            continue;
        };
        if sel.field_path == "spec.serviceAccountName" {
            env.value_from = None;
            env.value = Some(service_account.to_owned());
        } else {
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

fn translate_affinity(affinity: &mut Affinity, tenant: &TenantInfo, tenant_namespace: &str) {
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
        let no_namespaces = term.namespaces.as_ref().is_none_or(Vec::is_empty);
        if no_namespaces && term.namespace_selector.is_none() {
            term.namespaces = Some(vec![super_namespace(&tenant.cluster_key, tenant_namespace)]);
            continue;
        }
        if let Some(namespaces) = term.namespaces.as_mut() {
            for ns in namespaces.iter_mut() {
                *ns = super_namespace(&tenant.cluster_key, ns);
            }
        }
        if let Some(selector) = term.namespace_selector.as_mut() {
            confine_selector(selector, tenant);
        }
    }
}

/// Confines a namespace selector to the tenant's super namespaces, translating namespace names.
fn confine_selector(selector: &mut LabelSelector, tenant: &TenantInfo) {
    let labels = selector.match_labels.get_or_insert_with(BTreeMap::new);
    if let Some(name) = labels.get_mut(NAMESPACE_NAME_LABEL) {
        *name = super_namespace(&tenant.cluster_key, name);
    }
    labels.insert(ANNOTATION_VC_NAME.into(), tenant.vc_name.clone());
    labels.insert(ANNOTATION_VC_NAMESPACE.into(), tenant.vc_namespace.clone());
    for expr in selector.match_expressions.iter_mut().flatten() {
        if expr.key == NAMESPACE_NAME_LABEL {
            for v in expr.values.iter_mut().flatten() {
                *v = super_namespace(&tenant.cluster_key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::pod_env::{LinkPort, ServiceLink, service_env};
    use crate::reconcile::pod_token::SUPER_ROOT_CA;
    use serde_json::json;

    fn tenant() -> TenantInfo {
        TenantInfo {
            cluster_key: "team-ba7816-vc1".into(),
            vc_name: "vc1".into(),
            vc_namespace: "team".into(),
            ..TenantInfo::default()
        }
    }

    /// A Deployment's pod as a tenant API server stores it after admission: init container, the token volume
    /// injected by the service-account plugin, a user projected volume with an audience token and a
    /// downward-API file, env from fields, envFrom, affinity with namespaces and namespace selectors.
    fn realistic_spec() -> PodSpec {
        let spec = json!({
            "nodeName": "",
            "priority": 0,
            "preemptionPolicy": "PreemptLowerPriority",
            "serviceAccountName": "builder",
            "serviceAccount": "builder",
            "dnsPolicy": "ClusterFirst",
            "initContainers": [{
                "name": "init", "image": "busybox:1.36",
                "volumeMounts": [{"name": "kube-api-access-x7k2p",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
            }],
            "containers": [{
                "name": "app", "image": "nginx:1.27",
                "envFrom": [{"configMapRef": {"name": "app-config"}}, {"secretRef": {"name": "app-secret"}, "prefix": "S_"}],
                "env": [
                    {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "POD_SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
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
                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
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
                "podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "cache"}}
                    }]
                },
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "namespaces": ["web", "db"]
                    }],
                    "preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 10,
                        "podAffinityTerm": {"topologyKey": "zone", "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "db"},
                            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                "values": ["web", "db"]}]
                        }}
                    }, {
                        "weight": 5,
                        "podAffinityTerm": {"topologyKey": "zone", "namespaceSelector": {}}
                    }]
                }
            }
        });
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("test spec must parse: {e}"))
    }

    fn env_of(c: &Container) -> Vec<(String, Option<String>, Option<String>)> {
        c.env
            .iter()
            .flatten()
            .map(|e| {
                (
                    e.name.clone(),
                    e.value.clone(),
                    e.value_from
                        .as_ref()
                        .and_then(|f| f.field_ref.as_ref())
                        .map(|f| f.field_path.clone()),
                )
            })
            .collect()
    }

    #[test]
    fn tenant_token_replaces_the_super_token() {
        let out = super_spec(&realistic_spec(), &tenant(), "web");
        assert_eq!(out.automount_service_account_token, Some(false));
        assert_eq!(
            (
                out.service_account_name.clone(),
                out.service_account.clone()
            ),
            (None, None)
        );
        let names: Vec<&str> = out
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["kube-api-access-x7k2p", "vault", "info"]);
        let every_source = out
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.projected.as_ref())
            .flat_map(|p| p.sources.clone().unwrap_or_default());
        let mut secrets = Vec::new();
        for s in every_source {
            assert!(s.service_account_token.is_none(), "no super token: {s:?}");
            if let Some(sec) = s.secret {
                secrets.push(sec.name);
            }
            if let Some(cm) = s.config_map {
                assert_eq!(cm.name, SUPER_ROOT_CA);
            }
        }
        assert_eq!(secrets, ["vc-token-builder", "vault-ca"]);
        let mounts = |c: &Container| -> Vec<String> {
            c.volume_mounts
                .iter()
                .flatten()
                .map(|m| m.name.clone())
                .collect()
        };
        assert_eq!(
            out.containers.first().map(mounts),
            Some(vec![
                "kube-api-access-x7k2p".into(),
                "vault".into(),
                "info".into()
            ])
        );
        let init = out.init_containers.clone().unwrap_or_default();
        assert_eq!(
            init.first().map(mounts),
            Some(vec!["kube-api-access-x7k2p".into()])
        );
        assert_eq!(out.enable_service_links, Some(false));
    }

    #[test]
    fn scheduler_and_admission_fields_are_cleared() {
        let mut spec = realistic_spec();
        spec.node_name = Some("tenant-node".into());
        let out = super_spec(&spec, &tenant(), "web");
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
    fn downward_api_reads_tenant_namespace_uid_and_service_account() {
        let out = super_spec(&realistic_spec(), &tenant(), "web");
        let env = out.containers.first().map(env_of).unwrap_or_default();
        let ann = |k: &str| Some(format!("metadata.annotations['{k}']"));
        assert_eq!(
            env,
            [
                ("POD_NS".into(), None, ann("tenancy.x-k8s.io/namespace")),
                ("POD_UID".into(), None, ann("tenancy.x-k8s.io/uid")),
                ("POD_NAME".into(), None, Some("metadata.name".into())),
                ("POD_SA".into(), Some("builder".into()), None),
                ("NODE".into(), None, Some("spec.nodeName".into())),
                ("PLAIN".into(), Some("x".into()), None),
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
        let access = out
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "kube-api-access-x7k2p")
            .and_then(|v| v.projected.clone())
            .and_then(|p| p.sources)
            .unwrap_or_default();
        let projected_path = access
            .iter()
            .filter_map(|s| s.downward_api.as_ref())
            .flat_map(|d| d.items.clone().unwrap_or_default())
            .filter_map(|i| i.field_ref.map(|f| f.field_path))
            .collect::<Vec<_>>();
        assert_eq!(
            projected_path,
            ["metadata.annotations['tenancy.x-k8s.io/namespace']"]
        );
    }

    #[test]
    fn affinity_namespaces_are_translated_and_selectors_confined() {
        let t = tenant();
        let out = super_spec(&realistic_spec(), &t, "web");
        let affinity = out.affinity.unwrap_or_default();
        let own = affinity
            .pod_affinity
            .and_then(|a| a.required_during_scheduling_ignored_during_execution)
            .unwrap_or_default();
        assert_eq!(
            own.first().and_then(|t| t.namespaces.clone()),
            Some(vec![super_namespace(&t.cluster_key, "web")]),
            "no namespaces = the pod's own namespace, named explicitly"
        );
        let anti = affinity.pod_anti_affinity.unwrap_or_default();
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
        for w in &preferred {
            assert_eq!(
                w.pod_affinity_term.namespaces, None,
                "selector terms get no list"
            );
            let labels = w
                .pod_affinity_term
                .namespace_selector
                .clone()
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
        let by_name = preferred
            .first()
            .and_then(|w| w.pod_affinity_term.namespace_selector.clone())
            .unwrap_or_default();
        assert_eq!(
            by_name
                .match_labels
                .unwrap_or_default()
                .get(NAMESPACE_NAME_LABEL)
                .cloned(),
            Some(super_namespace(&t.cluster_key, "db"))
        );
        assert_eq!(
            by_name
                .match_expressions
                .unwrap_or_default()
                .first()
                .and_then(|e| e.values.clone()),
            Some(vec![
                super_namespace(&t.cluster_key, "web"),
                super_namespace(&t.cluster_key, "db")
            ])
        );
    }

    #[test]
    fn containers_and_other_fields_are_kept() {
        let spec = realistic_spec();
        let out = super_spec(&spec, &tenant(), "web");
        let images: Vec<Option<String>> = out.containers.iter().map(|c| c.image.clone()).collect();
        assert_eq!(images, [Some("nginx:1.27".to_owned())]);
        assert_eq!(out.init_containers.map(|c| c.len()), Some(1));
        assert_eq!(
            out.dns_policy.as_deref(),
            Some("ClusterFirst"),
            "DNS is a dependency rule"
        );
    }

    #[test]
    fn dependencies_complete_dns_and_service_variables() {
        let t = tenant();
        let mut out = super_spec(&realistic_spec(), &t, "web");
        let vars = service_env(&[ServiceLink {
            name: "kubernetes".into(),
            cluster_ip: "10.1.0.1".into(),
            ports: vec![LinkPort {
                name: "https".into(),
                port: 443,
                protocol: "TCP".into(),
            }],
        }]);
        let deps = Dependencies {
            dns: Some(ClusterDns::Nameserver("10.1.0.10".into())),
            service_env: Some(vars),
            envfrom_keys: [("app".to_owned(), ["KUBERNETES_PORT".to_owned()].into())].into(),
        };
        complete_spec(&mut out, &t, "web", &deps);
        assert_eq!(out.dns_policy.as_deref(), Some("None"));
        assert_eq!(
            out.dns_config.and_then(|c| c.nameservers),
            Some(vec!["10.1.0.10".to_owned()])
        );
        let app = out.containers.first().map(env_of).unwrap_or_default();
        let names: Vec<&str> = app.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names.first().copied(), Some("KUBERNETES_SERVICE_HOST"));
        assert!(
            !names.contains(&"KUBERNETES_PORT"),
            "set by envFrom: {names:?}"
        );
        assert!(names.contains(&"KUBERNETES_PORT_443_TCP_ADDR"));
        assert_eq!(names.last().copied(), Some("PLAIN"));
        let init = out.init_containers.unwrap_or_default();
        let init_env = init.first().map(env_of).unwrap_or_default();
        assert!(
            init_env
                .iter()
                .any(|(n, v, _)| n == "KUBERNETES_PORT"
                    && v.as_deref() == Some("tcp://10.1.0.1:443"))
        );
    }

    #[test]
    fn without_dependencies_dns_and_env_stay() {
        let t = tenant();
        let base = super_spec(&realistic_spec(), &t, "web");
        let mut out = base.clone();
        complete_spec(&mut out, &t, "web", &Dependencies::default());
        assert_eq!(out, base);
    }
}
