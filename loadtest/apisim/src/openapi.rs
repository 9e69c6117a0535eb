//! OpenAPI documents for `kubectl` (`/openapi/v3`, `/openapi/v3/{api/v1|apis/G/V}`, `/openapi/v2`).
//!
//! What kubectl 1.32 needs from them (`k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go`,
//! `k8s.io/kubectl/pkg/cmd/apply/patcher.go`):
//! - `create -f` / `apply -f` with the default `--validate=strict` fetch the v3 root
//!   (`{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}}}`), then the document of
//!   the object's group-version, and look for a PATCH operation whose `x-kubernetes-group-version-kind`
//!   is the object's kind and whose parameters include `fieldValidation`. When found, kubectl skips
//!   client-side schema validation and sends `?fieldValidation=Strict` to the server. When the group-version
//!   is missing but the kind is a CRD, kubectl checks the Namespace PATCH operation instead.
//! - `apply` computes its strategic merge patch from the v3 schemas only if the PATCH operation accepts
//!   `application/strategic-merge-patch+json`. These documents do not advertise it (they carry no field
//!   schemas to compute a patch from), so kubectl falls back to its compiled-in types for built-in kinds
//!   (strategic merge patch) and to a JSON merge patch for custom resources, without warnings.
//! - `/openapi/v2` is asked for as protobuf (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`);
//!   the server answers 406 to that (only JSON is served), which kubectl treats as "no v2 schema".
//!
//! Component schemas are minimal (`apiVersion`, `kind`, `metadata`, open `spec`/`status`, the kind's
//! `x-kubernetes-group-version-kind`): enough for tools that list kinds, not for `kubectl explain` detail.

use serde_json::{Map, Value, json};

use crate::resource_type::ResourceType;

