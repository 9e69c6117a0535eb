//! The etcd part of the real-binaries backend, on its own: runs when `ETCD_BIN` is set (CI installs
//! Debian's etcd 3.4), skipped with a note otherwise.

use std::path::PathBuf;

use testcluster::{ENV_ETCD_BIN, Etcd};

fn etcd_bin() -> Option<PathBuf> {
    match std::env::var(ENV_ETCD_BIN) {
        Ok(path) if !path.trim().is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!("SKIPPED: {ENV_ETCD_BIN} is not set; etcd start-up not exercised");
            None
        }
    }
}

#[tokio::test]
async fn etcd_starts_healthy_and_stops_on_drop() -> anyhow::Result<()> {
    let Some(binary) = etcd_bin() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut etcd = Etcd::start(&binary, dir.path()).await?;
    assert!(
        etcd.client_url().starts_with("http://127.0.0.1:"),
        "{}",
        etcd.client_url()
    );
    etcd.health().await.map_err(anyhow::Error::msg)?;
    assert!(etcd.is_running());
    // etcd created its member directory in the data dir we gave it.
    assert!(etcd.data_dir().join("member").is_dir());

    let url = etcd.client_url();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse()?;
    drop(etcd);
    // Once dropped, nothing listens on the client port any more.
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "etcd still listening on {addr}"
    );
    Ok(())
}

#[tokio::test]
async fn two_etcds_get_different_ports() -> anyhow::Result<()> {
    let Some(binary) = etcd_bin() else {
        return Ok(());
    };
    let dir_a = tempfile::tempdir()?;
    let dir_b = tempfile::tempdir()?;
    let a = Etcd::start(&binary, dir_a.path()).await?;
    let b = Etcd::start(&binary, dir_b.path()).await?;
    assert_ne!(a.client_url(), b.client_url());
    a.health().await.map_err(anyhow::Error::msg)?;
    b.health().await.map_err(anyhow::Error::msg)?;
    Ok(())
}
