//! The mTLS client material vc-manager presents to the syncer, from the syncer's TLS directory
//! (`<syncer data-dir>/grpc/`: `ca.pem`, `vc-manager.pem`, `vc-manager-key.pem`, role `vc-manager`).
//!
//! The syncer writes that directory when it first starts, so vc-manager started at the same time may
//! look before the files exist: [`wait_for_role_material`] waits for them (bounded, logged) instead of
//! failing at once.

use std::path::Path;
use std::time::Duration;

use tenancy_proto::pki::PkiFiles;
use tenancy_proto::roles::Role;
use tenancy_proto::tls::TlsMaterial;

/// Errors loading the material.
#[derive(Debug, thiserror::Error)]
pub enum SyncerTlsError {
    /// The files did not appear in time.
    #[error(
        "the syncer's TLS files for role {role} ({files}) did not appear within {waited:?}; is the syncer \
         running with this --data-dir?"
    )]
    Timeout {
        /// The role.
        role: Role,
        /// The files waited for.
        files: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The files exist but are not usable TLS material.
    #[error("the syncer's TLS files are unusable")]
    Unusable(#[source] tenancy_proto::pki::PkiError),
}

/// Reads the CA and the client certificate of `role` from `dir`, waiting up to `wait` for the files to
/// appear (they are written atomically by the syncer). Logs once when it starts waiting and every 10 s.
pub async fn wait_for_role_material(
    dir: &Path,
    role: Role,
    wait: Duration,
) -> Result<TlsMaterial, SyncerTlsError> {
    let files = PkiFiles::in_dir(dir);
    let (cert, key) = files.role_files(role);
    let needed = [files.ca_cert.clone(), cert, key];
    let started = tokio::time::Instant::now();
    let mut next_log = started;
    let mut waited = false;
    loop {
        if needed.iter().all(|p| p.exists()) {
            if waited {
                tracing::info!(dir = %dir.display(), after = ?started.elapsed(), "the syncer's TLS files appeared");
            }
            return files.role_material(role).map_err(SyncerTlsError::Unusable);
        }
        let now = tokio::time::Instant::now();
        if now.duration_since(started) >= wait {
            return Err(SyncerTlsError::Timeout {
                role,
                files: needed
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                waited: wait,
            });
        }
        if now >= next_log {
            let missing: Vec<String> = needed
                .iter()
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string())
                .collect();
            tracing::info!(?missing, limit = ?wait, "waiting for the syncer's TLS files");
            next_log = now + Duration::from_secs(10);
            waited = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenancy_proto::pki::default_server_names;

    #[tokio::test]
    async fn waits_for_files_written_later_and_times_out_without_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let grpc = dir.path().join("grpc");
        let missing = wait_for_role_material(&grpc, Role::VcManager, Duration::from_millis(300))
            .await
            .err()
            .unwrap_or_else(|| panic!("no files, yet material"));
        assert!(
            matches!(missing, SyncerTlsError::Timeout { .. }),
            "{missing}"
        );
        let writer = {
            let grpc = grpc.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                PkiFiles::ensure(&grpc, &default_server_names(&[]))
            })
        };
        let material = wait_for_role_material(&grpc, Role::VcManager, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        writer
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let id = tenancy_proto::roles::Identity::from_pem(&material.cert_pem)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.roles, vec![Role::VcManager]);
    }
}
