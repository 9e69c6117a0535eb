//! The on-disk format of the log: key layout, value encoding and the format version.
//!
//! Everything lives in sled's default tree so that one `sled::Batch` can write log entries, view entries
//! and resume points atomically. Keys start with a one-byte prefix (see `docs/log-format.md`):
//!
//! | prefix | key                                             | value                                 |
//! |--------|-------------------------------------------------|---------------------------------------|
//! | `0x00` | `\0format`, `\0shards`                          | u32 big endian                        |
//! | `L`    | `L` shard u16 BE, seq u64 BE                    | entry: version byte + JSON [`Record`] |
//! | `C`    | `C` shard u16 BE                                | checkpoint: lowest unapplied seq, u64 BE |
//! | `V`    | `V` cluster `\0` kind `\0` namespace `\0` name  | version byte, rv, uid, object JSON    |
//! | `R`    | `R` cluster `\0` kind                           | resourceVersion, UTF-8                |

use thiserror::Error;

use super::StoredObject;
use crate::record::Record;

/// Version of the data layout and value encoding described in this module. Bump it on any incompatible
/// change; a database carrying another version is refused at open.
pub const FORMAT_VERSION: u32 = 1;

/// Version byte in front of every encoded log entry and view value.
const VALUE_VERSION: u8 = 1;

pub(crate) const META_FORMAT: &[u8] = b"\x00format";
pub(crate) const META_SHARDS: &[u8] = b"\x00shards";
const PREFIX_LOG: u8 = b'L';
const PREFIX_CHECKPOINT: u8 = b'C';
const PREFIX_VIEW: u8 = b'V';
const PREFIX_RESUME: u8 = b'R';
const SEP: u8 = 0;