/// Content type kubectl asks `/openapi/v2` for; the server answers 406 to it.
pub const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The URL path of a group-version below `/openapi/v3/`: `api/v1` or `apis/apps/v1`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable content hash of a document (hex), used in `serverRelativeURL`'s `hash=` so clients cache it.
pub fn document_hash(doc: &Value) -> String {
    // FNV-1a over the serialized document, twice with different offsets for 128 bits.
    let bytes = doc.to_string();
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for byte in bytes.as_bytes() {
        a = (a ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        b = (b ^ u64::from(*byte))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    format!("{a:016X}{b:016X}")
}

/// The `/openapi/v3` discovery root: one entry per served group-version.
pub fn v3_root(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(types) {
        let path = gv_path(&group, &version);
        let Some(doc) = v3_group_version(types, &path) else {
            continue;
        };
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", document_hash(&doc))}),
        );
    }
    json!({ "paths": paths })
}

/// The OpenAPI 3 document of one group-version (`gv` as in [`gv_path`]); `None` if nothing is served there.
pub fn v3_group_version(types: &[ResourceType], gv: &str) -> Option<Value> {
    let members: Vec<&ResourceType> = types
        .iter()
        .filter(|rt| gv_path(&rt.group, &rt.version) == gv)
        .collect();
    if members.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in &members {
        for (path, item) in resource_paths(rt, Flavor::V3) {
            paths.insert(path, item);
        }
        schemas.insert(schema_name(rt), kind_schema(rt, Flavor::V3));
    }
    schemas.insert(
        OBJECT_META.to_string(),
        json!({"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have.",
               "x-kubernetes-preserve-unknown-fields": true}),
    );
    schemas.insert(
        PATCH_SCHEMA.to_string(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    schemas.insert(
        STATUS_SCHEMA.to_string(),
        json!({"type": "object", "description": "Status is a return value for calls that don't return other objects.",
               "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}]}),
    );
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// The Swagger 2.0 document of every served type (served as JSON only).
pub fn v2_document(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for rt in types {
        for (path, item) in resource_paths(rt, Flavor::V2) {
            paths.insert(path, item);
        }
        definitions.insert(schema_name(rt), kind_schema(rt, Flavor::V2));
    }
    definitions.insert(
        OBJECT_META.to_string(),
        json!({"type": "object", "description": "ObjectMeta is metadata that all persisted resources must have."}),
    );
    definitions.insert(
        PATCH_SCHEMA.to_string(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    definitions.insert(
        STATUS_SCHEMA.to_string(),
        json!({"type": "object", "description": "Status is a return value for calls that don't return other objects."}),
    );
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
    })
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    V2,
    V3,
}

fn group_versions(types: &[ResourceType]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = types
        .iter()
        .map(|rt| (rt.group.clone(), rt.version.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Definition name like the real server's: `io.k8s.api.core.v1.Pod`, `io.k8s.api.apps.v1.Deployment`,
/// `com.example.v1.Widget` for custom resources.
pub fn schema_name(rt: &ResourceType) -> String {
    if rt.custom {
        let reversed: Vec<&str> = rt.group.split('.').rev().collect();
        return format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind);
    }
    if rt.group == "apiextensions.k8s.io" {
        return format!(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{}.{}",
            rt.version, rt.kind
        );
    }
    let short = if rt.group.is_empty() {
        "core"
    } else {
        rt.group.split('.').next().unwrap_or(&rt.group)
    };
    format!("io.k8s.api.{short}.{}.{}", rt.version, rt.kind)
}

fn gvk(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "kind": rt.kind, "version": rt.version})
}

fn kind_schema(rt: &ResourceType, flavor: Flavor) -> Value {
    let meta_ref = schema_ref(OBJECT_META, flavor);
    json!({
        "type": "object",
        "description": format!("{} (schema not detailed by the simulated API server).", rt.kind),
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "metadata": meta_ref,
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        },
        "x-kubernetes-group-version-kind": [gvk(rt)],
    })
}

fn schema_ref(name: &str, flavor: Flavor) -> Value {
    match flavor {
        Flavor::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        Flavor::V2 => json!({"$ref": format!("#/definitions/{name}")}),
    }
}

fn query_param(name: &str, description: &str, type_: &str, flavor: Flavor) -> Value {
    match flavor {
        Flavor::V3 => json!({"name": name, "in": "query", "description": description,
                             "schema": {"type": type_, "uniqueItems": true}}),
        Flavor::V2 => json!({"name": name, "in": "query", "description": description,
                             "type": type_, "uniqueItems": true}),
    }
}

fn path_param(name: &str, description: &str, flavor: Flavor) -> Value {
    match flavor {
        Flavor::V3 => {
            json!({"name": name, "in": "path", "description": description, "required": true,
                             "schema": {"type": "string", "uniqueItems": true}})
        }
        Flavor::V2 => {
            json!({"name": name, "in": "path", "description": description, "required": true,
                             "type": "string", "uniqueItems": true})
        }
    }
}

const FIELD_VALIDATION_DOC: &str = "fieldValidation instructs the server on how to handle objects in the request \
    (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict";

fn write_params(flavor: Flavor, with_force: bool) -> Vec<Value> {
    let mut params = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
            "string",
            flavor,
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
            "string",
            flavor,
        ),
        query_param("fieldValidation", FIELD_VALIDATION_DOC, "string", flavor),
    ];
    if with_force {
        params.push(query_param(
            "force",
            "Force is going to \"force\" Apply requests.",
            "boolean",
            flavor,
        ));
    }
    params
}

/// Media types a PATCH accepts, as advertised (see the module doc for why strategic merge is not listed).
fn patch_media_types() -> [&'static str; 2] {
    [
        "application/json-patch+json",
        "application/merge-patch+json",
    ]
}

fn operation_id(verb: &str, rt: &ResourceType, namespaced_path: bool, suffix: &str) -> String {
    let group = if rt.group.is_empty() {
        "core".to_string()
    } else {
        rt.group
            .split('.')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_string()
                } else {
                    capitalize(part)
                }
            })
            .collect::<String>()
    };
    let ns = if namespaced_path { "Namespaced" } else { "" };
    format!(
        "{verb}{}{}{ns}{}{suffix}",
        capitalize(&group),
        capitalize(&rt.version),
        rt.kind
    )
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn response(rt: &ResourceType, codes: &[&str], flavor: Flavor, list: bool) -> Value {
    let name = if list {
        STATUS_SCHEMA.to_string()
    } else {
        schema_name(rt)
    };
    let mut out = Map::new();
    for code in codes {
        let body = match flavor {
            Flavor::V3 => {
                json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(&name, flavor)}}})
            }
            Flavor::V2 => json!({"description": "OK", "schema": schema_ref(&name, flavor)}),
        };
        out.insert((*code).to_string(), body);
    }
    Value::Object(out)
}

