//! Conformance: finalizers and namespace deletion.
//!
//! Rules ("Using Finalizers", "Namespaces" on kubernetes.io): deleting an object that has finalizers
//! sets `metadata.deletionTimestamp` and leaves the object in place (the delete answers 200 with it);
//! no new finalizer may be added from then on (apimachinery `ValidateObjectMetaUpdate`: "no new
//! finalizers can be added if the object is being deleted", 422); removing the last finalizer deletes
//! the object, which watchers see as DELETED. Deleting a namespace sets `status.phase: Terminating`,
//! new content is refused with 403 Forbidden (NamespaceLifecycle admission: "unable to create new
//! content in namespace <ns> because it is being terminated", cause `NamespaceTerminating`), the
//! namespace controller deletes the contents (waiting for their finalizers), then the namespace
//! disappears.

mod common;

use std::time::Duration;

use common::{api_status, bounded, configmap, env, eventually, skip, status_details};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{
    DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};

const FINALIZER: &str = "conformance.example.com/hold";

fn held(name: &str) -> ConfigMap {
    let mut cm = configmap(name, &[]);
    cm.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    cm
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> anyhow::Result<()> {
    bounded(async {
        let env = env("life-final").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let created = configmaps.create(&PostParams::default(), &held("f")).await?;
        let rv0 = created.metadata.resource_version.clone().unwrap_or_default();

        let deleted = configmaps.delete("f", &DeleteParams::default()).await?;
        let terminating = deleted
            .left()
            .ok_or_else(|| anyhow::anyhow!("delete of an object with finalizers returned a Status, not the object"))?;
        assert!(terminating.metadata.deletion_timestamp.is_some(), "no deletionTimestamp in the delete answer");

        let still = configmaps.get("f").await?;
        assert!(still.metadata.deletion_timestamp.is_some());
        assert_eq!(still.metadata.finalizers, Some(vec![FINALIZER.to_string()]));

        // Other changes are still allowed, new finalizers are not.
        configmaps
            .patch("f", &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"labels": {"l": "1"}}})))
            .await?;
        let status = api_status(
            configmaps
                .patch(
                    "f",
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"metadata": {"finalizers": [FINALIZER, "conformance.example.com/late"]}})),
                )
                .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
        assert!(
            status.message.contains("no new finalizers can be added if the object is being deleted"),
            "{}",
            status.message
        );

        configmaps
            .patch("f", &PatchParams::default(), &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})))
            .await?;
        let gone = eventually("object deleted after its finalizer was removed", Duration::from_secs(10), || async {
            Ok(configmaps.get_opt("f").await?.is_none().then_some(()))
        })
        .await;
        gone?;

        // The watch history shows: ADDED, MODIFIED (deletionTimestamp), MODIFIED (label),
        // MODIFIED (finalizer removed) or directly DELETED, and finally DELETED.
        // Only events of `f`: controllers may add objects of their own (kube-root-ca.crt).
        let params = WatchParams::default().timeout(3).fields("metadata.name=f");
        let events: Vec<_> = configmaps.watch(&params, &rv0).await?.try_collect().await?;
        let last = events
            .iter()
            .rev()
            .find(|e| !matches!(e, WatchEvent::Bookmark(_)))
            .ok_or_else(|| anyhow::anyhow!("no watch events"))?;
        assert!(matches!(last, WatchEvent::Deleted(_)), "last event {last:?} of {events:?}");
        let first_modified = events.iter().find_map(|e| match e {
            WatchEvent::Modified(cm) => Some(cm.clone()),
            _ => None,
        });
        assert!(
            first_modified.is_some_and(|cm| cm.metadata.deletion_timestamp.is_some()),
            "the delete was not visible as a MODIFIED event with deletionTimestamp: {events:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn namespace_deletion_terminates_then_removes_contents() -> anyhow::Result<()> {
    bounded(async {
        let env = env("life-ns").await?;
        let namespaces: Api<Namespace> = Api::all(env.client.clone());
        let ns = env.ns.clone();
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
        configmaps
            .create(&PostParams::default(), &configmap("plain", &[]))
            .await?;
        configmaps
            .create(&PostParams::default(), &held("held"))
            .await?;

        let answer = namespaces.delete(&ns, &DeleteParams::default()).await?;
        let deleting = answer.left().ok_or_else(|| {
            anyhow::anyhow!("namespace delete returned a Status, not the namespace")
        })?;
        assert!(deleting.metadata.deletion_timestamp.is_some());
        assert_eq!(
            deleting.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Terminating"),
            "namespace not Terminating in the delete answer"
        );

        // The held object keeps the namespace Terminating; new content is refused meanwhile.
        let status = api_status(
            configmaps
                .create(&PostParams::default(), &configmap("late", &[]))
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (403, "Forbidden"),
            "{status:?}"
        );
        assert!(
            status.message.contains(&format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )),
            "{}",
            status.message
        );
        let details = status_details(&status)?;
        assert!(
            details
                .causes
                .iter()
                .any(|c| c.reason == "NamespaceTerminating"),
            "no NamespaceTerminating cause: {details:?}"
        );

        if !env.cluster.namespace_deletion_completes() {
            skip(
                "namespace_deletion_terminates_then_removes_contents (completion part)",
                env.cluster.backend(),
                "no namespace controller (set KUBE_CONTROLLER_MANAGER_BIN)",
            );
            return Ok(());
        }
        let limit = Duration::from_secs(60);
        eventually(
            "plain configmap removed by the namespace controller",
            limit,
            || async { Ok(configmaps.get_opt("plain").await?.is_none().then_some(())) },
        )
        .await?;
        let held_now = eventually("held configmap marked for deletion", limit, || async {
            Ok(configmaps
                .get_opt("held")
                .await?
                .filter(|cm| cm.metadata.deletion_timestamp.is_some()))
        })
        .await?;
        assert_eq!(
            held_now.metadata.finalizers,
            Some(vec![FINALIZER.to_string()])
        );
        let ns_now = namespaces.get(&ns).await?;
        assert_eq!(
            ns_now.status.and_then(|s| s.phase),
            Some("Terminating".to_string())
        );

        configmaps
            .patch(
                "held",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
            )
            .await?;
        eventually("namespace gone", limit, || async {
            Ok(namespaces.get_opt(&ns).await?.is_none().then_some(()))
        })
        .await?;
        let left = Api::<ConfigMap>::all(env.client.clone())
            .list(&ListParams::default().fields(&format!("metadata.namespace={ns}")))
            .await?;
        assert!(
            left.items.is_empty(),
            "objects survived their namespace: {:?}",
            left.items.len()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn recreated_namespace_does_not_inherit_old_objects() -> anyhow::Result<()> {
    bounded(async {
        let env = env("life-recreate").await?;
        if !env.cluster.namespace_deletion_completes() {
            skip(
                "recreated_namespace_does_not_inherit_old_objects",
                env.cluster.backend(),
                "no namespace controller",
            );
            return Ok(());
        }
        let namespaces: Api<Namespace> = Api::all(env.client.clone());
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("old", &[]))
            .await?;
        namespaces.delete(&env.ns, &DeleteParams::default()).await?;
        eventually("namespace gone", Duration::from_secs(60), || async {
            Ok(namespaces.get_opt(&env.ns).await?.is_none().then_some(()))
        })
        .await?;
        let again = Namespace {
            metadata: ObjectMeta {
                name: Some(env.ns.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &again).await?;
        // Only objects of the old namespace matter: controllers may already have added their own
        // (kube-root-ca.crt) to the new one.
        assert!(
            configmaps.get_opt("old").await?.is_none(),
            "an object of the deleted namespace reappeared in its namesake"
        );
        Ok(())
    })
    .await
}
