//! `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: the TokenRequest subresource
//! (`authentication.k8s.io/v1`), as the real server answers it:
//!
//! * the service account must exist (404 `serviceaccounts "x" not found`);
//! * the body is a `TokenRequest`; `spec.expirationSeconds` defaults to 3600 and must lie within
//!   600 … 2^32 (422 otherwise); empty `spec.audiences` become the server's API audience;
//! * `spec.boundObjectRef` (a Pod, Secret or Node) must name an existing object (404) whose uid matches when
//!   one is given (409);
//! * 201 Created with the request echoed, `status.token` and `status.expirationTimestamp`.
//!
//! The token is JWT-shaped (header, claims, signature, base64url) with the real claims (`iss`, `sub`
//! `system:serviceaccount:<ns>:<name>`, `aud`, `iat`, `nbf`, `exp`, `kubernetes.io`), but its signature is
//! not a real one: the simulator does not authenticate requests.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{ApiRequest, Body, json_response, parse_body, request_namespace, str_at};
use crate::registry::storage_key;
use crate::resource_type::ResourceType;
use crate::state::ApiState;
use crate::status::ApiError;
use crate::store::ObjectKey;

/// The audience tokens get when the request names none (the real server's `--api-audiences` default).
pub const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// Issuer claim of simulated tokens.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// Default lifetime of a requested token (seconds).
const DEFAULT_EXPIRATION: i64 = 3600;
/// Shortest lifetime a request may ask for (seconds).
const MIN_EXPIRATION: i64 = 600;
/// Longest lifetime a request may ask for (seconds).
const MAX_EXPIRATION: i64 = 1 << 32;

/// The type the errors about a request body name (`TokenRequest.authentication.k8s.io "x" is invalid`).
fn token_request_type(sa: &ResourceType) -> ResourceType {
    ResourceType {
        group: "authentication.k8s.io".into(),
        version: "v1".into(),
        kind: "TokenRequest".into(),
        list_kind: "TokenRequestList".into(),
        plural: "tokenrequests".into(),
        singular: "tokenrequest".into(),
        ..sa.clone()
    }
}

/// Handles a TokenRequest on service account `name`.
pub(super) fn create(
    state: &Arc<ApiState>,
    rt: &ResourceType,
    req: &ApiRequest,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let namespace = request_namespace(rt, req);
    let tr_type = token_request_type(rt);
    let body = parse_body(req)?;
    let kind = str_at(&body, "/kind");
    let api_version = str_at(&body, "/apiVersion");
    if !(kind.is_empty() && api_version.is_empty())
        && (kind != "TokenRequest" || api_version != "authentication.k8s.io/v1")
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version \
             (authentication.k8s.io/v1)"
        )));
    }
    let sa = state
        .store
        .get(&storage_key(rt), &ObjectKey::new(&namespace, name))
        .ok_or_else(|| ApiError::not_found(rt, name))?
        .value();
    let expiration = match body.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request("spec.expirationSeconds: expected an integer".to_string())
        })?,
    };
    let invalid = |msg: &str| {
        ApiError::invalid(
            &tr_type,
            name,
            vec![ApiError::invalid_value_cause(
                "spec.expirationSeconds",
                &expiration.to_string(),
                msg,
            )],
        )
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences: Vec<String> = body
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences.push(DEFAULT_AUDIENCE.into());
    }
    let bound = body
        .pointer("/spec/boundObjectRef")
        .filter(|v| !v.is_null())
        .cloned();
    let bound_claim = match bound.as_ref() {
        Some(r) => Some(check_bound(state, &namespace, r)?),
        None => None,
    };

    let now = chrono::Utc::now();
    let exp = now + chrono::Duration::seconds(expiration);
    let sa_uid = str_at(&sa, "/metadata/uid").to_string();
    let mut k8s = json!({
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": sa_uid},
    });
    if let Some((kind, obj_name, uid)) = bound_claim {
        k8s[kind.to_lowercase()] = json!({"name": obj_name, "uid": uid});
    }
    let claims = json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "aud": audiences,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": exp.timestamp(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "kubernetes.io": k8s,
    });
    let header = json!({"alg": "RS256", "kid": "apisim"});
    let token = format!(
        "{}.{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes()),
        base64url(uuid::Uuid::new_v4().as_bytes())
    );
    let answer = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": bound},
        "status": {"token": token, "expirationTimestamp": exp.format("%Y-%m-%dT%H:%M:%SZ").to_string()},
    });
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// Checks a `boundObjectRef`; returns (kind, name, uid) of the object for the token's claims.
fn check_bound(
    state: &Arc<ApiState>,
    namespace: &str,
    reference: &Value,
) -> Result<(String, String, String), ApiError> {
    let kind = str_at(reference, "/kind").to_string();
    let name = str_at(reference, "/name").to_string();
    let want_uid = str_at(reference, "/uid").to_string();
    let (plural, namespaced) = match kind.as_str() {
        "Pod" => ("pods", true),
        "Secret" => ("secrets", true),
        "Node" => ("nodes", false),
        other => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for object of type {other}"
            )));
        }
    };
    let rt = state
        .registry
        .lookup("", "v1", plural)
        .ok_or_else(ApiError::no_route)?;
    let ns = if namespaced { namespace } else { "" };
    let obj = state
        .store
        .get(&storage_key(&rt), &ObjectKey::new(ns, &name))
        .ok_or_else(|| ApiError::not_found(&rt, &name))?
        .value();
    let uid = str_at(&obj, "/metadata/uid").to_string();
    if !want_uid.is_empty() && want_uid != uid {
        return Err(ApiError::conflict(
            &rt,
            &name,
            &format!(
                "the UID in the bound object reference ({want_uid}) does not match the UID in record. \
                 The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok((kind, name, uid))
}

/// Unpadded base64url (RFC 4648 §5), as JWTs use it.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64url;

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want);
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
