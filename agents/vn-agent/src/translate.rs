//! Tenant pod → super pod, through the syncer's gRPC `Translation` service.
//!
//! Answers of `ToSuper` are cached by (cluster key, tenant namespace, tenant pod). The `WatchTranslations`
//! stream keeps the tenant CAs ([`TenantCas`]) current and drops cached answers of pods it reports as
//! invalidated; when the stream breaks the whole cache is dropped (invalidations may have been missed) and the
//! stream is re-opened with backoff, its snapshot replacing the tenant set.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tenancy_proto::tonic::{self, transport::Channel};
use tenancy_proto::v1::{self, translation_client::TranslationClient, translation_event::Event};
use tokio_stream::StreamExt;

use crate::identity::TenantCas;

/// Why a pod could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The tenant has no such (synced) pod.
    #[error("pod not found for this tenant")]
    NotFound,
    /// The syncer could not be asked.
    #[error("translation unavailable: {0}")]
    Unavailable(String),
    /// The syncer's answer breaks the naming rule: refused rather than forwarded.
    #[error("inconsistent translation: {0}")]
    Inconsistent(String),
}

type CacheKey = (String, String, String);

/// Cached translation client.
#[derive(Debug)]
pub struct Translator {
    client: TranslationClient<Channel>,
    cache: Mutex<HashMap<CacheKey, v1::PodLocation>>,
    cas: Arc<TenantCas>,
}

/// Checks that a translation answer is about the pod asked for and follows the shared naming rule
/// (`tenancy_naming::super_namespace`).
pub fn check_location(
    cluster_key: &str,
    namespace: &str,
    pod: &str,
    loc: &v1::PodLocation,
) -> Result<(), TranslateError> {
    let expected = tenancy_naming::super_namespace(cluster_key, namespace);
    if loc.cluster_key != cluster_key || loc.tenant_namespace != namespace || loc.tenant_pod != pod
    {
        return Err(TranslateError::Inconsistent(format!(
            "asked {cluster_key}/{namespace}/{pod}, answered {}/{}/{}",
            loc.cluster_key, loc.tenant_namespace, loc.tenant_pod
        )));
    }
    if loc.super_namespace != expected {
        return Err(TranslateError::Inconsistent(format!(
            "super namespace {:?}, naming rule says {expected:?}",
            loc.super_namespace
        )));
    }
    if loc.super_pod.is_empty() {
        return Err(TranslateError::Inconsistent("empty super pod name".into()));
    }
    Ok(())
}

impl Translator {
    /// A translator over `channel` that keeps `cas` current once [`Translator::watch`] runs.
    pub fn new(channel: Channel, cas: Arc<TenantCas>) -> Arc<Self> {
        Arc::new(Translator {
            client: TranslationClient::new(channel),
            cache: Mutex::default(),
            cas,
        })
    }

    /// The tenant CAs this translator maintains.
    pub fn cas(&self) -> &Arc<TenantCas> {
        &self.cas
    }

