//! GET of one object and LIST (with selectors, pagination and resourceVersion semantics).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{ApiRequest, Body, bytes_response, request_namespace};
use crate::filter::Filter;
use crate::registry::storage_key;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::store::{ObjectKey, Snapshot, StoreError};

/// How long a list with a future `resourceVersion` waits for it before answering 504 (real: 3 s).
const FUTURE_RV_WAIT: Duration = Duration::from_secs(3);

/// GET one object (also `/status`, which shows the whole object).
pub(super) fn get(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let key = ObjectKey::new(&request_namespace(rt, req), name);
    let obj = state
        .store
        .get(&storage_key(rt), &key)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    if let Some(table) = crate::tables::maybe_table(
        rt,
        req,
        std::slice::from_ref(&obj.value()),
        &obj.rv.to_string(),
        None,
    ) {
        return Ok(super::json_response(StatusCode::OK, &table));
    }
    Ok(bytes_response(StatusCode::OK, obj.json))
}

/// A position in a paginated list, carried in the opaque `continue` token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    /// Revision of the first page (every page is served at it); `None` (`-1` on the wire, as in the real
    /// tokens) means "the latest", which the fresh token of a 410 carries.
    pub rv: Option<u64>,
    /// Key of the last object returned.
    pub after: ObjectKey,
}

