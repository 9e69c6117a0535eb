//! Public super objects for a tenant that joins while the syncer runs: the fan-out of a public object
//! ([`crate::upward::publics`]) runs when the super object changes, so a tenant registered (or re-registered
//! after removal) later gets them from one background task per registration. The task retries with backoff
//! until the copy succeeds, and ends when the registration's sources stop (unregister, changed spec) or the
//! syncer shuts down; the Register call never waits for it.

use std::time::Duration;

use tokio::sync::watch;

use crate::log::View;
use crate::reconcile::{Lookup, Tenants};
use crate::upward::publics::sync_public_objects_into;

/// First retry delay; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Copies the public objects of the `kinds` that are synced into tenant `key` in the background. `stop` is the
/// registration's stop signal, `stopping` the syncer's.
pub(super) fn spawn(
    view: View,
    registry: Tenants,
    key: String,
    kinds: Vec<String>,
    stop: watch::Receiver<bool>,
    stopping: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut stop = stop;
        let mut stopping = stopping;
        let ended = |rx: &watch::Receiver<bool>| *rx.borrow();
        let mut delay = FIRST_RETRY;
        loop {
            if ended(&stop) || ended(&stopping) {
                return;
            }
            let Lookup::Active(tenant) = registry.lookup(&key) else {
                return;
            };
            let outcome = tokio::select! {
                r = sync_public_objects_into(&view, &tenant, &kinds) => r,
                _ = stop.wait_for(|s| *s) => return,
                _ = stopping.wait_for(|s| *s) => return,
            };
            match outcome {
                Ok(()) => {
                    tracing::debug!(cluster = %key, "public objects copied into the tenant");
                    return;
                }
                Err(error) => {
                    tracing::warn!(cluster = %key, %error, retry_in = ?delay, "copying public objects into the tenant failed");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
                _ = stopping.wait_for(|s| *s) => return,
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    });
}
