//! Decoding of the Kubernetes protobuf request encoding for the few kinds `kubectl create <kind>` generators
//! send that way (Namespace, ConfigMap, Secret, ServiceAccount), so those commands work. The envelope is
//! `k8s\0` + `runtime.Unknown{typeMeta, raw}`; `raw` is the object's message from `k8s.io/api`'s
//! `generated.proto`. Decoding is strict: a field this module does not know is an error (the request is then
//! refused with 415) rather than silently dropped. Responses are always JSON.

use serde_json::{Map, Value, json};

/// Magic prefix of the Kubernetes protobuf encoding.
const MAGIC: &[u8] = b"k8s\0";
/// `time.Time{}` as protobuf seconds: a zero timestamp, treated as unset.
const ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// Not the `k8s\0` envelope or not well-formed protobuf.
    #[error("malformed protobuf body: {0}")]
    Malformed(&'static str),
    /// A kind this simulator cannot decode from protobuf.
    #[error("protobuf bodies of {0} are not supported by this simulated API server; send JSON")]
    UnsupportedKind(String),
    /// A field this simulator cannot decode (refused rather than dropped).
    #[error(
        "protobuf field {field} of {message} is not supported by this simulated API server; send JSON"
    )]
    UnsupportedField {
        /// Message name.
        message: &'static str,
        /// Field number.
        field: u32,
    },
}

/// One decoded field value.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtoError> {
    let mut out: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or(ProtoError::Malformed("truncated varint"))?;
        *pos += 1;
        out |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(ProtoError::Malformed("varint too long"))
}

/// All fields of a message, in order.
fn fields(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, ProtoError> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let field =
            u32::try_from(tag >> 3).map_err(|_| ProtoError::Malformed("field number too large"))?;
        let wire = match tag & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos = pos
                    .checked_add(8)
                    .filter(|p| *p <= buf.len())
                    .ok_or(ProtoError::Malformed("truncated fixed64"))?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?)
                    .map_err(|_| ProtoError::Malformed("length too large"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or(ProtoError::Malformed("truncated bytes"))?;
                let bytes = &buf[pos..end];
                pos = end;
                Wire::Bytes(bytes)
            }
            5 => {
                pos = pos
                    .checked_add(4)
                    .filter(|p| *p <= buf.len())
                    .ok_or(ProtoError::Malformed("truncated fixed32"))?;
                Wire::Fixed
            }
            _ => return Err(ProtoError::Malformed("unsupported wire type")),
        };
        out.push((field, wire));
    }
    Ok(out)
}

fn text(w: &Wire<'_>) -> Result<String, ProtoError> {
    match w {
        Wire::Bytes(b) => {
            String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed("string is not UTF-8"))
        }
        _ => Err(ProtoError::Malformed("expected a string")),
    }
}

fn bytes<'a>(w: &Wire<'a>) -> Result<&'a [u8], ProtoError> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(ProtoError::Malformed("expected bytes")),
    }
}

fn flag(w: &Wire<'_>) -> Result<bool, ProtoError> {
    match w {
        Wire::Varint(v) => Ok(*v != 0),
        _ => Err(ProtoError::Malformed("expected a bool")),
    }
}

/// Standard base64 (what JSON uses for `[]byte`).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `map<string, V>` entry (`key = 1`, `value = 2`).
fn map_entry<'a>(w: &Wire<'a>) -> Result<(String, Option<Wire<'a>>), ProtoError> {
    let mut key = String::new();
    let mut value = None;
    for (f, v) in fields(bytes(w)?)? {
        match f {
            1 => key = text(&v)?,
            2 => value = Some(v),
            _ => return Err(ProtoError::Malformed("unexpected map entry field")),
        }
    }
    Ok((key, value))
}

fn string_map_insert(map: &mut Map<String, Value>, w: &Wire<'_>) -> Result<(), ProtoError> {
    let (k, v) = map_entry(w)?;
    let v = match v {
        Some(v) => text(&v)?,
        None => String::new(),
    };
    map.insert(k, json!(v));
    Ok(())
}

fn bytes_map_insert(map: &mut Map<String, Value>, w: &Wire<'_>) -> Result<(), ProtoError> {
    let (k, v) = map_entry(w)?;
    let v = match v {
        Some(v) => base64(bytes(&v)?),
        None => String::new(),
    };
    map.insert(k, json!(v));
    Ok(())
}

