//! Which objects a list or watch selects: namespace, label selector and field selector, validated like the
//! real server (unsupported field → 400 `field label not supported: x`).

use serde_json::Value;

use crate::resource_type::ResourceType;
use crate::selectors::{self, FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ObjectKey, StoredObject};

/// A compiled list/watch filter.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only objects in this namespace.
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: Option<LabelSelector>,
    /// `fieldSelector`.
    pub fields: Option<FieldSelector>,
    /// Resource name used for field lookups (`pods`, ...; custom resources use a neutral name).
    field_resource: String,
}

impl Filter {
    /// Builds a filter from the query parameters of a request on `rt`.
    pub fn new(
        rt: &ResourceType,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Filter, ApiError> {
        let labels = match label_selector.filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                Some(LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let field_resource = field_resource(rt);
        let fields = match field_selector.filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let sel =
                    FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let supported = selectors::supported_fields(&field_resource);
                if let Some(bad) = sel.fields().into_iter().find(|f| !supported.contains(f)) {
                    return Err(ApiError::bad_request(format!(
                        "field label not supported: {bad}"
                    )));
                }
                Some(sel)
            }
            None => None,
        };
        Ok(Filter {
            namespace: namespace.map(str::to_string),
            labels,
            fields,
            field_resource,
        })
    }

    /// Whether the filter needs the parsed object (a field other than name/namespace is selected).
    fn needs_object(&self) -> bool {
        self.fields.as_ref().is_some_and(|f| {
            f.fields()
                .iter()
                .any(|f| *f != "metadata.name" && *f != "metadata.namespace")
        })
    }

    /// Whether the object passes label and field selectors (the namespace is checked by the caller's scan).
    pub fn matches(&self, key: &ObjectKey, obj: &StoredObject) -> bool {
        if let Some(ns) = &self.namespace
            && *ns != key.namespace
        {
            return false;
        }
        if let Some(labels) = &self.labels
            && !labels.matches(&obj.labels)
        {
            return false;
        }
        let Some(fields) = &self.fields else {
            return true;
        };
        let parsed: Option<Value> = if self.needs_object() {
            Some(obj.value())
        } else {
            None
        };
        fields.matches(|field| match field {
            "metadata.name" => Some(key.name.clone()),
            "metadata.namespace" => Some(key.namespace.clone()),
            other => parsed
                .as_ref()
                .and_then(|v| selectors::field_value(&self.field_resource, v, other)),
        })
    }
}

/// The resource name whose selectable fields apply to `rt` (custom resources: only metadata fields).
fn field_resource(rt: &ResourceType) -> String {
    if rt.custom {
        "customresources".to_string()
    } else if rt.group == "events.k8s.io" {
        "events.k8s.io-events".to_string()
    } else {
        rt.plural.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin;
    use crate::store::{ObjectKey, Store};
    use serde_json::json;

    #[test]
    fn unsupported_field_is_rejected_and_supported_fields_filter() {
        let pods = builtin("", "pods").expect("pods");
        let err = Filter::new(&pods, None, None, Some("spec.bogus=1")).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "field label not supported: spec.bogus");
        let store = Store::new(10);
        let key = ObjectKey::new("ns", "p");
        let obj = store
            .create(
                "/pods",
                key.clone(),
                &mut json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}}),
            )
            .expect("create");
        let on_n1 =
            Filter::new(&pods, None, Some("app=web"), Some("spec.nodeName=n1")).expect("filter");
        assert!(on_n1.matches(&key, &obj));
        let on_n2 = Filter::new(&pods, None, None, Some("spec.nodeName=n2")).expect("filter");
        assert!(!on_n2.matches(&key, &obj));
        let other_app = Filter::new(&pods, Some("ns"), Some("app!=web"), None).expect("filter");
        assert!(!other_app.matches(&key, &obj));
        let bad = Filter::new(&pods, None, Some("a in (b"), None).unwrap_err();
        assert_eq!(bad.code, 400);
    }
}
