//! Namespace termination, like kube-controller-manager's namespace controller: once a namespace has a
//! `deletionTimestamp`, delete every namespaced object in it (honouring their finalizers), and when none
//! is left remove the `kubernetes` finalizer from `spec.finalizers`, which lets the namespace go away.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use crate::handlers::WriteScope;
use crate::handlers::{DeleteOptions, delete_object, update_with};
use crate::registry::{builtin, storage_key};
use crate::state::ApiState;
use crate::store::ObjectKey;

/// Pause after a change before re-scanning (batches bursts of deletions).
const DEBOUNCE: Duration = Duration::from_millis(20);
/// Re-scan at least this often even without changes.
const RESCAN: Duration = Duration::from_secs(1);
/// Upper bound on scan rounds for one namespace (the loop also ends when the instance goes away).
const MAX_ROUNDS: usize = 1_000_000;

/// Starts the termination of `namespace` in the background.
pub fn spawn(state: &Arc<ApiState>, namespace: &str) {
    let weak = Arc::downgrade(state);
    let namespace = namespace.to_string();
    tokio::spawn(async move { run(weak, namespace).await });
}

async fn run(weak: Weak<ApiState>, namespace: String) {
    let Some(mut rx) = weak.upgrade().map(|s| s.store.subscribe()) else {
        return;
    };
    for _ in 0..MAX_ROUNDS {
        let Some(state) = weak.upgrade() else {
            return;
        };
        rx.borrow_and_update();
        match step(&state, &namespace) {
            Step::Done => return,
            Step::Waiting => {}
        }
        drop(state);
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                tokio::time::sleep(DEBOUNCE).await;
            }
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
}

enum Step {
    /// The namespace is gone or finalized.
    Done,
    /// Objects remain (deleted but held by finalizers or grace periods).
    Waiting,
}

fn step(state: &Arc<ApiState>, namespace: &str) -> Step {
    let Some(ns_rt) = builtin("", "namespaces") else {
        return Step::Done;
    };
    let ns_key = ObjectKey::new("", namespace);
    if state.store.get("/namespaces", &ns_key).is_none() {
        return Step::Done;
    }
    // Without a kubelet nothing would finish graceful pod deletions, so pods go at once.
    let opts = DeleteOptions {
        grace_period_seconds: if state.config.kubelet.is_some() {
            None
        } else {
            Some(0)
        },
        ..DeleteOptions::default()
    };
    let mut remaining = 0usize;
    let mut seen = std::collections::HashSet::new();
    for rt in state.registry.all().into_iter().filter(|rt| rt.namespaced) {
        let resource = storage_key(&rt);
        if !seen.insert(resource.clone()) {
            continue;
        }
        for key in state.store.keys(&resource, Some(namespace)) {
            remaining += 1;
            if let Err(e) = delete_object(state, &rt, &key, &opts)
                && e.code != 404
            {
                tracing::debug!(namespace, object = %key.name, error = %e.message, "namespace cleanup delete failed");
            }
        }
    }
    if remaining > 0 {
        // Anything deleted at once is gone now; check again on the next round.
        let left: usize = seen
            .iter()
            .map(|r| state.store.keys(r, Some(namespace)).len())
            .sum();
        if left > 0 {
            return Step::Waiting;
        }
    }
    let result = update_with(state, &ns_rt, &ns_key, WriteScope::Finalize, |old| {
        let mut new = old.clone();
        let finalizers: Vec<Value> = old
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter(|x| x.as_str() != Some("kubernetes"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        new["spec"] = json!({ "finalizers": finalizers });
        Ok(new)
    });
    if let Err(e) = result
        && e.code != 404
    {
        tracing::debug!(namespace, error = %e.message, "namespace finalize failed");
        return Step::Waiting;
    }
    Step::Done
}