/// Errors of encoding or decoding log keys and values.
#[derive(Debug, Error)]
pub enum FormatError {
    /// A value could not be serialized.
    #[error("failed to encode a log value")]
    Encode(#[source] serde_json::Error),
    /// A stored value could not be parsed.
    #[error("failed to decode a stored log value")]
    Decode(#[source] serde_json::Error),
    /// A stored value is empty or carries a value version this build does not know.
    #[error("stored value has unknown encoding version {0:?}")]
    UnknownValueVersion(Option<u8>),
    /// A name used in a key contains a NUL byte, which the key layout reserves as separator.
    #[error("{field} {value:?} contains a NUL byte and cannot be used in a log key")]
    InvalidKeyComponent {
        /// Which part of the key (cluster, kind, namespace, name).
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// A stored key or number does not have the expected layout.
    #[error("stored key or number has an unexpected layout")]
    Malformed,
}

/// Rejects names that would make a key ambiguous.
pub(crate) fn check_component(field: &'static str, value: &str) -> Result<(), FormatError> {
    if value.as_bytes().contains(&SEP) {
        return Err(FormatError::InvalidKeyComponent {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Checks every name of a record that ends up in a key.
pub(crate) fn check_record(record: &Record) -> Result<(), FormatError> {
    check_component("cluster", &record.cluster)?;
    check_component("kind", &record.kind)?;
    check_component("namespace", &record.namespace)?;
    check_component("name", &record.name)?;
    check_component("work cluster", &record.work.cluster)?;
    check_component("work namespace", &record.work.namespace)
}

/// Key of log entry `seq` of `shard`.
pub(crate) fn log_key(shard: u16, seq: u64) -> [u8; 11] {
    let mut key = [0u8; 11];
    key[0] = PREFIX_LOG;
    key[1..3].copy_from_slice(&shard.to_be_bytes());
    key[3..11].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Prefix of every log entry of `shard`; entries sort by seq under it.
pub(crate) fn log_prefix(shard: u16) -> [u8; 3] {
    let mut key = [0u8; 3];
    key[0] = PREFIX_LOG;
    key[1..3].copy_from_slice(&shard.to_be_bytes());
    key
}

/// Prefix of every log entry of every shard.
pub(crate) fn log_prefix_all() -> [u8; 1] {
    [PREFIX_LOG]
}

/// Splits a log key into (shard, seq).
pub(crate) fn parse_log_key(key: &[u8]) -> Result<(u16, u64), FormatError> {
    if key.len() != 11 || key[0] != PREFIX_LOG {
        return Err(FormatError::Malformed);
    }
    let shard = u16::from_be_bytes([key[1], key[2]]);
    let seq = read_u64(&key[3..11])?;
    Ok((shard, seq))
}

/// Key of the persisted checkpoint of `shard`.
pub(crate) fn checkpoint_key(shard: u16) -> [u8; 3] {
    let mut key = [0u8; 3];
    key[0] = PREFIX_CHECKPOINT;
    key[1..3].copy_from_slice(&shard.to_be_bytes());
    key
}

/// Prefix of every checkpoint.
pub(crate) fn checkpoint_prefix_all() -> [u8; 1] {
    [PREFIX_CHECKPOINT]
}

/// Reads a big-endian u64 value.
pub(crate) fn read_u64(bytes: &[u8]) -> Result<u64, FormatError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| FormatError::Malformed)?;
    Ok(u64::from_be_bytes(arr))
}

/// Reads a big-endian u32 value.
pub(crate) fn read_u32(bytes: &[u8]) -> Result<u32, FormatError> {
    let arr: [u8; 4] = bytes.try_into().map_err(|_| FormatError::Malformed)?;
    Ok(u32::from_be_bytes(arr))
}

fn push_component(key: &mut Vec<u8>, part: &str) {
    key.extend_from_slice(part.as_bytes());
    key.push(SEP);
}

/// Key of the view entry of one object.
pub(crate) fn view_key(cluster: &str, kind: &str, namespace: &str, name: &str) -> Vec<u8> {
    let mut key = view_prefix_namespace(cluster, kind, namespace);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Prefix of every view entry of one cluster.
pub(crate) fn view_prefix_cluster(cluster: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + cluster.len());
    key.push(PREFIX_VIEW);
    push_component(&mut key, cluster);
    key
}

/// Prefix of every view entry of one kind in one cluster.
pub(crate) fn view_prefix_kind(cluster: &str, kind: &str) -> Vec<u8> {
    let mut key = view_prefix_cluster(cluster);
    push_component(&mut key, kind);
    key
}

/// Prefix of every view entry of one kind in one namespace of one cluster.
pub(crate) fn view_prefix_namespace(cluster: &str, kind: &str, namespace: &str) -> Vec<u8> {
    let mut key = view_prefix_kind(cluster, kind);
    push_component(&mut key, namespace);
    key
}

/// Splits the part of a view key after a kind prefix into (namespace, name).
pub(crate) fn split_namespace_name(rest: &[u8]) -> Result<(String, String), FormatError> {
    let pos = rest
        .iter()
        .position(|b| *b == SEP)
        .ok_or(FormatError::Malformed)?;
    let ns = std::str::from_utf8(&rest[..pos]).map_err(|_| FormatError::Malformed)?;
    let name = std::str::from_utf8(&rest[pos + 1..]).map_err(|_| FormatError::Malformed)?;
    Ok((ns.to_owned(), name.to_owned()))
}

/// Key of the resume point of one (cluster, kind) watch.
pub(crate) fn resume_key(cluster: &str, kind: &str) -> Vec<u8> {
    let mut key = resume_prefix_cluster(cluster);
    key.extend_from_slice(kind.as_bytes());
    key
}

/// Prefix of every resume point of one cluster.
pub(crate) fn resume_prefix_cluster(cluster: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + cluster.len());
    key.push(PREFIX_RESUME);
    push_component(&mut key, cluster);
    key
}

fn encode_versioned<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, FormatError> {
    let mut out = vec![VALUE_VERSION];
    serde_json::to_writer(&mut out, value).map_err(FormatError::Encode)?;
    Ok(out)
}

fn decode_versioned<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, FormatError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, body)) => serde_json::from_slice(body).map_err(FormatError::Decode),
        other => Err(FormatError::UnknownValueVersion(other.map(|(v, _)| *v))),
    }
}

/// Encodes a log entry.
pub(crate) fn encode_entry(record: &Record) -> Result<Vec<u8>, FormatError> {
    encode_versioned(record)
}

/// Decodes a log entry.
pub(crate) fn decode_entry(bytes: &[u8]) -> Result<Record, FormatError> {
    decode_versioned(bytes)
}

/// Encodes a view value: version byte, u16 BE length + resourceVersion, u16 BE length + uid, object JSON.
/// The resourceVersion comes first so the writer can compare versions without parsing the object.
pub(crate) fn encode_stored(stored: &StoredObject) -> Result<Vec<u8>, FormatError> {
    let rv = stored.resource_version.as_bytes();
    let uid = stored.uid.as_bytes();
    let rv_len = u16::try_from(rv.len()).map_err(|_| FormatError::Malformed)?;
    let uid_len = u16::try_from(uid.len()).map_err(|_| FormatError::Malformed)?;
    let mut out = Vec::with_capacity(5 + rv.len() + uid.len() + 256);
    out.push(VALUE_VERSION);
    out.extend_from_slice(&rv_len.to_be_bytes());
    out.extend_from_slice(rv);
    out.extend_from_slice(&uid_len.to_be_bytes());
    out.extend_from_slice(uid);
    serde_json::to_writer(&mut out, &stored.object).map_err(FormatError::Encode)?;
    Ok(out)
}

/// Reads a u16-length-prefixed string at the start of `bytes`; returns it and the rest.
fn take_str(bytes: &[u8]) -> Result<(&str, &[u8]), FormatError> {
    let (len, rest) = bytes.split_at_checked(2).ok_or(FormatError::Malformed)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let (text, rest) = rest.split_at_checked(len).ok_or(FormatError::Malformed)?;
    let text = std::str::from_utf8(text).map_err(|_| FormatError::Malformed)?;
    Ok((text, rest))
}

fn stored_body(bytes: &[u8]) -> Result<&[u8], FormatError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, body)) => Ok(body),
        other => Err(FormatError::UnknownValueVersion(other.map(|(v, _)| *v))),
    }
}

