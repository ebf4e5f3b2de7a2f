//! The report model: every figure and sentence the reports show, computed once from a [`Summary`].
//! The Markdown, HTML and JUnit renderers only format it (and escape it for their format), so
//! they cannot disagree about a number, a dash or a next step.

use super::charts::{latency_histogram, timelines, Charts};
use crate::analysis::{
    CellStats, ChangeSummary, Delta, ReplyGroup, Summary, Totals, TraceCheck, Verdict,
};
use crate::reply::ConnectorAnswer;
use crate::vocab::{ApplyMethod, ConnectorAction, RunVerdict, TargetKind, TlsMode, WaitMethod};

/// What the reports show, in the order they show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportModel {
    /// Version of the `summary.json` the model was built from.
    pub schema: u32,
    /// Which run, its verdict, and what went wrong with it as a whole.
    pub headline: Headline,
    /// Everything that failed, first thing on the page.
    pub failures: FailureSummary,
    /// Each phase and its change step.
    pub phases: Vec<PhaseLine>,
    /// The phase × sender × TLS matrix, one row per cell in plan order (planned messages only).
    pub matrix: Vec<MatrixRow>,
    /// The change steps' probe messages, one row per probe phase × sender × TLS.
    pub probes: Vec<MatrixRow>,
    /// What is counted where, with the totals that reconcile every table, one sentence each.
    pub counting: Vec<String>,
    /// Before/after comparisons around each change step.
    pub deltas: Vec<DeltaRow>,
    /// Every expectation with its verdict.
    pub expectations: Vec<ExpectationRow>,
    /// Negative replies seen, most frequent first.
    pub replies: Vec<ReplyRow>,
    /// Agreement with the simulator's message trace (simulator runs only).
    pub trace: Option<TraceCheck>,
    /// Messages found that no attempt says was accepted.
    pub anomalies: u64,
    /// What to do next, one sentence each.
    pub next_steps: Vec<String>,
    /// Why the run itself failed apart from its expectations (interrupted, an error, damaged records).
    pub run_faults: Vec<String>,
    /// The charts' data.
    pub charts: Charts,
}

/// The run at a glance.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// Run id.
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// The scenario's description, trimmed; `None` when it has none.
    pub description: Option<String>,
    /// Target name.
    pub target: String,
    /// `simulator` or `tenant`.
    pub target_kind: TargetKind,
    /// Wall-clock start (RFC 3339).
    pub started_at: String,
    /// Wall-clock end (RFC 3339).
    pub finished_at: String,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// `role = ip` of every sender, comma-separated.
    pub senders: String,
    /// Seconds the run took, e.g. `10.8s`.
    pub duration: String,
    /// The run's wall-clock seconds (JUnit's suite time).
    pub duration_s: f64,
    /// Expectations that held.
    pub held: usize,
    /// Expectations not measured because the run stopped before their cell sent anything.
    pub skipped: usize,
    /// Expectations in all.
    pub expectations: usize,
    /// Why the run could not finish, if it could not.
    pub error: Option<String>,
    /// What was wrong with the run's records.
    pub record_problems: Vec<String>,
    /// The run's verdict.
    pub verdict: RunVerdict,
}

/// One phase as it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseLine {
    /// Phase name.
    pub name: String,
    /// Seconds of sending, e.g. `4.4s`.
    pub duration: String,
    /// The change step before it.
    pub change: Option<ChangeLine>,
}

/// A change step and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeLine {
    /// Connector action.
    pub action: ConnectorAction,
    /// Connector name.
    pub connector: String,
    /// How it was applied.
    pub apply: ApplyMethod,
    /// Whether and when it took effect.
    pub effect: ChangeEffect,
    /// Probes sent while polling.
    pub probes: usize,
    /// Error applying it.
    pub error: Option<String>,
}

/// Whether a change step was seen to take effect.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeEffect {
    /// Polling saw it take effect after this long, e.g. `3.0s`.
    TookEffect(String),
    /// Polling gave up before it took effect.
    TimedOut,
    /// The harness waited without checking, this way.
    Waited(WaitMethod),
}

