//! Conformance: discovery and health endpoints.
//!
//! Rules (kubernetes.io "API Concepts" / "Discovery API", and the legacy discovery handlers in
//! staging/src/k8s.io/apiserver/pkg/endpoints/discovery): `/api` answers an `APIVersions` object listing
//! `v1`; `/api/v1` and `/apis/<group>/<version>` answer an `APIResourceList` whose entries carry `name`,
//! `namespaced`, `kind` and `verbs`, with subresources as `<resource>/<sub>` entries; `/apis` answers an
//! `APIGroupList` whose groups carry `versions` and `preferredVersion`; `/version` answers the build
//! info; `/healthz` and `/readyz` answer the plain text `ok`.

mod common;

use common::{bounded, env, get_json, raw};
use http::Method;
use serde_json::Value;

/// The entry named `name` in an APIResourceList.
fn resource<'a>(list: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    list["resources"]
        .as_array()
        .and_then(|items| items.iter().find(|r| r["name"] == name))
        .ok_or_else(|| anyhow::anyhow!("{name} missing from {}", list["groupVersion"]))
}

fn verbs(entry: &Value) -> Vec<String> {
    entry["verbs"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn core_discovery_lists_v1_and_its_resources() -> anyhow::Result<()> {
    bounded(async {
        let env = env("disc-core").await?;
        let api = get_json(&env.client, "/api").await?;
        assert_eq!(api["kind"], "APIVersions", "{api}");
        assert_eq!(api["versions"], serde_json::json!(["v1"]), "{api}");

        let v1 = get_json(&env.client, "/api/v1").await?;
        assert_eq!(v1["kind"], "APIResourceList", "{v1}");
        assert_eq!(v1["groupVersion"], "v1", "{v1}");

        let pods = resource(&v1, "pods")?;
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["kind"], "Pod");
        let pod_verbs = verbs(pods);
        for verb in [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ] {
            assert!(
                pod_verbs.iter().any(|v| v == verb),
                "pods lacks verb {verb}: {pod_verbs:?}"
            );
        }
        let pod_status = resource(&v1, "pods/status")?;
        assert_eq!(pod_status["kind"], "Pod");
        let mut status_verbs = verbs(pod_status);
        status_verbs.sort();
        assert_eq!(status_verbs, ["get", "patch", "update"]);

        let namespaces = resource(&v1, "namespaces")?;
        assert_eq!(namespaces["namespaced"], false);
        assert_eq!(namespaces["kind"], "Namespace");
        for name in [
            "configmaps",
            "secrets",
            "services",
            "nodes",
            "events",
            "serviceaccounts",
        ] {
            resource(&v1, name)?;
        }
        assert_eq!(resource(&v1, "nodes")?["namespaced"], false);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn group_discovery_lists_apps_with_preferred_version() -> anyhow::Result<()> {
    bounded(async {
        let env = env("disc-groups").await?;
        let apis = get_json(&env.client, "/apis").await?;
        assert_eq!(apis["kind"], "APIGroupList", "{apis}");
        let groups = apis["groups"].as_array().cloned().unwrap_or_default();
        let apps = groups
            .iter()
            .find(|g| g["name"] == "apps")
            .ok_or_else(|| anyhow::anyhow!("apps missing from /apis: {apis}"))?;
        assert_eq!(
            apps["preferredVersion"]["groupVersion"], "apps/v1",
            "{apps}"
        );
        assert_eq!(apps["preferredVersion"]["version"], "v1", "{apps}");
        let versions = apps["versions"].as_array().cloned().unwrap_or_default();
        assert!(
            versions.iter().any(|v| v["groupVersion"] == "apps/v1"),
            "{apps}"
        );
        // The core group is not part of /apis.
        assert!(!groups.iter().any(|g| g["name"] == ""), "{apis}");

        let apps_v1 = get_json(&env.client, "/apis/apps/v1").await?;
        assert_eq!(apps_v1["kind"], "APIResourceList", "{apps_v1}");
        assert_eq!(apps_v1["groupVersion"], "apps/v1", "{apps_v1}");
        let deployments = resource(&apps_v1, "deployments")?;
        assert_eq!(deployments["namespaced"], true);
        assert_eq!(deployments["kind"], "Deployment");
        resource(&apps_v1, "deployments/status")?;
        let scale = resource(&apps_v1, "deployments/scale")?;
        // The scale subresource is served with kind Scale from autoscaling/v1.
        assert_eq!(scale["kind"], "Scale", "{scale}");
        assert_eq!(scale["group"], "autoscaling", "{scale}");
        for name in ["statefulsets", "daemonsets", "replicasets"] {
            resource(&apps_v1, name)?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unknown_group_version_is_404() -> anyhow::Result<()> {
    bounded(async {
        let env = env("disc-404").await?;
        let response = raw(
            &env.client,
            Method::GET,
            "/apis/nope.example.com/v1",
            None,
            Vec::new(),
        )
        .await?;
        assert_eq!(response.code, 404, "{}", response.text());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn version_and_health_endpoints() -> anyhow::Result<()> {
    bounded(async {
        let env = env("disc-health").await?;
        let version = get_json(&env.client, "/version").await?;
        assert_eq!(version["major"], "1", "{version}");
        let minor = version["minor"].as_str().unwrap_or_default();
        assert!(!minor.is_empty(), "{version}");
        let git_version = version["gitVersion"].as_str().unwrap_or_default();
        assert!(git_version.starts_with("v1."), "{version}");
        assert!(
            version["platform"]
                .as_str()
                .is_some_and(|p| p.contains('/')),
            "{version}"
        );

        for path in ["/healthz", "/readyz", "/livez"] {
            let response = raw(&env.client, Method::GET, path, None, Vec::new()).await?;
            assert_eq!(
                (response.code, response.text().as_str()),
                (200, "ok"),
                "{path}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn kube_discovery_finds_core_and_apps_kinds() -> anyhow::Result<()> {
    bounded(async {
        let env = env("disc-kube").await?;
        let discovery = kube::Discovery::new(env.client.clone()).run().await?;
        let pod = kube::core::GroupVersionKind::gvk("", "v1", "Pod");
        let deployment = kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment");
        let (pod_resource, pod_caps) = discovery
            .resolve_gvk(&pod)
            .ok_or_else(|| anyhow::anyhow!("Pod not discovered"))?;
        assert_eq!(pod_resource.plural, "pods");
        assert!(pod_caps.supports_operation(kube::discovery::verbs::WATCH));
        let (deploy_resource, _) = discovery
            .resolve_gvk(&deployment)
            .ok_or_else(|| anyhow::anyhow!("Deployment not discovered"))?;
        assert_eq!(deploy_resource.plural, "deployments");
        Ok(())
    })
    .await
}
