//! The kube-runtime `Controller` for VirtualClusters: reconciles on changes to a VirtualCluster, to any
//! object vc-manager made for one (StatefulSets, Services, Secrets, namespaces — selected by the
//! `app.kubernetes.io/managed-by=vc-manager` label and mapped back through vc-manager's labels), and to
//! ClusterVersions (every VirtualCluster using one).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use vc_api::secrets as names;
use vc_api::{ClusterVersion, VirtualCluster};

use crate::error::Error;
use crate::reconcile::{Context, reconcile};

/// The VirtualCluster an object made by vc-manager belongs to, from its labels.
pub fn owner_of<K: Resource>(object: &K) -> Option<ObjectRef<VirtualCluster>> {
    let labels = object.meta().labels.as_ref()?;
    let name = labels.get(names::LABEL_VC_NAME)?;
    let namespace = labels.get(names::LABEL_VC_NAMESPACE)?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Backoff after a failed reconcile.
pub fn error_policy(vc: Arc<VirtualCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(vc = %vc.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until `shutdown` completes.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY
    ));
    let controller = Controller::new(
        Api::<VirtualCluster>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .watches(
            Api::<StatefulSet>::all(client.clone()),
            managed.clone(),
            |o| owner_of(&o),
        )
        .watches(Api::<Service>::all(client.clone()), managed.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<Secret>::all(client.clone()), managed.clone(), |o| {
            owner_of(&o)
        })
        .watches(Api::<Namespace>::all(client.clone()), managed, |o| {
            owner_of(&o)
        })
        .watches(
            Api::<ClusterVersion>::all(client),
            watcher::Config::default(),
            move |cv| {
                let name = cv.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|vc| vc.spec.cluster_version_name == name)
                    .map(|vc| ObjectRef::from_obj(&*vc))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((vc, _)) => tracing::debug!(vc = %vc.name, "reconciled"),
                Err(error) => tracing::debug!(%error, "controller event"),
            }
        })
        .await;
}
