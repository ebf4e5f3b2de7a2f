//! What a finished run says on the terminal and in a CI log: the verdict, a compact before→after
//! table per sender × TLS cell, the failures with their numbers, and where the reports are; and
//! the same run as one entry of `run --json` / `report --json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mailharness::analysis::{CellStats, Summary};
use mailharness::vocab::RunVerdict;
use serde::Serialize;

use super::error::{EXIT_FAIL, EXIT_INFRA, EXIT_OK};

/// The exit code a run earns: 3 when it was interrupted or could not finish, else pass 0, fail 1.
pub fn run_code(s: &Summary) -> u8 {
    if s.error.is_some() || s.interrupted {
        EXIT_INFRA
    } else if s.verdict == RunVerdict::Pass {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

/// Messages by kind of outcome over a run's cells (first attempts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    sent: u64,
    accepted: u64,
    throttled: u64,
    tls_required: u64,
    rejected: u64,
    other: u64,
    unsent: u64,
    delivered: u64,
    missing: u64,
}

impl Counts {
    /// The sums over `cells`.
    pub fn of(cells: &[CellStats]) -> Counts {
        let mut c = Counts::default();
        for x in cells {
            c.sent += x.sent;
            c.accepted += x.accepted;
            c.throttled += x.throttled + x.rate_limited;
            c.tls_required += x.tls_required;
            c.rejected += x.rejected;
            c.other += x.deferred + x.failed + x.interrupted;
            c.unsent += x.unsent;
            c.delivered += x.delivered;
            c.missing += x.missing;
        }
        c
    }
}

/// How many expectations held, of how many.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Held {
    /// Held.
    pub held: usize,
    /// All.
    pub total: usize,
}

/// One run in `run --json` and `report --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunEntry {
    /// The scenario's name (or its file, when it could not run).
    pub scenario: String,
    /// The scenario file.
    pub scenario_file: Option<PathBuf>,
    /// The run id; none when the run never began.
    pub run_id: Option<String>,
    /// The run directory.
    pub run_dir: Option<PathBuf>,
    /// `pass`, `fail`, `interrupted`, `error` (could not run or finish) or `not-run`.
    pub verdict: &'static str,
    /// The exit code this run alone earns.
    pub exit_code: u8,
    /// Expectations held.
    pub expectations: Held,
    /// Messages by outcome.
    pub counts: Counts,
    /// Why the run could not run or finish.
    pub error: Option<String>,
}

impl RunEntry {
    /// A finished run.
    pub fn of(s: &Summary, run_dir: &Path, file: Option<&Path>) -> RunEntry {
        let code = run_code(s);
        RunEntry {
            scenario: s.scenario.clone(),
            scenario_file: file.map(Path::to_path_buf),
            run_id: Some(s.run_id.clone()),
            run_dir: Some(run_dir.to_path_buf()),
            verdict: match (s.interrupted, s.error.is_some(), s.verdict) {
                (true, _, _) => "interrupted",
                (_, true, _) => "error",
                (_, _, RunVerdict::Pass) => "pass",
                (_, _, RunVerdict::Fail) => "fail",
            },
            exit_code: code,
            expectations: held(s),
            counts: Counts::of(&s.cells),
            error: s.error.clone(),
        }
    }

    /// A scenario that could not run (`error`) or was not begun after a stop.
    pub fn unrun(file: &Path, code: u8, error: Option<String>) -> RunEntry {
        RunEntry {
            scenario: file.display().to_string(),
            scenario_file: Some(file.to_path_buf()),
            run_id: None,
            run_dir: None,
            verdict: if error.is_some() { "error" } else { "not-run" },
            exit_code: code,
            expectations: Held::default(),
            counts: Counts::default(),
            error,
        }
    }
}

/// Expectations held, of all.
fn held(s: &Summary) -> Held {
    Held {
        held: s.expectations.iter().filter(|v| v.passed).count(),
        total: s.expectations.len(),
    }
}

