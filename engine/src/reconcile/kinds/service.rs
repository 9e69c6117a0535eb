//! Service, both directions.
//!
//! Down: the spec is copied with what the tenant's API server allocated cleared — `clusterIP`/`clusterIPs`
//! (except `None`, a headless service), `ipFamilies`, every `nodePort`, `healthCheckNodePort` — so the super
//! cluster allocates its own; the type is kept. On update, what the super cluster allocated or defaulted is
//! kept and only the tenant's intent (ports, selector, type, policies, ...) is compared.
//!
//! Up: the super ClusterIP goes into the tenant service's annotation [`ANNOTATION_CLUSTER_IP`], and
//! `status.loadBalancer` into its status. The tenant's own `spec.clusterIP` is never written: the tenant API
//! server allocates one at creation and a real API server refuses to change it afterwards ("field is
//! immutable"), which the simulator enforces too; pods in the super cluster use the super IP (through the
//! annotation and the pod rewriting rules).

use k8s_openapi::api::core::v1::{Service, ServiceSpec, ServiceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::TenantInfo;
use super::super::metadata::StringMap;
use super::super::object::DownKind;

/// Tenant annotation carrying the super cluster's ClusterIP of the service.
pub const ANNOTATION_CLUSTER_IP: &str = "transparency.tenancy.x-k8s.io/clusterIP";

const HEADLESS: &str = "None";

/// Services, both directions.
pub(crate) struct ServiceKind;

fn has_node_ports(spec: &ServiceSpec) -> bool {
    matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"))
}

/// The tenant's spec with the allocated fields cleared.
fn translate_spec(spec: &ServiceSpec) -> ServiceSpec {
    let mut out = spec.clone();
    if out.cluster_ip.as_deref() != Some(HEADLESS) {
        out.cluster_ip = None;
        out.cluster_ips = None;
    } else {
        out.cluster_ips = Some(vec![HEADLESS.to_owned()]);
    }
    out.ip_families = None;
    out.health_check_node_port = None;
    for port in out.ports.iter_mut().flatten() {
        port.node_port = None;
    }
    out
}

/// `want` (a translated tenant spec) completed with what the super cluster allocated or defaulted in
/// `have`, where the tenant's intent leaves it open.
fn with_allocations(mut want: ServiceSpec, have: &ServiceSpec) -> ServiceSpec {
    if want.type_.as_deref() != Some("ExternalName") {
        if want.cluster_ip.is_none() {
            want.cluster_ip.clone_from(&have.cluster_ip);
            want.cluster_ips.clone_from(&have.cluster_ips);
        }
        if want.ip_families.is_none() {
            want.ip_families.clone_from(&have.ip_families);
        }
        if want.ip_family_policy.is_none() {
            want.ip_family_policy.clone_from(&have.ip_family_policy);
        }
    }
    if has_node_ports(&want) {
        for port in want.ports.iter_mut().flatten() {
            if port.node_port.is_none() {
                port.node_port = have
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| {
                        p.port == port.port && p.protocol == port.protocol && p.name == port.name
                    })
                    .and_then(|p| p.node_port);
            }
        }
        if want.type_.as_deref() == Some("LoadBalancer") && want.health_check_node_port.is_none() {
            want.health_check_node_port = have.health_check_node_port;
        }
    }
    for (w, h) in [
        (&mut want.session_affinity, &have.session_affinity),
        (
            &mut want.internal_traffic_policy,
            &have.internal_traffic_policy,
        ),
        (
            &mut want.external_traffic_policy,
            &have.external_traffic_policy,
        ),
    ] {
        if w.is_none() {
            w.clone_from(h);
        }
    }
    if want.allocate_load_balancer_node_ports.is_none() {
        want.allocate_load_balancer_node_ports = have.allocate_load_balancer_node_ports;
    }
    want
}

impl DownKind for ServiceKind {
    type Object = Service;
    const KIND: &'static str = "Service";

    fn translate(t: &Service, meta: ObjectMeta, _: &TenantInfo) -> Result<Service, String> {
        let spec = t.spec.as_ref().ok_or("the service has no spec")?;
        Ok(Service {
            metadata: meta,
            spec: Some(translate_spec(spec)),
            status: None,
        })
    }

    fn update_body(desired: &Service, actual: &Service) -> Option<Service> {
        let have = actual.spec.clone().unwrap_or_default();
        let want = with_allocations(desired.spec.clone().unwrap_or_default(), &have);
        (want != have).then(|| Service {
            spec: Some(want),
            ..actual.clone()
        })
    }

    fn up_annotations(s: &Service) -> StringMap {
        s.spec
            .as_ref()
            .and_then(|spec| spec.cluster_ip.clone())
            .filter(|ip| !ip.is_empty())
            .map(|ip| StringMap::from([(ANNOTATION_CLUSTER_IP.to_owned(), ip)]))
            .unwrap_or_default()
    }

