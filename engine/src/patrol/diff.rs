//! The diff of one patrol pass: tenant objects and super copies *as the view holds them*, paired by the
//! work key of the tenant object they stand for, each pair judged by the resource's check.
//!
//! Pure: the caller reads the view and hands the objects in, so the diff is tested without storage.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::naming::{ANNOTATION_CLUSTER, ANNOTATION_NAME, ANNOTATION_NAMESPACE, ANNOTATION_UID};
use crate::reconcile::resource::Drift;
use crate::record::WorkKey;

/// What the check says about one (tenant object, super copy) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing to repair (also: neither side present, or a deletion already under way).
    InSync,
    /// A tenant object without its super copy.
    Missing,
    /// A super copy (ours, by its marks) whose tenant object is absent.
    Orphan,
    /// Both present, but the super copy does not match the tenant object (or status has not flowed up).
    Different,
}

impl From<&Drift> for Verdict {
    fn from(drift: &Drift) -> Self {
        match drift {
            Drift::InSync => Verdict::InSync,
            Drift::MissingInSuper => Verdict::Missing,
            Drift::OrphanInSuper => Verdict::Orphan,
            Drift::Different(_) => Verdict::Different,
        }
    }
}

impl Verdict {
    /// The bounded metric label (`class`) of a finding; `in_sync` for [`Verdict::InSync`].
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Verdict::InSync => "in_sync",
            Verdict::Missing => "missing",
            Verdict::Orphan => "orphan",
            Verdict::Different => "different",
        }
    }
}

/// A patrol check: the work key, the tenant object and its super copy as the view holds them (`None` =
/// absent) → verdict. Must be cheap and must not call an API server: it runs for every object on every pass.
pub type CheckFn<'a> = dyn Fn(&WorkKey, Option<&Value>, Option<&Value>) -> Verdict + 'a;

/// One piece of drift: the tenant object to reconcile and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The work key of the tenant object (the reconciler repairs both sides from it).
    pub key: WorkKey,
    /// What was found (never [`Verdict::InSync`]).
    pub verdict: Verdict,
}

/// The work key of a tenant object of `kind` in tenant `cluster` (the same key the sources give its
/// records): a tenant Namespace stands for itself in its own namespace, so it shards with its contents.
#[must_use]
pub fn tenant_key(cluster: &str, kind: &str, namespace: &str, name: &str) -> WorkKey {
    let work_ns = if namespace.is_empty() && kind == "Namespace" {
        name
    } else {
        namespace
    };
    WorkKey {
        cluster: cluster.to_owned(),
        kind: kind.to_owned(),
        namespace: work_ns.to_owned(),
        name: name.to_owned(),
    }
}

/// The work key of the tenant object a super object of `kind` (stored at `namespace`/`name` in the super
/// cluster) stands for, read from its `tenancy.x-k8s.io/*` annotations (a copy stored under another name
/// names its tenant object in `tenancy.x-k8s.io/name`); `None` without complete marks or when its tenant is
/// not in `served`. Agrees with the sources' mapping (tested), without parsing the whole metadata.
#[must_use]
pub fn super_key(
    kind: &str,
    namespace: &str,
    name: &str,
    object: &Value,
    served: &HashSet<String>,
) -> Option<WorkKey> {
    let annotations = object.get("metadata")?.get("annotations")?;
    super_key_from_marks(
        kind,
        namespace,
        name,
        |key| annotations.get(key)?.as_str(),
        served,
    )
}

/// [`super_key`] from an annotation lookup (for callers that decoded only the annotations).
pub fn super_key_from_marks<'a>(
    kind: &str,
    namespace: &str,
    name: &str,
    annotation: impl Fn(&str) -> Option<&'a str>,
    served: &HashSet<String>,
) -> Option<WorkKey> {
    let mark = |key: &str| annotation(key).filter(|v| !v.is_empty());
    let cluster = mark(ANNOTATION_CLUSTER)?;
    let tenant_ns = mark(ANNOTATION_NAMESPACE)?;
    mark(ANNOTATION_UID)?;
    if !served.contains(cluster) {
        return None;
    }
    let tenant_name = if namespace.is_empty() {
        tenant_ns
    } else if let Some(renamed) = mark(ANNOTATION_NAME) {
        renamed
    } else if name.is_empty() {
        return None;
    } else {
        name
    };
    Some(WorkKey {
        cluster: cluster.to_owned(),
        kind: kind.to_owned(),
        namespace: tenant_ns.to_owned(),
        name: tenant_name.to_owned(),
    })
}

