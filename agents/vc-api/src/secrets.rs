//! Secrets of a provisioned tenant, in its root namespace in the super cluster (names of the original
//! VirtualCluster, so existing tooling finds them), and the keys inside them.

/// Root CA of the tenant (`tls.crt`, `tls.key`): signs the apiserver's serving certificate and every
/// client certificate; the CA of the tenant kubeconfigs.
pub const ROOT_CA: &str = "root-ca";
/// The apiserver's serving certificate (`tls.crt`, `tls.key`), signed by the root CA.
pub const APISERVER_CA: &str = "apiserver-ca";
/// The etcd CA (`ca.crt`, `ca.key`), the etcd serving/peer certificate (`tls.crt`, `tls.key`) and the
/// apiserver's etcd client certificate (`client.crt`, `client.key`).
pub const ETCD_CA: &str = "etcd-ca";
/// The front-proxy CA (`ca.crt`, `ca.key`) and the front-proxy client certificate (`tls.crt`, `tls.key`).
pub const FRONT_PROXY_CA: &str = "front-proxy-ca";
/// The service-account signing key pair (`tls.key` private, `tls.pub` public). Never regenerated once it
/// exists: tenant tokens stay valid across re-applies and certificate rotation.
pub const SERVICE_ACCOUNT: &str = "serviceaccount-rsa";
/// Kubeconfig of the controller-manager (key [`CONTROLLER_MANAGER_KUBECONFIG_KEY`]).
pub const CONTROLLER_MANAGER_KUBECONFIG: &str = "controller-manager-kubeconfig";
/// Key of the kubeconfig in [`CONTROLLER_MANAGER_KUBECONFIG`].
pub const CONTROLLER_MANAGER_KUBECONFIG_KEY: &str = "controller-manager-kubeconfig";
/// Cluster-admin kubeconfig of the tenant (key [`ADMIN_KUBECONFIG_KEY`]); its cluster CA is the root CA.
pub const ADMIN_KUBECONFIG: &str = "admin-kubeconfig";
/// Key of the kubeconfig in [`ADMIN_KUBECONFIG`].
pub const ADMIN_KUBECONFIG_KEY: &str = "admin-kubeconfig";

/// Certificate key in a TLS-shaped Secret.
pub const TLS_CRT: &str = "tls.crt";
/// Private key in a TLS-shaped Secret.
pub const TLS_KEY: &str = "tls.key";
/// Public key (service-account key pair).
pub const TLS_PUB: &str = "tls.pub";
/// CA certificate key.
pub const CA_CRT: &str = "ca.crt";
/// CA private key.
pub const CA_KEY: &str = "ca.key";
/// Client certificate key.
pub const CLIENT_CRT: &str = "client.crt";
/// Client private key.
pub const CLIENT_KEY: &str = "client.key";

/// Label on every object `vc-manager` creates in the super cluster: the VirtualCluster's name.
pub const LABEL_VC_NAME: &str = "vc-manager.tenancy.x-k8s.io/vc-name";
/// Label on every object `vc-manager` creates: the VirtualCluster's namespace.
pub const LABEL_VC_NAMESPACE: &str = "vc-manager.tenancy.x-k8s.io/vc-namespace";
/// Label on every object `vc-manager` creates: the VirtualCluster's uid.
pub const LABEL_VC_UID: &str = "vc-manager.tenancy.x-k8s.io/vc-uid";
/// Label `app.kubernetes.io/managed-by`, value [`MANAGED_BY`].
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on `vc-manager`'s objects (its watches select on it).
pub const MANAGED_BY: &str = "vc-manager";