fn body_input(
    rt: &ResourceType,
    flavor: Flavor,
    media: &[&str],
    name: &str,
) -> (Option<Value>, Option<Value>) {
    match flavor {
        Flavor::V3 => {
            let content: Map<String, Value> = media
                .iter()
                .map(|m| {
                    (
                        (*m).to_string(),
                        json!({"schema": schema_ref(name, flavor)}),
                    )
                })
                .collect();
            (Some(json!({"content": content, "required": true})), None)
        }
        Flavor::V2 => {
            let _ = rt;
            (
                None,
                Some(
                    json!({"name": "body", "in": "body", "required": true, "schema": schema_ref(name, flavor)}),
                ),
            )
        }
    }
}

/// What distinguishes one operation of a path item.
struct OpSpec<'a> {
    /// Verb of the operationId (`list`, `create`, `patch`, ...).
    verb: &'a str,
    /// `x-kubernetes-action`.
    action: &'a str,
    /// Whether the path is namespaced (`Namespaced` in the operationId).
    namespaced: bool,
    /// operationId suffix (`Status`, `ForAllNamespaces`).
    suffix: &'a str,
    /// Parameters of the operation.
    params: Vec<Value>,
    /// Request body media types and schema name.
    body: Option<(&'a [&'a str], &'a str)>,
    /// Response codes.
    codes: &'a [&'a str],
}

/// One operation object.
fn operation(rt: &ResourceType, flavor: Flavor, spec: OpSpec<'_>) -> Value {
    let OpSpec {
        verb,
        action,
        namespaced: namespaced_path,
        suffix,
        mut params,
        body: body_media,
        codes,
    } = spec;
    let mut op = Map::new();
    op.insert(
        "description".to_string(),
        json!(format!("{action} {}{suffix}", rt.kind)),
    );
    op.insert(
        "operationId".to_string(),
        json!(operation_id(verb, rt, namespaced_path, suffix)),
    );
    if let Some((media, schema)) = body_media {
        let (request_body, body_param) = body_input(rt, flavor, media, schema);
        if let Some(rb) = request_body {
            op.insert("requestBody".to_string(), rb);
        }
        if let Some(bp) = body_param {
            params.insert(0, bp);
        }
        if flavor == Flavor::V2 {
            op.insert("consumes".to_string(), json!(media));
        }
    }
    op.insert("parameters".to_string(), Value::Array(params));
    op.insert(
        "responses".to_string(),
        response(rt, codes, flavor, verb == "deletecollection"),
    );
    op.insert("x-kubernetes-action".to_string(), json!(action));
    op.insert("x-kubernetes-group-version-kind".to_string(), gvk(rt));
    Value::Object(op)
}

