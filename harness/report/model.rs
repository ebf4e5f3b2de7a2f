//! The report model: every figure and sentence the reports show, computed once from a [`Summary`].
//! The Markdown, HTML and JUnit renderers only format it (and escape it for their format), so
//! they cannot disagree about a number, a dash or a next step.

use std::collections::BTreeMap;

use crate::analysis::{CellStats, ChangeSummary, Delta, ReplyGroup, Summary, TraceCheck, Verdict};
use crate::reply::ConnectorAnswer;
use crate::vocab::{
    ApplyMethod, ConnectorAction, OutcomeClass, RunVerdict, TargetKind, TlsMode, WaitMethod,
};

/// What the reports show, in the order they show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportModel {
    /// Version of the `summary.json` the model was built from.
    pub schema: u32,
    /// Which run, its verdict, and what went wrong with it as a whole.
    pub headline: Headline,
    /// Each phase and its change step.
    pub phases: Vec<PhaseLine>,
    /// The phase × sender × TLS matrix, one row per cell in plan order.
    pub matrix: Vec<MatrixRow>,
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
    /// Expectations that held.
    pub held: usize,
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

/// One row of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixRow {
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
    /// Whether it held.
    pub passed: bool,
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
    /// How many attempts ended with it.
    pub count: u64,
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

/// The data of the HTML report's charts.
#[derive(Debug, Clone, PartialEq)]
pub struct Charts {
    /// One outcome timeline per phase that sent something.
    pub timelines: Vec<Timeline>,
    /// The delivery latency histogram.
    pub latency: LatencyHistogram,
}

/// Outcomes over time in one phase, one row per sender × TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Phase.
    pub phase: String,
    /// Sender and TLS mode of each row, by sender then the mode's name.
    pub rows: Vec<(String, TlsMode)>,
    /// One dot per message.
    pub dots: Vec<Dot>,
    /// The time axis' end (ms since the phase started; at least 1).
    pub max_t_ms: f64,
}

/// One message on a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    /// Index into the timeline's rows.
    pub row: usize,
    /// Milliseconds since the phase started.
    pub t_ms: f64,
    /// How its first attempt ended.
    pub outcome: OutcomeClass,
}

/// Delivery latencies in equal-width bins from 0 to the largest.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// Delivered messages with a latency.
    pub delivered: usize,
    /// Number of bins across the axis.
    pub bins: usize,
    /// The axis' end (ms; at least 1).
    pub max_ms: f64,
    /// Messages per non-empty bin, by bin index; empty when nothing was delivered.
    pub counts: BTreeMap<usize, u64>,
    /// The largest bin count.
    pub peak: u64,
}

