//! Conformance: watch.
//!
//! Rules ("API Concepts: Efficient detection of changes", "Watch bookmarks", "410 Gone responses"): a
//! watch from a resourceVersion delivers every later change in order, each with a larger
//! resourceVersion; with a label selector, an object that starts matching arrives as ADDED and one that
//! stops matching as DELETED (cacher `convertToWatchEvent`, staging/src/k8s.io/apiserver/pkg/storage/
//! cacher). BOOKMARK events are sent only when `allowWatchBookmarks=true`; the real watch cache sends one
//! 2 s before the watch's deadline and about every minute (`cacheWatcher.nextBookmarkTime`), the
//! simulator at its configured interval. `timeoutSeconds` ends the watch. A resourceVersion older than
//! the server's history answers HTTP 200 with an `ERROR` event holding a 410 `Expired` Status (cacher:
//! "other errors must fail with a watch event of type ERROR, rather than a directly returned error").

mod common;

use std::time::Duration;

use common::{bounded, configmap, env, env_with, rv_num, skip};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use testcluster::{Backend, ClusterOptions};

/// Type, name and resourceVersion of a watch event (bookmarks have no name).
fn describe(event: &WatchEvent<ConfigMap>) -> (String, String, Option<String>) {
    match event {
        WatchEvent::Added(o) => (
            "ADDED".into(),
            o.metadata.name.clone().unwrap_or_default(),
            o.metadata.resource_version.clone(),
        ),
        WatchEvent::Modified(o) => (
            "MODIFIED".into(),
            o.metadata.name.clone().unwrap_or_default(),
            o.metadata.resource_version.clone(),
        ),
        WatchEvent::Deleted(o) => (
            "DELETED".into(),
            o.metadata.name.clone().unwrap_or_default(),
            o.metadata.resource_version.clone(),
        ),
        WatchEvent::Bookmark(b) => (
            "BOOKMARK".into(),
            String::new(),
            Some(b.metadata.resource_version.clone()),
        ),
        WatchEvent::Error(e) => ("ERROR".into(), e.reason.clone(), None),
    }
}