/// The closing block of one run: verdict, table, failures with their numbers, reports.
pub fn verdict_block(s: &Summary, run_dir: &Path) -> String {
    let h = held(s);
    let head = if s.interrupted {
        "INTERRUPTED"
    } else if s.error.is_some() {
        "ERROR"
    } else {
        s.verdict.as_upper()
    };
    let mut o = format!(
        "{head}: {} of {} expectations held (scenario {}, run {})\n",
        h.held, h.total, s.scenario, s.run_id
    );
    o.push_str(&table(s));
    let unsent = s.unsent();
    if unsent > 0 {
        let _ = writeln!(
            o,
            "  {unsent} planned messages were never sent; expectations on them could not hold"
        );
    }
    for v in s.expectations.iter().filter(|v| !v.passed) {
        // An expectation on a cell the run never reached was not measured: it did not fail.
        let word = if v.skipped { "SKIP" } else { "FAIL" };
        let _ = writeln!(
            o,
            "  {word} {}/{}/{}: {} — {}",
            v.phase, v.sender, v.tls, v.check, v.detail
        );
    }
    if let Some(t) = s.trace_check.as_ref().filter(|t| !t.agreed) {
        let _ = writeln!(o, "  FAIL trace cross-check: {}", t.mismatches.join("; "));
    }
    if let Some(e) = &s.error {
        let _ = writeln!(o, "  ERROR the run could not finish: {e}");
    }
    let _ = writeln!(
        o,
        "  reports: {}/{{report.html,report.md,junit.xml,summary.json}}",
        run_dir.display()
    );
    o
}

/// `a/b` or `a` when nothing was sent.
fn frac(n: u64, of: u64) -> String {
    format!("{n}/{of}")
}

/// The cell of `phase` × `sender` × `tls`.
fn cell<'a>(s: &'a Summary, phase: &str, sender: &str, tls: &str) -> Option<&'a CellStats> {
    s.cells
        .iter()
        .find(|c| c.phase == phase && c.sender == sender && c.tls.as_str() == tls)
}

/// One cell's figures: accepted, throttled, tls-required, delivered (inbox/junk).
fn figures(c: &CellStats) -> [String; 4] {
    [
        frac(c.accepted, c.sent),
        frac(c.throttled + c.rate_limited, c.sent),
        frac(c.tls_required, c.sent),
        if c.observed {
            format!("{} ({} junk)", c.delivered, c.junk)
        } else {
            "not observed".into()
        },
    ]
}

/// Lays out rows in columns as wide as their widest cell, indented by four.
fn columns(rows: &[Vec<String>]) -> String {
    let mut w = vec![0; rows.first().map_or(0, Vec::len)];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        let _ = writeln!(o, "    {}", line.join("  ").trim_end());
    }
    o
}

/// The compact table: before→after per sender × TLS cell when the run has a change step, else
/// one row per cell.
pub fn table(s: &Summary) -> String {
    const HEAD: [&str; 4] = ["accepted", "throttled", "tls-required", "delivered"];
    let mut rows: Vec<Vec<String>> = Vec::new();
    if s.deltas.is_empty() {
        rows.push(["phase", "sender", "ip", "tls"].map(String::from).to_vec());
        rows[0].extend(HEAD.map(String::from));
        for c in &s.cells {
            let mut r = vec![c.phase.clone(), c.sender.clone(), c.source_ip.clone()];
            r.push(c.tls.as_str().to_string());
            r.extend(figures(c));
            rows.push(r);
        }
        return format!("  cells:\n{}", columns(&rows));
    }
    rows.push(["sender", "ip", "tls"].map(String::from).to_vec());
    rows[0].extend(HEAD.map(String::from));
    let mut title = String::new();
    for d in &s.deltas {
        title = format!("{} → {}", d.before, d.after);
        let (Some(b), Some(a)) = (
            cell(s, &d.before, &d.sender, d.tls.as_str()),
            cell(s, &d.after, &d.sender, d.tls.as_str()),
        ) else {
            continue;
        };
        let mut r = vec![
            d.sender.clone(),
            b.source_ip.clone(),
            d.tls.as_str().to_string(),
        ];
        for (x, y) in figures(b).into_iter().zip(figures(a)) {
            r.push(format!("{x} → {y}"));
        }
        rows.push(r);
    }
    format!("  {title}, per sender × TLS:\n{}", columns(&rows))
}
