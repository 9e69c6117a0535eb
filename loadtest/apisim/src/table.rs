//! Server-side `Table` (`meta.k8s.io/v1`) rendering, which `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Columns follow the real printers (`pkg/printers/internalversion`) for the common built-in types: pods
//! (NAME, READY, STATUS, RESTARTS, AGE, and IP, NODE, NOMINATED NODE, READINESS GATES with `-o wide`),
//! namespaces, services, deployments, replica sets, stateful sets, daemon sets, jobs, nodes, config maps,
//! secrets, service accounts, endpoints, leases, persistent volume claims and events. Custom resources get
//! NAME plus their CRD's `additionalPrinterColumns` (or AGE when it has none), like the apiextensions
//! server; other built-ins get the default NAME + CREATED AT. Ages are rendered like
//! `duration.HumanDuration` (`5s`, `3m`, `2d`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::resource_type::{PrinterColumn, ResourceType};

/// What each row carries in `object` (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the server default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter value (`None`, `Metadata`, `Object`); `None` for anything else.
    pub fn parse(value: &str) -> Option<IncludeObject> {
        match value {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// One column definition.
struct Col {
    name: &'static str,
    type_: &'static str,
    format: &'static str,
    priority: i32,
    description: &'static str,
}

const fn col(name: &'static str, type_: &'static str, priority: i32) -> Col {
    Col {
        name,
        type_,
        format: "",
        priority,
        description: "",
    }
}

const NAME_COL: Col = Col {
    name: "Name",
    type_: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace. Cannot be updated.",
};
const AGE_COL: Col = Col {
    name: "Age",
    type_: "string",
    format: "",
    priority: 0,
    description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
};

/// Renders a `Table` of `objects` (all of type `rt`), evaluated at `now`. The caller sets
/// `metadata.resourceVersion` / `metadata.continue`.
pub fn render_table(
    rt: &ResourceType,
    objects: &[Value],
    include_object: IncludeObject,
    now: DateTime<Utc>,
) -> Value {
    let columns = column_definitions(rt);
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| render_row(rt, obj, include_object, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Renders the `Table` sent as the object of one watch event. `with_columns` puts the column definitions
/// in (the first event of a watch); later events carry only the row.
pub fn render_watch_event_table(
    rt: &ResourceType,
    object: &Value,
    include_object: IncludeObject,
    now: DateTime<Utc>,
    with_columns: bool,
) -> Value {
    let columns = if with_columns {
        column_definitions(rt)
    } else {
        Value::Array(Vec::new())
    };
    let rv = object
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let mut metadata = Map::new();
    if !rv.is_null() {
        metadata.insert("resourceVersion".to_string(), rv);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": [render_row(rt, object, include_object, now)],
    })
}

/// The `columnDefinitions` array for `rt`.
pub fn column_definitions(rt: &ResourceType) -> Value {
    let defs: Vec<Value> = if rt.custom {
        let mut out = vec![col_json(&NAME_COL)];
        for c in custom_columns(rt) {
            out.push(json!({
                "name": c.name, "type": if c.type_ == "date" { "date" } else { c.type_.as_str() },
                "format": "", "description": c.description, "priority": c.priority,
            }));
        }
        out
    } else {
        builtin_columns(&rt.plural).iter().map(col_json).collect()
    };
    Value::Array(defs)
}

fn col_json(c: &Col) -> Value {
    json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
}

fn custom_columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    if rt.printer_columns.is_empty() {
        vec![PrinterColumn {
            name: "Age".to_string(),
            type_: "date".to_string(),
            json_path: ".metadata.creationTimestamp".to_string(),
            priority: 0,
            description: AGE_COL.description.to_string(),
        }]
    } else {
        rt.printer_columns.clone()
    }
}

fn builtin_columns(plural: &str) -> Vec<Col> {
    let ctr = [col("Containers", "string", 1), col("Images", "string", 1)];
    match plural {
        "pods" => vec![
            NAME_COL,
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            AGE_COL,
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ],
        "namespaces" => vec![NAME_COL, col("Status", "string", 0), AGE_COL],
        "services" => vec![
            NAME_COL,
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            AGE_COL,
            col("Selector", "string", 1),
        ],
        "deployments" => {
            let mut v = vec![
                NAME_COL,
                col("Ready", "string", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                AGE_COL,
            ];
            v.extend(ctr);
            v.push(col("Selector", "string", 1));
            v
        }
        "replicasets" | "replicationcontrollers" => {
            let mut v = vec![
                NAME_COL,
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                AGE_COL,
            ];
            v.extend(ctr);
            v.push(col("Selector", "string", 1));
            v
        }
        "statefulsets" => {
            let mut v = vec![NAME_COL, col("Ready", "string", 0), AGE_COL];
            v.extend(ctr);
            v
        }
        "daemonsets" => {
            let mut v = vec![
                NAME_COL,
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Node Selector", "string", 0),
                AGE_COL,
            ];
            v.extend(ctr);
            v.push(col("Selector", "string", 1));
            v
        }
        "jobs" => {
            let mut v = vec![
                NAME_COL,
                col("Status", "string", 0),
                col("Completions", "string", 0),
                col("Duration", "string", 0),
                AGE_COL,
            ];
            v.extend(ctr);
            v.push(col("Selector", "string", 1));
            v
        }
        "nodes" => vec![
            NAME_COL,
            col("Status", "string", 0),
            col("Roles", "string", 0),
            AGE_COL,
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
            col("External-IP", "string", 1),
            col("OS-Image", "string", 1),
            col("Kernel-Version", "string", 1),
            col("Container-Runtime", "string", 1),
        ],
        "configmaps" => vec![NAME_COL, col("Data", "integer", 0), AGE_COL],
        "secrets" => vec![
            NAME_COL,
            col("Type", "string", 0),
            col("Data", "integer", 0),
            AGE_COL,
        ],
        "serviceaccounts" => vec![NAME_COL, col("Secrets", "integer", 0), AGE_COL],
        "endpoints" => vec![NAME_COL, col("Endpoints", "string", 0), AGE_COL],
        "leases" => vec![NAME_COL, col("Holder", "string", 0), AGE_COL],
        "rolebindings" | "clusterrolebindings" => vec![
            NAME_COL,
            col("Role", "string", 0),
            AGE_COL,
            col("Users", "string", 1),
            col("Groups", "string", 1),
            col("ServiceAccounts", "string", 1),
        ],
        "storageclasses" => vec![
            NAME_COL,
            col("Provisioner", "string", 0),
            col("ReclaimPolicy", "string", 0),
            col("VolumeBindingMode", "string", 0),
            col("AllowVolumeExpansion", "string", 0),
            AGE_COL,
        ],
        "priorityclasses" => vec![
            NAME_COL,
            col("Value", "integer", 0),
            col("Global-Default", "boolean", 0),
            AGE_COL,
            col("PreemptionPolicy", "string", 0),
        ],
        "ingresses" => vec![
            NAME_COL,
            col("Class", "string", 0),
            col("Hosts", "string", 0),
            col("Address", "string", 0),
            col("Ports", "string", 0),
            AGE_COL,
        ],
        "ingressclasses" => vec![
            NAME_COL,
            col("Controller", "string", 0),
            col("Parameters", "string", 0),
            AGE_COL,
        ],
        "networkpolicies" => vec![NAME_COL, col("Pod-Selector", "string", 0), AGE_COL],
        "poddisruptionbudgets" => vec![
            NAME_COL,
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            AGE_COL,
        ],
        "persistentvolumes" => vec![
            NAME_COL,
            col("Capacity", "string", 0),
            col("Access Modes", "string", 0),
            col("Reclaim Policy", "string", 0),
            col("Status", "string", 0),
            col("Claim", "string", 0),
            col("StorageClass", "string", 0),
            col("VolumeAttributesClass", "string", 0),
            col("Reason", "string", 0),
            AGE_COL,
            col("VolumeMode", "string", 1),
        ],
        "resourcequotas" => vec![
            NAME_COL,
            AGE_COL,
            col("Request", "string", 0),
            col("Limit", "string", 0),
        ],
        "persistentvolumeclaims" => vec![
            NAME_COL,
            col("Status", "string", 0),
            col("Volume", "string", 0),
            col("Capacity", "string", 0),
            col("Access Modes", "string", 0),
            col("StorageClass", "string", 0),
            col("VolumeAttributesClass", "string", 0),
            AGE_COL,
            col("VolumeMode", "string", 1),
        ],
        "events" => vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Subobject", "string", 1),
            col("Source", "string", 1),
            col("Message", "string", 0),
            col("First Seen", "string", 1),
            col("Count", "string", 1),
            Col {
                priority: 1,
                ..NAME_COL
            },
        ],
        _ => vec![
            NAME_COL,
            Col {
                name: "Created At",
                type_: "date",
                format: "",
                priority: 0,
                description: AGE_COL.description,
            },
        ],
    }
}

fn render_row(rt: &ResourceType, obj: &Value, include: IncludeObject, now: DateTime<Utc>) -> Value {
    let cells = if rt.custom {
        custom_cells(rt, obj, now)
    } else {
        builtin_cells(&rt.plural, obj, now)
    };
    let mut row = Map::new();
    row.insert("cells".to_string(), Value::Array(cells));
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row.insert(
                "object".to_string(),
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            );
        }
        IncludeObject::Object => {
            row.insert("object".to_string(), obj.clone());
        }
    }
    Value::Object(row)
}

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn n(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v.to_string()
    }
}

