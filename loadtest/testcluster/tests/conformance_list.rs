//! Conformance: list filtering and paging.
//!
//! Rules: label selectors support `=`, `==`, `!=`, `in`, `notin`, existence (`key`, `!key`) and the
//! integer comparisons `>`/`<` (staging/src/k8s.io/apimachinery/pkg/labels/selector.go); `!=` and
//! `notin` match objects without the key, `>`/`<` do not. Field selectors support `=`, `==`, `!=` on
//! `metadata.name` and `metadata.namespace` for every type, plus per-type fields (pods:
//! `spec.nodeName`, `status.phase`, ... in pkg/registry/core/pod/strategy.go `ToSelectableFields`);
//! any other field is 400 BadRequest "field label not supported: <field>". Paging ("API Concepts:
//! Retrieving large results sets in chunks"): `limit` + `continue` return every object exactly once
//! from a consistent snapshot taken by the first page (objects created later do not appear, deleted
//! ones still do), every page carries the first page's resourceVersion, the last page has no
//! `continue`, and `remainingItemCount` counts what is left when no selector is used.

mod common;

use std::collections::BTreeSet;

use common::{api_status, bounded, configmap, env, pod};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

fn names<K: kube::Resource>(items: &[K]) -> BTreeSet<String> {
    items.iter().filter_map(|o| o.meta().name.clone()).collect()
}