impl ContinueToken {
    /// Encodes as hex of a small JSON document.
    pub fn encode(&self) -> String {
        let rv: i64 = self
            .rv
            .map_or(-1, |rv| i64::try_from(rv).unwrap_or(i64::MAX));
        let doc = json!({"v": "meta.k8s.io/v1", "rv": rv, "ns": self.after.namespace, "name": self.after.name});
        doc.to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Decodes; `None` for anything malformed.
    pub fn decode(token: &str) -> Option<ContinueToken> {
        if !token.len().is_multiple_of(2) || !token.is_ascii() {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
            .collect();
        let doc: Value = serde_json::from_slice(&bytes?).ok()?;
        Some(ContinueToken {
            rv: match doc.get("rv")?.as_i64()? {
                -1 => None,
                rv => Some(u64::try_from(rv).ok()?),
            },
            after: ObjectKey::new(doc.get("ns")?.as_str()?, doc.get("name")?.as_str()?),
        })
    }
}

/// Which snapshot a list is served from.
async fn snapshot_for(
    state: &Arc<ApiState>,
    resource: &str,
    namespace: Option<&str>,
    req: &ApiRequest,
    token: Option<&ContinueToken>,
) -> Result<Snapshot, ApiError> {
    if let Some(token) = token {
        let Some(rv) = token.rv else {
            return Ok(state.store.list(resource, namespace));
        };
        return state.store.list_at(resource, namespace, rv).map_err(|_| {
            // Like the real server: a fresh token continues after the same key at the latest revision.
            let fresh = ContinueToken {
                rv: None,
                after: token.after.clone(),
            };
            let mut err = ApiError::continue_expired();
            err.details.list_continue = Some(fresh.encode());
            err
        });
    }
    let rv = req.param("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = req.param("resourceVersionMatch").filter(|s| !s.is_empty());
    let Some(rv) = rv else {
        if rv_match.is_some() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        return Ok(state.store.list(resource, namespace));
    };
    let requested: u64 = rv
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
    match rv_match {
        Some("Exact") => {
            if requested == 0 {
                return Err(ApiError::bad_request(
                    "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
            wait_for_revision(state, requested).await?;
            state
                .store
                .list_at(resource, namespace, requested)
                .map_err(|e| match e {
                    StoreError::Compacted { .. } => {
                        ApiError::expired("The resourceVersion for the provided list is too old.")
                    }
                    other => ApiError::internal(other.to_string()),
                })
        }
        None | Some("NotOlderThan") => {
            wait_for_revision(state, requested).await?;
            Ok(state.store.list(resource, namespace))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
        ))),
    }
}

/// Waits (bounded) until the store reaches `rv`; 504 "Too large resource version" otherwise.
pub(crate) async fn wait_for_revision(state: &Arc<ApiState>, rv: u64) -> Result<(), ApiError> {
    let mut rx = state.store.subscribe();
    let reached = tokio::time::timeout(FUTURE_RV_WAIT, rx.wait_for(|current| *current >= rv)).await;
    match reached {
        Ok(Ok(_)) => Ok(()),
        _ => Err(ApiError::too_large_resource_version(
            rv,
            state.store.revision(),
        )),
    }
}

/// LIST.
pub(super) async fn list(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
) -> Result<Response<Body>, ApiError> {
    let namespace = req.path.namespace.as_deref().filter(|_| rt.namespaced);
    let filter = Filter::new(
        rt,
        namespace,
        req.param("labelSelector"),
        req.param("fieldSelector"),
    )?;
    let token = match req.param("continue").filter(|s| !s.is_empty()) {
        Some(raw) => {
            if req
                .param("resourceVersion")
                .is_some_and(|s| !s.is_empty() && s != "0")
            {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            Some(ContinueToken::decode(raw).ok_or_else(|| {
                ApiError::bad_request("continue key is not valid: illegal base64 data")
            })?)
        }
        None => None,
    };
    let mut limit: usize = match req.param("limit").filter(|s| !s.is_empty()) {
        Some(s) => s
            .parse::<i64>()
            .map(|v| if v <= 0 { 0 } else { v as usize })
            .unwrap_or(0),
        None => 0,
    };
    // Like the watch cache: resourceVersion=0 is served in full, without pagination.
    if token.is_none() && req.param("resourceVersion") == Some("0") {
        limit = 0;
    }
    let resource = storage_key(rt);
    let snapshot = snapshot_for(state, &resource, namespace, req, token.as_ref()).await?;
    let mut selected = Vec::new();
    let mut next: Option<ContinueToken> = None;
    let mut remaining: u64 = 0;
    for (key, obj) in snapshot.items.iter() {
        if token.as_ref().is_some_and(|t| *key <= t.after) {
            continue;
        }
        if !filter.matches(key, obj) {
            continue;
        }
        if limit > 0 && selected.len() == limit {
            if next.is_none() {
                let last: &ObjectKey = selected
                    .last()
                    .map(|(k, _): &(&ObjectKey, _)| *k)
                    .unwrap_or(key);
                next = Some(ContinueToken {
                    rv: Some(snapshot.revision),
                    after: last.clone(),
                });
            }
            remaining += 1;
            continue;
        }
        selected.push((key, obj));
    }
    let rv = snapshot.revision.to_string();
    if crate::tables::wants_table(req) {
        let objects: Vec<Value> = selected.iter().map(|(_, o)| o.value()).collect();
        let token = next.as_ref().map(ContinueToken::encode);
        if let Some(table) = crate::tables::maybe_table(rt, req, &objects, &rv, token.as_deref()) {
            return Ok(super::json_response(StatusCode::OK, &table));
        }
    }
    let mut meta = json!({ "resourceVersion": rv });
    if let Some(next) = &next {
        meta["continue"] = json!(next.encode());
        meta["remainingItemCount"] = json!(remaining);
    }
    let head = json!({ "kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": meta })
        .to_string();
    let mut buf = BytesMut::with_capacity(
        head.len()
            + selected
                .iter()
                .map(|(_, o)| o.json.len() + 1)
                .sum::<usize>()
            + 16,
    );
    buf.put_slice(&head.as_bytes()[..head.len() - 1]);
    buf.put_slice(b",\"items\":[");
    for (i, (_, obj)) in selected.iter().enumerate() {
        if i > 0 {
            buf.put_u8(b',');
        }
        buf.put_slice(&obj.json);
    }
    buf.put_slice(b"]}");
    Ok(bytes_response(StatusCode::OK, Bytes::from(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips_and_rejects_garbage() {
        let t = ContinueToken {
            rv: Some(42),
            after: ObjectKey::new("ns", "a-b"),
        };
        assert_eq!(ContinueToken::decode(&t.encode()), Some(t));
        let latest = ContinueToken {
            rv: None,
            after: ObjectKey::new("", "x"),
        };
        assert_eq!(ContinueToken::decode(&latest.encode()), Some(latest));
        assert_eq!(ContinueToken::decode("zz"), None);
        assert_eq!(ContinueToken::decode("abc"), None);
        assert_eq!(ContinueToken::decode("é1"), None);
    }
}