fn name(obj: &Value) -> Value {
    Value::String(s(obj, "/metadata/name").to_string())
}

fn age(obj: &Value, now: DateTime<Utc>) -> Value {
    Value::String(age_since(s(obj, "/metadata/creationTimestamp"), now))
}

/// `translateTimestampSince`: `<unknown>` for a missing timestamp, else the human duration until `now`.
pub fn age_since(timestamp: &str, now: DateTime<Utc>) -> String {
    if timestamp.is_empty() {
        return "<unknown>".to_string();
    }
    match DateTime::parse_from_rfc3339(timestamp) {
        Ok(t) => human_duration(now.signed_duration_since(t.with_timezone(&Utc))),
        Err(_) => "<invalid>".to_string(),
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn selector_text(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return "<none>".to_string();
    };
    if m.is_empty() {
        return "<none>".to_string();
    }
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `metav1.LabelSelector` rendered like `FormatLabelSelector`.
fn label_selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(Value::Object(m)) = sel.get("matchLabels") {
        let mut labels: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        labels.sort();
        parts.extend(labels);
    }
    for expr in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let key = s(expr, "/key");
        let values: Vec<&str> = arr(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        match s(expr, "/operator") {
            "In" => parts.push(format!("{key} in ({})", values.join(","))),
            "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
            "Exists" => parts.push(key.to_string()),
            "DoesNotExist" => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

fn containers_and_images(obj: &Value, template: &str) -> [Value; 2] {
    let containers = arr(obj, &format!("{template}/spec/containers"));
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    [json!(names.join(",")), json!(images.join(","))]
}

fn builtin_cells(plural: &str, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    match plural {
        "pods" => pod_cells(obj, now),
        "namespaces" => vec![
            name(obj),
            json!(match s(obj, "/status/phase") {
                "" => "Active",
                p => p,
            }),
            age(obj, now),
        ],
        "services" => service_cells(obj, now),
        "deployments" => {
            let mut v = vec![
                name(obj),
                json!(format!(
                    "{}/{}",
                    n(obj, "/status/readyReplicas"),
                    replicas(obj)
                )),
                json!(n(obj, "/status/updatedReplicas")),
                json!(n(obj, "/status/availableReplicas")),
                age(obj, now),
            ];
            v.extend(containers_and_images(obj, "/spec/template"));
            v.push(json!(label_selector_text(obj.pointer("/spec/selector"))));
            v
        }
        "replicasets" | "replicationcontrollers" => {
            let mut v = vec![
                name(obj),
                json!(replicas(obj)),
                json!(n(obj, "/status/replicas")),
                json!(n(obj, "/status/readyReplicas")),
                age(obj, now),
            ];
            v.extend(containers_and_images(obj, "/spec/template"));
            let sel = if plural == "replicasets" {
                label_selector_text(obj.pointer("/spec/selector"))
            } else {
                selector_text(obj.pointer("/spec/selector"))
            };
            v.push(json!(sel));
            v
        }
        "statefulsets" => {
            let mut v = vec![
                name(obj),
                json!(format!(
                    "{}/{}",
                    n(obj, "/status/readyReplicas"),
                    replicas(obj)
                )),
                age(obj, now),
            ];
            v.extend(containers_and_images(obj, "/spec/template"));
            v
        }
        "daemonsets" => {
            let mut v = vec![
                name(obj),
                json!(n(obj, "/status/desiredNumberScheduled")),
                json!(n(obj, "/status/currentNumberScheduled")),
                json!(n(obj, "/status/numberReady")),
                json!(n(obj, "/status/updatedNumberScheduled")),
                json!(n(obj, "/status/numberAvailable")),
                json!(selector_text(
                    obj.pointer("/spec/template/spec/nodeSelector")
                )),
                age(obj, now),
            ];
            v.extend(containers_and_images(obj, "/spec/template"));
            v.push(json!(label_selector_text(obj.pointer("/spec/selector"))));
            v
        }
        "jobs" => job_cells(obj, now),
        "nodes" => node_cells(obj, now),
        "configmaps" => {
            let count = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, Map::len)
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len);
            vec![name(obj), json!(count), age(obj, now)]
        }
        "secrets" => {
            let count = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, Map::len);
            let type_ = match s(obj, "/type") {
                "" => "Opaque",
                t => t,
            };
            vec![name(obj), json!(type_), json!(count), age(obj, now)]
        }
        "serviceaccounts" => vec![name(obj), json!(arr(obj, "/secrets").len()), age(obj, now)],
        "endpoints" => vec![name(obj), json!(endpoints_text(obj)), age(obj, now)],
        "leases" => vec![
            name(obj),
            json!(s(obj, "/spec/holderIdentity")),
            age(obj, now),
        ],
        "persistentvolumeclaims" => {
            vec![
                name(obj),
                json!(s(obj, "/status/phase")),
                json!(s(obj, "/spec/volumeName")),
                json!(s(obj, "/status/capacity/storage")),
                json!(access_modes(obj, "/status/accessModes")),
                json!(s(obj, "/spec/storageClassName")),
                json!(or_unset(s(obj, "/spec/volumeAttributesClassName"))),
                age(obj, now),
                json!(match s(obj, "/spec/volumeMode") {
                    "" => "Filesystem",
                    m => m,
                }),
            ]
        }
        "events" => event_cells(obj, now),
        "rolebindings" | "clusterrolebindings" => binding_cells(obj, now),
        "storageclasses" => {
            let mut name_text = s(obj, "/metadata/name").to_string();
            let annotations = obj.pointer("/metadata/annotations");
            let is_default = |key: &str| {
                annotations.and_then(|a| a.get(key)).and_then(Value::as_str) == Some("true")
            };
            if is_default("storageclass.kubernetes.io/is-default-class")
                || is_default("storageclass.beta.kubernetes.io/is-default-class")
            {
                name_text.push_str(" (default)");
            }
            vec![
                json!(name_text),
                json!(s(obj, "/provisioner")),
                json!(or_default(s(obj, "/reclaimPolicy"), "Delete")),
                json!(or_default(s(obj, "/volumeBindingMode"), "Immediate")),
                json!(
                    obj.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string()
                ),
                age(obj, now),
            ]
        }
        "priorityclasses" => vec![
            name(obj),
            json!(n(obj, "/value")),
            json!(
                obj.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            age(obj, now),
            json!(or_default(
                s(obj, "/preemptionPolicy"),
                "PreemptLowerPriority"
            )),
        ],
        "ingresses" => ingress_cells(obj, now),
        "ingressclasses" => {
            let params = obj.pointer("/spec/parameters");
            let params_text = match params {
                Some(p) => {
                    let group = s(p, "/apiGroup");
                    let kind = s(p, "/kind");
                    let kind = if group.is_empty() {
                        kind.to_string()
                    } else {
                        format!("{kind}.{group}")
                    };
                    format!("{kind}/{}", s(p, "/name"))
                }
                None => "<none>".to_string(),
            };
            vec![
                name(obj),
                json!(s(obj, "/spec/controller")),
                json!(params_text),
                age(obj, now),
            ]
        }
        "networkpolicies" => vec![
            name(obj),
            json!(label_selector_text(obj.pointer("/spec/podSelector"))),
            age(obj, now),
        ],
        "poddisruptionbudgets" => vec![
            name(obj),
            json!(int_or_string(obj.pointer("/spec/minAvailable"))),
            json!(int_or_string(obj.pointer("/spec/maxUnavailable"))),
            json!(n(obj, "/status/disruptionsAllowed")),
            age(obj, now),
        ],
        "persistentvolumes" => {
            let claim = match obj.pointer("/spec/claimRef") {
                Some(c) => format!("{}/{}", s(c, "/namespace"), s(c, "/name")),
                None => String::new(),
            };
            vec![
                name(obj),
                json!(s(obj, "/spec/capacity/storage")),
                json!(access_modes(obj, "/spec/accessModes")),
                json!(or_default(
                    s(obj, "/spec/persistentVolumeReclaimPolicy"),
                    "Retain"
                )),
                json!(s(obj, "/status/phase")),
                json!(claim),
                json!(s(obj, "/spec/storageClassName")),
                json!(or_unset(s(obj, "/spec/volumeAttributesClassName"))),
                json!(s(obj, "/status/reason")),
                age(obj, now),
                json!(or_default(s(obj, "/spec/volumeMode"), "Filesystem")),
            ]
        }
        "resourcequotas" => {
            let used = obj.pointer("/status/used");
            let render = |limits: bool| -> String {
                let Some(Value::Object(hard)) = obj.pointer("/spec/hard") else {
                    return String::new();
                };
                let mut parts: Vec<String> = hard
                    .iter()
                    .filter(|(k, _)| k.starts_with("limits.") == limits)
                    .map(|(k, v)| {
                        let u = used
                            .and_then(|u| u.get(k.as_str()))
                            .and_then(Value::as_str)
                            .unwrap_or("0");
                        format!("{k}: {u}/{}", v.as_str().unwrap_or(""))
                    })
                    .collect();
                parts.sort();
                parts.join(", ")
            };
            vec![
                name(obj),
                age(obj, now),
                json!(render(false)),
                json!(render(true)),
            ]
        }
        _ => vec![name(obj), json!(s(obj, "/metadata/creationTimestamp"))],
    }
}

fn or_default(v: &str, default: &str) -> String {
    if v.is_empty() {
        default.to_string()
    } else {
        v.to_string()
    }
}

/// An IntOrString field as text, `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".to_string(),
    }
}

