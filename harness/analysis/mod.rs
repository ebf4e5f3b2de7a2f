//! Analysis of a run from its records alone: the phase × sender × TLS matrix, throttle onset,
//! before/after deltas, connector timing, replies seen, expectation verdicts, and the cross-check
//! against the simulator's message trace.
//!
//! Everything here is a pure function of the run directory's files, so `mailharness report`
//! reproduces `summary.json` byte for byte.

mod load;

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::record::{AttemptRecord, FolderKind, ObservationRecord, ObservationStatus};
use crate::reply;
use crate::scenario::check::{Check, Metric, Op, Value};
use crate::scenario::plan::Plan;
use crate::stats::nearest_rank;
use crate::vocab::{
    ApplyMethod, ConnectorAction, OutcomeClass, RunVerdict, TargetKind, TlsMode, WaitMethod,
};

pub use load::{files, load_run_dir, LoadError, RunData, TraceEntry};

/// Version of `summary.json`.
pub const SUMMARY_SCHEMA: u32 = 1;

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
    /// The matrix: one row per phase × sender × TLS cell, in plan order.
    pub cells: Vec<CellStats>,
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
    /// Attempt timeline points for charts: (phase, sender, tls, ms since phase start, outcome).
    pub timeline: Vec<TimelinePoint>,
    /// Delivery latencies in ms of every found message, sorted, for the distribution chart.
    pub latencies_ms: Vec<f64>,
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
    /// How many attempts ended with it.
    pub count: u64,
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

/// Rounds to 3 decimals so summaries are stable and readable.
fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn version_rank(v: &str) -> (u8, u8) {
    v.split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 0))
}