/// Decodes a view value.
pub(crate) fn decode_stored(bytes: &[u8]) -> Result<StoredObject, FormatError> {
    let (rv, rest) = take_str(stored_body(bytes)?)?;
    let (uid, rest) = take_str(rest)?;
    let object = serde_json::from_slice(rest).map_err(FormatError::Decode)?;
    Ok(StoredObject {
        resource_version: rv.to_owned(),
        uid: uid.to_owned(),
        object,
    })
}

/// Decodes a view value's resourceVersion and its object as `T` (borrowing the version).
pub(crate) fn decode_stored_as<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<(&str, T), FormatError> {
    let (rv, rest) = take_str(stored_body(bytes)?)?;
    let (_uid, rest) = take_str(rest)?;
    let object = serde_json::from_slice(rest).map_err(FormatError::Decode)?;
    Ok((rv, object))
}

/// Decodes only the resourceVersion of a view value.
pub(crate) fn decode_stored_rv(bytes: &[u8]) -> Result<String, FormatError> {
    let (rv, _) = take_str(stored_body(bytes)?)?;
    Ok(rv.to_owned())
}

/// Whether `candidate` may replace `stored`: false only when both parse as u64 and `candidate` is older.
/// resourceVersions are opaque in general; numeric comparison is what every etcd-backed server allows.
pub(crate) fn not_older(candidate: &str, stored: &str) -> bool {
    match (candidate.parse::<u64>(), stored.parse::<u64>()) {
        (Ok(c), Ok(s)) => c >= s,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_shard_then_seq() {
        let a = log_key(1, 255);
        let b = log_key(1, 256);
        let c = log_key(2, 0);
        assert!(a < b && b < c);
        assert_eq!(parse_log_key(&b).ok(), Some((1, 256)));
        assert!(a.starts_with(&log_prefix(1)));
    }

    #[test]
    fn view_prefixes_do_not_match_longer_names() {
        let pod = view_key("c1", "Pod", "ns", "a");
        assert!(pod.starts_with(&view_prefix_namespace("c1", "Pod", "ns")));
        assert!(!pod.starts_with(&view_prefix_namespace("c1", "Pod", "n")));
        assert!(!pod.starts_with(&view_prefix_kind("c1", "Po")));
        assert!(!pod.starts_with(&view_prefix_cluster("c")));
        let rest = &pod[view_prefix_kind("c1", "Pod").len()..];
        let (ns, name) = split_namespace_name(rest).unwrap_or_default();
        assert_eq!((ns.as_str(), name.as_str()), ("ns", "a"));
    }

    #[test]
    fn nul_in_names_is_rejected() {
        assert!(check_component("name", "a\0b").is_err());
        assert!(check_component("name", "a-b").is_ok());
    }

    #[test]
    fn unknown_value_version_is_refused() {
        assert!(matches!(
            decode_stored(b"\x09{}"),
            Err(FormatError::UnknownValueVersion(Some(9)))
        ));
        assert!(matches!(
            decode_stored(b""),
            Err(FormatError::UnknownValueVersion(None))
        ));
    }

    #[test]
    fn stored_objects_round_trip_and_expose_their_version_cheaply() {
        let stored = StoredObject {
            resource_version: "42".into(),
            uid: "u-1".into(),
            object: serde_json::json!({"metadata": {"name": "a"}}),
        };
        let bytes = encode_stored(&stored).unwrap_or_default();
        assert_eq!(decode_stored(&bytes).ok(), Some(stored));
        assert_eq!(decode_stored_rv(&bytes).ok().as_deref(), Some("42"));
        assert!(decode_stored(&bytes[..4]).is_err());
    }

    #[test]
    fn resource_versions_compare_numerically() {
        assert!(not_older("10", "9"));
        assert!(!not_older("9", "10"));
        assert!(not_older("abc", "10"));
    }
}
