//! Analysis of a run from its records alone: the phase × sender × TLS matrix, throttle onset,
//! before/after deltas, connector timing, replies seen, expectation verdicts, and the cross-check
//! against the simulator's message trace.
//!
//! Everything here is a pure function of the run directory's files, so `mailharness report`
//! reproduces `summary.json` byte for byte.

mod cells;
mod expect;
mod load;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::record::{AttemptRecord, ObservationRecord, ObservationStatus, RunRecord};
use crate::reply;
use crate::scenario::check::{Metric, Value};
use crate::scenario::plan::Plan;
use crate::vocab::{
    ApplyMethod, ConnectorAction, OutcomeClass, RunVerdict, TargetKind, TlsMode, WaitMethod,
};

use cells::{CellSamples, Kind, Matrix};
pub use load::{files, load_run_dir, LoadError, RunData, TraceEntry};

/// Version of `summary.json`.
/// Version of `summary.json`. 2: probes counted apart (`probe_cells`, `totals`, the reply groups'
/// split), latency per phase with its thresholds (`latency` for `latencies_ms`), `sending_s`,
/// `duration_s` and skipped verdicts.
pub const SUMMARY_SCHEMA: u32 = 2;

/// The whole analysis: the source every report renders from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Schema version of this document.
    pub schema: u32,
    /// Run id.
    pub run_id: String,
    /// Scenario name and description.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Target name.
    pub target: String,
    /// `simulator` or `tenant`.
    pub target_kind: TargetKind,
    /// Wall-clock start (RFC 3339).
    pub started_at: String,
    /// Wall-clock end (RFC 3339).
    pub finished_at: String,
    /// Seconds from start to end.
    pub duration_s: f64,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Why the run could not finish, if it could not.
    pub error: Option<String>,
    /// What was wrong with the run's records (a torn line, a repeated attempt); the run fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_problems: Vec<String>,
    /// Sender roles and IPs.
    pub senders: BTreeMap<String, String>,
    /// Phases in order, with their timing and change steps.
    pub phases: Vec<PhaseSummary>,
    /// The matrix: one row per phase × sender × TLS cell, in plan order. Planned messages only:
    /// change-step probes are in `probe_cells`.
    pub cells: Vec<CellStats>,
    /// The change steps' probe messages, one cell per probe phase (`<phase>~probe`) × sender ×
    /// TLS, counted like the matrix but apart from it.
    pub probe_cells: Vec<CellStats>,
    /// How every attempt record and every observed copy is accounted for.
    pub totals: Totals,
    /// Before/after comparisons around each change step.
    pub deltas: Vec<Delta>,
    /// Negative replies seen, grouped, with explanations.
    pub replies: Vec<ReplyGroup>,
    /// Every expectation with its verdict and the numbers behind it.
    pub expectations: Vec<Verdict>,
    /// Messages of this run found that no attempt says was accepted.
    pub anomalies: u64,
    /// Agreement with the simulator's message trace (simulator runs only).
    pub trace_check: Option<TraceCheck>,
    /// Planned messages' first attempts for the timeline charts (no probes).
    pub timeline: Vec<TimelinePoint>,
    /// Delivery latencies of each phase's planned messages (no probes), with the thresholds of
    /// the phase's latency expectations.
    pub latency: Vec<PhaseLatency>,
    /// `pass` when every expectation holds (and the trace agrees), `fail` otherwise.
    pub verdict: RunVerdict,
}

/// One phase as it ran.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Seconds of sending.
    pub duration_s: f64,
    /// The change step before it.
    pub change: Option<ChangeSummary>,
}

/// A change step's effect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChangeSummary {
    /// Connector action.
    pub action: ConnectorAction,
    /// Connector name.
    pub connector: String,
    /// How it was applied.
    pub apply: ApplyMethod,
    /// How the harness waited.
    pub wait: WaitMethod,
    /// Seconds from applying the change until it took effect (poll only).
    pub effective_after_s: Option<f64>,
    /// Probes sent while polling.
    pub probes: usize,
    /// Whether polling gave up.
    pub timed_out: bool,
    /// Error applying it.
    pub error: Option<String>,
}

/// The numbers of one phase × sender × TLS cell (first attempts; retries are counted apart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CellStats {
    /// Phase.
    pub phase: String,
    /// Sender role.
    pub sender: String,
    /// Source IP.
    pub source_ip: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// Messages sent (first attempts). Messages the run never sent (see `unsent`) are not in it.
    pub sent: u64,
    /// Planned messages never sent because the run was interrupted; left out of every other count.
    #[serde(default)]
    pub unsent: u64,
    /// Seconds from the cell's first attempt's start to its last attempt's end (0 if none).
    pub sending_s: f64,
    /// Accepted.
    pub accepted: u64,
    /// Throttled (4.7.500–699).
    pub throttled: u64,
    /// Rate limited on reputation.
    pub rate_limited: u64,
    /// Other 4xx.
    pub deferred: u64,
    /// Refused for lack of TLS.
    pub tls_required: u64,
    /// Rejected (5xx).
    pub rejected: u64,
    /// TLS, connect, timeout and protocol failures.
    pub failed: u64,
    /// Interrupted.
    pub interrupted: u64,
    /// Retries sent.
    pub retries: u64,
    /// Messages accepted only after retrying.
    pub accepted_after_retry: u64,
    /// Accepted messages found in a mailbox.
    pub delivered: u64,
    /// Found in the Inbox.
    pub inbox: u64,
    /// Found in Junk.
    pub junk: u64,
    /// Accepted but not found.
    pub missing: u64,
    /// Whether observation ran for this run.
    pub observed: bool,
    /// Median delivery latency (ms).
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile delivery latency (ms).
    pub latency_p95_ms: Option<f64>,
    /// Largest delivery latency (ms).
    pub latency_max_ms: Option<f64>,
    /// Lowest negotiated TLS version; `none` when some attempt had no TLS.
    pub min_tls_version: Option<String>,
    /// Negotiated TLS versions and how often.
    pub tls_versions: BTreeMap<String, u64>,
    /// The first throttled message.
    pub throttle_onset: Option<Onset>,
    /// Accepted messages per minute before throttling began (or over the cell, if it never did).
    pub accepted_rate_per_min: Option<f64>,
    /// AS/S tokens seen and how often.
    pub tokens: BTreeMap<String, u64>,
}