fn resource_paths(rt: &ResourceType, flavor: Flavor) -> Vec<(String, Value)> {
    let prefix = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let collection = if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{prefix}/{}", rt.plural)
    };
    let ns = rt.namespaced;
    let schema = schema_name(rt);
    let json_only: &[&str] = &["application/json"];
    let patch_types = patch_media_types();
    let mut scope_params = Vec::new();
    if ns {
        scope_params.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
            flavor,
        ));
    }
    let mut named_params = vec![path_param(
        "name",
        &format!("name of the {}", rt.kind),
        flavor,
    )];
    named_params.extend(scope_params.iter().cloned());

    let mut out = Vec::new();
    let mut coll = Map::new();
    coll.insert(
        "get".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "list",
                action: "list",
                namespaced: ns,
                suffix: "",
                params: list_params(flavor),
                body: None,
                codes: &["200"],
            },
        ),
    );
    coll.insert(
        "post".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "create",
                action: "post",
                namespaced: ns,
                suffix: "",
                params: write_params(flavor, false),
                body: Some((json_only, &schema)),
                codes: &["200", "201", "202"],
            },
        ),
    );
    coll.insert(
        "delete".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "deletecollection",
                action: "deletecollection",
                namespaced: ns,
                suffix: "",
                params: list_params(flavor),
                body: None,
                codes: &["200"],
            },
        ),
    );
    coll.insert("parameters".to_string(), Value::Array(scope_params.clone()));
    out.push((collection.clone(), Value::Object(coll)));

    let mut item = Map::new();
    item.insert(
        "get".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "read",
                action: "get",
                namespaced: ns,
                suffix: "",
                params: Vec::new(),
                body: None,
                codes: &["200"],
            },
        ),
    );
    item.insert(
        "put".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "replace",
                action: "put",
                namespaced: ns,
                suffix: "",
                params: write_params(flavor, false),
                body: Some((json_only, &schema)),
                codes: &["200", "201"],
            },
        ),
    );
    item.insert(
        "patch".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "patch",
                action: "patch",
                namespaced: ns,
                suffix: "",
                params: write_params(flavor, true),
                body: Some((&patch_types, PATCH_SCHEMA)),
                codes: &["200", "201"],
            },
        ),
    );
    item.insert(
        "delete".to_string(),
        operation(
            rt,
            flavor,
            OpSpec {
                verb: "delete",
                action: "delete",
                namespaced: ns,
                suffix: "",
                params: write_params(flavor, false),
                body: None,
                codes: &["200", "202"],
            },
        ),
    );
    item.insert("parameters".to_string(), Value::Array(named_params.clone()));
    out.push((format!("{collection}/{{name}}"), Value::Object(item)));

    if rt.has_status {
        let mut status = Map::new();
        status.insert(
            "get".to_string(),
            operation(
                rt,
                flavor,
                OpSpec {
                    verb: "read",
                    action: "get",
                    namespaced: ns,
                    suffix: "Status",
                    params: Vec::new(),
                    body: None,
                    codes: &["200"],
                },
            ),
        );
        status.insert(
            "put".to_string(),
            operation(
                rt,
                flavor,
                OpSpec {
                    verb: "replace",
                    action: "put",
                    namespaced: ns,
                    suffix: "Status",
                    params: write_params(flavor, false),
                    body: Some((json_only, &schema)),
                    codes: &["200", "201"],
                },
            ),
        );
        status.insert(
            "patch".to_string(),
            operation(
                rt,
                flavor,
                OpSpec {
                    verb: "patch",
                    action: "patch",
                    namespaced: ns,
                    suffix: "Status",
                    params: write_params(flavor, true),
                    body: Some((&patch_types, PATCH_SCHEMA)),
                    codes: &["200", "201"],
                },
            ),
        );
        status.insert("parameters".to_string(), Value::Array(named_params));
        out.push((
            format!("{collection}/{{name}}/status"),
            Value::Object(status),
        ));
    }
    if ns {
        let mut all = Map::new();
        all.insert(
            "get".to_string(),
            operation(
                rt,
                flavor,
                OpSpec {
                    verb: "list",
                    action: "list",
                    namespaced: false,
                    suffix: "ForAllNamespaces",
                    params: list_params(flavor),
                    body: None,
                    codes: &["200"],
                },
            ),
        );
        out.push((format!("{prefix}/{}", rt.plural), Value::Object(all)));
    }
    out
}

