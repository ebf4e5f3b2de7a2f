//! The phase × sender × TLS matrix: which cell each message belongs to, what its attempts and
//! observations add to the cell's counts, and the statistics finished once every message is in
//! (latency percentiles, lowest TLS version, throttle onset, accepted rate).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use super::{r3, CellStats, Onset, TimelinePoint};
use crate::record::{AttemptRecord, FolderKind, ObservationRecord, ObservationStatus};
use crate::scenario::plan::Plan;
use crate::vocab::{OutcomeClass, TlsMode};

/// The plan's cells in plan order, and where each (phase, sender, TLS) cell sits.
pub(super) struct Matrix {
    /// One per distinct phase × sender × TLS of the plan's bursts.
    pub cells: Vec<CellStats>,
    index: BTreeMap<(String, String, TlsMode), usize>,
}

impl Matrix {
    /// Empty cells for every burst of the plan; a cell with several bursts appears once.
    pub fn from_plan(plan: &Plan, observed: bool) -> Self {
        let mut m = Matrix {
            cells: Vec::new(),
            index: BTreeMap::new(),
        };
        for phase in &plan.phases {
            for b in &phase.bursts {
                let key = (phase.name.clone(), b.sender.clone(), b.tls);
                if let Entry::Vacant(slot) = m.index.entry(key) {
                    slot.insert(m.cells.len());
                    m.cells.push(CellStats::empty(
                        &phase.name,
                        &b.sender,
                        b.source_ip.to_string(),
                        b.tls,
                        observed,
                    ));
                }
            }
        }
        m
    }

    /// Where the cell of `phase`, `sender` and `tls` sits, if the plan has it.
    pub fn position(&self, phase: &str, sender: &str, tls: TlsMode) -> Option<usize> {
        self.index
            .get(&(phase.to_string(), sender.to_string(), tls))
            .copied()
    }

    /// The cell of `phase`, `sender` and `tls`, if the plan has it.
    pub fn get(&self, phase: &str, sender: &str, tls: TlsMode) -> Option<&CellStats> {
        self.position(phase, sender, tls).map(|i| &self.cells[i])
    }
}

/// What one cell collects while messages are counted, for the statistics finished afterwards.
#[derive(Default, Clone)]
pub(super) struct CellSamples<'a> {
    /// Delivery latency (ms) of each delivered message.
    pub latencies: Vec<f64>,
    /// Each sent message's first attempt.
    pub firsts: Vec<&'a AttemptRecord>,
}

/// What counting every message yields besides the cells' counts.
pub(super) struct Counted<'a> {
    /// Per cell, in the matrix's order.
    pub samples: Vec<CellSamples<'a>>,
    /// One point per sent message, in message (seq) order.
    pub timeline: Vec<TimelinePoint>,
    /// Every delivered message's latency (ms), unsorted.
    pub latencies: Vec<f64>,
}

/// Each message's attempts, first attempt first, keyed by the message's seq.
pub(super) fn attempts_by_message(
    attempts: &[AttemptRecord],
) -> BTreeMap<&str, Vec<&AttemptRecord>> {
    let mut by_seq: BTreeMap<&str, Vec<&AttemptRecord>> = BTreeMap::new();
    for a in attempts {
        by_seq.entry(a.seq.as_str()).or_default().push(a);
    }
    for v in by_seq.values_mut() {
        v.sort_by_key(|a| a.attempt);
    }
    by_seq
}

/// Observations by attempt id. One per recipient: a message to two mailboxes has two.
pub(super) fn observations_by_attempt(
    observations: &[ObservationRecord],
) -> BTreeMap<&str, Vec<&ObservationRecord>> {
    let mut by_attempt: BTreeMap<&str, Vec<&ObservationRecord>> = BTreeMap::new();
    for o in observations {
        if let Some(a) = o.attempt_id.as_deref() {
            by_attempt.entry(a).or_default().push(o);
        }
    }
    by_attempt
}

/// Counts every message of the run into its cell. Attempts outside the plan's cells (probes) are
/// left out; `phase_start` gives each phase's start (ms) for the timeline.
pub(super) fn count_messages<'a>(
    matrix: &mut Matrix,
    attempts: &'a [AttemptRecord],
    observations: &[ObservationRecord],
    observed: bool,
    phase_start: &BTreeMap<&str, f64>,
) -> Counted<'a> {
    let obs_by_attempt = observations_by_attempt(observations);
    let mut counted = Counted {
        samples: vec![CellSamples::default(); matrix.cells.len()],
        timeline: Vec::new(),
        latencies: Vec::new(),
    };
    for attempts in attempts_by_message(attempts).values() {
        let first = attempts[0];
        let Some(ci) = matrix.position(&first.phase, &first.sender, first.tls_mode) else {
            continue; // probes and other attempts outside the plan's cells
        };
        let c = &mut matrix.cells[ci];
        if first.never_sent() {
            // Counting it as sent would let `throttle_rate <= 0` pass on messages never tried.
            c.unsent += 1;
            continue;
        }
        count_attempts(c, attempts);
        // Delivery: the accepted attempt (first or a retry) and its observations.
        if let Some(acc) = attempts
            .iter()
            .find(|a| a.outcome == OutcomeClass::Accepted)
        {
            let copies = obs_by_attempt.get(acc.attempt_id.as_str());
            if let Some(l) = count_delivery(c, copies.map(Vec::as_slice), observed) {
                counted.samples[ci].latencies.push(l);
                counted.latencies.push(l);
            }
        }
        let start = phase_start.get(first.phase.as_str()).copied();
        counted
            .timeline
            .push(timeline_point(first, start.unwrap_or(0.0)));
        counted.samples[ci].firsts.push(first);
    }
    counted
}

