//! Every tenant pod of a run compared with its super copy: lost (no copy), duplicated (a copy without its
//! tenant pod, or of another uid) and stale (a copy that does not carry the tenant pod's last update).

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;
use syncer::naming;

use super::Ctx;
use crate::env::Env;
use crate::workload::LABEL_GEN;

/// Tenant pods compared with their super copies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Comparison {
    /// Tenant pods of the run (not being deleted).
    pub tenant_pods: usize,
    /// Super pods of the run written by the syncer.
    pub super_pods: usize,
    /// Tenant pods with a super copy of the same uid.
    pub matched: usize,
    /// Tenant pods without a super copy.
    pub lost: usize,
    /// Super copies whose tenant pod is gone, or that carry another uid than the tenant pod of that name
    /// (a copy the syncer should have deleted or replaced).
    pub duplicated: usize,
    /// Matched copies whose update-count label (`loadtest.x-k8s.io/gen`) differs from the tenant pod's.
    pub stale: usize,
    /// Up to 10 examples of lost, duplicated or stale objects.
    pub examples: Vec<String>,
}

impl Comparison {
    /// Whether every tenant pod has exactly one up-to-date copy and nothing else is left.
    pub fn converged(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.stale == 0
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 10 {
            self.examples.push(text);
        }
    }
}

fn gen_label(p: &Pod) -> Option<String> {
    p.metadata.labels.as_ref()?.get(LABEL_GEN).cloned()
}

/// Lists every tenant pod of `tenants` and every super copy of this run (outside `direct_ns`) and compares
/// them one by one.
pub async fn compare(
    ctx: &Ctx,
    env: &Env,
    tenants: &[usize],
    direct_ns: &HashSet<String>,
) -> Result<Comparison> {
    let lp = ListParams::default().labels(&ctx.selector());
    // (super namespace, name) → (tenant uid, gen label).
    let mut expected: HashMap<(String, String), (String, Option<String>)> = HashMap::new();
    let mut c = Comparison::default();
    for &t in tenants {
        let tenant = &env.tenants[t];
        let pods = Api::<Pod>::all(tenant.client.clone())
            .list(&lp)
            .await
            .with_context(|| format!("list pods of {}", tenant.name))?;
        for p in pods.items {
            if p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let key = (
                naming::super_namespace(&tenant.cluster_key, &ns),
                p.metadata.name.clone().unwrap_or_default(),
            );
            expected.insert(
                key,
                (p.metadata.uid.clone().unwrap_or_default(), gen_label(&p)),
            );
        }
    }
    c.tenant_pods = expected.len();
    let supers = Api::<Pod>::all(env.super_client.clone())
        .list(&lp)
        .await
        .context("list super pods")?;
    let mut found: HashSet<(String, String)> = HashSet::new();
    for p in supers.items {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        if direct_ns.contains(&ns) {
            continue;
        }
        c.super_pods += 1;
        let key = (ns, p.metadata.name.clone().unwrap_or_default());
        let uid = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(naming::ANNOTATION_UID))
            .cloned()
            .unwrap_or_default();
        match expected.get(&key) {
            Some((tenant_uid, tenant_gen)) if *tenant_uid == uid => {
                c.matched += 1;
                let copy_gen = gen_label(&p);
                if copy_gen != *tenant_gen {
                    c.stale += 1;
                    c.example(format!(
                        "super {}/{} has gen {copy_gen:?}, the tenant pod {tenant_gen:?}",
                        key.0, key.1
                    ));
                }
                found.insert(key);
            }
            _ => {
                c.duplicated += 1;
                c.example(format!(
                    "super {}/{} has no tenant pod with uid {uid}",
                    key.0, key.1
                ));
            }
        }
    }
    let lost: Vec<String> = expected
        .keys()
        .filter(|k| !found.contains(*k))
        .map(|k| format!("no super copy {}/{}", k.0, k.1))
        .collect();
    c.lost = lost.len();
    for l in lost {
        c.example(l);
    }
    Ok(c)
}
