//! `deploy/vc-manager/`: the Deployment's arguments are flags the `vc-manager` binary has (checked against
//! its `--help`), its syncer TLS directory is the mounted Secret, it runs as the ServiceAccount `rbac.yaml`
//! binds, and every file the kustomization lists exists.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/vc-manager")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn deployment_uses_real_flags_the_mounted_tls_dir_and_the_bound_service_account() {
    let deployment: Deployment =
        serde_yaml::from_str(&read("deployment.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let spec = deployment
        .spec
        .template
        .spec
        .unwrap_or_else(|| panic!("no pod spec"));
    let container = spec
        .containers
        .iter()
        .find(|c| c.name == "vc-manager")
        .unwrap_or_else(|| panic!("no vc-manager container"));
    let args = container.args.clone().unwrap_or_default();
    assert!(!args.is_empty());

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_vc-manager"))
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("vc-manager --help: {e}"));
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let mut tls_dir = None;
    for arg in &args {
        let flag = arg.split('=').next().unwrap_or_default();
        assert!(
            flag.starts_with("--")
                && (help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n"))),
            "{arg}: not a flag of vc-manager"
        );
        if flag == "--syncer-tls-dir" {
            tls_dir = arg.split_once('=').map(|(_, v)| v.to_string());
        }
    }
    let tls_dir = tls_dir.unwrap_or_else(|| panic!("no --syncer-tls-dir"));
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == tls_dir)
        .unwrap_or_else(|| panic!("{tls_dir} is not mounted"));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("no volume {}", mount.name));
    assert_eq!(
        volume
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref()),
        Some("vc-manager-syncer-tls")
    );

    // The ServiceAccount is the one rbac.yaml defines (and binds), in the Deployment's namespace.
    let rbac = read("rbac.yaml");
    let account: ServiceAccount = serde_yaml::from_str(
        rbac.split("\n---")
            .next()
            .unwrap_or_else(|| panic!("empty rbac.yaml")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.service_account_name, account.metadata.name);
    assert_eq!(deployment.metadata.namespace, account.metadata.namespace);

    // Every resource of the kustomization exists.
    let kustomization: serde_yaml::Value =
        serde_yaml::from_str(&read("kustomization.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let resources = kustomization["resources"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no resources"));
    assert!(resources.len() >= 3);
    for r in resources {
        let file = r.as_str().unwrap_or_else(|| panic!("{r:?}"));
        assert!(deploy_dir().join(file).exists(), "{file} missing");
    }
}