    /// Super location of tenant pod `namespace/pod` of `cluster_key`.
    pub async fn to_super(
        &self,
        cluster_key: &str,
        namespace: &str,
        pod: &str,
    ) -> Result<v1::PodLocation, TranslateError> {
        let key = (
            cluster_key.to_string(),
            namespace.to_string(),
            pod.to_string(),
        );
        if let Some(hit) = self.cache.lock().get(&key) {
            return Ok(hit.clone());
        }
        let request = v1::ToSuperRequest {
            cluster_key: cluster_key.to_string(),
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        };
        let loc = match self.client.clone().to_super(request).await {
            Ok(resp) => resp.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(TranslateError::NotFound);
            }
            Err(status) => return Err(TranslateError::Unavailable(status.to_string())),
        };
        check_location(cluster_key, namespace, pod, &loc)?;
        // Only cache placed pods: an unscheduled pod's node changes without an invalidation.
        if !loc.node_name.is_empty() {
            self.cache.lock().insert(key, loc.clone());
        }
        Ok(loc)
    }

    /// The pods of `cluster_key` the syncer places on `node` (not cached: `/pods` is rare and must be fresh).
    pub async fn pods_on_node(
        &self,
        cluster_key: &str,
        node: &str,
    ) -> Result<Vec<v1::PodLocation>, TranslateError> {
        let request = v1::PodsOnNodeRequest {
            cluster_key: cluster_key.to_string(),
            node_name: node.to_string(),
        };
        match self.client.clone().pods_on_node(request).await {
            Ok(resp) => Ok(resp.into_inner().pods),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(Vec::new()),
            Err(status) => Err(TranslateError::Unavailable(status.to_string())),
        }
    }

    /// Number of cached translations.
    pub fn cached(&self) -> usize {
        self.cache.lock().len()
    }

    fn invalidate(&self, loc: &v1::PodLocation) {
        self.cache.lock().retain(|(key, ns, pod), cached| {
            !((key == &loc.cluster_key && ns == &loc.tenant_namespace && pod == &loc.tenant_pod)
                || (!loc.super_namespace.is_empty()
                    && cached.super_namespace == loc.super_namespace
                    && cached.super_pod == loc.super_pod))
        });
    }

    fn remove_tenant(&self, cluster_key: &str) {
        self.cas.remove(cluster_key);
        self.cache
            .lock()
            .retain(|(key, _, _), _| key != cluster_key);
    }

    /// Follows `WatchTranslations` forever (reconnecting with backoff). `ready` is notified after each
    /// complete snapshot.
    pub async fn watch(self: Arc<Self>, ready: Arc<tokio::sync::Notify>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.watch_once(&ready).await {
                Ok(()) => tracing::warn!("translation watch ended; reconnecting"),
                Err(status) => tracing::warn!(%status, "translation watch failed; reconnecting"),
            }
            self.cache.lock().clear();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    async fn watch_once(&self, ready: &tokio::sync::Notify) -> Result<(), tonic::Status> {
        let mut stream = self
            .client
            .clone()
            .watch_translations(v1::WatchTranslationsRequest {})
            .await?
            .into_inner();
        let mut snapshot: Option<HashSet<String>> = Some(HashSet::new());
        while let Some(event) = stream.next().await {
            let event = event?;
            match event.event {
                Some(Event::TenantUpserted(identity)) => {
                    if let Some(seen) = snapshot.as_mut() {
                        seen.insert(identity.cluster_key.clone());
                    }
                    match self
                        .cas
                        .upsert(&identity.cluster_key, &identity.kubelet_client_ca_pem)
                    {
                        Ok(()) => {
                            tracing::info!(tenant = %identity.cluster_key, "tenant CA registered")
                        }
                        Err(error) => {
                            tracing::warn!(tenant = %identity.cluster_key, %error, "tenant CA unusable");
                            self.cas.remove(&identity.cluster_key);
                        }
                    }
                    self.cache
                        .lock()
                        .retain(|(key, _, _), _| key != &identity.cluster_key);
                }
                Some(Event::TenantRemoved(key)) => {
                    tracing::info!(tenant = %key, "tenant removed");
                    self.remove_tenant(&key);
                }
                Some(Event::PodInvalidated(loc)) => self.invalidate(&loc),
                None => {}
            }
            if event.snapshot_complete {
                if let Some(seen) = snapshot.take() {
                    self.cas.retain(&seen);
                    self.cache
                        .lock()
                        .retain(|(key, _, _), _| seen.contains(key));
                }
                ready.notify_waiters();
                ready.notify_one();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loc(key: &str, ns: &str, pod: &str, super_ns: String) -> v1::PodLocation {
        v1::PodLocation {
            cluster_key: key.into(),
            tenant_namespace: ns.into(),
            tenant_pod: pod.into(),
            super_namespace: super_ns,
            super_pod: pod.into(),
            node_name: "n1".into(),
            ..Default::default()
        }
    }

    proptest! {
        /// What the syncer computes with the shared naming rule is what the agent accepts; any other super
        /// namespace (e.g. another tenant's) is refused.
        #[test]
        fn agent_expectation_matches_naming_rule(
            key in "[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?",
            ns in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            other in "[a-z0-9]{1,8}",
        ) {
            let good = tenancy_naming::super_namespace(&key, &ns);
            prop_assert!(good.chars().count() <= 63);
            prop_assert!(check_location(&key, &ns, "p", &loc(&key, &ns, "p", good.clone())).is_ok());
            let wrong = tenancy_naming::super_namespace(&format!("{key}{other}"), &ns);
            prop_assume!(wrong != good);
            prop_assert!(check_location(&key, &ns, "p", &loc(&key, &ns, "p", wrong)).is_err());
        }
    }

    #[test]
    fn answer_about_another_pod_is_refused() {
        let good = tenancy_naming::super_namespace("k", "ns");
        assert!(check_location("k", "ns", "p", &loc("k", "ns", "q", good.clone())).is_err());
        assert!(check_location("k", "ns", "p", &loc("k2", "ns", "p", good)).is_err());
    }
}