fn list_params(flavor: Flavor) -> Vec<Value> {
    vec![
        query_param(
            "labelSelector",
            "A selector to restrict the list of returned objects by their labels.",
            "string",
            flavor,
        ),
        query_param(
            "fieldSelector",
            "A selector to restrict the list of returned objects by their fields.",
            "string",
            flavor,
        ),
        query_param(
            "limit",
            "limit is a maximum number of responses to return for a list call.",
            "integer",
            flavor,
        ),
        query_param(
            "continue",
            "The continue option should be set when retrieving more results from the server.",
            "string",
            flavor,
        ),
        query_param(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
            "string",
            flavor,
        ),
        query_param(
            "watch",
            "Watch for changes to the described resources.",
            "boolean",
            flavor,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(group: &str, kind: &str, plural: &str, namespaced: bool, custom: bool) -> ResourceType {
        ResourceType {
            group: group.to_string(),
            version: "v1".to_string(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: vec![],
            categories: vec![],
            has_status: true,
            has_generation: false,
            printer_columns: vec![],
            custom,
        }
    }

    fn types() -> Vec<ResourceType> {
        vec![
            rt("", "Pod", "pods", true, false),
            rt("", "Namespace", "namespaces", false, false),
            rt("apps", "Deployment", "deployments", true, false),
            rt("example.com", "Widget", "widgets", true, true),
        ]
    }

    /// What kubectl's `supportsQueryParamV3` does: find the PATCH operation for the GVK, look for the param.
    fn supports_field_validation(
        doc: &Value,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<bool> {
        let paths = doc.get("paths")?.as_object()?;
        for item in paths.values() {
            let Some(op) = item.get("patch") else {
                continue;
            };
            let g = op.get("x-kubernetes-group-version-kind")?;
            if g["group"] == group && g["version"] == version && g["kind"] == kind {
                let params = op.get("parameters")?.as_array()?;
                return Some(params.iter().any(|p| p["name"] == "fieldValidation"));
            }
        }
        Some(false)
    }

    #[test]
    fn root_lists_every_group_version_with_a_hashed_url() {
        let root = v3_root(&types());
        let paths = root["paths"].as_object().cloned().unwrap_or_default();
        let keys: Vec<&String> = paths.keys().collect();
        assert_eq!(keys, vec!["api/v1", "apis/apps/v1", "apis/example.com/v1"]);
        let url = paths["api/v1"]["serverRelativeURL"].as_str().unwrap_or("");
        assert!(url.starts_with("/openapi/v3/api/v1?hash="), "{url}");
        // The hash is the document's.
        let doc = v3_group_version(&types(), "api/v1").unwrap_or_default();
        assert!(url.ends_with(&document_hash(&doc)));
    }

    #[test]
    fn every_kind_supports_field_validation_on_patch() {
        let all = types();
        for t in &all {
            let doc = v3_group_version(&all, &gv_path(&t.group, &t.version)).unwrap_or_default();
            assert_eq!(
                supports_field_validation(&doc, &t.group, &t.version, &t.kind),
                Some(true),
                "{}",
                t.kind
            );
        }
        assert!(v3_group_version(&all, "apis/nope/v1").is_none());
    }

    #[test]
    fn documents_hold_paths_and_schemas_for_each_type() {
        let all = types();
        let core = v3_group_version(&all, "api/v1").unwrap_or_default();
        let paths = core["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/status"));
        assert!(paths.contains_key("/api/v1/pods"));
        assert!(paths.contains_key("/api/v1/namespaces/{name}"));
        assert!(!paths.contains_key("/apis/apps/v1/namespaces/{namespace}/deployments"));
        let schema = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(schema["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        let post = &paths["/api/v1/namespaces/{namespace}/pods"]["post"];
        assert_eq!(post["operationId"], "createCoreV1NamespacedPod");
        assert!(
            post["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation"))
        );
        let patch = &paths["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        let media = patch["requestBody"]["content"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert!(media.contains_key("application/merge-patch+json"));
        assert!(
            !media.contains_key("application/strategic-merge-patch+json"),
            "not advertised: kubectl apply then uses its built-in patch metadata"
        );
        let custom = v3_group_version(&all, "apis/example.com/v1").unwrap_or_default();
        assert!(
            custom["components"]["schemas"]
                .get("com.example.v1.Widget")
                .is_some()
        );
    }

    #[test]
    fn v2_document_has_the_same_operations() {
        let doc = v2_document(&types());
        assert_eq!(doc["swagger"], "2.0");
        assert_eq!(
            supports_field_validation(&doc, "apps", "v1", "Deployment"),
            Some(true)
        );
        assert!(
            doc["definitions"]
                .get("io.k8s.api.apps.v1.Deployment")
                .is_some()
        );
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(
            patch["consumes"]
                .as_array()
                .is_some_and(|c| c.contains(&json!("application/merge-patch+json")))
        );
    }

    #[test]
    fn schema_names_follow_the_real_server() {
        assert_eq!(
            schema_name(&rt("", "Pod", "pods", true, false)),
            "io.k8s.api.core.v1.Pod"
        );
        assert_eq!(
            schema_name(&rt(
                "rbac.authorization.k8s.io",
                "Role",
                "roles",
                true,
                false
            )),
            "io.k8s.api.rbac.v1.Role"
        );
        assert_eq!(
            schema_name(&rt(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                false
            )),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
        );
        assert_eq!(
            schema_name(&rt("example.com", "Widget", "widgets", true, true)),
            "com.example.v1.Widget"
        );
    }

    #[test]
    fn hash_changes_with_content() {
        assert_ne!(
            document_hash(&json!({"a": 1})),
            document_hash(&json!({"a": 2}))
        );
        assert_eq!(
            document_hash(&json!({"a": 1})),
            document_hash(&json!({"a": 1}))
        );
    }
}