impl Summary {
    /// Planned messages the run never sent (it was interrupted), over every cell.
    pub fn unsent(&self) -> u64 {
        self.cells.iter().map(|c| c.unsent).sum()
    }
}

impl CellStats {
    /// A cell with nothing counted yet.
    fn empty(phase: &str, sender: &str, source_ip: String, tls: TlsMode, observed: bool) -> Self {
        CellStats {
            phase: phase.into(),
            sender: sender.into(),
            source_ip,
            tls,
            sent: 0,
            unsent: 0,
            sending_s: 0.0,
            accepted: 0,
            throttled: 0,
            rate_limited: 0,
            deferred: 0,
            tls_required: 0,
            rejected: 0,
            failed: 0,
            interrupted: 0,
            retries: 0,
            accepted_after_retry: 0,
            delivered: 0,
            inbox: 0,
            junk: 0,
            missing: 0,
            observed,
            latency_p50_ms: None,
            latency_p95_ms: None,
            latency_max_ms: None,
            min_tls_version: None,
            tls_versions: BTreeMap::new(),
            throttle_onset: None,
            accepted_rate_per_min: None,
            tokens: BTreeMap::new(),
        }
    }

    /// Messages accepted in the end, at the first attempt or after retrying: what delivery is
    /// measured against.
    pub fn accepted_in_the_end(&self) -> u64 {
        self.accepted + self.accepted_after_retry
    }

    /// How many first attempts ended with `outcome` (the failures share one count).
    pub fn outcome_count(&self, outcome: OutcomeClass) -> u64 {
        match outcome {
            OutcomeClass::Accepted => self.accepted,
            OutcomeClass::Throttled => self.throttled,
            OutcomeClass::RateLimited => self.rate_limited,
            OutcomeClass::Deferred => self.deferred,
            OutcomeClass::TlsRequired => self.tls_required,
            OutcomeClass::Rejected => self.rejected,
            OutcomeClass::Interrupted => self.interrupted,
            OutcomeClass::TlsFailure
            | OutcomeClass::ConnectFailure
            | OutcomeClass::Timeout
            | OutcomeClass::ProtocolError => self.failed,
        }
    }

    /// The count that a first attempt ending with `outcome` adds to.
    fn outcome_counter(&mut self, outcome: OutcomeClass) -> &mut u64 {
        match outcome {
            OutcomeClass::Accepted => &mut self.accepted,
            OutcomeClass::Throttled => &mut self.throttled,
            OutcomeClass::RateLimited => &mut self.rate_limited,
            OutcomeClass::Deferred => &mut self.deferred,
            OutcomeClass::TlsRequired => &mut self.tls_required,
            OutcomeClass::Rejected => &mut self.rejected,
            OutcomeClass::Interrupted => &mut self.interrupted,
            OutcomeClass::TlsFailure
            | OutcomeClass::ConnectFailure
            | OutcomeClass::Timeout
            | OutcomeClass::ProtocolError => &mut self.failed,
        }
    }
}

/// Where throttling began in a cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Onset {
    /// Index of the first throttled message in the burst.
    pub index: u32,
    /// Seconds since the phase started.
    pub after_s: f64,
    /// Messages accepted before it.
    pub accepted_before: u64,
}

/// A before/after comparison of one sender × TLS cell around a change step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delta {
    /// Sender role.
    pub sender: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// The phase before the change.
    pub before: String,
    /// The phase after it.
    pub after: String,
    /// Throttle rate before.
    pub throttle_rate_before: f64,
    /// Throttle rate after.
    pub throttle_rate_after: f64,
    /// Accepted rate before.
    pub accepted_rate_before: f64,
    /// Accepted rate after.
    pub accepted_rate_after: f64,
}

/// Replies of one kind, with what they mean.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReplyGroup {
    /// Reply code.
    pub code: u16,
    /// Enhanced code.
    pub enhanced: Option<String>,
    /// AS/S token.
    pub token: Option<String>,
    /// Outcome class.
    pub outcome: OutcomeClass,
    /// How many attempts ended with it: the sum of the four counts below.
    pub count: u64,
    /// First attempts of planned messages: what the matrix counts.
    pub first_attempts: u64,
    /// Retries of planned messages.
    pub retries: u64,
    /// Change-step probes.
    pub probes: u64,
    /// Attempts of unplanned messages (see `Totals::unplanned`).
    pub unplanned: u64,
    /// Which source IPs got it.
    pub source_ips: Vec<String>,
    /// One full reply text as seen.
    pub sample: String,
    /// Knowledge-base family id.
    pub family: Option<String>,
    /// Plain-language meaning.
    pub meaning: Option<String>,
    /// Whether a connector helps (`helps`, `fix-existing`, `cause`, `no`, `not-a-tenant`).
    pub connector: Option<reply::ConnectorAnswer>,
    /// What Ops does about it.
    pub action: Option<String>,
}