/// The names in `items` that the test created: controllers may add objects of their own to every
/// namespace (kube-controller-manager's root CA publisher creates the ConfigMap `kube-root-ca.crt`).
fn ours<K: kube::Resource>(items: &[K], created: &[&str]) -> BTreeSet<String> {
    names(items)
        .into_iter()
        .filter(|n| created.contains(&n.as_str()))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn label_selectors_support_every_operator() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-labels").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let pp = PostParams::default();
        configmaps
            .create(
                &pp,
                &configmap("a", &[("env", "prod"), ("tier", "web"), ("rank", "1")]),
            )
            .await?;
        configmaps
            .create(
                &pp,
                &configmap("b", &[("env", "dev"), ("tier", "web"), ("rank", "5")]),
            )
            .await?;
        configmaps
            .create(&pp, &configmap("c", &[("env", "qa"), ("rank", "10")]))
            .await?;
        configmaps
            .create(&pp, &configmap("d", &[("tier", "db")]))
            .await?;

        let cases: &[(&str, &[&str])] = &[
            ("env=prod", &["a"]),
            ("env==prod", &["a"]),
            ("env!=prod", &["b", "c", "d"]),
            ("env in (prod,dev)", &["a", "b"]),
            ("env notin (prod,dev)", &["c", "d"]),
            ("env", &["a", "b", "c"]),
            ("!env", &["d"]),
            ("tier=web,env!=dev", &["a"]),
            ("env in (prod),tier", &["a"]),
            ("rank>2", &["b", "c"]),
            ("rank<6", &["a", "b"]),
            ("", &["a", "b", "c", "d"]),
        ];
        for (selector, expected) in cases {
            let list = configmaps
                .list(&ListParams::default().labels(selector))
                .await?;
            assert_eq!(
                ours(&list.items, &["a", "b", "c", "d"]),
                set(expected),
                "labelSelector {selector:?}"
            );
        }

        let status = api_status(
            configmaps
                .list(&ListParams::default().labels("env in prod"))
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (400, "BadRequest"),
            "{status:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn field_selectors_on_metadata_and_unsupported_fields() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-fields").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        for name in ["a", "b", "c"] {
            configmaps
                .create(&PostParams::default(), &configmap(name, &[]))
                .await?;
        }
        let ns = env.ns.as_str();
        let cases: Vec<(String, &[&str])> = vec![
            ("metadata.name=a".to_string(), &["a"]),
            ("metadata.name==b".to_string(), &["b"]),
            ("metadata.name!=a".to_string(), &["b", "c"]),
            (format!("metadata.namespace={ns}"), &["a", "b", "c"]),
            (format!("metadata.namespace!={ns}"), &[]),
            ("metadata.name!=a,metadata.name!=b".to_string(), &["c"]),
        ];
        for (selector, expected) in &cases {
            let list = configmaps
                .list(&ListParams::default().fields(selector))
                .await?;
            assert_eq!(
                ours(&list.items, &["a", "b", "c"]),
                set(expected),
                "fieldSelector {selector:?}"
            );
        }
        // Across namespaces, metadata.namespace narrows the list to one namespace.
        let all: Api<ConfigMap> = Api::all(env.client.clone());
        let list = all
            .list(&ListParams::default().fields(&format!("metadata.namespace={ns}")))
            .await?;
        assert!(
            list.items
                .iter()
                .all(|cm| cm.metadata.namespace.as_deref() == Some(ns))
        );
        assert_eq!(ours(&list.items, &["a", "b", "c"]), set(&["a", "b", "c"]));

        let status = api_status(
            configmaps
                .list(&ListParams::default().fields("data.k=v"))
                .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
        assert!(
            status.message.contains("field label not supported: data.k"),
            "{}",
            status.message
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn pod_field_selectors_on_node_name_and_phase() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-podfields").await?;
        let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
        let mut bound = pod("bound", &[("c", "registry.k8s.io/pause:3.9")]);
        if let Some(spec) = bound.spec.as_mut() {
            // Setting nodeName directly binds the pod without a scheduler; no kubelet runs it.
            spec.node_name = Some("node-conformance".to_string());
        }
        pods.create(&PostParams::default(), &bound).await?;
        pods.create(
            &PostParams::default(),
            &pod("unbound", &[("c", "registry.k8s.io/pause:3.9")]),
        )
        .await?;

        let cases: &[(&str, &[&str])] = &[
            ("spec.nodeName=node-conformance", &["bound"]),
            ("spec.nodeName=", &["unbound"]),
            ("spec.nodeName!=node-conformance", &["unbound"]),
            ("status.phase=Pending", &["bound", "unbound"]),
            ("status.phase!=Pending", &[]),
            (
                "status.phase=Pending,spec.nodeName=node-conformance",
                &["bound"],
            ),
        ];
        for (selector, expected) in cases {
            let list = pods.list(&ListParams::default().fields(selector)).await?;
            assert_eq!(
                ours(&list.items, &["bound", "unbound"]),
                set(expected),
                "fieldSelector {selector:?}"
            );
        }
        let status = api_status(
            pods.list(&ListParams::default().fields("spec.dnsPolicy=ClusterFirst"))
                .await,
        )?;
        assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
        assert!(
            status
                .message
                .contains("field label not supported: spec.dnsPolicy"),
            "{}",
            status.message
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn paging_returns_every_object_once_from_a_snapshot() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-paging").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let all: Vec<String> = (0..10).map(|i| format!("cm-{i:02}")).collect();
        for name in &all {
            configmaps
                .create(&PostParams::default(), &configmap(name, &[]))
                .await?;
        }

        let first = configmaps.list(&ListParams::default().limit(3)).await?;
        assert_eq!(first.items.len(), 3);
        let snapshot_rv = first.metadata.resource_version.clone();
        let mut seen: Vec<String> = first
            .items
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();

        // Changes after the first page are not visible to the rest of the paged list.
        configmaps
            .create(&PostParams::default(), &configmap("zz-late", &[]))
            .await?;
        configmaps.delete("cm-09", &DeleteParams::default()).await?;

        let mut token = first.metadata.continue_.clone();
        let mut pages = 1;
        while let Some(continue_token) = token.filter(|t| !t.is_empty()) {
            pages += 1;
            anyhow::ensure!(pages <= 10, "paging did not end");
            let page = configmaps
                .list(
                    &ListParams::default()
                        .limit(3)
                        .continue_token(&continue_token),
                )
                .await?;
            assert!(page.items.len() <= 3);
            assert_eq!(
                page.metadata.resource_version, snapshot_rv,
                "page rv differs from the snapshot"
            );
            seen.extend(page.items.iter().filter_map(|o| o.metadata.name.clone()));
            token = page.metadata.continue_.clone();
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "an object was returned twice: {seen:?}"
        );
        // The snapshot holds our ten objects (cm-09 included, zz-late not) plus whatever controllers
        // added before it (kube-root-ca.crt), in key order.
        let mine: Vec<String> = seen
            .iter()
            .filter(|n| n.starts_with("cm-") || *n == "zz-late")
            .cloned()
            .collect();
        assert_eq!(mine, all, "paged list differs from the snapshot");
        // remainingItemCount on the first page counted exactly what the later pages returned.
        let remaining = i64::try_from(seen.len() - 3)?;
        assert_eq!(
            first.metadata.remaining_item_count,
            Some(remaining),
            "remainingItemCount"
        );
        assert_eq!(
            pages,
            seen.len().div_ceil(3),
            "{} objects in pages of 3",
            seen.len()
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn paging_with_a_label_selector_returns_exactly_the_matches() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-pagesel").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let mut expected = BTreeSet::new();
        for i in 0..12 {
            let name = format!("cm-{i:02}");
            let labels: &[(&str, &str)] = if i % 3 == 0 {
                &[("pick", "yes")]
            } else {
                &[("pick", "no")]
            };
            if i % 3 == 0 {
                expected.insert(name.clone());
            }
            configmaps
                .create(&PostParams::default(), &configmap(&name, labels))
                .await?;
        }
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..20 {
            let mut params = ListParams::default().labels("pick=yes").limit(2);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = configmaps.list(&params).await?;
            assert!(page.items.len() <= 2);
            seen.extend(page.items.iter().filter_map(|o| o.metadata.name.clone()));
            token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        assert!(token.is_none(), "paging did not end");
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "duplicates: {seen:?}");
        assert_eq!(unique, expected);
        Ok(())
    })
    .await
}

/// Rule (staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go `handleCompactedErrorForPaging`): a
/// continue token whose snapshot was compacted away is 410 `Expired`, and the Status carries a fresh
/// `metadata.continue` token that continues the list at the latest revision ("inconsistent
/// continue"). Forcing a compaction needs the simulator (a real etcd compacts every 5 minutes).
#[tokio::test]
async fn expired_continue_token_is_410_with_a_fresh_token() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-expired").await?;
        let Some(sim) = env.cluster.simulator() else {
            common::skip(
                "expired_continue_token_is_410_with_a_fresh_token",
                env.cluster.backend(),
                "forcing a compaction needs the simulator",
            );
            return Ok(());
        };
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        for i in 0..5 {
            configmaps
                .create(&PostParams::default(), &configmap(&format!("cm-{i}"), &[]))
                .await?;
        }
        let first = configmaps.list(&ListParams::default().limit(2)).await?;
        let token = first
            .metadata
            .continue_
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no continue token"))?;
        configmaps
            .create(&PostParams::default(), &configmap("cm-9", &[]))
            .await?;
        sim.force_compaction();

        let status = api_status(
            configmaps
                .list(&ListParams::default().limit(2).continue_token(&token))
                .await,
        )?;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (410, "Expired"),
            "{status:?}"
        );
        assert!(
            status.message.starts_with(
                "The provided continue parameter is too old to display a consistent list result."
            ),
            "{}",
            status.message
        );
        let fresh = status
            .metadata
            .and_then(|m| m.continue_)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow::anyhow!("the 410 carries no fresh continue token"))?;

        // The fresh token continues after the last key already returned, at the latest revision.
        let mut rest = Vec::new();
        let mut token = Some(fresh);
        for _ in 0..10 {
            let Some(t) = token.take() else { break };
            let page = configmaps
                .list(&ListParams::default().limit(2).continue_token(&t))
                .await?;
            rest.extend(page.items.iter().filter_map(|o| o.metadata.name.clone()));
            token = page.metadata.continue_.filter(|t| !t.is_empty());
        }
        let seen: Vec<String> = first
            .items
            .iter()
            .filter_map(|o| o.metadata.name.clone())
            .collect();
        assert!(
            rest.iter().all(|n| !seen.contains(n)),
            "first page repeated: {seen:?} then {rest:?}"
        );
        for name in ["cm-2", "cm-3", "cm-4", "cm-9"] {
            assert!(
                rest.iter().any(|n| n == name),
                "{name} missing from the continued list {rest:?}"
            );
        }
        Ok(())
    })
    .await
}

/// Rule ("API Concepts: ... deletecollection"): DELETE on a collection with a label selector deletes
/// exactly the matching objects and answers the list of what it deleted.
#[tokio::test]
async fn delete_collection_deletes_only_matches() -> anyhow::Result<()> {
    bounded(async {
        let env = env("list-delcoll").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        for (name, group) in [("x1", "x"), ("x2", "x"), ("y1", "y")] {
            configmaps
                .create(
                    &PostParams::default(),
                    &configmap(name, &[("group", group)]),
                )
                .await?;
        }
        let answer = configmaps
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("group=x"),
            )
            .await?;
        let deleted = answer.left().ok_or_else(|| {
            anyhow::anyhow!("deletecollection answered a Status instead of the deleted list")
        })?;
        assert_eq!(names(&deleted.items), set(&["x1", "x2"]));
        let left = configmaps.list(&ListParams::default()).await?;
        assert_eq!(ours(&left.items, &["x1", "x2", "y1"]), set(&["y1"]));
        Ok(())
    })
    .await
}
