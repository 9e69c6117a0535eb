//! Content negotiation for server-side `Table` output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
//! which `kubectl get` asks for; the rendering itself lives in `table`.

use serde_json::{Value, json};

use crate::handlers::ApiRequest;
use crate::resource_type::ResourceType;
use crate::table::{IncludeObject, render_table, render_watch_event_table};

/// Whether the client asked for a `Table` (its preferred media type is a Table).
pub fn wants_table(req: &ApiRequest) -> bool {
    req.accept.as_deref().is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// The `includeObject` parameter (default `Metadata`, like the real server).
pub fn include_object(req: &ApiRequest) -> IncludeObject {
    req.param("includeObject")
        .and_then(IncludeObject::parse)
        .unwrap_or_default()
}

/// The Table for `objects` if one was asked for; `None` means answer plain JSON.
pub fn maybe_table(
    rt: &ResourceType,
    req: &ApiRequest,
    objects: &[Value],
    rv: &str,
    continue_token: Option<&str>,
) -> Option<Value> {
    if !wants_table(req) {
        return None;
    }
    let mut table = render_table(rt, objects, include_object(req), chrono::Utc::now());
    table["metadata"] = json!({ "resourceVersion": rv });
    if let Some(token) = continue_token {
        table["metadata"]["continue"] = json!(token);
    }
    Some(table)
}

/// A watch event object rendered as a one-row Table (column definitions only on the first event).
pub fn watch_event_table(
    rt: &ResourceType,
    include: IncludeObject,
    object: &[u8],
    first: bool,
) -> Vec<u8> {
    let value: Value = serde_json::from_slice(object).unwrap_or(Value::Null);
    let table = render_watch_event_table(rt, &value, include, chrono::Utc::now(), first);
    serde_json::to_vec(&table).unwrap_or_default()
}