/// The failure summary: what failed, one line each, and what was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureSummary {
    /// Failed expectations (cell, check, actual, the numbers), then the run's own faults and a
    /// trace disagreement.
    pub failed: Vec<String>,
    /// Expectations not measured, with why.
    pub skipped: Vec<String>,
    /// One sentence over it all, e.g. `2 of 18 expectations failed.` or that nothing did.
    pub headline: String,
}

/// The verdict of a matrix cell: how the expectations on it came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellVerdict {
    /// Every expectation on the cell held.
    Pass,
    /// At least one failed.
    Fail,
    /// None was measured: the run stopped before the cell sent anything.
    Skipped,
    /// The cell has no expectations.
    NoChecks,
}

impl CellVerdict {
    /// The CSS class and word shown: `pass`, `fail`, `skipped`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            CellVerdict::Pass => "pass",
            CellVerdict::Fail => "fail",
            CellVerdict::Skipped => "skipped",
            CellVerdict::NoChecks => "none",
        }
    }
}

/// How one expectation came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// It held.
    Pass,
    /// It did not hold, or could not be measured in a cell that sent.
    Fail,
    /// Not measured: the run stopped before its cell sent anything.
    Skipped,
}

impl CheckStatus {
    /// `PASS`, `FAIL` or `SKIPPED`.
    pub fn as_upper(self) -> &'static str {
        match self {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skipped => "SKIPPED",
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixRow {
    /// How the cell's expectations came out.
    pub verdict: CellVerdict,
    /// e.g. `3 of 3 held`, `1 of 3 failed`; a dash without expectations.
    pub checks: String,
    /// Phase.
    pub phase: String,
    /// Sender role.
    pub sender: String,
    /// Source IP.
    pub source_ip: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// Messages sent.
    pub sent: u64,
    /// Accepted, and its share of sent, e.g. `42%` (a dash when nothing was sent).
    pub accepted: (u64, String),
    /// Throttled, and its share of sent.
    pub throttled: (u64, String),
    /// Refused for lack of TLS.
    pub tls_required: u64,
    /// Rejected.
    pub rejected: u64,
    /// Every other outcome: deferred, rate limited, failed, interrupted.
    pub other: u64,
    /// Delivered, Inbox, Junk and missing; dashes when the run was not observed.
    pub delivered: String,
    /// See `delivered`.
    pub inbox: String,
    /// See `delivered`.
    pub junk: String,
    /// See `delivered`.
    pub missing: String,
    /// Median latency, e.g. `812ms` or `12.5s`; a dash when none.
    pub p50: String,
    /// 95th percentile latency.
    pub p95: String,
    /// Lowest TLS version, or a dash.
    pub min_tls: String,
    /// Where throttling began, e.g. `#5 at 1.0s`, or a dash.
    pub onset: String,
}

/// A fraction and how it is shown, e.g. 0.583 and `58%`.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// From 0 to 1.
    pub fraction: f64,
    /// Whole percent.
    pub shown: String,
}

/// One before/after comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaRow {
    /// Sender role.
    pub sender: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// The phase before the change.
    pub before: String,
    /// The phase after it.
    pub after: String,
    /// `before→after`.
    pub phases: String,
    /// Throttle rate before and after.
    pub throttle: (Share, Share),
    /// Accepted rate before and after.
    pub accepted: (Share, Share),
}

/// One expectation's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectationRow {
    /// How it came out.
    pub status: CheckStatus,
    /// Seconds its cell spent sending (JUnit's test case time).
    pub time_s: f64,
    /// Phase.
    pub phase: String,
    /// Sender role.
    pub sender: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// `phase/sender/tls`.
    pub cell: String,
    /// The check as written.
    pub check: String,
    /// The measured value.
    pub actual: String,
    /// The numbers behind it.
    pub detail: String,
}

