//! The one table: every workload with its baseline from the same run, the ratio and
//! the target. Printed aligned for the terminal and written as Markdown for the docs.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::Result;

/// Whether a row met its target. `Missing` is for a workload whose server side does not
/// exist yet; `Info` for rows that explain others and have no target of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Missing,
    Info,
}

impl Verdict {
    pub fn from_bool(ok: bool) -> Self {
        if ok { Self::Pass } else { Self::Fail }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "FAIL",
            Self::Missing => "not yet available",
            Self::Info => "info",
        }
    }
}

pub struct Row {
    pub id: &'static str,
    pub workload: String,
    pub per_sec: Option<f64>,
    /// p50, p99, p99.9.
    pub latency: Option<[Duration; 3]>,
    /// The figure the ratio is taken of, with its unit, when it is not req/s.
    pub measured: String,
    pub baseline: String,
    pub baseline_value: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub verdict: Verdict,
}

pub fn rate(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

const HEADERS: [&str; 12] = [
    "id",
    "workload",
    "req/s",
    "p50",
    "p99",
    "p99.9",
    "measured",
    "baseline (same run)",
    "baseline value",
    "ratio",
    "target",
    "result",
];

fn cells(row: &Row) -> [String; 12] {
    let dash = || "—".to_owned();
    let [p50, p99, p999] = row
        .latency
        .map_or_else(|| [dash(), dash(), dash()], |l| l.map(millis));
    [
        row.id.to_owned(),
        row.workload.clone(),
        row.per_sec.map_or_else(dash, rate),
        p50,
        p99,
        p999,
        row.measured.clone(),
        row.baseline.clone(),
        row.baseline_value.clone(),
        row.ratio.map_or_else(dash, |r| format!("{r:.2}×")),
        row.target.clone(),
        row.verdict.label().to_owned(),
    ]
}

/// The table as aligned plain text.
pub fn text(rows: &[Row]) -> String {
    let all: Vec<[String; 12]> = std::iter::once(HEADERS.map(str::to_owned))
        .chain(rows.iter().map(cells))
        .collect();
    let mut widths = [0usize; 12];
    for r in &all {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &all {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// The table in Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for r in rows {
        let _ = writeln!(out, "| {} |", cells(r).join(" | "));
    }
    out
}

/// The lines between these markers in `docs/performance.md` are the harness's.
const START: &str = "<!-- bench:results:start -->";
const END: &str = "<!-- bench:results:end -->";

/// Replaces the marked section of `doc` with `section`. A doc without the markers is
/// left alone (and that is reported), so prose is never overwritten.
pub fn update_doc(doc: &Path, section: &str) -> Result<bool> {
    let Ok(text) = std::fs::read_to_string(doc) else {
        return Ok(false);
    };
    let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
        return Ok(false);
    };
    if b < a {
        return Ok(false);
    }
    let before = text.get(..a + START.len()).unwrap_or_default();
    let after = text.get(b..).unwrap_or_default();
    std::fs::write(doc, format!("{before}\n{section}{after}"))?;
    Ok(true)
}
