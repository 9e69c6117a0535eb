//! The outputs of a run: a terminal table, `result.json`, PNG plots and `summary.md` in the output folder.
//! An interrupted run (Ctrl-C, timeout, failure) says so in every one of them.

pub mod plot;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

pub use plot::{Line, Plot};

/// One row of the summary table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Group (e.g. `syncer`, `baseline`, `ratio`).
    pub section: String,
    /// What is measured.
    pub metric: String,
    /// The value, formatted; `-` when not measured.
    pub value: String,
}

/// Everything a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// The command line, as run.
    pub command: Vec<String>,
    /// Target (`embedded` or `kubeconfig=PATH`).
    pub target: String,
    /// `--seed`.
    pub seed: u64,
    /// Run id (label and namespace prefix).
    pub run_id: String,
    /// Start (UTC, RFC 3339).
    pub started_at: String,
    /// Wall time of the whole run in seconds.
    pub wall_seconds: f64,
    /// `Some(reason)` when the run did not finish: every figure then covers only what happened before.
    pub interrupted: Option<String>,
    /// The scenario's parameters.
    pub params: Value,
    /// The measured figures (scenario-specific structure).
    pub results: Value,
    /// The summary table.
    pub rows: Vec<Row>,
    /// Remarks (definitions, caveats) for the Markdown summary.
    pub notes: Vec<String>,
    /// The charts (their data is in the JSON as well).
    pub plots: Vec<Plot>,
}

impl Report {
    /// Adds a table row.
    pub fn row(&mut self, section: &str, metric: &str, value: String) {
        self.rows.push(Row {
            section: section.into(),
            metric: metric.into(),
            value,
        });
    }
}

/// Formats seconds as milliseconds, `-` when absent.
pub fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{:.0} ms", s * 1000.0))
}

/// Formats a number with `digits` decimals, `-` when absent.
pub fn num(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// Formats a ratio as `x.xx×`, `-` when absent.
pub fn times(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| "-".into(), |x| format!("{x:.2}x"))
}

/// The terminal table.
pub fn table(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{} ({}, seed {}, run {}){}",
        report.scenario,
        report.target,
        report.seed,
        report.run_id,
        report
            .interrupted
            .as_ref()
            .map(|r| format!("  ** INTERRUPTED: {r} — partial figures **"))
            .unwrap_or_default()
    );
    let w1 = report
        .rows
        .iter()
        .map(|r| r.section.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let w2 = report
        .rows
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let w3 = report
        .rows
        .iter()
        .map(|r| r.value.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let _ = writeln!(
        s,
        "  {:<w1$}  {:<w2$}  {:>w3$}",
        "section", "metric", "value"
    );
    let _ = writeln!(
        s,
        "  {}  {}  {}",
        "-".repeat(w1),
        "-".repeat(w2),
        "-".repeat(w3)
    );
    for r in &report.rows {
        let _ = writeln!(
            s,
            "  {:<w1$}  {:<w2$}  {:>w3$}",
            r.section, r.metric, r.value
        );
    }
    s
}

/// The Markdown summary.
pub fn markdown(report: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# loadtest {}\n", report.scenario);
    if let Some(r) = &report.interrupted {
        let _ = writeln!(
            s,
            "> **INTERRUPTED: {r}.** The figures below cover only what happened before the stop.\n"
        );
    }
    let _ = writeln!(s, "- command: `{}`", report.command.join(" "));
    let _ = writeln!(s, "- target: {}", report.target);
    let _ = writeln!(s, "- seed: {}, run id: {}", report.seed, report.run_id);
    let _ = writeln!(
        s,
        "- started: {}, wall time {:.1} s\n",
        report.started_at, report.wall_seconds
    );
    let _ = writeln!(s, "| section | metric | value |\n|---|---|---|");
    for r in &report.rows {
        let _ = writeln!(s, "| {} | {} | {} |", r.section, r.metric, r.value);
    }
    if !report.notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in &report.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    if !report.plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for p in &report.plots {
            let names: Vec<&str> = p.series.iter().map(|l| l.name.as_str()).collect();
            let _ = writeln!(
                s,
                "![{}]({})\n\n{}: x = {}, y = {}; lines: {}.\n",
                p.title,
                p.file,
                p.title,
                p.x_label,
                p.y_label,
                names.join(", ")
            );
        }
    }
    let _ = writeln!(s, "Raw figures: `result.json`. Syncer log: `syncer.log`.");
    s
}

/// Writes `result.json`, the plots and `summary.md` into `dir` and returns the terminal table.
pub fn write(report: &Report, dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(dir.join("result.json"), json).context("write result.json")?;
    let mut rendered = report.clone();
    for p in &report.plots {
        if let Err(e) = plot::render(p, &dir.join(&p.file)) {
            tracing::warn!(error = %e, "plot {} not rendered", p.file);
            rendered
                .notes
                .push(format!("plot {} could not be rendered: {e}", p.file));
        }
    }
    std::fs::write(dir.join("summary.md"), markdown(&rendered)).context("write summary.md")?;
    Ok(table(&rendered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(interrupted: Option<&str>) -> Report {
        let mut r = Report {
            scenario: "burst".into(),
            command: vec!["loadtest".into(), "burst".into()],
            target: "embedded".into(),
            seed: 3,
            run_id: "s3".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            wall_seconds: 1.5,
            interrupted: interrupted.map(str::to_string),
            params: serde_json::json!({"vcs": 1}),
            results: serde_json::json!({"pods": 10}),
            rows: Vec::new(),
            notes: vec!["a note".into()],
            plots: Vec::new(),
        };
        r.row("syncer", "pods/s down", num(Some(123.456), 1));
        r
    }

    #[test]
    fn interrupted_runs_say_so_everywhere() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let r = sample(Some("interrupted (Ctrl-C)"));
        let t = write(&r, dir.path())?;
        assert!(t.contains("INTERRUPTED: interrupted (Ctrl-C)"));
        let md = std::fs::read_to_string(dir.path().join("summary.md"))?;
        assert!(md.contains("**INTERRUPTED: interrupted (Ctrl-C).**"));
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("result.json"))?)?;
        assert_eq!(json["interrupted"], "interrupted (Ctrl-C)");
        let ok = sample(None);
        assert!(!table(&ok).contains("INTERRUPTED"));
        assert!(table(&ok).contains("123.5"));
        Ok(())
    }

    #[test]
    fn formatting_marks_missing_values() {
        assert_eq!(ms(None), "-");
        assert_eq!(ms(Some(0.0123)), "12 ms");
        assert_eq!(times(Some(0.5)), "0.50x");
        assert_eq!(num(Some(f64::NAN), 2), "-");
    }
}
