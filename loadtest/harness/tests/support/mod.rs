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