/// Collects non-bookmark events for objects named in `only` until `count` arrived or the stream ended.
/// Events for other objects are skipped: controllers may add objects of their own to every namespace
/// (kube-controller-manager publishes the ConfigMap `kube-root-ca.crt`).
async fn collect_changes(
    api: &Api<ConfigMap>,
    params: &WatchParams,
    rv: &str,
    count: usize,
    only: &[&str],
) -> anyhow::Result<Vec<(String, String, Option<String>)>> {
    let mut stream = api.watch(params, rv).await?.boxed();
    let mut out = Vec::new();
    while out.len() < count {
        match tokio::time::timeout(Duration::from_secs(20), stream.try_next()).await {
            Ok(Ok(Some(event))) => {
                let described = describe(&event);
                if described.0 == "ERROR" || only.contains(&described.1.as_str()) {
                    out.push(described);
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => anyhow::bail!("no watch event for 20 s; got so far: {out:?}"),
        }
    }
    Ok(out)
}

#[tokio::test]
async fn watch_from_a_resource_version_delivers_later_events_in_order() -> anyhow::Result<()> {
    bounded(async {
        let env = env("watch-order").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let start = configmaps.list(&ListParams::default()).await?;
        let rv0 = start.metadata.resource_version.clone().unwrap_or_default();

        let pp = PostParams::default();
        let merge = |v: &str| Patch::Merge(serde_json::json!({"data": {"k": v}}));
        configmaps.create(&pp, &configmap("a", &[])).await?;
        configmaps
            .patch("a", &PatchParams::default(), &merge("1"))
            .await?;
        configmaps.create(&pp, &configmap("b", &[])).await?;
        configmaps.delete("a", &DeleteParams::default()).await?;
        configmaps
            .patch("b", &PatchParams::default(), &merge("2"))
            .await?;

        // The watch starts after the writes: they come from the server's history.
        let events = collect_changes(
            &configmaps,
            &WatchParams::default().timeout(15),
            &rv0,
            5,
            &["a", "b"],
        )
        .await?;
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|(t, n, _)| (t.as_str(), n.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("ADDED", "a"),
                ("MODIFIED", "a"),
                ("ADDED", "b"),
                ("DELETED", "a"),
                ("MODIFIED", "b")
            ]
        );
        let mut last = rv_num(Some(&rv0))?;
        for (kind, name, rv) in &events {
            let rv = rv_num(rv.as_ref())?;
            assert!(
                rv > last,
                "{kind} {name} at rv {rv} not after {last}: {events:?}"
            );
            last = rv;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn label_selector_watch_turns_matching_changes_into_added_and_deleted() -> anyhow::Result<()>
{
    bounded(async {
        let env = env("watch-sel").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let rv0 = configmaps
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let relabel =
            |v: &str| Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": v}}}));
        configmaps
            .create(&PostParams::default(), &configmap("m", &[("app", "other")]))
            .await?;
        configmaps
            .patch("m", &PatchParams::default(), &relabel("x"))
            .await?;
        configmaps
            .patch(
                "m",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {"k": "2"}})),
            )
            .await?;
        configmaps
            .patch("m", &PatchParams::default(), &relabel("gone"))
            .await?;
        // A marker that matches, so the test knows every earlier event was delivered.
        configmaps
            .create(
                &PostParams::default(),
                &configmap("marker", &[("app", "x")]),
            )
            .await?;

        let params = WatchParams::default().labels("app=x").timeout(15);
        let events = collect_changes(&configmaps, &params, &rv0, 4, &["m", "marker"]).await?;
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|(t, n, _)| (t.as_str(), n.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("ADDED", "m"),
                ("MODIFIED", "m"),
                ("DELETED", "m"),
                ("ADDED", "marker")
            ]
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn bookmarks_only_when_allowed() -> anyhow::Result<()> {
    bounded(async {
        let opts = ClusterOptions::default().with_bookmark_interval(Duration::from_millis(500));
        let env = env_with("watch-bookmark", opts).await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("x", &[]))
            .await?;
        let rv0 = configmaps
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();

        // The real server sends its bookmark 2 s before a 6 s watch ends; the simulator every 500 ms.
        let with = WatchParams::default().timeout(6);
        let without = WatchParams::default().timeout(6).disable_bookmarks();
        let (with_events, without_events) = tokio::join!(
            async {
                configmaps
                    .watch(&with, &rv0)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            },
            async {
                configmaps
                    .watch(&without, &rv0)
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            },
        );
        let with_events: Vec<_> = with_events?.iter().map(describe).collect();
        let without_events: Vec<_> = without_events?.iter().map(describe).collect();

        let bookmarks: Vec<_> = with_events.iter().filter(|e| e.0 == "BOOKMARK").collect();
        assert!(
            !bookmarks.is_empty(),
            "no BOOKMARK with allowWatchBookmarks: {with_events:?}"
        );
        for (_, _, rv) in &bookmarks {
            assert!(
                rv_num(rv.as_ref())? >= rv_num(Some(&rv0))?,
                "bookmark rv older than the watch start"
            );
        }
        assert!(
            without_events.iter().all(|e| e.0 != "BOOKMARK"),
            "BOOKMARK without allowWatchBookmarks: {without_events:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn timeout_seconds_ends_the_watch() -> anyhow::Result<()> {
    bounded(async {
        let env = env("watch-timeout").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let rv0 = configmaps
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let stream = configmaps
            .watch(&WatchParams::default().timeout(2), &rv0)
            .await?;
        // The server closes the stream by itself; 30 s is far beyond the 2 s asked for.
        let ended =
            tokio::time::timeout(Duration::from_secs(30), stream.try_collect::<Vec<_>>()).await;
        let events = ended
            .map_err(|_| anyhow::anyhow!("watch with timeoutSeconds=2 still open after 30 s"))??;
        assert!(
            events.iter().all(|e| !matches!(e, WatchEvent::Error(_))),
            "{events:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn too_old_resource_version_gets_a_410_error_event() -> anyhow::Result<()> {
    bounded(async {
        let env = env("watch-gone").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let old_rv = match (env.cluster.simulator(), env.cluster.backend()) {
            (Some(sim), _) => {
                let rv = configmaps
                    .list(&ListParams::default())
                    .await?
                    .metadata
                    .resource_version
                    .unwrap_or_default();
                configmaps
                    .create(&PostParams::default(), &configmap("after", &[]))
                    .await?;
                sim.force_compaction();
                rv
            }
            // A long-running cluster's watch cache has moved far past revision 1.
            (None, Backend::Kubeconfig) => "1".to_string(),
            // A freshly started kube-apiserver may still hold revision 1 in its watch cache (its caches
            // list at the first revisions), and compacting etcd on demand is not exposed.
            _ => {
                skip(
                    "too_old_resource_version_gets_a_410_error_event",
                    env.cluster.backend(),
                    "no way to make a resourceVersion too old on a fresh real server",
                );
                return Ok(());
            }
        };
        let mut stream = configmaps
            .watch(&WatchParams::default().timeout(10), &old_rv)
            .await?
            .boxed();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .map_err(|_| anyhow::anyhow!("no event for a too-old resourceVersion"))??;
        match first {
            Some(WatchEvent::Error(status)) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (410, "Expired"),
                    "{status:?}"
                );
                assert!(
                    status.message.starts_with("too old resource version"),
                    "{}",
                    status.message
                );
            }
            other => anyhow::bail!("expected an ERROR event with 410, got {other:?}"),
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn runtime_watcher_relists_after_410() -> anyhow::Result<()> {
    bounded(async {
        let env = env("watch-relist").await?;
        let Some(sim) = env.cluster.simulator() else {
            skip(
                "runtime_watcher_relists_after_410",
                env.cluster.backend(),
                "forcing 410 needs the simulator",
            );
            return Ok(());
        };
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("before", &[]))
            .await?;
        // Short watches so the watcher re-watches soon after the fault is armed.
        let config = watcher::Config::default().timeout(1);
        let mut events = watcher(configmaps.clone(), config)
            .default_backoff()
            .boxed();

        let mut inits = 0;
        let mut saw_after_in_relist = false;
        let mut armed = false;
        let mut errors = 0;
        for _ in 0..200 {
            let next = tokio::time::timeout(Duration::from_secs(20), events.next())
                .await
                .map_err(|_| anyhow::anyhow!("watcher silent for 20 s"))?;
            match next {
                Some(Ok(watcher::Event::Init)) => inits += 1,
                Some(Ok(watcher::Event::InitApply(cm))) if inits >= 2 => {
                    saw_after_in_relist |= cm.metadata.name.as_deref() == Some("after");
                }
                Some(Ok(watcher::Event::InitDone)) if inits == 1 && !armed => {
                    sim.faults().force_gone_next_watch();
                    configmaps
                        .create(&PostParams::default(), &configmap("after", &[]))
                        .await?;
                    armed = true;
                }
                Some(Ok(watcher::Event::InitDone)) if inits >= 2 => break,
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    errors += 1;
                    tracing::info!(%error, "watcher error (expected once: 410)");
                }
                None => anyhow::bail!("watcher stream ended"),
            }
        }
        assert!(
            inits >= 2,
            "the watcher never relisted after the 410 (inits {inits}, errors {errors})"
        );
        assert!(errors >= 1, "the forced 410 never reached the watcher");
        // `after` was created before the forced 410, so it is either seen by the first watch (Apply)
        // or by the relist; the relist must hold it either way.
        assert!(
            saw_after_in_relist,
            "the relist after 410 missed an existing object"
        );
        Ok(())
    })
    .await
}

/// Rule ("API Concepts: Semantics for watch"): a watch without a resourceVersion "begins with synthetic
/// Added events of all resource instances that exist at the starting resource version", then delivers
/// changes.
#[tokio::test]
async fn watch_without_resource_version_starts_with_existing_objects() -> anyhow::Result<()> {
    bounded(async {
        let env = env("watch-norv").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        configmaps
            .create(&PostParams::default(), &configmap("a", &[]))
            .await?;
        configmaps
            .create(&PostParams::default(), &configmap("b", &[]))
            .await?;
        let mut stream = configmaps
            .watch(&WatchParams::default().timeout(15), "")
            .await?
            .boxed();
        let mut initial = std::collections::BTreeSet::new();
        let mut later = Vec::new();
        let mut created_c = false;
        for _ in 0..50 {
            let next = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
                .await
                .map_err(|_| {
                    anyhow::anyhow!("watch silent; initial {initial:?}, later {later:?}")
                })??;
            let Some(event) = next else { break };
            let (kind, name, _) = describe(&event);
            if !["a", "b", "c"].contains(&name.as_str()) {
                continue;
            }
            if !created_c {
                assert_eq!(
                    kind, "ADDED",
                    "initial events must be synthetic ADDED: {name}"
                );
                initial.insert(name);
                if initial.len() == 2 {
                    configmaps
                        .create(&PostParams::default(), &configmap("c", &[]))
                        .await?;
                    created_c = true;
                }
            } else {
                later.push((kind, name));
                break;
            }
        }
        assert_eq!(initial.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(later, [("ADDED".to_string(), "c".to_string())]);
        Ok(())
    })
    .await
}

/// Mostly the live path (the other order test replays history): a watch opened while a burst of 200
/// writes runs gets every one of them, once, in resourceVersion order, per object ADDED then MODIFIED.
#[tokio::test]
async fn live_watch_gets_a_burst_of_writes_without_loss() -> anyhow::Result<()> {
    bounded(async {
        let env = env("watch-burst").await?;
        let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
        let rv0 = configmaps
            .list(&ListParams::default())
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let names: Vec<String> = (0..20).map(|i| format!("burst-{i:02}")).collect();
        let only: Vec<&str> = names.iter().map(String::as_str).collect();
        const PATCHES: usize = 9;
        let expected = names.len() * (1 + PATCHES);

        let watcher = {
            let configmaps = configmaps.clone();
            let only: Vec<String> = names.clone();
            let rv0 = rv0.clone();
            tokio::spawn(async move {
                let only: Vec<&str> = only.iter().map(String::as_str).collect();
                collect_changes(
                    &configmaps,
                    &WatchParams::default().timeout(60),
                    &rv0,
                    expected,
                    &only,
                )
                .await
            })
        };
        for name in &names {
            configmaps
                .create(&PostParams::default(), &configmap(name, &[]))
                .await?;
        }
        for round in 0..PATCHES {
            for name in &names {
                let patch = Patch::Merge(serde_json::json!({"data": {"k": round.to_string()}}));
                configmaps
                    .patch(name, &PatchParams::default(), &patch)
                    .await?;
            }
        }
        let events = watcher.await??;
        assert_eq!(events.len(), expected, "lost or extra events");
        let mut last = rv_num(Some(&rv0))?;
        for (kind, name, rv) in &events {
            let rv = rv_num(rv.as_ref())?;
            assert!(rv > last, "{kind} {name} at {rv} not after {last}");
            last = rv;
        }
        for name in &only {
            let kinds: Vec<&str> = events
                .iter()
                .filter(|(_, n, _)| n == name)
                .map(|(k, _, _)| k.as_str())
                .collect();
            assert_eq!(kinds.len(), 1 + PATCHES, "{name}: {kinds:?}");
            assert_eq!(kinds[0], "ADDED", "{name}: {kinds:?}");
            assert!(
                kinds[1..].iter().all(|k| *k == "MODIFIED"),
                "{name}: {kinds:?}"
            );
        }
        Ok(())
    })
    .await
}