/// Counts of one diff.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffCounts {
    /// Tenant objects compared.
    pub tenant_objects: usize,
    /// Super copies compared.
    pub super_objects: usize,
}

/// Pairs tenant objects with super copies, streaming: built from an index of the super copies (tenant work
/// key → where the copy is, `L`), fed one tenant object at a time, finished with the copies no tenant object
/// claimed. Only the index is held in memory, never all objects; `fetch` reads a copy when it is judged
/// (for a tenant object it is given the indexed location, if any, and may look elsewhere, e.g. where the
/// kind says the copy belongs).
pub struct Pairing<L> {
    supers: HashMap<WorkKey, L>,
    findings: Vec<Finding>,
    counts: DiffCounts,
}

impl<L> Pairing<L> {
    /// Starts a pairing over the super copies in `supers`.
    #[must_use]
    pub fn new(supers: HashMap<WorkKey, L>) -> Self {
        let counts = DiffCounts {
            super_objects: supers.len(),
            ..DiffCounts::default()
        };
        Self {
            supers,
            findings: Vec::new(),
            counts,
        }
    }

    /// Judges one tenant object against its copy, read with `fetch` (given the indexed location, if any).
    pub fn tenant<E>(
        &mut self,
        key: WorkKey,
        object: &Value,
        fetch: impl FnOnce(&WorkKey, Option<L>) -> Result<Option<Value>, E>,
        check: &CheckFn<'_>,
    ) -> Result<(), E> {
        self.counts.tenant_objects += 1;
        let indexed = self.supers.remove(&key);
        let copy = fetch(&key, indexed)?;
        let verdict = check(&key, Some(object), copy.as_ref());
        if verdict != Verdict::InSync {
            self.findings.push(Finding { key, verdict });
        }
        Ok(())
    }

    /// Judges the copies no tenant object claimed, and returns every finding in key order.
    pub fn finish<E>(
        mut self,
        mut fetch: impl FnMut(&L) -> Result<Option<Value>, E>,
        check: &CheckFn<'_>,
    ) -> Result<(Vec<Finding>, DiffCounts), E> {
        for (key, location) in std::mem::take(&mut self.supers) {
            // A copy gone since it was indexed is not judged (nothing left to repair).
            if let Some(copy) = fetch(&location)? {
                let verdict = check(&key, None, Some(&copy));
                if verdict != Verdict::InSync {
                    self.findings.push(Finding { key, verdict });
                }
            }
        }
        self.findings.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((self.findings, self.counts))
    }
}

