//! The `TestCluster` API itself, on whatever backend the environment selects: the kubeconfig file
//! works for kubectl and for fresh clients, namespaces are unique, dropping the cluster stops it.

mod common;

use common::{bounded, configmap};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::PostParams;
use testcluster::{Backend, TestCluster};

#[tokio::test]
async fn kubeconfig_file_works_for_kubectl_and_kube() -> anyhow::Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let ns = cluster.create_namespace("api-kubectl").await?;
        let path = cluster.kubeconfig_path().to_path_buf();
        assert!(path.is_file(), "{}", path.display());

        // Two independent clients see each other's writes.
        let first: Api<ConfigMap> = Api::namespaced(cluster.client().await?, &ns);
        first
            .create(&PostParams::default(), &configmap("shared", &[]))
            .await?;
        let second: Api<ConfigMap> = Api::namespaced(cluster.client().await?, &ns);
        assert!(second.get_opt("shared").await?.is_some());

        // tokio's Command: the simulator serves on this test's runtime, a blocking wait would starve it.
        let kubectl = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&path)
            .args([
                "get",
                "configmap",
                "shared",
                "-n",
                &ns,
                "-o",
                "jsonpath={.metadata.name}",
            ])
            .output()
            .await;
        match kubectl {
            Ok(out) => {
                assert!(
                    out.status.success(),
                    "kubectl failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(String::from_utf8_lossy(&out.stdout), "shared");
            }
            Err(error) => eprintln!("SKIPPED kubectl part: kubectl not runnable ({error})"),
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn namespaces_are_unique_and_exist() -> anyhow::Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        let a = cluster.create_namespace("api-ns").await?;
        let b = cluster.create_namespace("api-ns").await?;
        assert_ne!(a, b);
        let namespaces: Api<Namespace> = Api::all(cluster.client().await?);
        assert!(namespaces.get_opt(&a).await?.is_some());
        assert!(namespaces.get_opt(&b).await?.is_some());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn dropping_the_cluster_stops_it_and_removes_its_files() -> anyhow::Result<()> {
    bounded(async {
        let cluster = TestCluster::start().await?;
        if cluster.backend() == Backend::Kubeconfig {
            common::skip(
                "dropping_the_cluster_stops_it_and_removes_its_files",
                cluster.backend(),
                "an existing cluster outlives the test",
            );
            return Ok(());
        }
        let client = cluster.client().await?;
        let path = cluster.kubeconfig_path().to_path_buf();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces.get("default").await?;
        assert_eq!(
            cluster.simulator().is_some(),
            cluster.backend() == Backend::Simulator
        );
        drop(cluster);
        assert!(
            !path.exists(),
            "kubeconfig left behind at {}",
            path.display()
        );
        let after = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            namespaces.get("default"),
        )
        .await;
        assert!(
            !matches!(after, Ok(Ok(_))),
            "the API server still answers after the cluster was dropped"
        );
        Ok(())
    })
    .await
}
