//! Objects every fresh API server has: the four system namespaces (with their default ServiceAccount and
//! root CA ConfigMap) and the `default/kubernetes` Service and Endpoints (pointing at this server).

use std::sync::Arc;

use serde_json::json;

use crate::SimError;
use crate::handlers::create_object;
use crate::registry::builtin;
use crate::state::ApiState;

/// Namespaces created at start-up.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the start-up objects.
pub(crate) fn create_startup_objects(state: &Arc<ApiState>) -> Result<(), SimError> {
    let fail = |what: &str, e: crate::status::ApiError| {
        SimError::Config(format!("creating {what}: {}", e.message))
    };
    let ns_rt = builtin("", "namespaces")
        .ok_or_else(|| SimError::Config("namespaces type missing".into()))?;
    for ns in SYSTEM_NAMESPACES {
        create_object(
            state,
            &ns_rt,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .map_err(|e| fail(ns, e))?;
    }
    let svc_rt =
        builtin("", "services").ok_or_else(|| SimError::Config("services type missing".into()))?;
    let ip = state.services.lock().first_ip();
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    });
    create_object(state, &svc_rt, service).map_err(|e| fail("the kubernetes service", e))?;
    let ep_rt = builtin("", "endpoints")
        .ok_or_else(|| SimError::Config("endpoints type missing".into()))?;
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": state.addr().ip().to_string()}],
            "ports": [{"name": "https", "port": state.addr().port(), "protocol": "TCP"}],
        }],
    });
    create_object(state, &ep_rt, endpoints).map_err(|e| fail("the kubernetes endpoints", e))?;
    Ok(())
}