    fn up_status(s: &Service, t: &Service) -> Option<Service> {
        let want = s.status.as_ref().and_then(|st| st.load_balancer.clone());
        let have = t.status.as_ref().and_then(|st| st.load_balancer.clone());
        if want.clone().unwrap_or_default() == have.unwrap_or_default() {
            return None;
        }
        let mut status: ServiceStatus = t.status.clone().unwrap_or_default();
        status.load_balancer = want;
        Some(Service {
            status: Some(status),
            ..t.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::kinds::test_support::{created, run};
    use crate::reconcile::object::ObjectAction;
    use serde_json::json;

    fn tenant_svc(type_: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "web", "uid": "t-uid", "resourceVersion": "3"},
            "spec": {"type": type_, "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080,
                           "nodePort": 30080}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The super copy after the super API server allocated its own addresses and ports.
    fn allocated(t: &Service) -> Service {
        let mut s = created::<ServiceKind>(t, "web");
        let spec = s.spec.get_or_insert_with(Default::default);
        spec.cluster_ip = Some("10.0.0.7".into());
        spec.cluster_ips = Some(vec!["10.0.0.7".into()]);
        spec.ip_families = Some(vec!["IPv4".into()]);
        if has_node_ports(spec) {
            for p in spec.ports.iter_mut().flatten() {
                p.node_port = Some(32111);
            }
        }
        if spec.type_.as_deref() == Some("LoadBalancer") {
            spec.health_check_node_port = Some(32000);
        }
        s
    }

    #[test]
    fn allocated_fields_are_cleared_and_the_type_kept() {
        let t = tenant_svc("LoadBalancer");
        let s = created::<ServiceKind>(&t, "web");
        let spec = s.spec.clone().unwrap_or_default();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(
            (spec.cluster_ip, spec.cluster_ips, spec.ip_families),
            (None, None, None)
        );
        assert_eq!(spec.health_check_node_port, None);
        assert!(spec.ports.iter().flatten().all(|p| p.node_port.is_none()));
        assert_eq!(spec.selector, t.spec.clone().unwrap_or_default().selector);
        // Headless stays headless.
        let mut headless = tenant_svc("ClusterIP");
        if let Some(spec) = headless.spec.as_mut() {
            spec.cluster_ip = Some("None".into());
            spec.cluster_ips = Some(vec!["None".into()]);
        }
        let h = created::<ServiceKind>(&headless, "web");
        assert_eq!(h.spec.and_then(|s| s.cluster_ip).as_deref(), Some("None"));
    }

    #[test]
    fn super_allocations_do_not_cause_updates_but_tenant_changes_do() {
        for type_ in ["ClusterIP", "NodePort", "LoadBalancer"] {
            let t = tenant_svc(type_);
            let s = allocated(&t);
            let actions = run::<ServiceKind>(Some(&t), Some(&s), "web");
            assert!(
                actions
                    .iter()
                    .all(|a| !matches!(a, ObjectAction::UpdateSuper(_))),
                "{type_}: {actions:?}"
            );
            let mut t2 = t.clone();
            if let Some(spec) = t2.spec.as_mut() {
                spec.ports.iter_mut().flatten().for_each(|p| p.port = 81);
            }
            let actions = run::<ServiceKind>(Some(&t2), Some(&s), "web");
            let Some(ObjectAction::UpdateSuper(u)) = actions.first() else {
                panic!("{type_}: {actions:?}")
            };
            let spec = u.spec.clone().unwrap_or_default();
            assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.7"), "{type_}");
            assert!(spec.ports.iter().flatten().all(|p| p.port == 81));
        }
    }

    #[test]
    fn the_super_cluster_ip_flows_up_as_an_annotation_never_into_the_spec() {
        let t = tenant_svc("LoadBalancer");
        let mut s = allocated(&t);
        s.status = Some(
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}}))
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let actions = run::<ServiceKind>(Some(&t), Some(&s), "web");
        let [
            ObjectAction::UpdateTenant(meta),
            ObjectAction::UpdateTenantStatus(status),
        ] = actions.as_slice()
        else {
            panic!("{actions:?}")
        };
        let ann = meta.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            ann.get(ANNOTATION_CLUSTER_IP).map(String::as_str),
            Some("10.0.0.7")
        );
        // The tenant's own ClusterIP is immutable: left as its API server allocated it.
        assert_eq!(meta.spec, t.spec);
        assert_eq!(status.status, s.status);
        // Once both are there, nothing flows.
        let mut synced = t.clone();
        synced.metadata.annotations = Some(ann);
        synced.status.clone_from(&s.status);
        assert_eq!(run::<ServiceKind>(Some(&synced), Some(&s), "web"), vec![]);
    }
}