/// Counts one sent message's attempts (first attempt first) into its cell: the first attempt's
/// outcome, token and TLS version, retries, and acceptance after retrying.
pub(super) fn count_attempts(c: &mut CellStats, attempts: &[&AttemptRecord]) {
    let first = attempts[0];
    let last = attempts[attempts.len() - 1];
    c.sent += 1;
    c.retries += attempts.len() as u64 - 1;
    *c.outcome_counter(first.outcome) += 1;
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
}

/// Counts where an accepted message went, given the observations of its accepted attempt
/// (`None`: none were recorded). Returns its delivery latency (ms) when it was delivered and the
/// latency is known.
pub(super) fn count_delivery(
    c: &mut CellStats,
    copies: Option<&[&ObservationRecord]>,
    observed: bool,
) -> Option<f64> {
    let Some(copies) = copies else {
        if observed {
            c.missing += 1;
        }
        return None;
    };
    if copies
        .iter()
        .any(|o| o.status == ObservationStatus::Missing)
    {
        // Delivered means every recipient's copy arrived.
        c.missing += 1;
        return None;
    }
    let found: Vec<&&ObservationRecord> = copies
        .iter()
        .filter(|o| o.status == ObservationStatus::Found)
        .collect();
    if found.is_empty() {
        return None;
    }
    c.delivered += 1;
    // One copy in Junk puts the message in Junk: that is what a customer sees.
    if found.iter().any(|o| o.folder == Some(FolderKind::Junk)) {
        c.junk += 1;
    } else if found.iter().any(|o| o.folder == Some(FolderKind::Inbox)) {
        c.inbox += 1;
    }
    // The message is delivered when its last copy is.
    found.iter().filter_map(|o| o.latency_ms).reduce(f64::max)
}

/// The timeline point of a message's first attempt, `phase_start` being its phase's start (ms).
fn timeline_point(first: &AttemptRecord, phase_start: f64) -> TimelinePoint {
    TimelinePoint {
        phase: first.phase.clone(),
        sender: first.sender.clone(),
        tls: first.tls_mode,
        t_ms: r3(first.started_ms - phase_start),
        outcome: first.outcome,
    }
}

/// Finishes a cell once every message is counted: latency percentiles, lowest TLS version, where
/// throttling began (`phase_start` in ms), and the accepted rate before it.
pub(super) fn finish_cell(c: &mut CellStats, samples: CellSamples, phase_start: f64) {
    let mut lat = samples.latencies;
    lat.sort_by(f64::total_cmp);
    c.latency_p50_ms = percentile(&lat, 50.0).map(r3);
    c.latency_p95_ms = percentile(&lat, 95.0).map(r3);
    c.latency_max_ms = lat.last().copied().map(r3);
    c.min_tls_version = c
        .tls_versions
        .keys()
        .min_by_key(|v| version_rank(v))
        .cloned();
    let mut firsts = samples.firsts;
    firsts.sort_by(|a, b| {
        a.started_ms
            .total_cmp(&b.started_ms)
            .then(a.index.cmp(&b.index))
    });
    let onset = throttle_onset(&firsts, phase_start);
    let window_end = onset.as_ref().map_or(firsts.len(), |(pos, _)| *pos);
    c.throttle_onset = onset.map(|(_, o)| o);
    c.accepted_rate_per_min = accepted_rate_per_min(&firsts[..window_end]);
}

/// Where throttling began among first attempts in send order: the position of the first throttled
/// one, and the onset as reported. `None` when nothing was throttled.
pub(super) fn throttle_onset(
    firsts: &[&AttemptRecord],
    phase_start: f64,
) -> Option<(usize, Onset)> {
    let pos = firsts
        .iter()
        .position(|a| a.outcome == OutcomeClass::Throttled)?;
    let a = firsts[pos];
    let onset = Onset {
        index: a.index,
        after_s: r3((a.started_ms - phase_start) / 1000.0),
        accepted_before: firsts[..pos]
            .iter()
            .filter(|x| x.outcome == OutcomeClass::Accepted)
            .count() as u64,
    };
    Some((pos, onset))
}

/// Accepted messages per minute over `window` (first attempts in send order), from the first
/// accepted one's start to the last accepted one's end; `None` under two accepted or no time span.
pub(super) fn accepted_rate_per_min(window: &[&AttemptRecord]) -> Option<f64> {
    let accepted: Vec<&&AttemptRecord> = window
        .iter()
        .filter(|a| a.outcome == OutcomeClass::Accepted)
        .collect();
    if accepted.len() < 2 {
        return None;
    }
    let span_ms = accepted[accepted.len() - 1].finished_ms - accepted[0].started_ms;
    (span_ms > 0.0).then(|| r3(accepted.len() as f64 * 60_000.0 / span_ms))
}

/// The nearest-rank percentile `p` (0–100) of sorted values.
pub(super) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// A TLS version such as `1.2` as (major, minor) for ordering; (0, 0) for `none` or anything else.
pub(super) fn version_rank(v: &str) -> (u8, u8) {
    v.split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 0))
}