/// Replies of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyRow {
    /// How many attempts ended with it, of every kind.
    pub count: u64,
    /// Of them, planned messages' first attempts: what the matrix counts.
    pub first_attempts: u64,
    /// Of them, retries of planned messages.
    pub retries: u64,
    /// Of them, change-step probes.
    pub probes: u64,
    /// Of them, attempts of unplanned messages.
    pub unplanned: u64,
    /// One full reply text as seen.
    pub sample: String,
    /// The source IPs that got it, comma-separated.
    pub from: String,
    /// Plain-language meaning, when the code family is known.
    pub meaning: Option<String>,
    /// Whether a connector helps, in a sentence.
    pub connector: Option<&'static str>,
    /// What Ops does about it, when known.
    pub action: Option<String>,
}

/// A dash: no value.
const DASH: &str = "–";

impl From<&Summary> for ReportModel {
    fn from(s: &Summary) -> Self {
        ReportModel {
            schema: s.schema,
            headline: headline(s),
            phases: s
                .phases
                .iter()
                .map(|p| PhaseLine {
                    name: p.name.clone(),
                    duration: format!("{:.1}s", p.duration_s),
                    change: p.change.as_ref().map(change_line),
                })
                .collect(),
            failures: failure_summary(s),
            matrix: s
                .cells
                .iter()
                .map(|c| matrix_row(c, &s.expectations))
                .collect(),
            probes: s.probe_cells.iter().map(|c| matrix_row(c, &[])).collect(),
            counting: counting(s),
            deltas: s.deltas.iter().map(delta_row).collect(),
            expectations: s
                .expectations
                .iter()
                .map(|v| expectation_row(v, &s.cells))
                .collect(),
            replies: s.replies.iter().map(reply_row).collect(),
            trace: s.trace_check.clone(),
            anomalies: s.anomalies,
            next_steps: next_steps(s),
            run_faults: run_faults(s),
            charts: Charts {
                timelines: timelines(s),
                latency: s.latency.iter().map(latency_histogram).collect(),
            },
        }
    }
}

fn headline(s: &Summary) -> Headline {
    let senders: Vec<String> = s
        .senders
        .iter()
        .map(|(r, ip)| format!("{r} = {ip}"))
        .collect();
    Headline {
        run_id: s.run_id.clone(),
        scenario: s.scenario.clone(),
        description: (!s.description.is_empty()).then(|| s.description.trim().to_string()),
        target: s.target.clone(),
        target_kind: s.target_kind,
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone(),
        interrupted: s.interrupted,
        senders: senders.join(", "),
        duration: format!("{:.1}s", s.duration_s),
        duration_s: s.duration_s,
        held: s.expectations.iter().filter(|v| v.passed).count(),
        skipped: s.expectations.iter().filter(|v| v.skipped).count(),
        expectations: s.expectations.len(),
        error: s.error.clone(),
        record_problems: s.record_problems.clone(),
        verdict: s.verdict,
    }
}

fn change_line(c: &ChangeSummary) -> ChangeLine {
    ChangeLine {
        action: c.action,
        connector: c.connector.clone(),
        apply: c.apply,
        effect: match (c.effective_after_s, c.timed_out) {
            (Some(t), _) => ChangeEffect::TookEffect(format!("{t:.1}s")),
            (None, true) => ChangeEffect::TimedOut,
            (None, false) => ChangeEffect::Waited(c.wait),
        },
        probes: c.probes,
        error: c.error.clone(),
    }
}

