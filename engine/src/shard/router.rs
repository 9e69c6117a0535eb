//! Routing: which shard handles a tenant namespace.
//!
//! Stable across processes and releases (FNV-1a, not std's randomly seeded hasher), because the shard is part
//! of every persisted log key: after a restart the same namespace must land on the same shard.

/// The shard for (tenant cluster key, tenant namespace) among `shards` shards (0 when `shards` is 0).
///
/// ```
/// use syncer::shard::router::shard_for;
/// assert_eq!(shard_for("t1", "default", 8), shard_for("t1", "default", 8));
/// assert!(shard_for("t1", "default", 8) < 8);
/// ```
pub fn shard_for(cluster: &str, namespace: &str, shards: u16) -> u16 {
    if shards == 0 {
        return 0;
    }
    let hash = fnv1a(&[cluster.as_bytes(), &[0xff], namespace.as_bytes()]);
    // The remainder is below `shards`, so it fits in u16.
    u16::try_from(hash % u64::from(shards)).unwrap_or(0)
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[b"foobar"]), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn separator_keeps_cluster_and_namespace_apart() {
        let spread: std::collections::HashSet<u16> = (0..64)
            .map(|i| shard_for("t", &format!("ns{i}"), 16))
            .collect();
        assert!(
            spread.len() > 8,
            "namespaces spread over shards: {spread:?}"
        );
        assert_ne!(
            fnv1a(&[b"ab", &[0xff], b"c"]),
            fnv1a(&[b"a", &[0xff], b"bc"])
        );
    }
}