/// Analyses a loaded run.
pub fn analyse(data: &RunData) -> Summary {
    let plan = &data.plan;
    let run = &data.run;
    let phase_start: BTreeMap<&str, f64> = run
        .phases
        .iter()
        .map(|p| (p.name.as_str(), p.started_ms))
        .collect();
    // One observation per recipient: a message to two mailboxes has two.
    let mut obs_by_attempt: BTreeMap<&str, Vec<&ObservationRecord>> = BTreeMap::new();
    for o in &data.observations {
        if let Some(a) = o.attempt_id.as_deref() {
            obs_by_attempt.entry(a).or_default().push(o);
        }
    }
    let observed = data.observed;

    // Group attempts by seq to find each message's first and final attempt.
    let mut by_seq: BTreeMap<&str, Vec<&AttemptRecord>> = BTreeMap::new();
    for a in &data.attempts {
        by_seq.entry(a.seq.as_str()).or_default().push(a);
    }
    for v in by_seq.values_mut() {
        v.sort_by_key(|a| a.attempt);
    }

    let mut cells: Vec<CellStats> = Vec::new();
    let mut cell_index: BTreeMap<(String, String, TlsMode), usize> = BTreeMap::new();
    let mut latencies_all = Vec::new();
    let mut timeline = Vec::new();
    for phase in &plan.phases {
        for b in &phase.bursts {
            let key = (phase.name.clone(), b.sender.clone(), b.tls);
            if let Entry::Vacant(slot) = cell_index.entry(key) {
                slot.insert(cells.len());
                cells.push(CellStats::empty(
                    &phase.name,
                    &b.sender,
                    b.source_ip.to_string(),
                    b.tls,
                    observed,
                ));
            }
        }
    }
    let mut cell_lat: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    let mut cell_first: Vec<Vec<&AttemptRecord>> = vec![Vec::new(); cells.len()];
    for attempts in by_seq.values() {
        let first = attempts[0];
        let Some(&ci) =
            cell_index.get(&(first.phase.clone(), first.sender.clone(), first.tls_mode))
        else {
            continue; // probes and other attempts outside the plan's cells
        };
        let last = attempts[attempts.len() - 1];
        let c = &mut cells[ci];
        if first.never_sent() {
            // Counting it as sent would let `throttle_rate <= 0` pass on messages never tried.
            c.unsent += 1;
            continue;
        }
        c.sent += 1;
        c.retries += attempts.len() as u64 - 1;
        match first.outcome {
            OutcomeClass::Accepted => c.accepted += 1,
            OutcomeClass::Throttled => c.throttled += 1,
            OutcomeClass::RateLimited => c.rate_limited += 1,
            OutcomeClass::Deferred => c.deferred += 1,
            OutcomeClass::TlsRequired => c.tls_required += 1,
            OutcomeClass::Rejected => c.rejected += 1,
            OutcomeClass::Interrupted => c.interrupted += 1,
            OutcomeClass::TlsFailure
            | OutcomeClass::ConnectFailure
            | OutcomeClass::Timeout
            | OutcomeClass::ProtocolError => c.failed += 1,
        }
        if first.outcome != OutcomeClass::Accepted && last.outcome == OutcomeClass::Accepted {
            c.accepted_after_retry += 1;
        }
        if let Some(t) = &first.token {
            *c.tokens.entry(t.clone()).or_default() += 1;
        }
        let v = first
            .tls
            .as_ref()
            .map(|t| t.version.clone())
            .unwrap_or_else(|| "none".into());
        *c.tls_versions.entry(v).or_default() += 1;
        // Delivery: the accepted attempt (first or a retry) and its observation.
        if let Some(acc) = attempts
            .iter()
            .find(|a| a.outcome == OutcomeClass::Accepted)
        {
            if let Some(copies) = obs_by_attempt.get(acc.attempt_id.as_str()) {
                let found: Vec<&&ObservationRecord> = copies
                    .iter()
                    .filter(|o| o.status == ObservationStatus::Found)
                    .collect();
                if copies
                    .iter()
                    .any(|o| o.status == ObservationStatus::Missing)
                {
                    // Delivered means every recipient's copy arrived.
                    c.missing += 1;
                } else if !found.is_empty() {
                    c.delivered += 1;
                    // One copy in Junk puts the message in Junk: that is what a customer sees.
                    if found.iter().any(|o| o.folder == Some(FolderKind::Junk)) {
                        c.junk += 1;
                    } else if found.iter().any(|o| o.folder == Some(FolderKind::Inbox)) {
                        c.inbox += 1;
                    }
                    // The message is delivered when its last copy is.
                    if let Some(l) = found.iter().filter_map(|o| o.latency_ms).reduce(f64::max) {
                        cell_lat[ci].push(l);
                        latencies_all.push(l);
                    }
                }
            } else if observed {
                c.missing += 1;
            }
        }
        let start = phase_start
            .get(first.phase.as_str())
            .copied()
            .unwrap_or(0.0);
        timeline.push(TimelinePoint {
            phase: first.phase.clone(),
            sender: first.sender.clone(),
            tls: first.tls_mode,
            t_ms: r3(first.started_ms - start),
            outcome: first.outcome,
        });
        cell_first[ci].push(first);
    }
    for (ci, c) in cells.iter_mut().enumerate() {
        let lat = &mut cell_lat[ci];
        lat.sort_by(f64::total_cmp);
        c.latency_p50_ms = nearest_rank(lat, 50.0).map(r3);
        c.latency_p95_ms = nearest_rank(lat, 95.0).map(r3);
        c.latency_max_ms = lat.last().copied().map(r3);
        c.min_tls_version = c
            .tls_versions
            .keys()
            .min_by_key(|v| version_rank(v))
            .cloned();
        let firsts = &mut cell_first[ci];
        firsts.sort_by(|a, b| {
            a.started_ms
                .total_cmp(&b.started_ms)
                .then(a.index.cmp(&b.index))
        });
        let start = phase_start.get(c.phase.as_str()).copied().unwrap_or(0.0);
        let onset_pos = firsts
            .iter()
            .position(|a| a.outcome == OutcomeClass::Throttled);
        if let Some(pos) = onset_pos {
            let a = firsts[pos];
            c.throttle_onset = Some(Onset {
                index: a.index,
                after_s: r3((a.started_ms - start) / 1000.0),
                accepted_before: firsts[..pos]
                    .iter()
                    .filter(|x| x.outcome == OutcomeClass::Accepted)
                    .count() as u64,
            });
        }
        let window = &firsts[..onset_pos.unwrap_or(firsts.len())];
        let accepted: Vec<&&AttemptRecord> = window
            .iter()
            .filter(|a| a.outcome == OutcomeClass::Accepted)
            .collect();
        if accepted.len() >= 2 {
            let span_ms = accepted[accepted.len() - 1].finished_ms - accepted[0].started_ms;
            if span_ms > 0.0 {
                c.accepted_rate_per_min = Some(r3(accepted.len() as f64 * 60_000.0 / span_ms));
            }
        }
    }
    latencies_all.sort_by(f64::total_cmp);
    let latencies_ms: Vec<f64> = latencies_all.into_iter().map(r3).collect();

    let deltas = deltas(plan, &cells);
    let replies = reply_groups(&data.attempts);
    let expectations = plan
        .phases
        .iter()
        .flat_map(|p| p.expectations.iter())
        .map(|e| {
            let cell = cell_index
                .get(&(e.phase.clone(), e.sender.clone(), e.tls))
                .map(|&i| &cells[i]);
            evaluate(&e.phase, &e.sender, e.tls, &e.check, cell)
        })
        .collect::<Vec<_>>();
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
    let phases = run
        .phases
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
        .collect();
    Summary {
        schema: SUMMARY_SCHEMA,
        run_id: run.run_id.clone(),
        scenario: plan.scenario.clone(),
        description: plan.description.clone(),
        target: plan.target.clone(),
        target_kind: run.target_kind,
        started_at: run
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        finished_at: run
            .finished_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        interrupted: run.interrupted,
        error: run.error.clone(),
        record_problems: data.problems.clone(),
        senders: plan
            .senders
            .iter()
            .map(|(r, ip)| (r.clone(), ip.to_string()))
            .collect(),
        phases,
        cells,
        deltas,
        replies,
        expectations,
        anomalies,
        trace_check,
        timeline,
        latencies_ms,
        verdict: RunVerdict::from_passed(pass),
    }
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

fn reply_groups(attempts: &[AttemptRecord]) -> Vec<ReplyGroup> {
    let mut groups: BTreeMap<(u16, Option<String>, Option<String>), ReplyGroup> = BTreeMap::new();
    for a in attempts {
        let Some(r) = &a.reply else { continue };
        if (200..300).contains(&r.code) {
            continue;
        }
        let key = (r.code, r.enhanced.clone(), a.token.clone());
        let g = groups.entry(key).or_insert_with(|| {
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
                source_ips: Vec::new(),
                sample: status.shown(),
                family: e.family.clone(),
                meaning: e.known.then(|| e.meaning.clone()),
                connector: e.connector,
                action: e.known.then(|| e.ops.clone()),
            }
        });
        g.count += 1;
        let ip = a.source_ip.to_string();
        if !g.source_ips.contains(&ip) {
            g.source_ips.push(ip);
            g.source_ips.sort();
        }
    }
    let mut v: Vec<ReplyGroup> = groups.into_values().collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    v
}