/// One expectation's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Phase.
    pub phase: String,
    /// Sender role.
    pub sender: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// The check as written.
    pub check: String,
    /// Whether it held.
    pub passed: bool,
    /// Not measured because the run stopped before its cell sent anything (`passed` is false).
    #[serde(default)]
    pub skipped: bool,
    /// The measured value, as text.
    pub actual: String,
    /// The numbers behind it, in a sentence.
    pub detail: String,
}

/// Agreement between attempt records and the simulator's message trace.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceCheck {
    /// Whether they agree message for message.
    pub agreed: bool,
    /// Accepted attempts matched to trace records by Message-ID.
    pub accepted_matched: u64,
    /// Refused transactions compared per source IP, in order.
    pub refused_compared: u64,
    /// Each disagreement.
    pub mismatches: Vec<String>,
}

/// One attempt on the timeline chart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TimelinePoint {
    /// Phase.
    pub phase: String,
    /// Sender role.
    pub sender: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// Milliseconds since the phase started.
    pub t_ms: f64,
    /// Outcome class.
    pub outcome: OutcomeClass,
}

/// Every attempt record and observed copy, and which count it is in. `attempts` is `sent +
/// unsent + retries + probes + unplanned`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Attempt records read (a repeated record once).
    pub attempts: u64,
    /// Planned messages sent: the matrix's `sent`, summed.
    pub sent: u64,
    /// Planned messages never sent: the matrix's `unsent`, summed.
    pub unsent: u64,
    /// Retries of planned messages: the matrix's `retries`, summed.
    pub retries: u64,
    /// Attempt records of change-step probes (the probe cells' sent, unsent and retries).
    pub probes: u64,
    /// Attempt records of messages in no planned cell and no change step.
    pub unplanned: u64,
    /// Mailbox copies of planned messages (one per recipient) found and missing.
    pub planned_copies: CopyCounts,
    /// Mailbox copies of probes found and missing.
    pub probe_copies: CopyCounts,
    /// Mailbox copies of unplanned messages (or of attempts no record names) found and missing.
    pub unplanned_copies: CopyCounts,
}

/// Observation records of one kind of message: copies found and missing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CopyCounts {
    /// Found in a mailbox.
    pub found: u64,
    /// Not found by the deadline.
    pub missing: u64,
}

/// One phase's delivery latencies (planned messages only), for its histogram.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseLatency {
    /// Phase.
    pub phase: String,
    /// Latency (ms) of each delivered planned message of the phase, sorted.
    pub latencies_ms: Vec<f64>,
    /// Median over the phase (nearest rank).
    pub p50_ms: Option<f64>,
    /// 95th percentile over the phase (nearest rank).
    pub p95_ms: Option<f64>,
    /// The phase's latency expectations, one per distinct check.
    pub thresholds: Vec<LatencyThreshold>,
}

/// A latency expectation of a phase, drawn on its histogram.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyThreshold {
    /// The check as written, e.g. `latency_p95 <= "1m"`.
    pub check: String,
    /// `latency_p50`, `latency_p95` or `latency_max`.
    pub metric: Metric,
    /// The threshold in ms.
    pub ms: f64,
    /// The cells it applies to, `sender/tls`.
    pub cells: Vec<String>,
    /// Whether it held in every one of them.
    pub passed: bool,
}

/// Rounds to 3 decimals so summaries are stable and readable.
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Analyses a loaded run.
pub fn analyse(data: &RunData) -> Summary {
    let (plan, run) = (&data.plan, &data.run);
    let phase_start = phase_starts(run);
    let probe_ids: BTreeSet<&str> = run
        .phases
        .iter()
        .filter_map(|p| p.change.as_ref())
        .flat_map(|c| c.probes.iter().map(String::as_str))
        .collect();
    let by_seq = cells::attempts_by_message(&data.attempts);
    let mut matrix = Matrix::from_plan(plan, data.observed);
    let mut probes = Matrix::empty();
    let kinds = cells::classify(&by_seq, &matrix, &mut probes, &probe_ids, data.observed);
    let counted = cells::count_messages(
        &mut matrix,
        &mut probes,
        &by_seq,
        &kinds,
        &data.observations,
        &phase_start,
    );
    let cell_latencies: Vec<Vec<f64>> = counted
        .samples
        .iter()
        .map(|s| s.latencies.clone())
        .collect();
    finish_cells(&mut matrix.cells, counted.samples, &phase_start);
    finish_cells(&mut probes.cells, counted.probe_samples, &phase_start);
    let expectations = evaluate_all(plan, &matrix, run);
    let anomalies = data
        .observations
        .iter()
        .filter(|o| o.status == ObservationStatus::Anomaly)
        .count() as u64;
    let trace_check = data.trace.as_ref().map(|t| cross_check(&data.attempts, t));
    let pass = !run.interrupted
        && run.error.is_none()
        && data.problems.is_empty()
        && expectations.iter().all(|v| v.passed)
        && trace_check.as_ref().is_none_or(|t| t.agreed);
    let rfc3339 =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let wall_ms = (run.finished_at - run.started_at).num_milliseconds().max(0);
    Summary {
        schema: SUMMARY_SCHEMA,
        run_id: run.run_id.clone(),
        scenario: plan.scenario.clone(),
        description: plan.description.clone(),
        target: plan.target.clone(),
        target_kind: run.target_kind,
        started_at: rfc3339(&run.started_at),
        finished_at: rfc3339(&run.finished_at),
        duration_s: r3(wall_ms as f64 / 1000.0),
        interrupted: run.interrupted,
        error: run.error.clone(),
        record_problems: data.problems.clone(),
        senders: plan
            .senders
            .iter()
            .map(|(r, ip)| (r.clone(), ip.to_string()))
            .collect(),
        phases: phase_summaries(run),
        deltas: deltas(plan, &matrix.cells),
        replies: reply_groups(&by_seq, &kinds),
        totals: totals(&by_seq, &kinds, &data.observations),
        latency: phase_latencies(plan, &matrix.cells, &cell_latencies, &expectations),
        cells: matrix.cells,
        probe_cells: probes.cells,
        expectations,
        anomalies,
        trace_check,
        timeline: counted.timeline,
        verdict: RunVerdict::from_passed(pass),
    }
}

