//! What the real server's default admission plugins and kube-controller-manager add around pods and
//! namespaces: every namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap (the
//! service-account and root-CA publisher controllers); every pod gets its service account, the projected
//! `kube-api-access-*` token volume and its mounts (ServiceAccount admission) and the `not-ready` /
//! `unreachable` tolerations (DefaultTolerationSeconds admission).

use std::sync::Arc;

use serde_json::{Value, json};

use super::str_at;
use super::strategy::ensure_object;
use crate::registry::builtin;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::store::ObjectKey;

/// Where the token volume is mounted in every container.
pub(crate) const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The placeholder cluster CA published in every namespace (the simulator serves plain HTTP).
const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBapisimSimulatedClusterRootCertificateNotARealKey\n-----END CERTIFICATE-----\n";

/// Creates the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap in a new namespace.
pub(super) fn populate_namespace(state: &Arc<ApiState>, namespace: &str) {
    let objects = [
        (
            "serviceaccounts",
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                    "metadata": {"name": "default", "namespace": namespace}}),
        ),
        (
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "kube-root-ca.crt", "namespace": namespace,
                                            "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                               "data": {"ca.crt": ROOT_CA}}),
        ),
    ];
    for (plural, obj) in objects {
        if let Some(rt) = builtin("", plural)
            && let Err(e) = super::create_object(state, &rt, obj)
            && e.code != 409
        {
            tracing::debug!(namespace, plural, error = %e.message, "populating namespace failed");
        }
    }
}

fn has_token_mount(pod: &Value) -> bool {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("volumeMounts")
                    .and_then(Value::as_array)
                    .is_some_and(|ms| {
                        ms.iter()
                            .any(|m| str_at(m, "/mountPath") == TOKEN_MOUNT_PATH)
                    })
            })
        })
}

/// Service account admission and default tolerations for a new pod.
pub(super) fn admit_pod(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let name = str_at(pod, "/metadata/name").to_string();
    let namespace = str_at(pod, "/metadata/namespace").to_string();
    let sa_name = match (
        str_at(pod, "/spec/serviceAccountName"),
        str_at(pod, "/spec/serviceAccount"),
    ) {
        ("", "") => "default".to_string(),
        ("", legacy) => legacy.to_string(),
        (name, _) => name.to_string(),
    };
    let sa = state
        .store
        .get("/serviceaccounts", &ObjectKey::new(&namespace, &sa_name))
        .ok_or_else(|| {
            ApiError::forbidden(
                rt,
                &name,
                &format!(
                    "error looking up service account {namespace}/{sa_name}: serviceaccount \"{sa_name}\" not found"
                ),
            )
        })?
        .value();
    let automount = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    let add_volume = automount && !has_token_mount(pod);
    let volume_name = format!("kube-api-access-{}", super::write::random_suffix());
    let spec = ensure_object(
        ensure_object(pod)
            .entry("spec")
            .or_insert_with(|| json!({})),
    );
    spec.insert("serviceAccountName".into(), json!(sa_name));
    spec.insert("serviceAccount".into(), json!(sa_name));
    if add_volume {
        let volume = json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace",
                                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        });
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(list) = volumes.as_array_mut() {
            list.push(volume);
        }
        let mount = json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        for list in ["initContainers", "containers"] {
            if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                    let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                    if let Some(m) = mounts.as_array_mut() {
                        m.push(mount.clone());
                    }
                }
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = list.iter().any(|t| {
                str_at(t, "/key") == key && matches!(str_at(t, "/effect"), "NoExecute" | "")
            });
            if !present {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    Ok(())
}
