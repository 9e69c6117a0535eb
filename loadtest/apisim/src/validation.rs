//! Object name, label and annotation validation with the messages of the real API server.
//!
//! The rules and texts follow `k8s.io/apimachinery/pkg/util/validation` (DNS-1123 subdomain and label,
//! DNS-1035 label, qualified names, label values) and `k8s.io/apimachinery/pkg/api/validation/path`
//! (RBAC names). A failed create answers 422 `Invalid` with a message such as
//! `Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain ...`
//! and one `details.causes` entry per [`FieldError`].

use std::collections::BTreeMap;

use serde_json::{Value, json};

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Longest DNS-1123 subdomain (most object names).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest DNS-1123 / DNS-1035 label (namespace and service names).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest label value and name part of a qualified name.
pub const LABEL_VALUE_MAX: usize = 63;
/// Total size limit of all annotations of one object (256 KiB), like the real server.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `must be no more than N characters`.
fn max_len_error(len: usize) -> String {
    format!("must be no more than {len} characters")
}

/// The real `RegexError` text: message, examples, then the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Matches `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alnum(first)
                && is_lower_alnum(last)
                && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Matches the DNS-1123 subdomain regex: dot-separated DNS-1123 labels.
fn matches_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(matches_dns1123_label)
}

/// Matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
        }
        _ => false,
    }
}

/// Errors of `IsDNS1123Subdomain` (empty when valid).
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Errors of `IsDNS1123Label` (empty when valid).
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Errors of `IsDNS1035Label` (empty when valid): service names.
pub fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_error(DNS1123_LABEL_MAX));
    }
    let starts_alpha = value.as_bytes().first().is_some_and(u8::is_ascii_lowercase);
    if !(starts_alpha && matches_dns1123_label(value)) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Errors of `IsValidPathSegmentName` (RBAC object names).
pub fn path_segment_name_errors(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    let mut errs = Vec::new();
    for illegal in ["/", "%"] {
        if value.contains(illegal) {
            errs.push(format!("may not contain '{illegal}'"));
        }
    }
    errs
}