/// Bins of the latency histogram.
const LATENCY_BINS: usize = 20;

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
            matrix: s.cells.iter().map(matrix_row).collect(),
            deltas: s.deltas.iter().map(delta_row).collect(),
            expectations: s.expectations.iter().map(expectation_row).collect(),
            replies: s.replies.iter().map(reply_row).collect(),
            trace: s.trace_check.clone(),
            anomalies: s.anomalies,
            next_steps: next_steps(s),
            run_faults: run_faults(s),
            charts: Charts {
                timelines: timelines(s),
                latency: latency_histogram(&s.latencies_ms),
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
        held: s.expectations.iter().filter(|v| v.passed).count(),
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

fn matrix_row(c: &CellStats) -> MatrixRow {
    let observed = |n: u64| {
        if c.observed {
            n.to_string()
        } else {
            DASH.into()
        }
    };
    MatrixRow {
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

fn expectation_row(v: &Verdict) -> ExpectationRow {
    ExpectationRow {
        passed: v.passed,
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
fn ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 10_000.0 => format!("{:.1}s", x / 1000.0),
        Some(x) => format!("{x:.0}ms"),
        None => DASH.into(),
    }
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

/// Each phase's outcome timeline: rows by sender, then the TLS mode's name.
fn timelines(s: &Summary) -> Vec<Timeline> {
    let mut out = Vec::new();
    for phase in &s.phases {
        let pts: Vec<_> = s
            .timeline
            .iter()
            .filter(|p| p.phase == phase.name)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let mut rows: Vec<(&str, TlsMode)> =
            pts.iter().map(|p| (p.sender.as_str(), p.tls)).collect();
        // Alphabetical by the mode's name, as the rows have always been, not in TlsMode's order.
        rows.sort_by_key(|&(sender, tls)| (sender, tls.as_str()));
        rows.dedup();
        let dots = pts
            .iter()
            .filter_map(|p| {
                let row = rows.iter().position(|r| r.0 == p.sender && r.1 == p.tls)?;
                Some(Dot {
                    row,
                    t_ms: p.t_ms,
                    outcome: p.outcome,
                })
            })
            .collect();
        out.push(Timeline {
            phase: phase.name.clone(),
            rows: rows.into_iter().map(|(s, t)| (s.to_string(), t)).collect(),
            dots,
            max_t_ms: pts.iter().map(|p| p.t_ms).fold(1.0_f64, f64::max),
        });
    }
    out
}

/// Latencies (ms) binned from 0 to the largest; the largest falls in the last bin.
fn latency_histogram(latencies_ms: &[f64]) -> LatencyHistogram {
    let max_ms = latencies_ms.iter().copied().fold(1.0_f64, f64::max);
    let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
    for v in latencies_ms {
        let b = ((v / max_ms) * LATENCY_BINS as f64).floor() as usize;
        *counts.entry(b.min(LATENCY_BINS - 1)).or_default() += 1;
    }
    LatencyHistogram {
        delivered: latencies_ms.len(),
        bins: LATENCY_BINS,
        max_ms,
        peak: counts.values().copied().max().unwrap_or(1),
        counts,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::analysis::{Onset, TimelinePoint};

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
        let r = matrix_row(&c);
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
        assert_eq!(matrix_row(&c).p50, "–");
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

    fn point(phase: &str, sender: &str, tls: TlsMode, t_ms: f64) -> TimelinePoint {
        TimelinePoint {
            phase: phase.into(),
            sender: sender.into(),
            tls,
            t_ms,
            outcome: OutcomeClass::Accepted,
        }
    }

    #[test]
    fn timelines_have_a_row_per_sender_and_tls_by_name_and_skip_silent_phases() {
        let mut s = golden();
        s.timeline = vec![
            point("after", "secondary", TlsMode::None, 0.5),
            point("after", "primary", TlsMode::StarttlsOpportunistic, 0.2),
            point("after", "primary", TlsMode::Starttls, 0.1),
            point("after", "primary", TlsMode::Implicit, 0.3),
            point("after", "secondary", TlsMode::None, 0.7),
        ];
        let t = timelines(&s);
        assert_eq!(t.len(), 1, "the phase with no points has no chart");
        let rows: Vec<(&str, &str)> = t[0]
            .rows
            .iter()
            .map(|(s, m)| (s.as_str(), m.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("primary", "implicit"),
                ("primary", "starttls"),
                ("primary", "starttls-opportunistic"),
                ("secondary", "none")
            ]
        );
        let dot_rows: Vec<usize> = t[0].dots.iter().map(|d| d.row).collect();
        assert_eq!(dot_rows, [3, 2, 1, 0, 3], "dots in the summary's order");
        assert_eq!(t[0].max_t_ms, 1.0, "the axis is at least 1 ms long");
        assert_eq!(
            timelines(&golden())
                .iter()
                .map(|t| t.dots.len())
                .sum::<usize>(),
            84
        );
    }

    #[test]
    fn the_latency_histogram_puts_the_largest_in_the_last_bin() {
        let h = latency_histogram(&[0.0, 50.0, 99.0, 100.0, 100.0]);
        assert_eq!((h.delivered, h.bins, h.max_ms, h.peak), (5, 20, 100.0, 3));
        assert_eq!(h.counts, BTreeMap::from([(0, 1), (10, 1), (19, 3)]));
        let empty = latency_histogram(&[]);
        assert_eq!(
            (
                empty.delivered,
                empty.counts.len(),
                empty.max_ms,
                empty.peak
            ),
            (0, 0, 1.0, 1)
        );
    }
}
