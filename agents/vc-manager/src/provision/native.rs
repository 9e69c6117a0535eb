//! The native provisioner: the tenant control plane runs as StatefulSets in its root namespace in the
//! super cluster, rendered from the ClusterVersion's templates (etcd, apiserver, controller-manager), with
//! the PKI and kubeconfigs in Secrets the templates mount by name (see `vc_api::secrets`).
//!
//! Order of one pass: Services (so the apiserver's ClusterIP is known) → PKI Secrets (the serving
//! certificate carries that ClusterIP) → kubeconfig Secrets → StatefulSets → readiness from the
//! StatefulSets' status. Objects carry a hash of their rendering; an object is replaced only when its hash
//! changes (a Service keeps its ClusterIP).

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, ResourceExt};
use vc_api::conditions::reasons;
use vc_api::{ClusterVersion, ComponentTemplate};

use super::{Provisioned, Provisioner, Readiness, Tenant, common};
use crate::error::Error;
use crate::super_api::{self, owned_labels};
use crate::validate::Invalid;

/// The tenant apiserver's secure port when its Service template names none.
pub const DEFAULT_APISERVER_PORT: i32 = 6443;

/// A component of the control plane: its name and default object names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    /// `etcd`, `apiserver` or `controller-manager`.
    pub name: &'static str,
    /// StatefulSet name when the template names none.
    pub default_statefulset: &'static str,
    /// Service name when the template names none.
    pub default_service: &'static str,
    /// Whether a ClusterVersion must have it.
    pub required: bool,
}

/// The components in the order they are applied.
pub const COMPONENTS: [Component; 3] = [
    Component {
        name: "etcd",
        default_statefulset: "etcd",
        default_service: "etcd",
        required: true,
    },
    Component {
        name: "apiserver",
        default_statefulset: "apiserver",
        default_service: "apiserver-svc",
        required: true,
    },
    Component {
        name: "controller-manager",
        default_statefulset: "controller-manager",
        default_service: "controller-manager-svc",
        required: false,
    },
];

fn template<'a>(cv: &'a ClusterVersion, component: &Component) -> Option<&'a ComponentTemplate> {
    match component.name {
        "etcd" => cv.spec.etcd.as_ref(),
        "apiserver" => cv.spec.api_server.as_ref(),
        _ => cv.spec.controller_manager.as_ref(),
    }
}