/// When each phase started (ms since the run started), and each probe phase `<phase>~probe`:
/// when the change step before `<phase>` was applied.
fn phase_starts(run: &RunRecord) -> BTreeMap<String, f64> {
    let mut starts = BTreeMap::new();
    for p in &run.phases {
        starts.insert(p.name.clone(), p.started_ms);
        if let Some(c) = &p.change {
            starts.insert(format!("{}{}", p.name, cells::PROBE_SUFFIX), c.applied_ms);
        }
    }
    starts
}

/// Finishes every cell with its samples; `phase_start` gives where its phase began.
fn finish_cells(
    cells: &mut [CellStats],
    samples: Vec<CellSamples>,
    phase_start: &BTreeMap<String, f64>,
) {
    for (c, samples) in cells.iter_mut().zip(samples) {
        let start = phase_start.get(&c.phase).copied().unwrap_or(0.0);
        cells::finish_cell(c, samples, start);
    }
}

/// Every expectation of the plan, in plan order, judged on its cell. A cell the run never got
/// to (it was interrupted or stopped first) is skipped rather than failed: nothing was measured.
fn evaluate_all(plan: &Plan, matrix: &Matrix, run: &RunRecord) -> Vec<Verdict> {
    let stopped = run.interrupted || run.error.is_some();
    plan.phases
        .iter()
        .flat_map(|p| p.expectations.iter())
        .map(|e| {
            let cell = matrix.get(&e.phase, &e.sender, e.tls);
            let mut v = expect::evaluate(&e.phase, &e.sender, e.tls, &e.check, cell);
            if let Some(c) = cell.filter(|c| c.sent == 0 && (c.unsent > 0 || stopped)) {
                v.skipped = true;
                v.detail = format!(
                    "not measured: the run {} before this cell sent anything ({} planned messages never sent)",
                    if run.interrupted { "was interrupted" } else { "stopped" },
                    c.unsent
                );
            }
            v
        })
        .collect()
}

/// Each phase's latencies from its cells' samples (`cell_latencies`, in the cells' order), its
/// percentiles, and the thresholds of its latency expectations with whether they held.
fn phase_latencies(
    plan: &Plan,
    cells: &[CellStats],
    cell_latencies: &[Vec<f64>],
    verdicts: &[Verdict],
) -> Vec<PhaseLatency> {
    let expectations: Vec<_> = plan
        .phases
        .iter()
        .flat_map(|p| p.expectations.iter())
        .zip(verdicts)
        .collect();
    plan.phases
        .iter()
        .map(|phase| {
            let mut lat: Vec<f64> = cells
                .iter()
                .zip(cell_latencies)
                .filter(|(c, _)| c.phase == phase.name)
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
            lat.sort_by(f64::total_cmp);
            let mut thresholds: Vec<LatencyThreshold> = Vec::new();
            for (e, v) in expectations.iter().filter(|(e, _)| e.phase == phase.name) {
                let (metric, Value::Duration(d)) = (e.check.metric, &e.check.value) else {
                    continue;
                };
                let cell = format!("{}/{}", e.sender, e.tls);
                let check = e.check.to_string();
                match thresholds.iter_mut().find(|t| t.check == check) {
                    Some(t) => {
                        t.cells.push(cell);
                        t.passed &= v.passed;
                    }
                    None => thresholds.push(LatencyThreshold {
                        check,
                        metric,
                        ms: r3(d.as_secs_f64() * 1000.0),
                        cells: vec![cell],
                        passed: v.passed,
                    }),
                }
            }
            PhaseLatency {
                phase: phase.name.clone(),
                p50_ms: crate::stats::nearest_rank(&lat, 50.0).map(r3),
                p95_ms: crate::stats::nearest_rank(&lat, 95.0).map(r3),
                latencies_ms: lat.into_iter().map(r3).collect(),
                thresholds,
            }
        })
        .collect()
}

/// Where every attempt record and every observed copy went (see [`Totals`]).
fn totals(
    by_seq: &BTreeMap<&str, Vec<&AttemptRecord>>,
    kinds: &BTreeMap<&str, Kind>,
    observations: &[ObservationRecord],
) -> Totals {
    let mut t = Totals::default();
    let mut kind_of_attempt: BTreeMap<&str, Kind> = BTreeMap::new();
    for (seq, attempts) in by_seq {
        let kind = kinds.get(seq).copied().unwrap_or(Kind::Unplanned);
        let n = attempts.len() as u64;
        t.attempts += n;
        match kind {
            Kind::Planned(_) if attempts[0].never_sent() => t.unsent += n,
            Kind::Planned(_) => {
                t.sent += 1;
                t.retries += n - 1;
            }
            Kind::Probe(_) => t.probes += n,
            Kind::Unplanned => t.unplanned += n,
        }
        for a in attempts {
            kind_of_attempt.insert(a.attempt_id.as_str(), kind);
        }
    }
    for o in observations {
        let kind = o
            .attempt_id
            .as_deref()
            .and_then(|id| kind_of_attempt.get(id).copied())
            .unwrap_or(Kind::Unplanned);
        let copies = match kind {
            Kind::Planned(_) => &mut t.planned_copies,
            Kind::Probe(_) => &mut t.probe_copies,
            Kind::Unplanned => &mut t.unplanned_copies,
        };
        match o.status {
            ObservationStatus::Found => copies.found += 1,
            ObservationStatus::Missing => copies.missing += 1,
            ObservationStatus::Anomaly => {}
        }
    }
    t
}

