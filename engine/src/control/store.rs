//! Durable tenant registrations: one entry per cluster key in the sled tree `registrations`, next to the
//! log in the same database. Written and flushed before a Register or Unregister is answered, so an
//! acknowledged registration survives a crash of the process.
//!
//! Value layout: format byte (`1`), flags byte (bit 0: being removed), registered-at (i64 big endian, Unix
//! ms), then the protobuf encoding of `tenancy.sync.v1.TenantSpec` (so fields added to the contract are kept).

use tenancy_proto::prost::Message;
use tenancy_proto::v1;

use crate::log::LogError;

/// Name of the sled tree.
pub const TREE: &str = "registrations";
const FORMAT: u8 = 1;
const FLAG_REMOVING: u8 = 1;
const HEADER: usize = 10;

/// Errors of the registration store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("registration store: {0}")]
    Sled(#[from] sled::Error),
    /// The tree could not be opened.
    #[error("registration store could not be opened")]
    Open(#[source] LogError),
    /// A stored value is not a registration this build reads.
    #[error("registration {key} is corrupt or of an unknown format")]
    Corrupt {
        /// Its cluster key.
        key: String,
    },
}

/// One stored registration.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRegistration {
    /// Cluster key (the sled key).
    pub cluster_key: String,
    /// The spec as registered.
    pub spec: v1::TenantSpec,
    /// Unix ms of the first registration.
    pub registered_at_ms: i64,
    /// Unregistered, its super namespaces not confirmed gone yet: the cleanup resumes after a restart.
    pub removing: bool,
}

/// The registrations tree.
#[derive(Clone, Debug)]
pub struct RegistrationStore {
    tree: sled::Tree,
}

impl RegistrationStore {
    /// The store on an opened tree.
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// Every stored registration, by cluster key.
    pub fn load(&self) -> Result<Vec<StoredRegistration>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (key, value) = item?;
            let key = String::from_utf8_lossy(&key).into_owned();
            out.push(decode(key, &value)?);
        }
        Ok(out)
    }

    /// Writes (or replaces) a registration and flushes.
    pub fn put(&self, reg: &StoredRegistration) -> Result<(), StoreError> {
        self.tree.insert(reg.cluster_key.as_bytes(), encode(reg))?;
        self.tree.flush()?;
        Ok(())
    }

    /// Deletes a registration and flushes.
    pub fn delete(&self, cluster_key: &str) -> Result<(), StoreError> {
        self.tree.remove(cluster_key.as_bytes())?;
        self.tree.flush()?;
        Ok(())
    }
}

fn encode(reg: &StoredRegistration) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + reg.spec.encoded_len());
    out.push(FORMAT);
    out.push(if reg.removing { FLAG_REMOVING } else { 0 });
    out.extend_from_slice(&reg.registered_at_ms.to_be_bytes());
    reg.spec.encode(&mut out).unwrap_or_default();
    out
}

fn decode(key: String, value: &[u8]) -> Result<StoredRegistration, StoreError> {
    let corrupt = || StoreError::Corrupt { key: key.clone() };
    if value.len() < HEADER || value[0] != FORMAT {
        return Err(corrupt());
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&value[2..HEADER]);
    let spec = v1::TenantSpec::decode(&value[HEADER..]).map_err(|_| corrupt())?;
    Ok(StoredRegistration {
        removing: value[1] & FLAG_REMOVING != 0,
        registered_at_ms: i64::from_be_bytes(at),
        spec,
        cluster_key: key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> v1::TenantSpec {
        v1::TenantSpec {
            vc: Some(v1::VirtualClusterRef::new("team", "vc1", "uid-1")),
            kubeconfig: "apiVersion: v1\nkind: Config\n".into(),
            opaque_meta_prefixes: vec!["example.com/".into()],
            weight: 3,
            cluster_domain: "tenant.example".into(),
            ..Default::default()
        }
    }

    #[test]
    fn registrations_survive_reopening_the_database() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let reg = StoredRegistration {
            cluster_key: "team-abc123-vc1".into(),
            spec: spec(),
            registered_at_ms: 1_700_000_000_123,
            removing: false,
        };
        {
            let db = sled::open(dir.path())?;
            let store = RegistrationStore::new(db.open_tree(TREE)?);
            store.put(&reg)?;
            let mut gone = reg.clone();
            gone.cluster_key = "other".into();
            store.put(&gone)?;
            store.delete("other")?;
        }
        let db = sled::open(dir.path())?;
        let store = RegistrationStore::new(db.open_tree(TREE)?);
        assert_eq!(store.load()?, vec![reg.clone()]);
        let removing = StoredRegistration {
            removing: true,
            ..reg
        };
        store.put(&removing)?;
        assert_eq!(store.load()?, vec![removing]);
        Ok(())
    }

    #[test]
    fn unknown_formats_are_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let db = sled::open(dir.path())?;
        let tree = db.open_tree(TREE)?;
        tree.insert("k", &[9u8, 0, 0][..])?;
        assert!(matches!(
            RegistrationStore::new(tree).load(),
            Err(StoreError::Corrupt { .. })
        ));
        Ok(())
    }
}
