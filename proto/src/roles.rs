//! Roles of the syncer's gRPC clients and which methods each may call.
//!
//! Mutual TLS authenticates a client (its certificate is signed by the client CA); the *role* says what it
//! may do. A role is an `OU` (organizational unit) attribute of the client certificate's subject, e.g.
//! `CN=vc-manager, OU=vc-manager`; a certificate may carry several. The syncer's generated PKI issues one
//! certificate per role ([`crate::pki::PkiFiles`]); operators with their own CA put the role names in `OU`.
//!
//! | method | roles |
//! |---|---|
//! | `Health/Check` | any authenticated client (no role needed) |
//! | `TenantRegistry/Register`, `Unregister` | `admin`, `vc-manager` |
//! | `TenantRegistry/List`, `Watch` | `admin`, `vc-manager`, `vn-agent`, `viewer` |
//! | `Translation/*` | `admin`, `vn-agent` |
//! | any other path | `admin` |

use crate::v1::health_server::SERVICE_NAME as HEALTH;
use crate::v1::tenant_registry_server::SERVICE_NAME as REGISTRY;
use crate::v1::translation_server::SERVICE_NAME as TRANSLATION;

/// What a client of the syncer's gRPC API may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Every method (operators, the load-test harness).
    Admin,
    /// Registers and unregisters tenants; reads the registry.
    VcManager,
    /// Translation (pod lookups, the translation stream) and registry reads.
    VnAgent,
    /// Registry reads only (`kubectl vc list`, dashboards).
    Viewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::VcManager, Role::VnAgent, Role::Viewer];

    /// The name carried in a certificate's `OU`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::VcManager => "vc-manager",
            Role::VnAgent => "vn-agent",
            Role::Viewer => "viewer",
        }
    }

    /// The role named `name` (exact match), if any.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a client certificate names: its common name and the roles in its `OU` attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The subject's common name ("" when absent).
    pub common_name: String,
    /// Roles named by the subject's `OU` attributes (unknown names are ignored).
    pub roles: Vec<Role>,
}

/// Errors reading an identity from a certificate.
#[derive(Debug, thiserror::Error)]
#[error("the client certificate cannot be parsed: {0}")]
pub struct IdentityError(String);

impl Identity {
    /// Reads the identity from a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| IdentityError(e.to_string()))?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut roles: Vec<Role> = subject
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok())
            .filter_map(Role::parse)
            .collect();
        roles.sort();
        roles.dedup();
        Ok(Self { common_name, roles })
    }

    /// Reads the identity from a PEM certificate (the first block).
    pub fn from_pem(pem: &str) -> Result<Self, IdentityError> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| IdentityError(e.to_string()))?;
        Self::from_der(&block.contents)
    }
}

/// The roles allowed to call the gRPC method at `path` (`/package.Service/Method`); `None` when any
/// authenticated client may call it.
pub fn roles_for(path: &str) -> Option<&'static [Role]> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    const WRITERS: &[Role] = &[Role::Admin, Role::VcManager];
    const READERS: &[Role] = &[Role::Admin, Role::VcManager, Role::VnAgent, Role::Viewer];
    const TRANSLATORS: &[Role] = &[Role::Admin, Role::VnAgent];
    const ADMIN: &[Role] = &[Role::Admin];
    match (service, method) {
        (s, "Check") if s == HEALTH => None,
        (s, "Register" | "Unregister") if s == REGISTRY => Some(WRITERS),
        (s, "List" | "Watch") if s == REGISTRY => Some(READERS),
        (s, "ToSuper" | "ToTenant" | "PodsOnNode" | "WatchTranslations") if s == TRANSLATION => {
            Some(TRANSLATORS)
        }
        _ => Some(ADMIN),
    }
}

/// Whether a client holding `roles` may call `path`.
pub fn allowed(roles: &[Role], path: &str) -> bool {
    roles_for(path).is_none_or(|needed| roles.iter().any(|r| needed.contains(r)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CertificateAuthority;

    const REGISTER: &str = "/tenancy.sync.v1.TenantRegistry/Register";
    const LIST: &str = "/tenancy.sync.v1.TenantRegistry/List";
    const TO_SUPER: &str = "/tenancy.sync.v1.Translation/ToSuper";
    const CHECK: &str = "/tenancy.sync.v1.Health/Check";

    #[test]
    fn the_method_table() {
        use Role::*;
        assert!(allowed(&[VcManager], REGISTER));
        assert!(allowed(&[Admin], REGISTER));
        assert!(!allowed(&[VnAgent], REGISTER));
        assert!(!allowed(&[Viewer], REGISTER));
        assert!(!allowed(&[], REGISTER));
        assert!(allowed(&[VnAgent], TO_SUPER));
        assert!(!allowed(&[VcManager], TO_SUPER));
        assert!(!allowed(&[Viewer], TO_SUPER));
        for role in Role::ALL {
            assert!(allowed(&[role], LIST), "{role} reads the registry");
        }
        assert!(!allowed(&[], LIST));
        assert!(allowed(&[], CHECK));
        assert!(!allowed(
            &[VcManager],
            "/tenancy.sync.v1.TenantRegistry/Other"
        ));
        assert!(allowed(&[Admin], "/tenancy.sync.v1.TenantRegistry/Other"));
        assert!(!allowed(
            &[Viewer],
            "/grpc.reflection.v1.ServerReflection/Info"
        ));
    }

    #[test]
    fn roles_round_trip_through_a_certificate() -> Result<(), Box<dyn std::error::Error>> {
        let ca = CertificateAuthority::generate()?;
        let cert = ca.issue_client_for("agent-1", Role::VnAgent)?;
        let id = Identity::from_pem(&cert.cert_pem)?;
        assert_eq!(id.common_name, "agent-1");
        assert_eq!(id.roles, vec![Role::VnAgent]);
        let plain = Identity::from_pem(&ca.issue_client("nobody")?.cert_pem)?;
        assert!(plain.roles.is_empty());
        assert!(Identity::from_pem("not a certificate").is_err());
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        Ok(())
    }
}