/// Each phase's sending time and its change step's effect.
fn phase_summaries(run: &RunRecord) -> Vec<PhaseSummary> {
    run.phases
        .iter()
        .map(|p| PhaseSummary {
            name: p.name.clone(),
            duration_s: r3((p.finished_ms - p.started_ms).max(0.0) / 1000.0),
            change: p.change.as_ref().map(|c| ChangeSummary {
                action: c.action,
                connector: c.connector.clone(),
                apply: c.apply,
                wait: c.wait,
                effective_after_s: c.effective_after_ms.map(|m| r3(m / 1000.0)),
                probes: c.probes.len(),
                timed_out: c.timed_out,
                error: c.error.clone(),
            }),
        })
        .collect()
}

fn rate(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn deltas(plan: &Plan, cells: &[CellStats]) -> Vec<Delta> {
    let mut out = Vec::new();
    for w in plan.phases.windows(2) {
        let (before, after) = (&w[0], &w[1]);
        if after.change.is_none() {
            continue;
        }
        for b in cells.iter().filter(|c| c.phase == before.name) {
            // A side that sent nothing has no rate: 0% would read as a measurement.
            if let Some(a) = cells
                .iter()
                .find(|c| c.phase == after.name && c.sender == b.sender && c.tls == b.tls)
                .filter(|a| a.sent > 0 && b.sent > 0)
            {
                out.push(Delta {
                    sender: b.sender.clone(),
                    tls: b.tls,
                    before: before.name.clone(),
                    after: after.name.clone(),
                    throttle_rate_before: r3(rate(b.throttled, b.sent)),
                    throttle_rate_after: r3(rate(a.throttled, a.sent)),
                    accepted_rate_before: r3(rate(b.accepted, b.sent)),
                    accepted_rate_after: r3(rate(a.accepted, a.sent)),
                });
            }
        }
    }
    out
}

/// Negative replies grouped by code, enhanced code, token and outcome, each attempt counted in
/// the group's count of its kind: planned first attempts (the matrix), retries, probes, unplanned.
fn reply_groups(
    by_seq: &BTreeMap<&str, Vec<&AttemptRecord>>,
    kinds: &BTreeMap<&str, Kind>,
) -> Vec<ReplyGroup> {
    type Key = (u16, Option<String>, Option<String>, &'static str);
    let mut groups: BTreeMap<Key, ReplyGroup> = BTreeMap::new();
    for (seq, attempts) in by_seq {
        let kind = kinds.get(seq).copied().unwrap_or(Kind::Unplanned);
        for (i, a) in attempts.iter().enumerate() {
            let Some(r) = &a.reply else { continue };
            if (200..300).contains(&r.code) {
                continue;
            }
            let key = (
                r.code,
                r.enhanced.clone(),
                a.token.clone(),
                a.outcome.as_str(),
            );
            let g = groups.entry(key).or_insert_with(|| reply_group(a, r));
            g.count += 1;
            *match kind {
                Kind::Planned(_) if i == 0 => &mut g.first_attempts,
                Kind::Planned(_) => &mut g.retries,
                Kind::Probe(_) => &mut g.probes,
                Kind::Unplanned => &mut g.unplanned,
            } += 1;
            let ip = a.source_ip.to_string();
            if !g.source_ips.contains(&ip) {
                g.source_ips.push(ip);
                g.source_ips.sort();
            }
        }
    }
    let mut v: Vec<ReplyGroup> = groups.into_values().collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    v
}

/// An empty group for the reply `r` of attempt `a`, explained by the knowledge base.
fn reply_group(a: &AttemptRecord, r: &crate::record::DecidingReply) -> ReplyGroup {
    let status = reply::Status::from(r);
    // Every attempt of a run went to the target's inbound MX, a Microsoft 365 tenant
    // (simulated or real) unless the reply itself shows another server.
    let ctx = reply::Context {
        session_tls: a.tls.is_some(),
        host: None,
        recipient: None,
        assume: Some(reply::Origin::Microsoft),
        at_mx: true,
    };
    let e = reply::explain(&status, &ctx);
    ReplyGroup {
        code: r.code,
        enhanced: r.enhanced.clone(),
        token: a.token.clone(),
        outcome: a.outcome,
        count: 0,
        first_attempts: 0,
        retries: 0,
        probes: 0,
        unplanned: 0,
        source_ips: Vec::new(),
        sample: status.shown(),
        family: e.family.clone(),
        meaning: e.known.then(|| e.meaning.clone()),
        connector: e.connector,
        action: e.known.then(|| e.ops.clone()),
    }
}

fn cross_check(attempts: &[AttemptRecord], trace: &[TraceEntry]) -> TraceCheck {
    let mut mismatches = Vec::new();
    // Accepted messages: every accepted attempt has a trace record with its Message-ID, and back.
    let accepted_ids: BTreeSet<&str> = attempts
        .iter()
        .filter(|a| a.outcome == OutcomeClass::Accepted)
        .map(|a| a.message_id.as_str())
        .collect();
    let traced_ids: BTreeSet<&str> = trace
        .iter()
        .filter(|t| t.decision == "accepted")
        .filter_map(|t| t.message_id.as_deref())
        .collect();
    for id in accepted_ids.difference(&traced_ids) {
        mismatches.push(format!("accepted {id} has no accepted trace record"));
    }
    for id in traced_ids.difference(&accepted_ids) {
        mismatches.push(format!(
            "trace accepted {id}, but no attempt record says accepted"
        ));
    }
    // Refused transactions: per source IP, the ordered classes must match.
    let mut ours: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in attempts.iter().filter(|a| {
        matches!(
            a.outcome,
            OutcomeClass::Throttled
                | OutcomeClass::RateLimited
                | OutcomeClass::TlsRequired
                | OutcomeClass::Rejected
                | OutcomeClass::Deferred
        ) && a
            .transcript
            .iter()
            .any(|e| e.stage == crate::record::Stage::Mail && e.code.is_some_and(|c| c < 300))
    }) {
        ours.entry(a.source_ip.to_string())
            .or_default()
            .push(a.outcome.as_str().to_string());
    }
    let mut theirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in trace
        .iter()
        .filter(|t| t.decision != "accepted" && t.decision != "abandoned")
    {
        theirs
            .entry(t.source_ip.clone())
            .or_default()
            .push(t.decision.replace('_', "-"));
    }
    let mut refused = 0u64;
    for ip in ours.keys().chain(theirs.keys()).collect::<BTreeSet<_>>() {
        let mut a = ours.get(ip).cloned().unwrap_or_default();
        let mut b = theirs.get(ip).cloned().unwrap_or_default();
        a.sort();
        b.sort();
        refused += a.len() as u64;
        if a != b {
            mismatches.push(format!(
                "{ip}: attempts record {} refused transactions ({}), the trace {} ({})",
                a.len(),
                summarize(&a),
                b.len(),
                summarize(&b)
            ));
        }
    }
    TraceCheck {
        agreed: mismatches.is_empty(),
        accepted_matched: accepted_ids.intersection(&traced_ids).count() as u64,
        refused_compared: refused,
        mismatches,
    }
}

fn summarize(v: &[String]) -> String {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for s in v {
        *m.entry(s).or_default() += 1;
    }
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records and cells for the unit tests of analysis and its submodules.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::record::*;
    use crate::vocab::{OutcomeClass, TlsMode};

    use super::CellStats;

    /// An attempt of message `seq` in cell p/s/starttls, at `started_ms`, over TLS 1.3, whose MAIL
    /// FROM was accepted; tests change the fields they care about.
    pub fn attempt(
        seq: &str,
        attempt: u32,
        outcome: OutcomeClass,
        started_ms: f64,
    ) -> AttemptRecord {
        AttemptRecord {
            schema: RECORD_SCHEMA,
            run_id: "r".into(),
            seq: seq.into(),
            attempt_id: format!("{seq}#{attempt}"),
            attempt,
            retry_of: (attempt > 1).then(|| format!("{seq}#{}", attempt - 1)),
            phase: "p".into(),
            burst: "b".into(),
            index: 0,
            sender: "s".into(),
            source_ip: "192.0.2.1".parse().unwrap(),
            destination: "127.0.0.1:25".into(),
            tls_mode: TlsMode::Starttls,
            tls: Some(TlsInfo {
                version: "1.3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                peer_subject: None,
                peer_sans: Vec::new(),
                peer_not_after: None,
                verification: CertVerification::Valid,
            }),
            message_id: format!("<{seq}@test>"),
            recipients: vec!["qa@contoso.example".into()],
            size: 1000,
            connection: 1,
            connection_seq: 1,
            scheduled_at: Default::default(),
            scheduled_ms: started_ms,
            started_at: Default::default(),
            started_ms,
            finished_at: Default::default(),
            finished_ms: started_ms + 100.0,
            transcript: vec![Exchange {
                stage: Stage::Mail,
                command: Some("MAIL FROM:<h@x>".into()),
                code: Some(250),
                enhanced: None,
                lines: vec!["OK".into()],
                elapsed_ms: 1.0,
                at_ms: started_ms,
            }],
            outcome,
            reply: None,
            token: None,
            queue_id: None,
            error: None,
        }
    }

    /// An observation of `attempt_id`'s copy in `mailbox`.
    pub fn observation(
        attempt_id: &str,
        mailbox: &str,
        status: ObservationStatus,
        folder: Option<FolderKind>,
        latency_ms: Option<f64>,
    ) -> ObservationRecord {
        ObservationRecord {
            schema: RECORD_SCHEMA,
            run_id: "r".into(),
            seq: None,
            attempt_id: Some(attempt_id.into()),
            message_id: None,
            mailbox: mailbox.into(),
            status,
            folder,
            folder_name: None,
            uidvalidity: None,
            uid: None,
            internal_date: None,
            accepted_at: None,
            latency_ms,
            evidence: Evidence::default(),
            observed_at: Default::default(),
        }
    }

    /// An empty, observed cell p/s/starttls.
    pub fn cell() -> CellStats {
        CellStats::empty("p", "s", "192.0.2.1".into(), TlsMode::Starttls, true)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{attempt, cell};
    use super::*;
    use crate::record::{DecidingReply, Stage};

    fn plan() -> Plan {
        let scn = crate::scenario::load_scenario(std::path::Path::new(
            "scenarios/connector-before-after.toml",
        ))
        .unwrap();
        let tgt = crate::scenario::load_target(None).unwrap();
        crate::scenario::build_plan(&scn, &tgt).unwrap()
    }

    fn cell_in(
        phase: &str,
        sender: &str,
        tls: TlsMode,
        sent: u64,
        throttled: u64,
        accepted: u64,
    ) -> CellStats {
        let mut c = cell();
        c.phase = phase.into();
        c.sender = sender.into();
        c.tls = tls;
        (c.sent, c.throttled, c.accepted) = (sent, throttled, accepted);
        c
    }

    #[test]
    fn deltas_compare_each_cell_across_a_change_step_with_rounded_rates() {
        let plan = plan();
        assert!(
            plan.phases[1].change.is_some(),
            "the scenario changes the connector before `after`"
        );
        let cells = vec![
            cell_in("before", "primary", TlsMode::Starttls, 3, 2, 1),
            cell_in("before", "secondary", TlsMode::Starttls, 12, 12, 0),
            cell_in("before", "primary", TlsMode::None, 12, 7, 5),
            cell_in("after", "primary", TlsMode::Starttls, 12, 0, 12),
            // The same sender with another TLS mode is another cell.
            cell_in("after", "secondary", TlsMode::None, 6, 0, 0),
        ];
        let d = deltas(&plan, &cells);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0],
            Delta {
                sender: "primary".into(),
                tls: TlsMode::Starttls,
                before: "before".into(),
                after: "after".into(),
                throttle_rate_before: 0.667,
                throttle_rate_after: 0.0,
                accepted_rate_before: 0.333,
                accepted_rate_after: 1.0,
            }
        );
    }

    #[test]
    fn a_side_that_sent_nothing_has_no_delta() {
        let plan = plan();
        for (b, a) in [(0, 12), (12, 0)] {
            let cells = vec![
                cell_in("before", "primary", TlsMode::Starttls, b, 0, b),
                cell_in("after", "primary", TlsMode::Starttls, a, 0, a),
            ];
            assert!(
                deltas(&plan, &cells).is_empty(),
                "sent {b} before, {a} after"
            );
        }
    }

    #[test]
    fn phases_without_a_change_step_between_them_have_no_delta() {
        let mut plan = plan();
        plan.phases[1].change = None;
        let cells = vec![
            cell_in("before", "primary", TlsMode::Starttls, 12, 12, 0),
            cell_in("after", "primary", TlsMode::Starttls, 12, 0, 12),
        ];
        assert!(deltas(&plan, &cells).is_empty());
    }

    #[test]
    fn rate_over_nothing_is_zero() {
        assert_eq!(rate(3, 0), 0.0);
        assert_eq!(rate(1, 4), 0.25);
    }

    fn replied(
        seq: &str,
        ip: &str,
        outcome: OutcomeClass,
        code: u16,
        enhanced: &str,
        text: &str,
    ) -> AttemptRecord {
        let mut a = attempt(seq, 1, outcome, 0.0);
        a.source_ip = ip.parse().unwrap();
        a.reply = Some(DecidingReply {
            stage: Stage::Rcpt,
            code,
            enhanced: Some(enhanced.into()),
            text: text.into(),
        });
        a.token = crate::reply::extract_token(text);
        a
    }

    #[test]
    fn replies_are_grouped_by_code_and_token_and_explained() {
        use OutcomeClass::*;
        let busy = "Server busy. Please try again later from [192.0.2.1]. (AS761)";
        let unknown = "Totally unknown thing";
        let banned = "Access denied, banned sending IP [192.0.2.1]";
        let (one, two) = ("192.0.2.1", "192.0.2.2");
        let mut attempts: Vec<AttemptRecord> = [
            ("m1", two, Throttled, 451, "4.7.500", busy),
            ("m2", one, Throttled, 451, "4.7.500", busy),
            ("m3", two, Throttled, 451, "4.7.500", busy),
            (
                "m4",
                one,
                Accepted,
                250,
                "2.6.0",
                "Queued mail for delivery",
            ),
            ("m5", one, Rejected, 554, "5.9.9", unknown),
            ("m6", one, Rejected, 554, "5.9.9", unknown),
            ("m7", one, Rejected, 550, "5.7.606", banned),
        ]
        .into_iter()
        .map(|(seq, ip, o, code, enhanced, text)| replied(seq, ip, o, code, enhanced, text))
        .collect();
        attempts.push(attempt("m8", 1, ConnectFailure, 0.0)); // no reply at all
        let by_seq = cells::attempts_by_message(&attempts);
        let mut kinds: BTreeMap<&str, Kind> =
            by_seq.keys().map(|k| (*k, Kind::Planned(0))).collect();
        kinds.insert("m5", Kind::Probe(0));
        let g = reply_groups(&by_seq, &kinds);
        // Most frequent first, then by code; 2xx and reply-less attempts left out.
        let order: Vec<(u16, u64)> = g.iter().map(|g| (g.code, g.count)).collect();
        assert_eq!(order, [(451, 3), (554, 2), (550, 1)]);
        // Each attempt in the count of its kind: m5 is a probe here, the rest first attempts.
        let split: Vec<(u64, u64, u64, u64)> = g
            .iter()
            .map(|g| (g.first_attempts, g.retries, g.probes, g.unplanned))
            .collect();
        assert_eq!(split, [(3, 0, 0, 0), (1, 0, 1, 0), (1, 0, 0, 0)]);
        let throttling = &g[0];
        assert_eq!(throttling.token.as_deref(), Some("AS761"));
        assert_eq!(
            throttling.source_ips,
            ["192.0.2.1", "192.0.2.2"],
            "once each, sorted"
        );
        assert_eq!(throttling.family.as_deref(), Some("ip-throttling"));
        assert_eq!(throttling.connector, Some(reply::ConnectorAnswer::Helps));
        assert!(throttling.meaning.is_some() && throttling.action.is_some());
        assert!(
            throttling.sample.contains("451 4.7.500 Server busy"),
            "{}",
            throttling.sample
        );
        assert_eq!(g[2].family.as_deref(), Some("banned-ip"));
        // An unknown code has neither meaning nor action to offer.
        assert_eq!((g[1].meaning.as_ref(), g[1].action.as_ref()), (None, None));
    }

    fn traced(ip: &str, decision: &str, message_id: Option<&str>) -> TraceEntry {
        TraceEntry {
            source_ip: ip.into(),
            decision: decision.into(),
            message_id: message_id.map(Into::into),
        }
    }

    #[test]
    fn the_trace_agrees_when_accepted_ids_and_refusals_per_ip_match() {
        let ok = attempt("m1", 1, OutcomeClass::Accepted, 0.0);
        let throttled = attempt("m2", 1, OutcomeClass::Throttled, 0.0);
        let trace = vec![
            traced("192.0.2.1", "throttled", None),
            traced("192.0.2.1", "accepted", Some("<m1@test>")),
            traced("192.0.2.1", "abandoned", None),
        ];
        let t = cross_check(&[ok, throttled], &trace);
        assert_eq!(
            t,
            TraceCheck {
                agreed: true,
                accepted_matched: 1,
                refused_compared: 1,
                mismatches: vec![]
            }
        );
    }

    #[test]
    fn the_trace_disagrees_on_a_lost_acceptance_or_another_count_of_refusals() {
        let ok = attempt("m1", 1, OutcomeClass::Accepted, 0.0);
        let mut tls = attempt("m2", 1, OutcomeClass::TlsRequired, 0.0);
        tls.source_ip = "192.0.2.9".parse().unwrap();
        // Refused at MAIL FROM: not a transaction the trace records.
        let mut early = attempt("m3", 1, OutcomeClass::Rejected, 0.0);
        early.transcript[0].code = Some(550);
        let trace = vec![
            traced("192.0.2.1", "accepted", Some("<other@test>")),
            traced("192.0.2.9", "tls_required", None),
            traced("192.0.2.9", "tls_required", None),
        ];
        let t = cross_check(&[ok, tls, early], &trace);
        assert!(!t.agreed);
        assert_eq!((t.accepted_matched, t.refused_compared), (0, 1));
        assert_eq!(
            t.mismatches,
            [
                "accepted <m1@test> has no accepted trace record",
                "trace accepted <other@test>, but no attempt record says accepted",
                "192.0.2.9: attempts record 1 refused transactions (tls-required 1), the trace 2 (tls-required 2)",
            ]
        );
    }

    fn golden() -> RunData {
        load_run_dir(std::path::Path::new("tests/data/golden/main-run")).unwrap()
    }

    #[test]
    fn every_attempt_and_copy_is_counted_once_and_probes_apart() {
        let s = analyse(&golden());
        let t = &s.totals;
        assert_eq!(
            (
                t.attempts,
                t.sent,
                t.retries,
                t.unsent,
                t.probes,
                t.unplanned
            ),
            (100, 84, 0, 0, 16, 0)
        );
        assert_eq!(
            (
                t.planned_copies.found,
                t.probe_copies.found,
                t.unplanned_copies.found
            ),
            (34, 2, 0),
            "the run printed 36 found: 34 planned and 2 probes"
        );
        assert_eq!(s.cells.iter().map(|c| c.delivered).sum::<u64>(), 34);
        assert_eq!(s.probe_cells.len(), 4);
        assert_eq!(s.probe_cells.iter().map(|c| c.sent).sum::<u64>(), 16);
        assert_eq!(s.probe_cells.iter().map(|c| c.delivered).sum::<u64>(), 2);
        // The throttling replies: 38 in the matrix and 12 probes, 50 in all.
        let throttled: u64 = s.cells.iter().map(|c| c.throttled).sum();
        let g = &s.replies[0];
        assert_eq!(
            (g.count, g.first_attempts, g.retries, g.probes),
            (50, throttled, 0, 12)
        );
        assert_eq!(throttled, 38);
        let lat: Vec<(&str, usize)> = s
            .latency
            .iter()
            .map(|l| (l.phase.as_str(), l.latencies_ms.len()))
            .collect();
        assert_eq!(lat, [("before", 10), ("after", 24)]);
        let th = &s.latency[1].thresholds;
        assert_eq!(th.len(), 1, "one threshold for both cells");
        assert_eq!(
            (th[0].ms, th[0].metric, th[0].passed, th[0].cells.len()),
            (60_000.0, Metric::LatencyP95, true, 2)
        );
        assert_eq!(s.timeline.len(), 84);
        assert!(s.cells.iter().all(|c| c.sending_s > 0.0));
    }

    #[test]
    fn cells_an_interrupted_run_never_reached_are_skipped_not_failed() {
        let mut data = golden();
        data.run.interrupted = true;
        // Every planned message of `after` recorded as never sent, as an interrupted run does.
        for a in data.attempts.iter_mut().filter(|a| a.phase == "after") {
            a.outcome = OutcomeClass::Interrupted;
            a.transcript.clear();
            (a.reply, a.tls) = (None, None);
        }
        let s = analyse(&data);
        let after: Vec<&Verdict> = s
            .expectations
            .iter()
            .filter(|v| v.phase == "after")
            .collect();
        assert_eq!(after.len(), 14);
        assert!(after.iter().all(|v| v.skipped && !v.passed), "{after:?}");
        assert_eq!(
            after[0].detail,
            "not measured: the run was interrupted before this cell sent anything (12 planned messages never sent)"
        );
        let mut before = s.expectations.iter().filter(|v| v.phase == "before");
        assert!(before.all(|v| v.passed && !v.skipped));
        assert_eq!((s.totals.unsent, s.totals.sent), (36, 48));
        assert_eq!(s.verdict, RunVerdict::Fail);
    }

    #[test]
    fn summarize_counts_each_class_in_name_order() {
        let v: Vec<String> = ["throttled", "deferred", "throttled"]
            .map(String::from)
            .to_vec();
        assert_eq!(summarize(&v), "deferred 1, throttled 2");
        assert_eq!(summarize(&[]), "");
    }
}