/// A matrix row; `verdicts` are the run's, of which those on this cell colour it.
fn matrix_row(c: &CellStats, verdicts: &[Verdict]) -> MatrixRow {
    let on_cell: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.phase == c.phase && v.sender == c.sender && v.tls == c.tls)
        .collect();
    let failed = on_cell.iter().filter(|v| !v.passed && !v.skipped).count();
    let skipped = on_cell.iter().filter(|v| v.skipped).count();
    let (verdict, checks) = if on_cell.is_empty() {
        (CellVerdict::NoChecks, DASH.to_string())
    } else if failed > 0 {
        (
            CellVerdict::Fail,
            format!("{failed} of {} failed", on_cell.len()),
        )
    } else if skipped > 0 {
        (
            CellVerdict::Skipped,
            format!("{skipped} of {} skipped", on_cell.len()),
        )
    } else {
        (
            CellVerdict::Pass,
            format!("{n} of {n} held", n = on_cell.len()),
        )
    };
    let observed = |n: u64| {
        if c.observed {
            n.to_string()
        } else {
            DASH.into()
        }
    };
    MatrixRow {
        verdict,
        checks,
        phase: c.phase.clone(),
        sender: c.sender.clone(),
        source_ip: c.source_ip.clone(),
        tls: c.tls,
        sent: c.sent,
        accepted: (c.accepted, pct(c.accepted, c.sent)),
        throttled: (c.throttled, pct(c.throttled, c.sent)),
        tls_required: c.tls_required,
        rejected: c.rejected,
        other: c.deferred + c.rate_limited + c.failed + c.interrupted,
        delivered: observed(c.delivered),
        inbox: observed(c.inbox),
        junk: observed(c.junk),
        missing: observed(c.missing),
        p50: ms(c.latency_p50_ms),
        p95: ms(c.latency_p95_ms),
        min_tls: c.min_tls_version.clone().unwrap_or_else(|| DASH.into()),
        onset: c
            .throttle_onset
            .as_ref()
            .map(|x| format!("#{} at {:.1}s", x.index, x.after_s))
            .unwrap_or_else(|| DASH.into()),
    }
}

fn delta_row(d: &Delta) -> DeltaRow {
    DeltaRow {
        sender: d.sender.clone(),
        tls: d.tls,
        before: d.before.clone(),
        after: d.after.clone(),
        phases: format!("{}→{}", d.before, d.after),
        throttle: (share(d.throttle_rate_before), share(d.throttle_rate_after)),
        accepted: (share(d.accepted_rate_before), share(d.accepted_rate_after)),
    }
}

/// An expectation's row; its time is its cell's sending time, found among `cells`.
fn expectation_row(v: &Verdict, cells: &[CellStats]) -> ExpectationRow {
    let status = match (v.passed, v.skipped) {
        (true, _) => CheckStatus::Pass,
        (false, true) => CheckStatus::Skipped,
        (false, false) => CheckStatus::Fail,
    };
    let cell = cells
        .iter()
        .find(|c| c.phase == v.phase && c.sender == v.sender && c.tls == v.tls);
    ExpectationRow {
        status,
        time_s: cell.map_or(0.0, |c| c.sending_s),
        phase: v.phase.clone(),
        sender: v.sender.clone(),
        tls: v.tls,
        cell: format!("{}/{}/{}", v.phase, v.sender, v.tls),
        check: v.check.clone(),
        actual: v.actual.clone(),
        detail: v.detail.clone(),
    }
}

fn reply_row(g: &ReplyGroup) -> ReplyRow {
    ReplyRow {
        count: g.count,
        first_attempts: g.first_attempts,
        retries: g.retries,
        probes: g.probes,
        unplanned: g.unplanned,
        sample: g.sample.clone(),
        from: g.source_ips.join(", "),
        meaning: g.meaning.clone(),
        connector: g.connector.map(connector_sentence),
        action: g.action.clone(),
    }
}

/// Whether a connector helps, said plainly.
fn connector_sentence(c: ConnectorAnswer) -> &'static str {
    match c {
        ConnectorAnswer::Helps => "an inbound connector for the sending IPs fixes this",
        ConnectorAnswer::FixExisting => "the existing connector does not match this sender; fix it",
        ConnectorAnswer::Cause => "a connector's own setting produced this",
        ConnectorAnswer::NotATenant => "consumer Outlook.com: no tenant, no connector",
        ConnectorAnswer::No => "not a connector matter",
    }
}

/// `n` of `d` in whole percent; a dash when `d` is 0.
fn pct(n: u64, d: u64) -> String {
    if d == 0 {
        DASH.into()
    } else {
        format!("{:.0}%", 100.0 * n as f64 / d as f64)
    }
}

/// A fraction in whole percent.
fn share(fraction: f64) -> Share {
    Share {
        fraction,
        shown: format!("{:.0}%", fraction * 100.0),
    }
}

/// A latency: whole ms under 10 s, tenths of seconds from there; a dash when none.
pub(super) fn ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 10_000.0 => format!("{:.1}s", x / 1000.0),
        Some(x) => format!("{x:.0}ms"),
        None => DASH.into(),
    }
}

