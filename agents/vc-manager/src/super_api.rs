//! Writes to the super cluster that are idempotent by construction: each helper reads first and writes
//! only what differs, so reconciling an unchanged VirtualCluster sends no write request.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest;
use vc_api::VirtualCluster;
use vc_api::secrets as names;

use crate::error::{Error, is_not_found, kube_err};
use crate::pki::{SecretData, SecretSet};

/// Annotation holding the hash of the object as vc-manager rendered it; a differing hash means the
/// template (or what vc-manager adds to it) changed and the object is replaced.
pub const ANNOTATION_TEMPLATE_HASH: &str = "vc-manager.tenancy.x-k8s.io/template-hash";

/// Labels on every object vc-manager creates for `vc` (its watches select on `managed-by`).
pub fn owned_labels(vc: &VirtualCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            names::LABEL_MANAGED_BY.to_string(),
            names::MANAGED_BY.to_string(),
        ),
        (names::LABEL_VC_NAME.to_string(), vc.name_any()),
        (
            names::LABEL_VC_NAMESPACE.to_string(),
            vc.namespace().unwrap_or_default(),
        ),
        (
            names::LABEL_VC_UID.to_string(),
            vc.uid().unwrap_or_default(),
        ),
    ])
}

/// Whether `meta` carries the uid label of `vc` (the object was made for this very VirtualCluster).
pub fn is_ours(meta: &ObjectMeta, vc: &VirtualCluster) -> bool {
    let uid = vc.uid().unwrap_or_default();
    meta.labels
        .as_ref()
        .and_then(|l| l.get(names::LABEL_VC_UID))
        .is_some_and(|v| *v == uid)
}

/// Creates the root namespace if absent. An existing namespace must be ours and not terminating.
/// Returns `true` when it was created.
pub async fn ensure_namespace(
    client: &kube::Client,
    name: &str,
    vc: &VirtualCluster,
) -> Result<bool, Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read namespace {name}")))?
    {
        Some(ns) => {
            if !is_ours(&ns.metadata, vc) {
                return Err(Error::NotOurs {
                    what: format!("namespace {name}"),
                });
            }
            if ns.metadata.deletion_timestamp.is_some() {
                return Err(Error::Terminating(name.to_string()));
            }
            Ok(false)
        }
        None => {
            let ns = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(owned_labels(vc)),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            api.create(&PostParams::default(), &ns)
                .await
                .map_err(kube_err(format!("create namespace {name}")))?;
            Ok(true)
        }
    }
}

fn decode(data: &BTreeMap<String, ByteString>) -> SecretData {
    data.iter()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect()
}

fn encode(data: &SecretData) -> BTreeMap<String, ByteString> {
    data.iter()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// Reads vc-manager's Secrets in `namespace` (text values only), keyed by name. Secrets not labelled
/// for `vc` are ignored.
pub async fn read_secrets(
    client: &kube::Client,
    namespace: &str,
    vc: &VirtualCluster,
) -> Result<SecretSet, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let selector = format!("{}={}", names::LABEL_MANAGED_BY, names::MANAGED_BY);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!("list secrets in {namespace}")))?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| is_ours(&s.metadata, vc))
        .map(|s| {
            let data = s.data.as_ref().map(decode).unwrap_or_default();
            (s.name_any(), data)
        })
        .collect())
}

/// Makes Secret `name` hold exactly `data`: created when absent, replaced when different, untouched when
/// equal. Returns `true` when it wrote.
pub async fn ensure_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    data: &SecretData,
    vc: &VirtualCluster,
) -> Result<bool, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read secret {namespace}/{name}")))?;
    match existing {
        Some(current) => {
            if !is_ours(&current.metadata, vc) {
                return Err(Error::NotOurs {
                    what: format!("secret {namespace}/{name}"),
                });
            }
            if current.data.as_ref().map(decode).unwrap_or_default() == *data {
                return Ok(false);
            }
            let mut next = current.clone();
            next.data = Some(encode(data));
            next.string_data = None;
            api.replace(name, &PostParams::default(), &next)
                .await
                .map_err(kube_err(format!("update secret {namespace}/{name}")))?;
            Ok(true)
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    labels: Some(owned_labels(vc)),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                data: Some(encode(data)),
                ..Secret::default()
            };
            api.create(&PostParams::default(), &secret)
                .await
                .map_err(kube_err(format!("create secret {namespace}/{name}")))?;
            Ok(true)
        }
    }
}

/// sha256 (hex, 16 characters) of an object's JSON.
pub fn object_hash<K: Serialize>(object: &K) -> String {
    let json = serde_json::to_vec(object).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&json)[..8])
}

/// Creates `desired` if absent, replaces it when its template hash differs, else leaves it. `carry`
/// copies what the server owns (e.g. a Service's ClusterIP) from the live object into the replacement.
/// Returns the live object and whether it wrote.
pub async fn apply_hashed<K>(
    api: &Api<K>,
    mut desired: K,
    vc: &VirtualCluster,
    carry: impl Fn(&K, &mut K),
) -> Result<(K, bool), Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let name = desired.name_any();
    let kind = K::kind(&Default::default()).to_string();
    let hash = object_hash(&desired);
    desired
        .annotations_mut()
        .insert(ANNOTATION_TEMPLATE_HASH.into(), hash.clone());
    let existing = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("read {kind} {name}")))?;
    match existing {
        None => {
            let created = api
                .create(&PostParams::default(), &desired)
                .await
                .map_err(kube_err(format!("create {kind} {name}")))?;
            Ok((created, true))
        }
        Some(live) => {
            if !is_ours(live.meta(), vc) {
                return Err(Error::NotOurs {
                    what: format!("{kind} {name}"),
                });
            }
            if live.annotations().get(ANNOTATION_TEMPLATE_HASH) == Some(&hash) {
                return Ok((live, false));
            }
            carry(&live, &mut desired);
            desired.meta_mut().resource_version = live.meta().resource_version.clone();
            let replaced = api
                .replace(&name, &PostParams::default(), &desired)
                .await
                .map_err(kube_err(format!("update {kind} {name}")))?;
            Ok((replaced, true))
        }
    }
}

/// Deletes namespace `name` if it exists and is ours. Returns `true` while it still exists.
pub async fn delete_namespace(
    client: &kube::Client,
    name: &str,
    vc: &VirtualCluster,
) -> Result<bool, Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    let Some(ns) = api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("read namespace {name}")))?
    else {
        return Ok(false);
    };
    if !is_ours(&ns.metadata, vc) {
        tracing::warn!(namespace = name, "root namespace is not ours; left alone");
        return Ok(false);
    }
    if ns.metadata.deletion_timestamp.is_none() {
        match api.delete(name, &Default::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(kube_err(format!("delete namespace {name}"))(e)),
        }
    }
    Ok(true)
}