fn is_zero_time(w: &Wire<'_>) -> Result<bool, ProtoError> {
    let mut seconds: i64 = 0;
    let mut nanos: u64 = 0;
    for (f, v) in fields(bytes(w)?)? {
        match (f, v) {
            (1, Wire::Varint(s)) => seconds = s as i64,
            (2, Wire::Varint(n)) => nanos = n,
            _ => return Err(ProtoError::Malformed("bad timestamp")),
        }
    }
    Ok((seconds == 0 || seconds == ZERO_TIME_SECONDS) && nanos == 0)
}

fn unsupported(message: &'static str, field: u32) -> ProtoError {
    ProtoError::UnsupportedField { message, field }
}

fn object_meta(buf: &[u8]) -> Result<Value, ProtoError> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (f, w) in fields(buf)? {
        match f {
            1 | 2 | 3 | 5 | 6 => {
                let key = match f {
                    1 => "name",
                    2 => "generateName",
                    3 => "namespace",
                    5 => "uid",
                    _ => "resourceVersion",
                };
                let v = text(&w)?;
                if !v.is_empty() {
                    meta.insert(key.to_string(), json!(v));
                }
            }
            // selfLink, generation, deletionGracePeriodSeconds, managedFields: server-owned, ignored.
            4 | 7 | 10 | 17 => {}
            8 | 9 => {
                if !is_zero_time(&w)? {
                    return Err(unsupported("ObjectMeta", f));
                }
            }
            11 => string_map_insert(&mut labels, &w)?,
            12 => string_map_insert(&mut annotations, &w)?,
            14 => finalizers.push(json!(text(&w)?)),
            other => return Err(unsupported("ObjectMeta", other)),
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn namespace(buf: &[u8], obj: &mut Map<String, Value>) -> Result<(), ProtoError> {
    for (f, w) in fields(buf)? {
        match f {
            1 => {
                obj.insert("metadata".into(), object_meta(bytes(&w)?)?);
            }
            2 => {
                let mut finalizers = Vec::new();
                for (sf, sw) in fields(bytes(&w)?)? {
                    match sf {
                        1 => finalizers.push(json!(text(&sw)?)),
                        other => return Err(unsupported("NamespaceSpec", other)),
                    }
                }
                if !finalizers.is_empty() {
                    obj.insert("spec".into(), json!({"finalizers": finalizers}));
                }
            }
            3 => {
                for (sf, sw) in fields(bytes(&w)?)? {
                    match sf {
                        1 if text(&sw)?.is_empty() => {}
                        other => return Err(unsupported("NamespaceStatus", other)),
                    }
                }
            }
            other => return Err(unsupported("Namespace", other)),
        }
    }
    Ok(())
}

fn config_map(buf: &[u8], obj: &mut Map<String, Value>) -> Result<(), ProtoError> {
    let mut data = Map::new();
    let mut binary = Map::new();
    for (f, w) in fields(buf)? {
        match f {
            1 => {
                obj.insert("metadata".into(), object_meta(bytes(&w)?)?);
            }
            2 => string_map_insert(&mut data, &w)?,
            3 => bytes_map_insert(&mut binary, &w)?,
            4 => {
                obj.insert("immutable".into(), json!(flag(&w)?));
            }
            other => return Err(unsupported("ConfigMap", other)),
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    Ok(())
}

fn secret(buf: &[u8], obj: &mut Map<String, Value>) -> Result<(), ProtoError> {
    let mut data = Map::new();
    let mut string_data = Map::new();
    for (f, w) in fields(buf)? {
        match f {
            1 => {
                obj.insert("metadata".into(), object_meta(bytes(&w)?)?);
            }
            2 => bytes_map_insert(&mut data, &w)?,
            3 => {
                let t = text(&w)?;
                if !t.is_empty() {
                    obj.insert("type".into(), json!(t));
                }
            }
            4 => string_map_insert(&mut string_data, &w)?,
            5 => {
                obj.insert("immutable".into(), json!(flag(&w)?));
            }
            other => return Err(unsupported("Secret", other)),
        }
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        obj.insert("stringData".into(), Value::Object(string_data));
    }
    Ok(())
}

fn service_account(buf: &[u8], obj: &mut Map<String, Value>) -> Result<(), ProtoError> {
    let mut pull_secrets = Vec::new();
    for (f, w) in fields(buf)? {
        match f {
            1 => {
                obj.insert("metadata".into(), object_meta(bytes(&w)?)?);
            }
            3 => {
                let mut name = String::new();
                for (sf, sw) in fields(bytes(&w)?)? {
                    match sf {
                        1 => name = text(&sw)?,
                        other => return Err(unsupported("LocalObjectReference", other)),
                    }
                }
                pull_secrets.push(json!({"name": name}));
            }
            4 => {
                obj.insert("automountServiceAccountToken".into(), json!(flag(&w)?));
            }
            other => return Err(unsupported("ServiceAccount", other)),
        }
    }
    if !pull_secrets.is_empty() {
        obj.insert("imagePullSecrets".into(), Value::Array(pull_secrets));
    }
    Ok(())
}

/// Decodes a `k8s\0`-prefixed protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or(ProtoError::Malformed("missing the k8s protobuf prefix"))?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (f, w) in fields(unknown)? {
        match f {
            1 => {
                for (tf, tw) in fields(bytes(&w)?)? {
                    match tf {
                        1 => api_version = text(&tw)?,
                        2 => kind = text(&tw)?,
                        _ => return Err(ProtoError::Malformed("unexpected TypeMeta field")),
                    }
                }
            }
            2 => raw = bytes(&w)?,
            3 => {
                if !text(&w)?.is_empty() {
                    return Err(ProtoError::Malformed(
                        "encoded raw content is not supported",
                    ));
                }
            }
            4 => {}
            _ => return Err(ProtoError::Malformed("unexpected runtime.Unknown field")),
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => namespace(raw, &mut obj)?,
        ("v1", "ConfigMap") => config_map(raw, &mut obj)?,
        ("v1", "Secret") => secret(raw, &mut obj)?,
        ("v1", "ServiceAccount") => service_account(raw, &mut obj)?,
        _ => return Err(ProtoError::UnsupportedKind(format!("{api_version}/{kind}"))),
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn tag(field: u32, wire: u8) -> Vec<u8> {
        varint_bytes((u64::from(field) << 3) | u64::from(wire))
    }

    fn len_field(field: u32, data: &[u8]) -> Vec<u8> {
        [
            tag(field, 2),
            varint_bytes(data.len() as u64),
            data.to_vec(),
        ]
        .concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [
            len_field(1, api_version.as_bytes()),
            len_field(2, kind.as_bytes()),
        ]
        .concat();
        let unknown = [len_field(1, &type_meta), len_field(2, raw)].concat();
        [MAGIC.to_vec(), unknown].concat()
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [len_field(1, k.as_bytes()), len_field(2, v)].concat()
    }

    #[test]
    fn namespace_and_config_map_decode_to_json() {
        let zero_time = [tag(1, 0), varint_bytes(ZERO_TIME_SECONDS as u64)].concat();
        let meta = [
            len_field(1, b"team"),
            len_field(8, &zero_time),
            len_field(11, &entry("a", b"b")),
        ]
        .concat();
        let ns = [len_field(1, &meta), len_field(2, b""), len_field(3, b"")].concat();
        let value = decode(&envelope("v1", "Namespace", &ns)).expect("namespace");
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": {"a": "b"}}})
        );
        let cm = [
            len_field(1, &len_field(1, b"c")),
            len_field(2, &entry("k", b"v")),
            len_field(3, &entry("bin", b"\x00\xff")),
        ]
        .concat();
        let value = decode(&envelope("v1", "ConfigMap", &cm)).expect("config map");
        assert_eq!(value["data"], json!({"k": "v"}));
        assert_eq!(value["binaryData"], json!({"bin": "AP8="}));
    }

    #[test]
    fn secrets_are_base64_and_unknown_things_are_refused() {
        let secret = [
            len_field(1, &len_field(1, b"s")),
            len_field(2, &entry("a", b"hello")),
            len_field(3, b"Opaque"),
        ]
        .concat();
        let value = decode(&envelope("v1", "Secret", &secret)).expect("secret");
        assert_eq!(value["data"], json!({"a": "aGVsbG8="}));
        assert_eq!(value["type"], "Opaque");
        let with_spec = [len_field(1, &len_field(1, b"d")), len_field(2, b"\x08\x01")].concat();
        assert!(matches!(
            decode(&envelope("apps/v1", "Deployment", &with_spec)),
            Err(ProtoError::UnsupportedKind(_))
        ));
        let odd = [len_field(1, &len_field(1, b"c")), len_field(9, b"x")].concat();
        assert_eq!(
            decode(&envelope("v1", "ConfigMap", &odd)),
            Err(ProtoError::UnsupportedField {
                message: "ConfigMap",
                field: 9
            })
        );
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