/// The failure summary: each failed expectation with its numbers, the run's own faults, a trace
/// disagreement, and what was skipped; one sentence over it all.
fn failure_summary(s: &Summary) -> FailureSummary {
    let mut failed: Vec<String> = s
        .expectations
        .iter()
        .filter(|v| !v.passed && !v.skipped)
        .map(|v| {
            format!(
                "{}/{}/{}: {} — actual {} ({})",
                v.phase, v.sender, v.tls, v.check, v.actual, v.detail
            )
        })
        .collect();
    let failed_checks = failed.len();
    let faults = run_faults(s);
    failed.extend(faults.iter().map(|f| format!("Run: {f}")));
    let trace_failed = s.trace_check.as_ref().filter(|t| !t.agreed);
    if let Some(t) = trace_failed {
        failed.push(format!(
            "Trace cross-check: the attempt records and the simulator's message trace disagree ({} mismatches; first: {})",
            t.mismatches.len(),
            t.mismatches.first().map_or("–", String::as_str)
        ));
    }
    let skipped: Vec<String> = s
        .expectations
        .iter()
        .filter(|v| v.skipped)
        .map(|v| {
            format!(
                "{}/{}/{}: {} — {}",
                v.phase, v.sender, v.tls, v.check, v.detail
            )
        })
        .collect();
    let n = s.expectations.len();
    let headline = if failed.is_empty() && skipped.is_empty() {
        format!(
            "Nothing failed: all {n} expectations held and the run completed with intact records."
        )
    } else {
        let mut parts = vec![format!("{failed_checks} of {n} expectations failed")];
        if !skipped.is_empty() {
            parts.push(format!("{} were skipped (never measured)", skipped.len()));
        }
        if let Some(first) = faults.first() {
            parts.push(format!("the run itself failed ({first})"));
        }
        if trace_failed.is_some() {
            parts.push("the simulator's trace disagrees".into());
        }
        format!("{}.", parts.join("; "))
    };
    FailureSummary {
        failed,
        skipped,
        headline,
    }
}

/// What each table and chart counts, and the totals that reconcile them with the records (and
/// with what the run printed while it ran, which counts probes too).
fn counting(s: &Summary) -> Vec<String> {
    let t: &Totals = &s.totals;
    let mut lines = vec![format!(
        "Matrix, expectations, before/after, timelines and latency histograms: the {} planned messages sent, each counted once by its first attempt; {} retries are counted apart{}.",
        t.sent,
        t.retries,
        if t.unsent > 0 {
            format!(", and {} planned messages never sent are left out", t.unsent)
        } else {
            String::new()
        }
    )];
    lines.push(if t.probes > 0 {
        format!("Change-step probes: {} probe messages, sent while waiting for the connector change to take effect, are counted only in the probe table, the replies' probes column and these totals; no chart and no expectation includes them.", t.probes)
    } else {
        "Change-step probes: none were sent.".into()
    });
    lines.push("Replies seen: every negative reply of every attempt, split into planned first attempts (these add up to the matrix's columns), retries, probes and unplanned attempts.".into());
    let unplanned = if t.unplanned > 0 {
        format!(" + {} unplanned", t.unplanned)
    } else {
        String::new()
    };
    lines.push(format!(
        "Attempt records: {} = {} planned first attempts + {} retries + {} never sent + {} probes{unplanned}.",
        t.attempts, t.sent, t.retries, t.unsent, t.probes
    ));
    if s.cells.iter().any(|c| c.observed) {
        let (p, q, u) = (&t.planned_copies, &t.probe_copies, &t.unplanned_copies);
        lines.push(format!(
            "Mailbox copies (one per recipient) found: {} = {} of planned messages + {} of probes{}; missing: {} = {} + {}{}. The matrix's delivered counts planned messages all of whose copies arrived.",
            p.found + q.found + u.found,
            p.found,
            q.found,
            if u.found > 0 { format!(" + {} unplanned", u.found) } else { String::new() },
            p.missing + q.missing + u.missing,
            p.missing,
            q.missing,
            if u.missing > 0 { format!(" + {}", u.missing) } else { String::new() },
        ));
    } else {
        lines.push("Delivery was not observed in this run: delivered, inbox, junk and missing are unknown (dashes).".into());
    }
    lines
}

