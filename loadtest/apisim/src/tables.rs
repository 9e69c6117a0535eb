//! Content negotiation for server-side `Table` output (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
//! which `kubectl get` asks for; the rendering itself lives in `table`.

use serde_json::Value;

use crate::handlers::ApiRequest;
use crate::resource_type::ResourceType;

/// Whether the client asked for a `Table`.
pub fn wants_table(req: &ApiRequest) -> bool {
    req.accept.as_deref().is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// The Table for `objects` if one was asked for and can be rendered; `None` means answer plain JSON
/// (which kubectl also accepts, printing NAME and AGE itself).
pub fn maybe_table(
    _rt: &ResourceType,
    req: &ApiRequest,
    _objects: &[Value],
    _rv: &str,
) -> Option<Value> {
    if !wants_table(req) {
        return None;
    }
    None
}