fn access_modes(obj: &Value, pointer: &str) -> String {
    arr(obj, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn binding_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = format!("{}/{}", s(obj, "/roleRef/kind"), s(obj, "/roleRef/name"));
    let subjects = arr(obj, "/subjects");
    let of_kind = |kind: &str| -> String {
        subjects
            .iter()
            .filter(|sub| s(sub, "/kind") == kind)
            .map(|sub| {
                if kind == "ServiceAccount" {
                    format!("{}/{}", s(sub, "/namespace"), s(sub, "/name"))
                } else {
                    s(sub, "/name").to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        name(obj),
        json!(role),
        age(obj, now),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

fn ingress_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let class = match s(obj, "/spec/ingressClassName") {
        "" => obj
            .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string(),
        c => c.to_string(),
    };
    let hosts: Vec<&str> = arr(obj, "/spec/rules")
        .iter()
        .map(|r| s(r, "/host"))
        .filter(|h| !h.is_empty())
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        let more = hosts.len().saturating_sub(4);
        let mut text = hosts[..hosts.len().min(4)].join(",");
        if more > 0 {
            text.push_str(&format!(" + {more} more..."));
        }
        text
    };
    let address: Vec<String> = arr(obj, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| match s(i, "/ip") {
            "" => s(i, "/hostname").to_string(),
            ip => ip.to_string(),
        })
        .collect();
    let ports = if arr(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        json!(class),
        json!(hosts),
        json!(address.join(",")),
        json!(ports),
        age(obj, now),
    ]
}

fn or_unset(v: &str) -> String {
    if v.is_empty() {
        "<unset>".to_string()
    } else {
        v.to_string()
    }
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn pod_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let init_specs = arr(obj, "/spec/initContainers");
    // Sidecars (init containers with restartPolicy Always) count as regular containers.
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    let total = arr(obj, "/spec/containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "/restartPolicy") == "Always")
            .count();
    let mut reason = s(obj, "/status/phase").to_string();
    if reason.is_empty() {
        reason = "Pending".to_string();
    }
    if !s(obj, "/status/reason").is_empty() {
        reason = s(obj, "/status/reason").to_string();
    }
    let last_terminated = |c: &Value| {
        DateTime::parse_from_rfc3339(s(c, "/lastState/terminated/finishedAt"))
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let mut restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut sidecar_restarts = 0i64;
    let mut sidecar_last_restart: Option<DateTime<Utc>> = None;
    let mut ready = 0usize;
    let mut initializing = false;
    let init_statuses = arr(obj, "/status/initContainerStatuses");
    let init_total = init_specs.len();
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += n(c, "/restartCount");
        last_restart = last_restart.max(last_terminated(c));
        let sidecar = is_sidecar(s(c, "/name"));
        if sidecar {
            sidecar_restarts += n(c, "/restartCount");
            sidecar_last_restart = sidecar_last_restart.max(last_terminated(c));
        }
        let terminated = c.pointer("/state/terminated");
        let term_reason = s(c, "/state/terminated/reason");
        let exit = n(c, "/state/terminated/exitCode");
        let waiting = s(c, "/state/waiting/reason");
        if terminated.is_some() && exit == 0 {
            continue;
        }
        if sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_some() {
            let signal = n(c, "/state/terminated/signal");
            if !term_reason.is_empty() {
                format!("Init:{term_reason}")
            } else if signal != 0 {
                format!("Init:Signal:{signal}")
            } else {
                format!("Init:ExitCode:{exit}")
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        initializing = true;
        break;
    }
    let initialized = arr(obj, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for c in arr(obj, "/status/containerStatuses").iter().rev() {
            restarts += n(c, "/restartCount");
            last_restart = last_restart.max(last_terminated(c));
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            let term_reason = s(c, "/state/terminated/reason");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if terminated.is_some() && !term_reason.is_empty() {
                reason = term_reason.to_string();
            } else if let Some(t) = terminated {
                let signal = t.get("signal").and_then(Value::as_i64).unwrap_or(0);
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", n(t, "/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = arr(obj, "/status/conditions")
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if s(obj, "/status/reason") == "NodeLost" {
            "Unknown".to_string()
        } else {
            "Terminating".to_string()
        };
    }
    let ip = s(obj, "/status/podIP");
    let gates = arr(obj, "/spec/readinessGates");
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conds = arr(obj, "/status/conditions");
        let true_count = gates
            .iter()
            .filter(|g| {
                let t = s(g, "/conditionType");
                conds
                    .iter()
                    .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    vec![
        name(obj),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(match last_restart {
            Some(at) if restarts != 0 => {
                format!(
                    "{restarts} ({} ago)",
                    human_duration(now.signed_duration_since(at))
                )
            }
            _ => restarts.to_string(),
        }),
        age(obj, now),
        json!(or_none(ip)),
        json!(or_none(s(obj, "/spec/nodeName"))),
        json!(or_none(s(obj, "/status/nominatedNodeName"))),
        json!(gates_text),
    ]
}

fn service_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let type_ = match s(obj, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = match s(obj, "/spec/clusterIP") {
        "" => "<none>",
        ip => ip,
    };
    let external_ips: Vec<&str> = arr(obj, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match type_ {
        "ExternalName" => s(obj, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = arr(obj, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = s(i, "/ip");
                    if ip.is_empty() {
                        s(i, "/hostname").to_string()
                    } else {
                        ip.to_string()
                    }
                })
                .collect();
            ips.extend(external_ips.iter().map(|s| s.to_string()));
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        _ => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
    };
    let ports: Vec<String> = arr(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match s(p, "/protocol") {
                "" => "TCP",
                pr => pr,
            };
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np != 0 => format!("{}:{np}/{protocol}", n(p, "/port")),
                _ => format!("{}/{protocol}", n(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(obj),
        json!(type_),
        json!(cluster_ip),
        json!(external),
        json!(ports),
        age(obj, now),
        json!(selector_text(obj.pointer("/spec/selector"))),
    ]
}

fn job_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let conds = arr(obj, "/status/conditions");
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
    };
    let status = if has("Failed") {
        "Failed"
    } else if has("Complete") {
        "Complete"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if obj.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        "Running"
    };
    let succeeded = n(obj, "/status/succeeded");
    let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = obj
                .pointer("/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = s(obj, "/status/startTime");
    let duration = match (
        DateTime::parse_from_rfc3339(start),
        s(obj, "/status/completionTime"),
    ) {
        (Ok(st), "") => human_duration(now.signed_duration_since(st.with_timezone(&Utc))),
        (Ok(st), done) => match DateTime::parse_from_rfc3339(done) {
            Ok(end) => human_duration(end.signed_duration_since(st)),
            Err(_) => String::new(),
        },
        (Err(_), _) => String::new(),
    };
    let mut v = vec![
        name(obj),
        json!(status),
        json!(completions),
        json!(duration),
        age(obj, now),
    ];
    v.extend(containers_and_images(obj, "/spec/template"));
    v.push(json!(label_selector_text(obj.pointer("/spec/selector"))));
    v
}

fn node_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let conds = arr(obj, "/status/conditions");
    let mut status: Vec<String> = Vec::new();
    match conds.iter().find(|c| s(c, "/type") == "Ready") {
        Some(c) if s(c, "/status") == "True" => status.push("Ready".to_string()),
        Some(_) => status.push("NotReady".to_string()),
        None => status.push("Unknown".to_string()),
    }
    if obj.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".to_string());
    }
    let mut roles: Vec<String> = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| {
                    if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!role.is_empty()).then(|| role.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let address = |t: &str| {
        arr(obj, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == t)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".to_string())
    };
    vec![
        name(obj),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
        age(obj, now),
        json!(s(obj, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(or_unknown(s(obj, "/status/nodeInfo/osImage"))),
        json!(or_unknown(s(obj, "/status/nodeInfo/kernelVersion"))),
        json!(or_unknown(s(
            obj,
            "/status/nodeInfo/containerRuntimeVersion"
        ))),
    ]
}

fn or_unknown(v: &str) -> String {
    if v.is_empty() {
        "<unknown>".to_string()
    } else {
        v.to_string()
    }
}

fn endpoints_text(obj: &Value) -> String {
    let mut out: Vec<String> = Vec::new();
    for subset in arr(obj, "/subsets") {
        let ports = arr(subset, "/ports");
        for addr in arr(subset, "/addresses") {
            let ip = s(addr, "/ip");
            if ports.is_empty() {
                out.push(ip.to_string());
            } else {
                for p in ports {
                    out.push(format!("{ip}:{}", n(p, "/port")));
                }
            }
        }
    }
    if out.is_empty() {
        return "<none>".to_string();
    }
    let more = out.len().saturating_sub(3);
    out.truncate(3);
    let mut text = out.join(",");
    if more > 0 {
        text.push_str(&format!(" + {more} more..."));
    }
    text
}

fn event_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let first = first_non_empty(&[
        s(obj, "/firstTimestamp"),
        s(obj, "/eventTime"),
        s(obj, "/deprecatedFirstTimestamp"),
    ]);
    let last = first_non_empty(&[
        s(obj, "/lastTimestamp"),
        s(obj, "/series/lastObservedTime"),
        s(obj, "/eventTime"),
        s(obj, "/deprecatedLastTimestamp"),
        first,
    ]);
    let involved = if obj.get("involvedObject").is_some() {
        "/involvedObject"
    } else {
        "/regarding"
    };
    let kind = s(obj, &format!("{involved}/kind")).to_lowercase();
    let object = format!("{kind}/{}", s(obj, &format!("{involved}/name")));
    let source_component = first_non_empty(&[
        s(obj, "/source/component"),
        s(obj, "/reportingController"),
        s(obj, "/reportingComponent"),
        s(obj, "/deprecatedSource/component"),
    ]);
    let host = s(obj, "/source/host");
    let source = if host.is_empty() {
        source_component.to_string()
    } else {
        format!("{source_component}, {host}")
    };
    let count = obj
        .get("count")
        .or_else(|| obj.pointer("/series/count"))
        .or_else(|| obj.get("deprecatedCount"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let message = first_non_empty(&[s(obj, "/message"), s(obj, "/note")]);
    vec![
        json!(age_since(last, now)),
        json!(s(obj, "/type")),
        json!(s(obj, "/reason")),
        json!(object),
        json!(s(obj, &format!("{involved}/fieldPath"))),
        json!(source),
        json!(message.trim()),
        json!(age_since(first, now)),
        json!(count.to_string()),
        name(obj),
    ]
}

fn first_non_empty<'a>(candidates: &[&'a str]) -> &'a str {
    candidates
        .iter()
        .copied()
        .find(|c| !c.is_empty())
        .unwrap_or("")
}

fn custom_cells(rt: &ResourceType, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let mut cells = vec![name(obj)];
    for c in custom_columns(rt) {
        let results = json_path(obj, &c.json_path);
        let Some(first) = results.first() else {
            cells.push(Value::Null);
            continue;
        };
        let cell = match c.type_.as_str() {
            "string" => match first {
                Value::String(s) => json!(s),
                Value::Null => Value::Null,
                other => json!(other.to_string()),
            },
            "integer" => match first {
                Value::Number(num) => num
                    .as_i64()
                    .or_else(|| num.as_f64().map(|f| f as i64))
                    .map_or(Value::Null, |i| json!(i)),
                _ => Value::Null,
            },
            "number" => first.as_f64().map_or(Value::Null, |f| json!(f)),
            "boolean" => first.as_bool().map_or(Value::Null, |b| json!(b)),
            "date" => match first {
                Value::String(ts) => json!(age_since(ts, now)),
                _ => Value::Null,
            },
            _ => Value::Null,
        };
        cells.push(cell);
    }
    cells
}

/// Evaluates the JSONPath subset used by `additionalPrinterColumns`: `.a.b`, `['a.b']`, `[0]`, `[*]`
/// and `[?(@.key=="value")]`. Returns every value found (empty when the path matches nothing or is
/// not understood).
pub fn json_path(obj: &Value, path: &str) -> Vec<Value> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let Some(steps) = parse_path(path) else {
        return Vec::new();
    };
    let mut current = vec![obj.clone()];
    for step in steps {
        let mut next = Vec::new();
        for v in &current {
            match &step {
                Step::Field(f) => {
                    if let Some(child) = v.get(f.as_str()) {
                        next.push(child.clone());
                    }
                }
                Step::Index(i) => {
                    if let Value::Array(a) = v {
                        let idx = if *i < 0 {
                            (a.len() as i64 + i).max(-1)
                        } else {
                            *i
                        };
                        if let Some(child) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(child.clone());
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter().cloned()),
                    Value::Object(m) => next.extend(m.values().cloned()),
                    _ => {}
                },
                Step::Filter { key, value } => {
                    if let Value::Array(a) = v {
                        next.extend(
                            a.iter()
                                .filter(|item| {
                                    item.get(key.as_str()).is_some_and(|have| match have {
                                        Value::String(s) => s == value,
                                        other => scalar_eq(other, value),
                                    })
                                })
                                .cloned(),
                        );
                    }
                }
            }
        }
        current = next;
    }
    current
}

/// Whether a non-string JSON scalar equals the literal of a filter expression.
fn scalar_eq(v: &Value, want: &str) -> bool {
    match v {
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Number(n) => want.parse::<f64>().ok() == n.as_f64(),
        _ => false,
    }
}

enum Step {
    Field(String),
    Index(i64),
    All,
    Filter { key: String, value: String },
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let field = &after[..end];
            if !field.is_empty() {
                steps.push(Step::Field(field.to_string()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = after[..end].trim();
            rest = &after[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(quoted) = inner
                .strip_prefix('\'')
                .and_then(|i| i.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|i| i.strip_suffix('"')))
            {
                steps.push(Step::Field(quoted.to_string()));
            } else if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (key, value) = filter.split_once("==")?;
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Filter {
                    key: key.trim().to_string(),
                    value: value.to_string(),
                });
            } else {
                steps.push(Step::Index(inner.parse().ok()?));
            }
        } else {
            // A leading bare field name (`spec.replicas`).
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Field(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn rt(plural: &str, kind: &str) -> ResourceType {
        ResourceType {
            group: String::new(),
            version: "v1".to_string(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            has_status: true,
            has_generation: false,
            printer_columns: vec![],
            custom: false,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn header_names(table: &Value) -> Vec<String> {
        table["columnDefinitions"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn human_durations_match_the_real_formatter() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(TimeDelta::seconds(secs)), want, "{secs}s");
        }
        assert_eq!(age_since("", now()), "<unknown>");
        assert_eq!(age_since("2025-01-01T11:59:55Z", now()), "5s");
    }

    #[test]
    fn pod_table_columns_and_cells() {
        let pod = json!({
            "metadata": {"name": "web-0", "creationTimestamp": "2025-01-01T11:57:00Z", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "10.244.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let table = render_table(
            &rt("pods", "Pod"),
            std::slice::from_ref(&pod),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            header_names(&table),
            vec![
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(table["columnDefinitions"][5]["priority"], 1);
        assert_eq!(table["columnDefinitions"][0]["format"], "name");
        let cells = &table["rows"][0]["cells"];
        assert_eq!(
            cells,
            &json!([
                "web-0",
                "1/2",
                "CrashLoopBackOff",
                "3",
                "3m",
                "10.244.0.5",
                "node-1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "web-0");
        let full = render_table(
            &rt("pods", "Pod"),
            std::slice::from_ref(&pod),
            IncludeObject::Object,
            now(),
        );
        assert_eq!(full["rows"][0]["object"], pod);
        let none = render_table(&rt("pods", "Pod"), &[pod], IncludeObject::None, now());
        assert!(none["rows"][0].get("object").is_none());
    }

    #[test]
    fn pod_status_special_cases() {
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        let cells = render_table(&rt("pods", "Pod"), &[pending], IncludeObject::None, now());
        assert_eq!(cells["rows"][0]["cells"][2], "Pending");
        assert_eq!(cells["rows"][0]["cells"][1], "0/1");
        assert_eq!(cells["rows"][0]["cells"][4], "<unknown>");
        let terminating = json!({"metadata": {"name": "p", "deletionTimestamp": "2025-01-01T11:00:00Z"},
            "spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running"}});
        let cells = render_table(
            &rt("pods", "Pod"),
            &[terminating],
            IncludeObject::None,
            now(),
        );
        assert_eq!(cells["rows"][0]["cells"][2], "Terminating");
        let init = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}});
        let cells = render_table(&rt("pods", "Pod"), &[init], IncludeObject::None, now());
        assert_eq!(cells["rows"][0]["cells"][2], "Init:0/1");
        let done = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a", "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}});
        let cells = render_table(&rt("pods", "Pod"), &[done], IncludeObject::None, now());
        assert_eq!(cells["rows"][0]["cells"][2], "Completed");
        let restarted = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "restartCount": 2,
                "state": {"running": {}}, "lastState": {"terminated": {"finishedAt": "2025-01-01T11:55:00Z"}}}]}});
        let cells = render_table(&rt("pods", "Pod"), &[restarted], IncludeObject::None, now());
        assert_eq!(cells["rows"][0]["cells"][3], "2 (5m ago)");
        assert_eq!(cells["rows"][0]["cells"][2], "Running");
        let sidecar = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                    "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let cells = render_table(&rt("pods", "Pod"), &[sidecar], IncludeObject::None, now());
        assert_eq!(
            cells["rows"][0]["cells"][1], "2/2",
            "sidecars count as containers"
        );
        assert_eq!(cells["rows"][0]["cells"][2], "Running");
        assert_eq!(cells["rows"][0]["cells"][3], "1");
        let failed_init = json!({"metadata": {"name": "p"}, "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"terminated": {"exitCode": 3}}}]}});
        let cells = render_table(
            &rt("pods", "Pod"),
            &[failed_init],
            IncludeObject::None,
            now(),
        );
        assert_eq!(cells["rows"][0]["cells"][2], "Init:ExitCode:3");
    }

    #[test]
    fn services_namespaces_configmaps_secrets() {
        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2025-01-01T10:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"b": "2", "a": "1"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        let t = render_table(
            &rt("services", "Service"),
            &[svc],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            header_names(&t),
            vec![
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "NodePort",
                "10.96.0.10",
                "<none>",
                "80:30080/TCP,53/UDP",
                "120m",
                "a=1,b=2"
            ])
        );
        let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11"}});
        let t = render_table(
            &rt("services", "Service"),
            &[lb],
            IncludeObject::None,
            now(),
        );
        assert_eq!(t["rows"][0]["cells"][3], "<pending>");
        let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        let t = render_table(
            &rt("namespaces", "Namespace"),
            &[ns],
            IncludeObject::None,
            now(),
        );
        assert_eq!(header_names(&t), vec!["Name", "Status", "Age"]);
        assert_eq!(t["rows"][0]["cells"][1], "Active");
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        let t = render_table(
            &rt("configmaps", "ConfigMap"),
            &[cm],
            IncludeObject::None,
            now(),
        );
        assert_eq!(header_names(&t), vec!["Name", "Data", "Age"]);
        assert_eq!(t["rows"][0]["cells"][1], 3);
        let secret = json!({"metadata": {"name": "s"}, "data": {"a": "MQ=="}});
        let t = render_table(
            &rt("secrets", "Secret"),
            &[secret],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["s", "Opaque", 1, "<unknown>"])
        );
    }

    #[test]
    fn workloads_and_nodes() {
        let deploy = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = render_table(
            &rt("deployments", "Deployment"),
            &[deploy],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["d", "2/3", 3, 2, "<unknown>", "c", "nginx:1", "app=x"])
        );
        let node = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"},
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}});
        let t = render_table(&rt("nodes", "Node"), &[node], IncludeObject::None, now());
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "Ready,SchedulingDisabled");
        assert_eq!(cells[2], "control-plane");
        assert_eq!(cells[4], "v1.33.0");
        assert_eq!(cells[5], "172.18.0.2");
        assert_eq!(cells[6], "<none>");
    }

    #[test]
    fn events_render_object_and_ages() {
        let ev = json!({"metadata": {"name": "p.1"}, "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "ok", "count": 2,
            "firstTimestamp": "2025-01-01T11:50:00Z", "lastTimestamp": "2025-01-01T11:59:00Z",
            "source": {"component": "default-scheduler"}});
        let t = render_table(&rt("events", "Event"), &[ev], IncludeObject::None, now());
        assert_eq!(header_names(&t)[0], "Last Seen");
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "60s",
                "Normal",
                "Scheduled",
                "pod/p",
                "",
                "default-scheduler",
                "ok",
                "10m",
                "2",
                "p.1"
            ])
        );
    }

    #[test]
    fn rbac_storage_network_and_policy_printers() {
        let rb = json!({"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        let t = render_table(
            &rt("rolebindings", "RoleBinding"),
            &[rb],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["rb", "ClusterRole/view", "<unknown>", "alice", "", "ns/sa"])
        );
        let sc = json!({"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "example.com/disk"});
        let t = render_table(
            &rt("storageclasses", "StorageClass"),
            &[sc],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "std (default)",
                "example.com/disk",
                "Delete",
                "Immediate",
                "false",
                "<unknown>"
            ])
        );
        let ing = json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx",
            "rules": [{"host": "a.example.com"}], "tls": [{"hosts": ["a.example.com"]}]}});
        let t = render_table(
            &rt("ingresses", "Ingress"),
            &[ing],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["i", "nginx", "a.example.com", "", "80, 443", "<unknown>"])
        );
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        let t = render_table(
            &rt("poddisruptionbudgets", "PodDisruptionBudget"),
            &[pdb],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["p", "2", "N/A", 1, "<unknown>"])
        );
        let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        let t = render_table(
            &rt("networkpolicies", "NetworkPolicy"),
            &[np],
            IncludeObject::None,
            now(),
        );
        assert_eq!(t["rows"][0]["cells"][1], "<none>");
        let quota = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "limits.cpu": "2"}},
            "status": {"used": {"pods": "3"}}});
        let t = render_table(
            &rt("resourcequotas", "ResourceQuota"),
            &[quota],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["q", "<unknown>", "pods: 3/10", "limits.cpu: 0/2"])
        );
        let pc = json!({"metadata": {"name": "high"}, "value": 1000});
        let t = render_table(
            &rt("priorityclasses", "PriorityClass"),
            &[pc],
            IncludeObject::None,
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["high", 1000, false, "<unknown>", "PreemptLowerPriority"])
        );
    }

    #[test]
    fn default_columns_for_other_builtins() {
        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2025-01-01T00:00:00Z"}});
        let t = render_table(&rt("roles", "Role"), &[role], IncludeObject::None, now());
        assert_eq!(header_names(&t), vec!["Name", "Created At"]);
        assert_eq!(t["rows"][0]["cells"], json!(["r", "2025-01-01T00:00:00Z"]));
    }

    #[test]
    fn custom_resources_use_printer_columns() {
        let mut crt = rt("widgets", "Widget");
        crt.custom = true;
        let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2025-01-01T11:00:00Z"},
            "spec": {"size": 3, "labels": {"a.b/c": "x"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        let t = render_table(&crt, std::slice::from_ref(&obj), IncludeObject::None, now());
        assert_eq!(header_names(&t), vec!["Name", "Age"], "default AGE column");
        assert_eq!(t["rows"][0]["cells"], json!(["w", "60m"]));
        crt.printer_columns = vec![
            PrinterColumn {
                name: "Size".into(),
                type_: "integer".into(),
                json_path: ".spec.size".into(),
                priority: 0,
                description: String::new(),
            },
            PrinterColumn {
                name: "Ready".into(),
                type_: "string".into(),
                json_path: ".status.conditions[?(@.type==\"Ready\")].status".into(),
                priority: 0,
                description: String::new(),
            },
            PrinterColumn {
                name: "Label".into(),
                type_: "string".into(),
                json_path: ".spec.labels['a.b/c']".into(),
                priority: 1,
                description: String::new(),
            },
            PrinterColumn {
                name: "Missing".into(),
                type_: "string".into(),
                json_path: ".spec.nope".into(),
                priority: 0,
                description: String::new(),
            },
            PrinterColumn {
                name: "Created".into(),
                type_: "date".into(),
                json_path: ".metadata.creationTimestamp".into(),
                priority: 0,
                description: String::new(),
            },
        ];
        let t = render_table(&crt, &[obj], IncludeObject::None, now());
        assert_eq!(
            header_names(&t),
            vec!["Name", "Size", "Ready", "Label", "Missing", "Created"]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["w", 3, "True", "x", null, "60m"])
        );
        assert_eq!(t["columnDefinitions"][3]["priority"], 1);
    }

    #[test]
    fn json_path_subset() {
        let obj = json!({"a": {"b": [{"n": 1}, {"n": 2}]}});
        assert_eq!(json_path(&obj, ".a.b[1].n"), vec![json!(2)]);
        assert_eq!(json_path(&obj, "{.a.b[*].n}"), vec![json!(1), json!(2)]);
        assert_eq!(json_path(&obj, ".a.b[-1].n"), vec![json!(2)]);
        assert!(json_path(&obj, ".a.c").is_empty());
        assert!(json_path(&obj, ".a.b[x]").is_empty());
    }

    #[test]
    fn watch_event_table_has_one_row_and_optional_columns() {
        let pod =
            json!({"metadata": {"name": "p", "resourceVersion": "42"}, "spec": {"containers": []}});
        let first = render_watch_event_table(
            &rt("pods", "Pod"),
            &pod,
            IncludeObject::Metadata,
            now(),
            true,
        );
        assert_eq!(first["rows"].as_array().map(Vec::len), Some(1));
        assert_eq!(first["metadata"]["resourceVersion"], "42");
        assert_eq!(header_names(&first).len(), 9);
        let later = render_watch_event_table(
            &rt("pods", "Pod"),
            &pod,
            IncludeObject::Metadata,
            now(),
            false,
        );
        assert!(header_names(&later).is_empty());
        assert_eq!(later["rows"][0]["cells"][0], "p");
    }

    #[test]
    fn include_object_parse() {
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse("Metadata"),
            Some(IncludeObject::Metadata)
        );
        assert_eq!(IncludeObject::parse("x"), None);
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }
}