/// Why the run itself must fail in CI even if its expectations held.
fn run_faults(s: &Summary) -> Vec<String> {
    let mut faults = Vec::new();
    if s.interrupted {
        faults.push("the run was interrupted".to_string());
    }
    if let Some(e) = &s.error {
        faults.push(format!("the run could not finish: {e}"));
    }
    faults.extend(s.record_problems.iter().cloned());
    faults
}

/// One line per next step, derived from what the run saw: the failed expectations first, then
/// each known reply's action once, then what is wrong with the run itself.
pub fn next_steps(s: &Summary) -> Vec<String> {
    let mut steps = Vec::new();
    for g in &s.replies {
        if let (Some(action), Some(fam)) = (&g.action, &g.family) {
            let what = match &g.token {
                Some(t) => format!("{fam}, {t}"),
                None => fam.clone(),
            };
            let line = format!("{what} ({}): {action}", g.source_ips.join(", "));
            if !steps.contains(&line) {
                steps.push(line);
            }
        }
    }
    if s.trace_check.as_ref().is_some_and(|t| !t.agreed) {
        steps.push("The attempt records and the simulator's message trace disagree: see the trace check; this is a harness or simulator bug worth filing.".into());
    }
    if !s.record_problems.is_empty() {
        steps.push(format!(
            "The run's records are incomplete ({}); its numbers cannot be trusted: re-run it.",
            s.record_problems.join("; ")
        ));
    }
    if s.interrupted {
        let unsent = s.unsent();
        steps.push(if unsent > 0 {
            format!("The run was interrupted: {unsent} planned messages were never sent and are left out of every count; re-run it to get complete numbers.")
        } else {
            "The run was interrupted: re-run it to get complete numbers.".into()
        });
    }
    let failed = s.expectations.iter().filter(|v| !v.passed).count();
    if failed > 0 {
        steps.insert(
            0,
            format!(
                "{failed} expectation(s) failed; the table above quotes the numbers behind each."
            ),
        );
    } else if steps.is_empty() {
        steps.push("Nothing to do: every expectation held.".into());
    }
    steps
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::analysis::Onset;

    /// The summary of the committed golden run (tests/data/golden/main-run).
    pub fn golden() -> Summary {
        serde_json::from_str(include_str!(
            "../../tests/data/golden/main-run/summary.json"
        ))
        .unwrap()
    }

    #[test]
    fn matrix_rows_show_shares_dashes_and_latencies_the_same_way_everywhere() {
        let s = golden();
        let m = ReportModel::from(&s);
        let r = &m.matrix[0];
        assert_eq!(
            (r.phase.as_str(), r.sender.as_str(), r.tls),
            ("before", "primary", TlsMode::None)
        );
        assert_eq!(r.accepted, (5, "42%".to_string()));
        assert_eq!(r.throttled, (7, "58%".to_string()));
        assert_eq!((r.p50.as_str(), r.p95.as_str()), ("639ms", "640ms"));
        assert_eq!(
            (r.min_tls.as_str(), r.onset.as_str()),
            ("none", "#5 at 1.0s")
        );
        assert_eq!(m.matrix.len(), s.cells.len());

        let mut c = s.cells[0].clone();
        (c.sent, c.accepted, c.throttled) = (0, 0, 0);
        (c.deferred, c.rate_limited, c.failed, c.interrupted) = (1, 2, 3, 4);
        c.observed = false;
        (c.latency_p50_ms, c.latency_p95_ms) = (Some(9_999.4), Some(10_000.0));
        c.min_tls_version = None;
        c.throttle_onset = Some(Onset {
            index: 12,
            after_s: 0.26,
            accepted_before: 0,
        });
        let r = matrix_row(&c, &[]);
        assert_eq!(
            (r.accepted.1.as_str(), r.throttled.1.as_str()),
            ("–", "–"),
            "no share of nothing"
        );
        assert_eq!(
            r.other, 10,
            "deferred, rate limited, failed and interrupted"
        );
        assert_eq!(
            [&r.delivered, &r.inbox, &r.junk, &r.missing],
            ["–"; 4],
            "unobserved is unknown, not 0"
        );
        assert_eq!((r.p50.as_str(), r.p95.as_str()), ("9999ms", "10.0s"));
        assert_eq!((r.min_tls.as_str(), r.onset.as_str()), ("–", "#12 at 0.3s"));
        c.latency_p50_ms = None;
        assert_eq!(matrix_row(&c, &[]).p50, "–");
    }

    #[test]
    fn a_change_step_took_effect_timed_out_or_was_waited_for() {
        let s = golden();
        let m = ReportModel::from(&s);
        assert_eq!(m.phases[0].change, None);
        let c = m.phases[1].change.clone().unwrap();
        assert_eq!(
            (c.effect, c.probes),
            (ChangeEffect::TookEffect("3.1s".into()), 16)
        );
        assert_eq!(m.phases[1].duration, "3.2s");
        let mut change = s.phases[1].change.clone().unwrap();
        change.timed_out = true;
        assert_eq!(
            change_line(&change).effect,
            ChangeEffect::TookEffect("3.1s".into()),
            "a measured time wins"
        );
        change.effective_after_s = None;
        assert_eq!(change_line(&change).effect, ChangeEffect::TimedOut);
        change.timed_out = false;
        change.wait = WaitMethod::Settle;
        assert_eq!(
            change_line(&change).effect,
            ChangeEffect::Waited(WaitMethod::Settle)
        );
    }

    #[test]
    fn the_headline_counts_expectations_and_keeps_a_description_only_when_there_is_one() {
        let mut s = golden();
        s.expectations[3].passed = false;
        s.description = "  Two phases.\n".into();
        let h = ReportModel::from(&s).headline;
        assert_eq!((h.held, h.expectations), (17, 18));
        assert_eq!(h.senders, "primary = 127.0.0.2, secondary = 127.0.0.3");
        assert_eq!(h.description.as_deref(), Some("Two phases."));
        s.description.clear();
        assert_eq!(ReportModel::from(&s).headline.description, None);
    }

    #[test]
    fn deltas_and_replies_are_shown_once_for_every_renderer() {
        let s = golden();
        let m = ReportModel::from(&s);
        let d = &m.deltas[0];
        assert_eq!(d.phases, "before→after");
        assert_eq!(
            d.throttle.0,
            Share {
                fraction: s.deltas[0].throttle_rate_before,
                shown: format!("{:.0}%", s.deltas[0].throttle_rate_before * 100.0)
            }
        );
        assert_eq!(share(0.583).shown, "58%");
        assert_eq!(share(0.005).shown, "0%");
        let g = &m.replies[0];
        assert_eq!(g.from, "127.0.0.2, 127.0.0.3");
        assert_eq!(
            g.connector,
            Some("an inbound connector for the sending IPs fixes this")
        );
        assert_eq!(
            connector_sentence(ConnectorAnswer::No),
            "not a connector matter"
        );
    }

    #[test]
    fn next_steps_put_failures_first_and_name_each_known_reply_once() {
        let mut s = golden();
        let m = ReportModel::from(&s);
        assert_eq!(m.next_steps.len(), 2, "{:?}", m.next_steps);
        assert!(m.next_steps[0].starts_with("ip-throttling, AS761 (127.0.0.2, 127.0.0.3): "));
        assert!(m.next_steps[1].starts_with("tls-required (127.0.0.2, 127.0.0.3): "));
        // The same family, token and IPs again: one step.
        let again = s.replies[0].clone();
        s.replies.push(again);
        s.expectations[0].passed = false;
        s.expectations[1].passed = false;
        let steps = next_steps(&s);
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0],
            "2 expectation(s) failed; the table above quotes the numbers behind each."
        );
    }

    #[test]
    fn next_steps_say_what_is_wrong_with_the_run_itself_or_that_nothing_is() {
        let mut s = golden();
        s.replies.clear();
        assert_eq!(next_steps(&s), ["Nothing to do: every expectation held."]);
        s.trace_check.as_mut().unwrap().agreed = false;
        s.record_problems = vec!["a".into(), "b".into()];
        s.interrupted = true;
        let steps = next_steps(&s);
        assert!(
            steps[0].starts_with("The attempt records and the simulator's message trace disagree")
        );
        assert!(steps[1].starts_with("The run's records are incomplete (a; b)"));
        assert_eq!(
            steps[2],
            "The run was interrupted: re-run it to get complete numbers."
        );
        s.cells[0].unsent = 3;
        s.cells[1].unsent = 2;
        assert!(next_steps(&s)[2]
            .starts_with("The run was interrupted: 5 planned messages were never sent"));
    }

    #[test]
    fn the_failure_summary_lists_failures_with_numbers_then_faults_and_skips() {
        let mut s = golden();
        let m = ReportModel::from(&s);
        assert!(m.failures.failed.is_empty() && m.failures.skipped.is_empty());
        assert_eq!(
            m.failures.headline,
            "Nothing failed: all 18 expectations held and the run completed with intact records."
        );
        s.expectations[4].passed = false;
        s.expectations[4].actual = "0.083".into();
        s.expectations[4].detail = "1 of 12 sent were throttled".into();
        (s.expectations[5].passed, s.expectations[5].skipped) = (false, true);
        s.expectations[5].detail = "not measured".into();
        s.interrupted = true;
        s.trace_check.as_mut().unwrap().agreed = false;
        let f = ReportModel::from(&s).failures;
        assert_eq!(
            f.failed,
            [
                "after/primary/starttls: throttle_rate <= 0 — actual 0.083 (1 of 12 sent were throttled)",
                "Run: the run was interrupted",
                "Trace cross-check: the attempt records and the simulator's message trace disagree (0 mismatches; first: –)",
            ]
        );
        assert_eq!(
            f.skipped,
            ["after/secondary/starttls: throttle_rate <= 0 — not measured"]
        );
        assert_eq!(f.headline, "1 of 18 expectations failed; 1 were skipped (never measured); the run itself failed (the run was interrupted); the simulator's trace disagrees.");
        let m = ReportModel::from(&s);
        let verdicts: Vec<CellVerdict> = m.matrix.iter().map(|r| r.verdict).collect();
        assert_eq!(verdicts[4], CellVerdict::Fail, "{:?}", m.matrix[4]);
        assert_eq!(m.matrix[4].checks, "1 of 6 failed");
        assert_eq!(m.matrix[0].checks, "1 of 1 held");
        assert!(m.probes.iter().all(|r| r.verdict == CellVerdict::NoChecks));
        assert_eq!(m.expectations[5].status, CheckStatus::Skipped);
    }

    #[test]
    fn the_page_says_what_it_counts_where_and_reconciles_the_totals() {
        let m = ReportModel::from(&golden());
        assert_eq!(m.counting.len(), 5);
        assert!(m.counting[0].starts_with("Matrix, expectations, before/after, timelines and latency histograms: the 84 planned messages sent"));
        assert!(m.counting[1].starts_with("Change-step probes: 16 probe messages"));
        assert_eq!(m.counting[3], "Attempt records: 100 = 84 planned first attempts + 0 retries + 0 never sent + 16 probes.");
        assert!(m.counting[4].starts_with("Mailbox copies (one per recipient) found: 36 = 34 of planned messages + 2 of probes; missing: 0 = 0 + 0."), "{}", m.counting[4]);
        let mut s = golden();
        for c in &mut s.cells {
            c.observed = false;
        }
        s.totals.probes = 0;
        let m = ReportModel::from(&s);
        assert_eq!(m.counting[1], "Change-step probes: none were sent.");
        assert!(m.counting[4].starts_with("Delivery was not observed"));
    }

    #[test]
    fn run_faults_name_an_interruption_an_error_and_each_record_problem() {
        let mut s = golden();
        assert!(run_faults(&s).is_empty());
        s.interrupted = true;
        s.error = Some("boom".into());
        s.record_problems = vec!["attempts.jsonl:9: cut short".into()];
        assert_eq!(
            run_faults(&s),
            [
                "the run was interrupted",
                "the run could not finish: boom",
                "attempts.jsonl:9: cut short"
            ]
        );
    }
}
