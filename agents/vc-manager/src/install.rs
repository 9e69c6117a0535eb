//! Installing the CRDs into a cluster (the embedded default and tests; in production apply
//! `deploy/crds/`).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;

use crate::error::{Error, is_conflict, kube_err};

/// Creates the VirtualCluster and ClusterVersion CRDs if absent and waits (up to `wait`) until both are
/// Established.
pub async fn install_crds(client: &kube::Client, wait: Duration) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in vc_api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        match api.create(&PostParams::default(), &crd).await {
            Ok(_) => tracing::info!(crd = %name, "CRD installed"),
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(kube_err(format!("create CRD {name}"))(e)),
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut established = 0;
        for (_, crd) in vc_api::crds() {
            let name = crd.metadata.name.unwrap_or_default();
            let live = api
                .get_opt(&name)
                .await
                .map_err(kube_err(format!("read CRD {name}")))?;
            let ok = live
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            established += usize::from(ok);
        }
        if established == 2 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Provision("CRDs not Established in time".into()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