/// Errors of `IsQualifiedName` / `IsLabelKey` (label keys, annotation keys, finalizers).
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                for msg in dns1123_subdomain_errors(prefix) {
                    errs.push(format!("prefix part {msg}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_VALUE_MAX {
        errs.push(format!("name part {}", max_len_error(LABEL_VALUE_MAX)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Errors of `IsValidLabelValue` (empty when valid; the empty string is a valid value).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errs.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Which name rule a resource uses (as registered by its strategy in the real server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain, at most 253 characters (most resources, custom resources).
    Dns1123Subdomain,
    /// DNS-1123 label, at most 63 characters (namespaces).
    Dns1123Label,
    /// DNS-1035 label: like a DNS-1123 label but starting with a letter (services).
    Dns1035Label,
    /// Any path segment: not `.`/`..`, no `/` or `%` (RBAC roles and bindings).
    PathSegment,
}

/// The name rule the real server applies to objects of `plural`.
pub fn name_rule(plural: &str) -> NameRule {
    match plural {
        "namespaces" => NameRule::Dns1123Label,
        "services" => NameRule::Dns1035Label,
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Validates an object name for resource `plural`; the error holds the detail messages (without the field
/// path), e.g. `["a lowercase RFC 1123 subdomain must consist of ..."]`. An empty name is reported as
/// `name or generateName is required`.
pub fn validate_name(plural: &str, name: &str) -> Result<(), Vec<String>> {
    if name.is_empty() {
        return Err(vec!["name or generateName is required".to_string()]);
    }
    let errs = match name_rule(plural) {
        NameRule::Dns1123Subdomain => dns1123_subdomain_errors(name),
        NameRule::Dns1123Label => dns1123_label_errors(name),
        NameRule::Dns1035Label => dns1035_label_errors(name),
        NameRule::PathSegment => path_segment_name_errors(name),
    };
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Kind of a field error, as in `k8s.io/apimachinery/pkg/util/validation/field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorType {
    /// `Invalid value` (`FieldValueInvalid`).
    Invalid,
    /// `Required value` (`FieldValueRequired`).
    Required,
    /// `Too long` (`FieldValueTooLong`).
    TooLong,
    /// `Forbidden` (`FieldValueForbidden`).
    Forbidden,
}

impl FieldErrorType {
    /// The `details.causes[].reason` string.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::Forbidden => "FieldValueForbidden",
        }
    }

    fn label(self) -> &'static str {
        match self {
            FieldErrorType::Invalid => "Invalid value",
            FieldErrorType::Required => "Required value",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::Forbidden => "Forbidden",
        }
    }
}

/// One validation failure on one field, rendered like the real `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of failure.
    pub error_type: FieldErrorType,
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// The offending value (shown quoted for `Invalid`).
    pub value: Option<String>,
    /// Human detail.
    pub detail: String,
}

impl FieldError {
    /// An `Invalid value` error.
    pub fn invalid(field: &str, value: &str, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Invalid,
            field: field.to_string(),
            value: Some(value.to_string()),
            detail: detail.into(),
        }
    }

    /// A `Required value` error.
    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        FieldError {
            error_type: FieldErrorType::Required,
            field: field.to_string(),
            value: None,
            detail: detail.into(),
        }
    }

    /// The message body without the field: `Invalid value: "x": detail`.
    pub fn body(&self) -> String {
        let mut out = self.error_type.label().to_string();
        if self.error_type == FieldErrorType::Invalid
            && let Some(value) = &self.value
        {
            out.push_str(": ");
            out.push_str(&go_quote(value));
        }
        if !self.detail.is_empty() {
            out.push_str(": ");
            out.push_str(&self.detail);
        }
        out
    }

    /// `field: body`, as in the aggregated message.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    /// The `details.causes[]` entry: `{reason, message, field}`.
    pub fn cause(&self) -> Value {
        json!({"reason": self.error_type.reason(), "message": self.body(), "field": self.field})
    }
}

/// Go's `%q` quoting of a string (enough for error messages: quotes, backslashes, control characters).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Field errors for `metadata.name` of a `plural` object (empty when valid).
pub fn name_field_errors(plural: &str, name: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )];
    }
    match validate_name(plural, name) {
        Ok(()) => Vec::new(),
        Err(msgs) => msgs
            .into_iter()
            .map(|m| FieldError::invalid("metadata.name", name, m))
            .collect(),
    }
}

/// Field errors for `metadata.labels` (keys are qualified names, values label values).
pub fn label_field_errors(labels: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        for msg in qualified_name_errors(key) {
            errs.push(FieldError::invalid("metadata.labels", key, msg));
        }
        for msg in label_value_errors(value) {
            errs.push(FieldError::invalid("metadata.labels", value, msg));
        }
    }
    errs
}

/// Field errors for `metadata.annotations` (keys are qualified names, lower-cased like the real check;
/// total size at most 256 KiB).
pub fn annotation_field_errors(annotations: &BTreeMap<String, String>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in qualified_name_errors(&key.to_lowercase()) {
            errs.push(FieldError::invalid("metadata.annotations", key, msg));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError {
            error_type: FieldErrorType::TooLong,
            field: "metadata.annotations".to_string(),
            value: None,
            detail: format!("must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        });
    }
    errs
}

/// Validates the `metadata` of an object about to be written: name (unless `generateName` will supply it),
/// labels and annotations. Returns every failure.
pub fn validate_metadata(plural: &str, metadata: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or("");
    errs.extend(name_field_errors(plural, name));
    if let Some(labels) = metadata.get("labels").and_then(string_map) {
        errs.extend(label_field_errors(&labels));
    }
    if let Some(annotations) = metadata.get("annotations").and_then(string_map) {
        errs.extend(annotation_field_errors(&annotations));
    }
    errs
}

/// A JSON object of strings as a map; non-string values are skipped.
fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    let obj = v.as_object()?;
    Some(
        obj.iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    )
}

/// The 422 message: `Pod "x" is invalid: <field error>` or, with several errors,
/// `Pod "x" is invalid: [<e1>, <e2>]`.
pub fn invalid_message(kind: &str, name: &str, errs: &[FieldError]) -> String {
    let joined = match errs {
        [] => String::new(),
        [one] => one.message(),
        many => format!(
            "[{}]",
            many.iter()
                .map(FieldError::message)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("{kind} {} is invalid: {joined}", go_quote(name))
}

/// Result of checking an object of a built-in kind for fields its Go type does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldCheck {
    /// The kind is known and decoded: these field paths (e.g. `spec.containers[0].imagee`) are unknown.
    Checked(Vec<String>),
    /// The kind is not a built-in one this check knows (custom resources), or the object does not decode
    /// as its type (wrong JSON types); nothing was checked.
    Unchecked,
}

/// Unknown fields of an object of a built-in kind, found by decoding it into the typed API struct (which,
/// like the real server's Go decoding, keeps only known fields) and comparing. The real server drops such
/// fields (`fieldValidation=Ignore`), drops them with a `Warning` header per field (`Warn`, the default),
/// or answers 400 (`Strict`, which kubectl sends) with [`strict_decoding_message`].
///
/// The types are those of the newest API version known to `k8s-openapi`, so a field added to a built-in
/// type after the simulated version counts as known. `null` values are never reported (the real decoder
/// accepts `null` for any field).
pub fn unknown_fields(group: &str, version: &str, kind: &str, obj: &Value) -> FieldCheck {
    match typed_round_trip(group, version, kind, obj) {
        Some(decoded) => {
            let mut out = Vec::new();
            collect_unknown(obj, &decoded, "", &mut out);
            FieldCheck::Checked(out)
        }
        None => FieldCheck::Unchecked,
    }
}

/// Removes the fields at the given paths (as returned by [`unknown_fields`]) from `obj`.
pub fn remove_fields(obj: &mut Value, paths: &[String]) {
    for path in paths {
        remove_path(obj, path);
    }
}

/// The 400 message of a strict create/update: `Pod in version "v1" cannot be handled as a Pod: strict
/// decoding error: unknown field "spec.foo", unknown field "spec.bar"`.
pub fn strict_decoding_message(kind: &str, version: &str, unknown: &[String]) -> String {
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {}", go_quote(f)))
        .collect();
    format!(
        "{kind} in version {} cannot be handled as a {kind}: strict decoding error: {}",
        go_quote(version),
        fields.join(", ")
    )
}

/// The `Warning` header value for one dropped unknown field (`Warn` mode): `299 - "unknown field \"x\""`.
pub fn unknown_field_warning(path: &str) -> String {
    format!(
        "299 - {}",
        go_quote(&format!("unknown field {}", go_quote(path)))
    )
}

fn collect_unknown(input: &Value, decoded: &Value, prefix: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                if value.is_null() {
                    continue;
                }
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match kept.get(key) {
                    Some(kept_value) => collect_unknown(value, kept_value, &path, out),
                    None => out.push(path),
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (i, (g, k)) in given.iter().zip(kept).enumerate() {
                collect_unknown(g, k, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Removes one `a.b[0].c` path. Keys containing `.` or `[` cannot be addressed this way and are skipped
/// (map keys such as label names are always known, so they never appear in paths).
fn remove_path(obj: &mut Value, path: &str) {
    let mut steps: Vec<(String, Option<usize>)> = Vec::new();
    for part in path.split('.') {
        let mut pieces = part.split('[');
        let name = pieces.next().unwrap_or("").to_string();
        let mut indices = pieces.filter_map(|p| p.trim_end_matches(']').parse::<usize>().ok());
        steps.push((name, indices.next()));
    }
    let Some((last, last_index)) = steps.pop() else {
        return;
    };
    let mut cur = obj;
    for (name, index) in steps {
        let Some(next) = cur.get_mut(&name) else {
            return;
        };
        cur = match index {
            Some(i) => match next.get_mut(i) {
                Some(v) => v,
                None => return,
            },
            None => next,
        };
    }
    if last_index.is_none()
        && let Value::Object(m) = cur
    {
        m.remove(&last);
    }
}

/// Decodes `obj` as the typed struct of (group, version, kind) and encodes it back; `None` when the kind
/// is not one of the built-ins below or the object does not decode.
fn typed_round_trip(group: &str, version: &str, kind: &str, obj: &Value) -> Option<Value> {
    use k8s_openapi::api;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;

    fn trip<T: serde::de::DeserializeOwned + serde::Serialize>(obj: &Value) -> Option<Value> {
        let typed: T = serde_json::from_value(obj.clone()).ok()?;
        serde_json::to_value(typed).ok()
    }

    if version != "v1" {
        return None;
    }
    match (group, kind) {
        ("", "Pod") => trip::<api::core::v1::Pod>(obj),
        ("", "Service") => trip::<api::core::v1::Service>(obj),
        ("", "Endpoints") => trip::<api::core::v1::Endpoints>(obj),
        ("", "ConfigMap") => trip::<api::core::v1::ConfigMap>(obj),
        ("", "Secret") => trip::<api::core::v1::Secret>(obj),
        ("", "ServiceAccount") => trip::<api::core::v1::ServiceAccount>(obj),
        ("", "Node") => trip::<api::core::v1::Node>(obj),
        ("", "Namespace") => trip::<api::core::v1::Namespace>(obj),
        ("", "Event") => trip::<api::core::v1::Event>(obj),
        ("", "PersistentVolumeClaim") => trip::<api::core::v1::PersistentVolumeClaim>(obj),
        ("", "PersistentVolume") => trip::<api::core::v1::PersistentVolume>(obj),
        ("", "ReplicationController") => trip::<api::core::v1::ReplicationController>(obj),
        ("", "ResourceQuota") => trip::<api::core::v1::ResourceQuota>(obj),
        ("", "LimitRange") => trip::<api::core::v1::LimitRange>(obj),
        ("", "PodTemplate") => trip::<api::core::v1::PodTemplate>(obj),
        ("", "Binding") => trip::<api::core::v1::Binding>(obj),
        ("apps", "Deployment") => trip::<api::apps::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => trip::<api::apps::v1::ReplicaSet>(obj),
        ("apps", "StatefulSet") => trip::<api::apps::v1::StatefulSet>(obj),
        ("apps", "DaemonSet") => trip::<api::apps::v1::DaemonSet>(obj),
        ("batch", "Job") => trip::<api::batch::v1::Job>(obj),
        ("batch", "CronJob") => trip::<api::batch::v1::CronJob>(obj),
        ("coordination.k8s.io", "Lease") => trip::<api::coordination::v1::Lease>(obj),
        ("events.k8s.io", "Event") => trip::<api::events::v1::Event>(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            trip::<apiextensions::CustomResourceDefinition>(obj)
        }
        ("storage.k8s.io", "StorageClass") => trip::<api::storage::v1::StorageClass>(obj),
        ("scheduling.k8s.io", "PriorityClass") => trip::<api::scheduling::v1::PriorityClass>(obj),
        ("networking.k8s.io", "Ingress") => trip::<api::networking::v1::Ingress>(obj),
        ("networking.k8s.io", "IngressClass") => trip::<api::networking::v1::IngressClass>(obj),
        ("networking.k8s.io", "NetworkPolicy") => trip::<api::networking::v1::NetworkPolicy>(obj),
        ("policy", "PodDisruptionBudget") => trip::<api::policy::v1::PodDisruptionBudget>(obj),
        ("rbac.authorization.k8s.io", "Role") => trip::<api::rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => trip::<api::rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => trip::<api::rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            trip::<api::rbac::v1::ClusterRoleBinding>(obj)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn unknown_fields_are_found_by_path() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"any.key/works": "v"}, "creationTimestamp": null},
            "spec": {"contaners": [], "containers": [{"name": "c", "image": "i", "imagee": "x",
                     "ports": [{"containerPort": 80, "bogus": 1}]}]},
            "extra": true});
        let FieldCheck::Checked(unknown) = unknown_fields("", "v1", "Pod", &pod) else {
            panic!("pods are checked");
        };
        assert_eq!(
            unknown,
            vec![
                "extra",
                "spec.containers[0].imagee",
                "spec.containers[0].ports[0].bogus",
                "spec.contaners"
            ]
        );
        let mut pruned = pod.clone();
        remove_fields(&mut pruned, &unknown);
        assert_eq!(
            unknown_fields("", "v1", "Pod", &pruned),
            FieldCheck::Checked(vec![])
        );
        assert_eq!(pruned["spec"]["containers"][0]["image"], "i");
        assert_eq!(pruned["metadata"]["labels"]["any.key/works"], "v");
    }

    #[test]
    fn known_objects_have_no_unknown_fields() {
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "i",
                                           "resources": {"limits": {"cpu": "500m"}}}]}}},
            "status": {"replicas": 0}});
        assert_eq!(
            unknown_fields("apps", "v1", "Deployment", &deploy),
            FieldCheck::Checked(vec![])
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert_eq!(
            unknown_fields("", "v1", "ConfigMap", &cm),
            FieldCheck::Checked(vec![])
        );
    }

    #[test]
    fn custom_and_undecodable_objects_are_not_checked() {
        let widget =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"anything": 1}});
        assert_eq!(
            unknown_fields("example.com", "v1", "Widget", &widget),
            FieldCheck::Unchecked
        );
        let wrong_type = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": "not a map"});
        assert_eq!(
            unknown_fields("", "v1", "ConfigMap", &wrong_type),
            FieldCheck::Unchecked
        );
    }

    #[test]
    fn strict_messages_match_the_real_server() {
        assert_eq!(
            strict_decoding_message("Pod", "v1", &["spec.contaners".to_string()]),
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.contaners\""
        );
        assert_eq!(
            unknown_field_warning("spec.x"),
            "299 - \"unknown field \\\"spec.x\\\"\""
        );
    }
    use super::*;

    #[test]
    fn subdomain_accepts_dotted_lowercase_names() {
        assert!(validate_name("pods", "web-0.example").is_ok());
        assert!(validate_name("pods", &"a".repeat(253)).is_ok());
    }

    #[test]
    fn subdomain_rejects_with_the_real_message() {
        let errs = validate_name("pods", "Bad_Name").unwrap_err();
        assert_eq!(
            errs,
            vec![
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
                 and must start and end with an alphanumeric character (e.g. 'example.com', regex used for \
                 validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                    .to_string()
            ]
        );
        let too_long = validate_name("configmaps", &"a".repeat(254)).unwrap_err();
        assert_eq!(too_long, vec!["must be no more than 253 characters"]);
        assert!(validate_name("pods", "-a").is_err());
        assert!(validate_name("pods", "a..b").is_err());
        assert!(validate_name("pods", "a.").is_err());
    }

    #[test]
    fn namespaces_are_labels_and_say_no_dots() {
        assert!(validate_name("namespaces", "team-a").is_ok());
        assert_eq!(
            validate_name("namespaces", "a.b").unwrap_err(),
            vec!["must not contain dots"]
        );
        let long = validate_name("namespaces", &"a".repeat(64)).unwrap_err();
        assert_eq!(long, vec!["must be no more than 63 characters"]);
        let bad = validate_name("namespaces", "Upper").unwrap_err();
        assert!(bad[0].starts_with("a lowercase RFC 1123 label must consist"));
        assert!(bad[0].contains("(e.g. 'my-name',  or '123-abc', regex used"));
    }

    #[test]
    fn services_must_start_with_a_letter() {
        assert!(validate_name("services", "web").is_ok());
        let errs = validate_name("services", "1web").unwrap_err();
        assert!(errs[0].starts_with("a DNS-1035 label must consist of lower case alphanumeric"));
        assert!(validate_name("services", "a.b").is_err());
    }

    #[test]
    fn rbac_names_are_path_segments() {
        assert!(validate_name("clusterroles", "system:controller:foo").is_ok());
        assert_eq!(
            validate_name("roles", "..").unwrap_err(),
            vec!["may not be '..'"]
        );
        assert_eq!(
            validate_name("rolebindings", "a/b%").unwrap_err(),
            vec!["may not contain '/'", "may not contain '%'"]
        );
    }

    #[test]
    fn empty_name_is_required() {
        let errs = name_field_errors("pods", "");
        assert_eq!(
            errs[0].message(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(errs[0].cause()["reason"], "FieldValueRequired");
    }

    #[test]
    fn invalid_message_matches_the_real_form() {
        let errs = name_field_errors("pods", "Bad_Name");
        let msg = invalid_message("Pod", "Bad_Name", &errs);
        assert!(msg.starts_with(
            "Pod \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        let cause = errs[0].cause();
        assert_eq!(cause["field"], "metadata.name");
        assert_eq!(cause["reason"], "FieldValueInvalid");
        assert!(
            cause["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Invalid value: \"Bad_Name\": "))
        );
        let two = vec![
            FieldError::invalid("metadata.name", "x", "a"),
            FieldError::invalid("metadata.labels", "y", "b"),
        ];
        assert_eq!(
            invalid_message("Pod", "x", &two),
            "Pod \"x\" is invalid: [metadata.name: Invalid value: \"x\": a, metadata.labels: Invalid value: \"y\": b]"
        );
    }

    #[test]
    fn label_keys_are_qualified_names() {
        assert!(qualified_name_errors("app").is_empty());
        assert!(qualified_name_errors("example.com/My_Name.1").is_empty());
        assert_eq!(
            qualified_name_errors("/a"),
            vec!["prefix part must be non-empty"]
        );
        let errs = qualified_name_errors("bad key");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .starts_with("name part must consist of alphanumeric characters, '-', '_' or '.'")
        );
        assert!(errs[0].contains("(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used"));
        let empty_name = qualified_name_errors("example.com/");
        assert_eq!(empty_name[0], "name part must be non-empty");
        assert!(qualified_name_errors("a/b/c")[0].starts_with("a qualified name must consist"));
        assert_eq!(
            qualified_name_errors(&"a".repeat(64))[0],
            "name part must be no more than 63 characters"
        );
        assert!(
            qualified_name_errors("Bad_Prefix/x")[0]
                .starts_with("prefix part a lowercase RFC 1123")
        );
    }

    #[test]
    fn label_values_may_be_empty_but_not_long_or_odd() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("v1.2_x-y").is_empty());
        assert_eq!(
            label_value_errors(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(label_value_errors("-x")[0].starts_with("a valid label must be an empty string"));
    }

    #[test]
    fn metadata_validation_collects_every_failure() {
        let meta = json!({"name": "ok", "labels": {"bad key": "v", "k": "-bad"}, "annotations": {"a": "b"}});
        let errs = validate_metadata("pods", &meta);
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|e| e.field == "metadata.labels"));
        let big =
            json!({"name": "ok", "annotations": {"a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT)}});
        let errs = validate_metadata("pods", &big);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].error_type, FieldErrorType::TooLong);
        assert_eq!(
            errs[0].message(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
    }

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn validators_never_panic(input in "\\PC{0,80}") {
            for plural in ["pods", "namespaces", "services", "roles"] {
                let _ = validate_name(plural, &input);
            }
            let _ = qualified_name_errors(&input);
            let _ = label_value_errors(&input);
        }

        /// Names built from the DNS-1123 grammar are accepted; adding an uppercase letter is rejected.
        #[test]
        fn grammar_names_are_accepted(labels in proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 1..4)) {
            let name = labels.join(".");
            prop_assert!(validate_name("pods", &name).is_ok(), "{}", name);
            let upper = format!("{name}A");
            prop_assert!(validate_name("pods", &upper).is_err());
            let ns = &labels[0];
            prop_assert!(validate_name("namespaces", ns).is_ok(), "{}", ns);
        }
    }
}
