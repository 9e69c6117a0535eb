//! Conformance: Service IP and port allocation.
//!
//! Rules ("Service ClusterIP allocation", pkg/registry/core/service/ipallocator and storage): a Service
//! without `clusterIP` gets a free address from `--service-cluster-ip-range` (10.96.0.0/12 for the
//! simulator and our real binaries), mirrored in `clusterIPs`, with `ipFamilies: [IPv4]` and
//! `ipFamilyPolicy: SingleStack`; the range's first address belongs to `default/kubernetes`; asking for
//! an address in use is 422 Invalid on `spec.clusterIPs` ("provided IP is already allocated"), one
//! outside the range is 422 ("provided IP is not in the valid range"); `None` makes a headless Service;
//! `clusterIPs` may not change once set (pkg/apis/core/validation
//! `validateUpgradeDowngradeClusterIPs`); deleting a Service releases its address; NodePort Services get a port in
//! 30000-32767.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{api_status, bounded, env, eventually, skip, status_details};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use testcluster::Backend;

fn service(name: &str, cluster_ip: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: cluster_ip.map(String::from),
            ports: Some(vec![ServicePort {
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cluster_ip(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .unwrap_or_default()
}

/// True when `ip` is inside 10.96.0.0/12.
fn in_default_range(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>()
        .map(|ip| u32::from(ip) & 0xFFF0_0000 == u32::from(Ipv4Addr::new(10, 96, 0, 0)))
        .unwrap_or(false)
}

/// Whether this backend is known to use 10.96.0.0/12 (an existing cluster may use any range).
fn knows_range(backend: Backend) -> bool {
    matches!(backend, Backend::Simulator | Backend::RealBinaries)
}

#[tokio::test]
async fn cluster_ips_come_from_the_range_and_duplicates_are_422() -> anyhow::Result<()> {
    bounded(async {
        let env = env("svc-ip").await?;
        let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
        let a = services
            .create(&PostParams::default(), &service("a", None))
            .await?;
        let ip = cluster_ip(&a);
        let spec = a.spec.clone().unwrap_or_default();
        assert_eq!(
            spec.cluster_ips,
            Some(vec![ip.clone()]),
            "clusterIPs must mirror clusterIP"
        );
        assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        ip.parse::<Ipv4Addr>()?;

        let b = services
            .create(&PostParams::default(), &service("b", None))
            .await?;
        assert_ne!(cluster_ip(&b), ip, "two services got the same address");

        if knows_range(env.cluster.backend()) {
            assert!(in_default_range(&ip), "{ip} not in 10.96.0.0/12");
            assert!(in_default_range(&cluster_ip(&b)));
            let kubernetes: Api<Service> = Api::namespaced(env.client.clone(), "default");
            assert_eq!(
                cluster_ip(&kubernetes.get("kubernetes").await?),
                "10.96.0.1"
            );

            let status = api_status(
                services
                    .create(
                        &PostParams::default(),
                        &service("far", Some("192.168.77.7")),
                    )
                    .await,
            )?;
            assert_eq!(
                (status.code, status.reason.as_str()),
                (422, "Invalid"),
                "{status:?}"
            );
            assert!(
                status
                    .message
                    .contains("provided IP is not in the valid range"),
                "{}",
                status.message
            );
        } else {
            skip(
                "range checks",
                env.cluster.backend(),
                "the service range of an existing cluster is unknown",
            );
        }

        let status = api_status(
            services
                .create(&PostParams::default(), &service("dup", Some(&ip)))
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (422, "Invalid"),
            "{status:?}"
        );
        assert!(
            status.message.contains("provided IP is already allocated"),
            "{}",
            status.message
        );
        let details = status_details(&status)?;
        assert_eq!(
            (details.name.as_str(), details.kind.as_str()),
            ("dup", "Service")
        );
        assert!(
            details.causes.iter().any(|c| c.field == "spec.clusterIPs"),
            "{details:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn headless_and_released_addresses() -> anyhow::Result<()> {
    bounded(async {
        let env = env("svc-life").await?;
        let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
        let headless = services
            .create(&PostParams::default(), &service("headless", Some("None")))
            .await?;
        assert_eq!(cluster_ip(&headless), "None");

        let a = services
            .create(&PostParams::default(), &service("a", None))
            .await?;
        let ip = cluster_ip(&a);
        services.delete("a", &DeleteParams::default()).await?;
        // The address is free again once the Service is gone.
        let reused = eventually(
            "released address reusable",
            Duration::from_secs(10),
            || async {
                match services
                    .create(&PostParams::default(), &service("again", Some(&ip)))
                    .await
                {
                    Ok(svc) => Ok(Some(svc)),
                    Err(kube::Error::Api(s)) if s.code == 422 => Ok(None),
                    Err(other) => Err(other.into()),
                }
            },
        )
        .await?;
        assert_eq!(cluster_ip(&reused), ip);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cluster_ip_may_not_change_once_set() -> anyhow::Result<()> {
    bounded(async {
        let env = env("svc-immutable").await?;
        let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
        services.create(&PostParams::default(), &service("a", None)).await?;
        let status = api_status(
            services
                .patch("a", &PatchParams::default(), &Patch::Merge(serde_json::json!({"spec": {"clusterIP": "10.96.200.200", "clusterIPs": ["10.96.200.200"]}})))
                .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        // validateUpgradeDowngradeClusterIPs reports the whole new list as the invalid value.
        assert!(
            status.message.contains(
                r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.200.200"}: may not change once set"#
            ),
            "{}",
            status.message
        );

        Ok(())
    })
    .await
}

#[tokio::test]
async fn node_ports_come_from_the_default_port_range() -> anyhow::Result<()> {
    bounded(async {
        let env = env("svc-nodeport").await?;
        let services: Api<Service> = Api::namespaced(env.client.clone(), &env.ns);
        let mut np = service("np", None);
        if let Some(spec) = np.spec.as_mut() {
            spec.type_ = Some("NodePort".to_string());
        }
        let created = services.create(&PostParams::default(), &np).await?;
        let port = created
            .spec
            .and_then(|s| s.ports)
            .and_then(|p| p.first().and_then(|p| p.node_port))
            .ok_or_else(|| anyhow::anyhow!("no nodePort allocated"))?;
        if knows_range(env.cluster.backend()) {
            assert!(
                (30000..=32767).contains(&port),
                "nodePort {port} outside 30000-32767"
            );
        }
        Ok(())
    })
    .await
}
