//! Shared by the harness's end-to-end tests: the syncer binary (built once through cargo) and running the
//! `loadtest` binary with an output folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `syncer` executable of this workspace: `LOADTEST_SYNCER_BIN` if set, else the one next to the
/// `loadtest` binary (`cargo test --workspace` builds it), else built with `cargo build -p syncer`.
pub fn syncer_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("LOADTEST_SYNCER_BIN") {
            return PathBuf::from(p);
        }
        let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_loadtest"));
        if let Some(existing) = loadtest.parent().map(|d| d.join("syncer"))
            && existing.is_file()
        {
            return existing;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "syncer", "--bin", "syncer"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap_or_else(|e| panic!("cargo build syncer: {e}"));
        assert!(status.success(), "cargo build -p syncer failed");
        // The loadtest binary lives in target/<profile>/; the syncer lands next to it.
        let bin = loadtest
            .parent()
            .unwrap_or_else(|| panic!("no parent of {}", loadtest.display()))
            .join("syncer");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// Runs `loadtest <args> --out <out> --no-progress --syncer-bin <syncer>` and returns its output.
pub fn run_loadtest(out: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--no-progress")
        .arg("--syncer-bin")
        .arg(syncer_bin())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run loadtest: {e}"));
    eprintln!(
        "--- loadtest stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `loadtest <args>` into a fresh temporary output folder, asserts that it exited successfully and was
/// not interrupted, and returns the folder (kept alive by the `TempDir`), the output path and `result.json`.
pub fn run_ok(args: &[&str]) -> (tempfile::TempDir, PathBuf, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out");
    let output = run_loadtest(&out, args);
    assert!(
        output.status.success(),
        "loadtest failed: {:?}",
        output.status
    );
    let r = result(&out);
    assert!(
        r["interrupted"].is_null(),
        "run was interrupted: {}",
        r["interrupted"]
    );
    (dir, out, r)
}

/// Asserts that `file` in `out` is a PNG.
pub fn assert_png(out: &Path, file: &str) {
    let bytes = std::fs::read(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(&bytes[1..4], b"PNG", "{file} is not a PNG");
}

/// The run's `result.json`.
pub fn result(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("result.json"))
        .unwrap_or_else(|e| panic!("read result.json: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse result.json: {e}"))
}

/// A number at a JSON pointer, or a panic naming it.
pub fn number(v: &serde_json::Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a number in {v:#}"))
}

/// Asserts that `kind` operations of churn phase `phase` were sent and every successful one is accounted
/// for: observed on the super cluster with a measured lag, or overwritten on the tenant by another writer
/// before it could arrive (see loadtest/README.md). Returns how many were observed.
pub fn assert_churn_kind(r: &serde_json::Value, phase: &str, kind: &str) -> f64 {
    let at = |field: &str| number(r, &format!("/results/{phase}/{kind}/{field}"));
    let ok = at("ok");
    assert!(ok > 0.0, "{phase}: no successful {kind}");
    let observed = at("observed");
    assert_eq!(observed + at("overwritten"), ok, "{phase}/{kind}");
    assert!(observed > 0.0, "{phase}: no {kind} observed");
    assert_eq!(at("down/count"), observed);
    assert!(at("down/p50") > 0.0 && at("down/p99") > 0.0);
    observed
}

/// Asserts that at the end of a churn every tenant pod had exactly one super copy carrying its last update.
pub fn assert_copies_match(r: &serde_json::Value) {
    let tenant_pods = number(r, "/results/comparison/tenant_pods");
    assert!(tenant_pods > 0.0);
    assert_eq!(number(r, "/results/comparison/super_pods"), tenant_pods);
    assert_eq!(number(r, "/results/comparison/matched"), tenant_pods);
    for k in ["lost", "duplicated", "stale"] {
        assert_eq!(number(r, &format!("/results/comparison/{k}")), 0.0, "{k}");
    }
}