fn template_meta(t: &ComponentTemplate, field: &str) -> BTreeMap<String, String> {
    t.metadata
        .as_ref()
        .and_then(|m| m.get(field))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Renders the StatefulSet of `component` for `tenant`; `None` when the template has none.
pub fn render_statefulset(
    tenant: &Tenant<'_>,
    component: &Component,
) -> Result<Option<StatefulSet>, Error> {
    let Some(t) = template(tenant.cv, component) else {
        return Ok(None);
    };
    let Some(raw) = &t.statefulset else {
        return Ok(None);
    };
    let mut sts: StatefulSet =
        serde_json::from_value(raw.clone()).map_err(|e| Error::Template {
            component: component.name.into(),
            kind: "StatefulSet",
            message: e.to_string(),
        })?;
    finish_meta(tenant, t, &mut sts.metadata, component.default_statefulset);
    Ok(Some(sts))
}

/// Renders the Service of `component` for `tenant`; `None` when the template has none.
pub fn render_service(
    tenant: &Tenant<'_>,
    component: &Component,
) -> Result<Option<Service>, Error> {
    let Some(t) = template(tenant.cv, component) else {
        return Ok(None);
    };
    let Some(raw) = &t.service else {
        return Ok(None);
    };
    let mut svc: Service = serde_json::from_value(raw.clone()).map_err(|e| Error::Template {
        component: component.name.into(),
        kind: "Service",
        message: e.to_string(),
    })?;
    finish_meta(tenant, t, &mut svc.metadata, component.default_service);
    Ok(Some(svc))
}

fn finish_meta(
    tenant: &Tenant<'_>,
    t: &ComponentTemplate,
    meta: &mut kube::api::ObjectMeta,
    default_name: &str,
) {
    if meta.name.as_deref().unwrap_or_default().is_empty() {
        meta.name = Some(default_name.to_string());
    }
    meta.namespace = Some(tenant.checked.cluster_key.clone());
    let mut labels = template_meta(t, "labels");
    labels.extend(meta.labels.take().unwrap_or_default());
    labels.extend(owned_labels(tenant.vc));
    meta.labels = Some(labels);
    let mut annotations = template_meta(t, "annotations");
    annotations.extend(meta.annotations.take().unwrap_or_default());
    meta.annotations = (!annotations.is_empty()).then_some(annotations);
    meta.resource_version = None;
    meta.uid = None;
    meta.generate_name = None;
}

/// Whether a StatefulSet reports all its replicas ready for its current generation.
pub fn statefulset_ready(sts: &StatefulSet) -> (bool, String) {
    let wanted = sts.spec.replicas.unwrap_or(1);
    let status = sts.status.as_ref();
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let observed = status.and_then(|s| s.observed_generation);
    let current = match (observed, sts.metadata.generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    let ok = ready >= wanted && current;
    let note = if current {
        format!("{} {ready}/{wanted} ready", sts.name_any())
    } else {
        format!("{} rolling out", sts.name_any())
    };
    (ok, note)
}

/// The native provisioner (no state of its own: everything lives in the super cluster).
#[derive(Debug, Default, Clone, Copy)]
pub struct Native;

impl Provisioner for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn check_version(&self, cv: &ClusterVersion) -> Result<(), Invalid> {
        for component in &COMPONENTS {
            let bad = |message: String| Invalid {
                reason: reasons::INVALID_CLUSTER_VERSION,
                message: format!(
                    "ClusterVersion {}: {}: {message}",
                    cv.name_any(),
                    component.name
                ),
            };
            let Some(t) = template(cv, component) else {
                if component.required {
                    return Err(bad("no template".into()));
                }
                continue;
            };
            match &t.statefulset {
                Some(raw) => {
                    serde_json::from_value::<StatefulSet>(raw.clone())
                        .map_err(|e| bad(format!("statefulset does not parse: {e}")))?;
                }
                None => return Err(bad("no statefulset".into())),
            }
            if let Some(raw) = &t.service {
                serde_json::from_value::<Service>(raw.clone())
                    .map_err(|e| bad(format!("service does not parse: {e}")))?;
            } else if component.name == "apiserver" {
                return Err(bad("no service".into()));
            }
        }
        Ok(())
    }

    fn ensure<'a>(
        &'a self,
        client: &'a kube::Client,
        tenant: Tenant<'a>,
    ) -> BoxFuture<'a, Result<Provisioned, Error>> {
        async move {
            let ns = tenant.checked.cluster_key.as_str();
            // The namespace must exist before Services; ensure_base checks it again (a cheap GET).
            let mut changed = super_api::ensure_namespace(client, ns, tenant.vc).await?;
            let services: Api<Service> = Api::namespaced(client.clone(), ns);
            let mut apiserver_service: Option<(String, Option<IpAddr>, i32)> = None;
            let mut etcd_service = COMPONENTS[0].default_service.to_string();
            for component in &COMPONENTS {
                let Some(svc) = render_service(&tenant, component)? else {
                    continue;
                };
                let (live, wrote) = super_api::apply_hashed(
                    &services,
                    svc,
                    tenant.vc,
                    |live, next: &mut Service| {
                        if let (Some(l), Some(n)) = (&live.spec, next.spec.as_mut()) {
                            n.cluster_ip.clone_from(&l.cluster_ip);
                            n.cluster_ips.clone_from(&l.cluster_ips);
                        }
                    },
                )
                .await?;
                changed |= wrote;
                let spec = live.spec.as_ref();
                if component.name == "apiserver" {
                    let ip = spec
                        .and_then(|s| s.cluster_ip.as_deref())
                        .and_then(|ip| ip.parse().ok());
                    let port = spec
                        .and_then(|s| s.ports.as_ref())
                        .and_then(|p| p.first())
                        .map_or(DEFAULT_APISERVER_PORT, |p| p.port);
                    apiserver_service = Some((live.name_any(), ip, port));
                } else if component.name == "etcd" {
                    etcd_service = live.name_any();
                }
            }
            let (svc_name, cluster_ip, port) = apiserver_service.ok_or_else(|| {
                Error::Provision("the ClusterVersion has no apiserver service".into())
            })?;
            let base = common::ensure_base(
                client,
                &tenant,
                common::apiserver_sans(&tenant, Some((&svc_name, cluster_ip))),
                common::etcd_sans(&tenant, &etcd_service),
            )
            .await?;
            changed |= base.changed;
            let server = format!("https://{svc_name}.{ns}:{port}");
            let kubeconfigs = common::ensure_kubeconfigs(client, &tenant, &base, &server).await?;
            changed |= kubeconfigs.changed;

            let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let mut waiting = Vec::new();
            for component in &COMPONENTS {
                let Some(sts) = render_statefulset(&tenant, component)? else {
                    continue;
                };
                let (live, wrote) =
                    super_api::apply_hashed(&statefulsets, sts, tenant.vc, |_, _| {}).await?;
                changed |= wrote;
                let (ready, note) = statefulset_ready(&live);
                if !ready || wrote {
                    waiting.push(note);
                }
            }
            let readiness = if waiting.is_empty() {
                Readiness::Ready
            } else {
                Readiness::Waiting(waiting.join(", "))
            };
            Ok(Provisioned {
                readiness,
                admin_kubeconfig: kubeconfigs.admin,
                root_ca_pem: base.pki.root.cert_pem.clone(),
                changed,
                next_renewal: kubeconfigs.next_renewal,
            })
        }
        .boxed()
    }

    fn teardown<'a>(&'a self, _cluster_key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        // Everything lives in the root namespace, which the caller deletes.
        async { Ok(()) }.boxed()
    }
}