/// Pairs in-memory `tenant` objects with `supers` (both keyed by the tenant work key) and returns every pair
/// the check does not find in sync, in key order (the [`Pairing`] of objects already in memory).
pub fn diff(
    tenant: impl IntoIterator<Item = (WorkKey, Value)>,
    supers: HashMap<WorkKey, Value>,
    check: &CheckFn<'_>,
) -> (Vec<Finding>, DiffCounts) {
    let mut pairing = Pairing::new(supers);
    for (key, object) in tenant {
        let Ok(()) = pairing.tenant(
            key,
            &object,
            |_, copy| Ok::<_, std::convert::Infallible>(copy),
            check,
        );
    }
    match pairing.finish(
        |v| Ok::<_, std::convert::Infallible>(Some(v.clone())),
        check,
    ) {
        Ok(out) => out,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::source::mapping::{self, ClusterRole};

    fn presence(_: &WorkKey, t: Option<&Value>, s: Option<&Value>) -> Verdict {
        match (t, s) {
            (Some(_), None) => Verdict::Missing,
            (None, Some(_)) => Verdict::Orphan,
            (Some(t), Some(s)) if t["v"] != s["v"] => Verdict::Different,
            _ => Verdict::InSync,
        }
    }

    fn key(name: &str) -> WorkKey {
        tenant_key("k1", "Pod", "team", name)
    }

    #[test]
    fn pairs_by_key_and_reports_each_class_once() {
        let (a, b1, b2, c, d) = (
            json!({"v": 1}),
            json!({"v": 1}),
            json!({"v": 2}),
            json!({"v": 3}),
            json!({"v": 4}),
        );
        let tenant = vec![
            (key("same"), a.clone()),
            (key("changed"), b1),
            (key("new"), c),
        ];
        let supers: HashMap<_, _> = [(key("same"), a), (key("changed"), b2), (key("old"), d)]
            .into_iter()
            .collect();
        let (findings, counts) = diff(tenant, supers, &presence);
        assert_eq!(
            findings,
            vec![
                Finding {
                    key: key("changed"),
                    verdict: Verdict::Different
                },
                Finding {
                    key: key("new"),
                    verdict: Verdict::Missing
                },
                Finding {
                    key: key("old"),
                    verdict: Verdict::Orphan
                },
            ]
        );
        assert_eq!(
            counts,
            DiffCounts {
                tenant_objects: 3,
                super_objects: 3
            }
        );
    }

    #[test]
    fn in_sync_pairs_produce_no_findings() {
        let a = json!({"v": 1});
        let tenant = vec![(key("p"), a.clone())];
        let supers: HashMap<_, _> = [(key("p"), a)].into_iter().collect();
        assert!(diff(tenant, supers, &presence).0.is_empty());
    }

    #[test]
    fn super_keys_need_complete_marks_of_a_served_tenant() {
        let served: HashSet<String> = ["k1".to_string()].into_iter().collect();
        let marked = json!({"metadata": {"name": "p", "namespace": "k1-team", "annotations": {
            ANNOTATION_CLUSTER: "k1", ANNOTATION_NAMESPACE: "team", ANNOTATION_UID: "u"}}});
        assert_eq!(
            super_key("Pod", "k1-team", "p", &marked, &served),
            Some(key("p"))
        );
        let no_uid = json!({"metadata": {"annotations": {
            ANNOTATION_CLUSTER: "k1", ANNOTATION_NAMESPACE: "team"}}});
        assert_eq!(super_key("Pod", "k1-team", "p", &no_uid, &served), None);
        let other = json!({"metadata": {"annotations": {
            ANNOTATION_CLUSTER: "k2", ANNOTATION_NAMESPACE: "team", ANNOTATION_UID: "u"}}});
        assert_eq!(super_key("Pod", "k1-team", "p", &other, &served), None);
        assert_eq!(
            super_key("Pod", "x", "p", &json!({"metadata": {}}), &served),
            None
        );
    }

    proptest::proptest! {
        /// The patrol's keys are the sources' keys, for tenant objects and super copies of both kinds, so an
        /// injected repair coalesces with the watch events of the same object.
        #[test]
        fn keys_agree_with_the_sources(
            ns in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
            name in "[a-z][a-z0-9.-]{0,30}[a-z0-9]",
            cluster in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
            served_too in proptest::bool::ANY,
        ) {
            let mut served: HashSet<String> = HashSet::new();
            if served_too {
                served.insert(cluster.clone());
            }
            let role = ClusterRole::Super { tenants: crate::source::ServedTenants::new(served.iter().cloned()) };
            let tenant_role = ClusterRole::Tenant { cluster_key: cluster.clone() };
            let marks = json!({ANNOTATION_CLUSTER: cluster, ANNOTATION_NAMESPACE: ns, ANNOTATION_UID: "u"});
            let super_ns = crate::naming::super_namespace(&cluster, &ns);
            let super_pod = json!({"metadata": {"name": name, "namespace": super_ns, "annotations": marks}});
            proptest::prop_assert_eq!(
                super_key("Pod", &super_ns, &name, &super_pod, &served),
                mapping::work_key(&role, "Pod", &super_pod)
            );
            let mut renamed_marks = marks.clone();
            renamed_marks[ANNOTATION_NAME] = json!(name);
            let renamed = json!({"metadata": {"name": "tenant-copy", "namespace": super_ns,
                "annotations": renamed_marks}});
            proptest::prop_assert_eq!(
                super_key("ConfigMap", &super_ns, "tenant-copy", &renamed, &served),
                mapping::work_key(&role, "ConfigMap", &renamed)
            );
            let super_nsobj = json!({"metadata": {"name": super_ns, "annotations": marks}});
            proptest::prop_assert_eq!(
                super_key("Namespace", "", &super_ns, &super_nsobj, &served),
                mapping::work_key(&role, "Namespace", &super_nsobj)
            );
            let tenant_pod = json!({"metadata": {"name": name, "namespace": ns}});
            proptest::prop_assert_eq!(
                Some(tenant_key(&cluster, "Pod", &ns, &name)),
                mapping::work_key(&tenant_role, "Pod", &tenant_pod)
            );
            let tenant_ns = json!({"metadata": {"name": ns}});
            proptest::prop_assert_eq!(
                Some(tenant_key(&cluster, "Namespace", "", &ns)),
                mapping::work_key(&tenant_role, "Namespace", &tenant_ns)
            );
        }
    }
}
