//! NetworkPolicy (networking.k8s.io/v1, opt-in), down. Pod selectors and IP blocks are copied as they are
//! (super pods carry the tenant pods' labels, in the same super namespace). Peers with a
//! `namespaceSelector` select *tenant* namespaces, so the selector is translated to select this tenant's
//! super namespaces:
//!
//! * it is ANDed with `tenancy.x-k8s.io/vcname` and `tenancy.x-k8s.io/vcnamespace` (labels the syncer puts on
//!   every super namespace), so a policy never reaches another tenant's namespaces — `{}` ("every
//!   namespace") becomes "every namespace of this tenant";
//! * other label keys are kept: super namespaces carry their tenant namespace's labels;
//! * `kubernetes.io/metadata.name` (set by each API server to the namespace's own name) is translated:
//!   values become the super namespace names (`matchLabels`, and `In`/`NotIn` expressions).
//!
//! Limits: labels under reserved prefixes (`tenancy.x-k8s.io`, the VC's opaque/transparent prefixes) are not
//! copied to super namespaces, so selecting on them selects nothing.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::super::TenantInfo;
use super::super::metadata::NAMESPACE_NAME_LABEL;
use super::super::object::DownKind;
use crate::naming::{ANNOTATION_VC_NAME, ANNOTATION_VC_NAMESPACE, super_namespace};

/// NetworkPolicies, down.
pub(crate) struct NetworkPolicyKind;

/// A tenant namespace selector as a selector of this tenant's super namespaces.
fn translate_selector(sel: &LabelSelector, tenant: &TenantInfo) -> LabelSelector {
    let mut out = sel.clone();
    let to_super = |ns: &String| super_namespace(&tenant.cluster_key, ns);
    let labels = out.match_labels.get_or_insert_with(Default::default);
    if let Some(ns) = labels.get_mut(NAMESPACE_NAME_LABEL) {
        *ns = to_super(ns);
    }
    labels.insert(ANNOTATION_VC_NAME.to_owned(), tenant.vc_name.clone());
    labels.insert(
        ANNOTATION_VC_NAMESPACE.to_owned(),
        tenant.vc_namespace.clone(),
    );
    for expr in out.match_expressions.iter_mut().flatten() {
        if expr.key == NAMESPACE_NAME_LABEL {
            for v in expr.values.iter_mut().flatten() {
                *v = to_super(v);
            }
        }
    }
    out
}

fn translate_peers(peers: Option<&mut Vec<NetworkPolicyPeer>>, tenant: &TenantInfo) {
    for peer in peers.into_iter().flatten() {
        if let Some(sel) = peer.namespace_selector.as_ref() {
            peer.namespace_selector = Some(translate_selector(sel, tenant));
        }
    }
}

impl DownKind for NetworkPolicyKind {
    type Object = NetworkPolicy;
    const KIND: &'static str = "NetworkPolicy";
    const DEFAULT_ENABLED: bool = false;

    fn translate(
        t: &NetworkPolicy,
        meta: ObjectMeta,
        tenant: &TenantInfo,
    ) -> Result<NetworkPolicy, String> {
        let mut spec = t.spec.clone().ok_or("the network policy has no spec")?;
        for rule in spec.ingress.iter_mut().flatten() {
            translate_peers(rule.from.as_mut(), tenant);
        }
        for rule in spec.egress.iter_mut().flatten() {
            translate_peers(rule.to.as_mut(), tenant);
        }
        Ok(NetworkPolicy {
            metadata: meta,
            spec: Some(spec),
        })
    }

    fn update_body(desired: &NetworkPolicy, actual: &NetworkPolicy) -> Option<NetworkPolicy> {
        (desired.spec != actual.spec).then(|| NetworkPolicy {
            spec: desired.spec.clone(),
            ..actual.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::kinds::test_support::{created, tenant};
    use serde_json::json;

    #[test]
    fn namespace_selectors_are_confined_to_the_tenant_and_names_translated() {
        let t: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "allow", "namespace": "web", "uid": "t-uid"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [
                    {"namespaceSelector": {}},
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                     "podSelector": {"matchLabels": {"app": "prom"}}},
                    {"podSelector": {"matchLabels": {"role": "frontend"}}},
                    {"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
                "egress": [{"to": [{"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["db", "cache"]},
                    {"key": "env", "operator": "Exists"}]}}]}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let s = created::<NetworkPolicyKind>(&t, "allow");
        let spec = s.spec.clone().unwrap_or_default();
        let v = serde_json::to_value(&spec).unwrap_or_default();
        let from = &v["ingress"][0]["from"];
        let confined =
            json!({"tenancy.x-k8s.io/vcname": "vc1", "tenancy.x-k8s.io/vcnamespace": "team"});
        assert_eq!(from[0]["namespaceSelector"]["matchLabels"], confined);
        assert_eq!(
            from[1]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            json!(super_namespace(&tenant().cluster_key, "monitoring"))
        );
        assert_eq!(
            from[1]["podSelector"],
            json!({"matchLabels": {"app": "prom"}})
        );
        assert_eq!(
            from[2],
            json!({"podSelector": {"matchLabels": {"role": "frontend"}}})
        );
        assert_eq!(from[3], json!({"ipBlock": {"cidr": "10.0.0.0/8"}}));
        let to = &v["egress"][0]["to"][0]["namespaceSelector"];
        assert_eq!(
            to["matchExpressions"][0]["values"],
            json!([
                super_namespace(&tenant().cluster_key, "db"),
                super_namespace(&tenant().cluster_key, "cache")
            ])
        );
        assert_eq!(
            to["matchExpressions"][1],
            json!({"key": "env", "operator": "Exists"})
        );
        assert_eq!(to["matchLabels"], confined);
        assert_eq!(
            spec.pod_selector,
            t.spec.clone().unwrap_or_default().pod_selector
        );
    }
}