fn evaluate(
    phase: &str,
    sender: &str,
    tls: TlsMode,
    check: &Check,
    cell: Option<&CellStats>,
) -> Verdict {
    let mut v = Verdict {
        phase: phase.into(),
        sender: sender.into(),
        tls,
        check: check.to_string(),
        passed: false,
        actual: "n/a".into(),
        detail: String::new(),
    };
    let Some(c) = cell else {
        v.detail = "no messages were sent in this cell".into();
        return v;
    };
    if c.sent == 0 {
        v.detail = "no messages were sent in this cell".into();
        return v;
    }
    let count = |n: u64| (n as f64, format!("{n}"));
    let ratio = |n: u64, d: u64, what: &str, of: &str| -> Option<(f64, String, String)> {
        if d == 0 {
            None
        } else {
            let r = n as f64 / d as f64;
            Some((r, format!("{:.3}", r), format!("{n} of {d} {of} {what}")))
        }
    };
    if check.metric.needs_observation() && !c.observed {
        v.detail = "delivery was not observed in this run (no observations.jsonl), so this cannot be measured".into();
        return v;
    }
    let numeric: Option<(f64, String, String)> = match check.metric {
        Metric::Sent => {
            let (x, s) = count(c.sent);
            Some((x, s, format!("{} messages sent", c.sent)))
        }
        Metric::Accepted => {
            let (x, s) = count(c.accepted);
            Some((x, s, format!("{} of {} accepted", c.accepted, c.sent)))
        }
        Metric::Throttled => {
            let (x, s) = count(c.throttled);
            Some((x, s, format!("{} of {} throttled", c.throttled, c.sent)))
        }
        Metric::Rejected => {
            let (x, s) = count(c.rejected);
            Some((x, s, format!("{} of {} rejected", c.rejected, c.sent)))
        }
        Metric::Delivered => {
            let (x, s) = count(c.delivered);
            Some((
                x,
                s,
                format!(
                    "{} of {} accepted were delivered",
                    c.delivered,
                    c.accepted_in_the_end()
                ),
            ))
        }
        Metric::Junk => {
            let (x, s) = count(c.junk);
            Some((
                x,
                s,
                format!("{} of {} delivered were in Junk", c.junk, c.delivered),
            ))
        }
        Metric::Missing => {
            let (x, s) = count(c.missing);
            Some((
                x,
                s,
                format!(
                    "{} of {} accepted were missing",
                    c.missing,
                    c.accepted_in_the_end()
                ),
            ))
        }
        Metric::AcceptedRate => ratio(c.accepted, c.sent, "accepted", "sent were"),
        Metric::ThrottleRate => ratio(c.throttled, c.sent, "throttled", "sent were"),
        Metric::RejectedRate => ratio(c.rejected, c.sent, "rejected", "sent were"),
        Metric::DeferredRate => ratio(c.deferred, c.sent, "deferred", "sent were"),
        Metric::TlsRequiredRate => ratio(
            c.tls_required,
            c.sent,
            "refused for lack of TLS",
            "sent were",
        ),
        // Retried messages accepted later were delivered too: measure against all accepted.
        Metric::DeliveredRate => ratio(
            c.delivered,
            c.accepted_in_the_end(),
            "delivered",
            "accepted were",
        ),
        Metric::MissingRate => ratio(
            c.missing,
            c.accepted_in_the_end(),
            "missing",
            "accepted were",
        ),
        Metric::JunkRate => ratio(c.junk, c.delivered, "in Junk", "delivered were"),
        Metric::InboxRate => ratio(c.inbox, c.delivered, "in the Inbox", "delivered were"),
        Metric::LatencyP50 => c.latency_p50_ms.map(|l| {
            (
                l,
                format!("{:.0}ms", l),
                format!("median latency {:.0}ms over {} delivered", l, c.delivered),
            )
        }),
        Metric::LatencyP95 => c.latency_p95_ms.map(|l| {
            (
                l,
                format!("{:.0}ms", l),
                format!(
                    "95th percentile latency {:.0}ms over {} delivered",
                    l, c.delivered
                ),
            )
        }),
        Metric::LatencyMax => c.latency_max_ms.map(|l| {
            (
                l,
                format!("{:.0}ms", l),
                format!("largest latency {:.0}ms over {} delivered", l, c.delivered),
            )
        }),
        Metric::TlsVersion | Metric::Outcome => None,
    };
    match (check.metric, &check.value) {
        (Metric::TlsVersion, Value::TlsVersion(a, b)) => {
            let min = c.min_tls_version.clone().unwrap_or_else(|| "none".into());
            let have = version_rank(&min);
            v.passed = have != (0, 0) && check.op.holds(have, (*a, *b));
            v.actual = min.clone();
            let seen: Vec<String> = c
                .tls_versions
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            v.detail = format!(
                "lowest TLS version {min}; versions seen {}",
                seen.join(", ")
            );
        }
        (Metric::Outcome, Value::Outcome(o)) => {
            let n = match o {
                OutcomeClass::Accepted => c.accepted,
                OutcomeClass::Throttled => c.throttled,
                OutcomeClass::RateLimited => c.rate_limited,
                OutcomeClass::Deferred => c.deferred,
                OutcomeClass::TlsRequired => c.tls_required,
                OutcomeClass::Rejected => c.rejected,
                OutcomeClass::Interrupted => c.interrupted,
                _ => c.failed,
            };
            v.passed = match check.op {
                Op::Eq => n == c.sent,
                Op::Ne => n == 0,
                _ => false,
            };
            v.actual = format!("{n} of {}", c.sent);
            v.detail = format!("{n} of {} sent ended {o}", c.sent);
        }
        (_, value) => match numeric {
            None => {
                v.detail = match check.metric {
                    m if m.needs_observation() && c.accepted_in_the_end() == 0 => {
                        "no message was accepted, so there is nothing to measure".into()
                    }
                    m if m.needs_observation() => "no delivered message to measure".into(),
                    _ => "no data".into(),
                };
            }
            Some((x, shown, detail)) => {
                let want = match value {
                    Value::Number(n) => *n,
                    Value::Duration(d) => d.as_secs_f64() * 1000.0,
                    _ => f64::NAN,
                };
                v.passed = check.op.holds(r3(x), r3(want));
                v.actual = shown;
                v.detail = detail;
            }
        },
    }
    v
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
