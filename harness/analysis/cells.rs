//! The phase × sender × TLS matrix: which cell each message belongs to, what its attempts and
//! observations add to the cell's counts, and the statistics finished once every message is in
//! (latency percentiles, lowest TLS version, throttle onset, accepted rate).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::{r3, CellStats, Onset, TimelinePoint};
use crate::record::{AttemptRecord, FolderKind, ObservationRecord, ObservationStatus};
use crate::scenario::plan::Plan;
use crate::stats::nearest_rank;
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
        let mut m = Matrix::empty();
        for phase in &plan.phases {
            for b in &phase.bursts {
                m.insert(
                    &phase.name,
                    &b.sender,
                    b.source_ip.to_string(),
                    b.tls,
                    observed,
                );
            }
        }
        m
    }

    /// No cells yet: the probe cells are added as probes are found.
    pub fn empty() -> Self {
        Matrix {
            cells: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    /// Adds an empty cell for `phase`, `sender` and `tls` unless there is one.
    pub fn insert(&mut self, phase: &str, sender: &str, ip: String, tls: TlsMode, observed: bool) {
        let key = (phase.to_string(), sender.to_string(), tls);
        if let Entry::Vacant(slot) = self.index.entry(key) {
            slot.insert(self.cells.len());
            self.cells
                .push(CellStats::empty(phase, sender, ip, tls, observed));
        }
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
    /// The earliest start and the latest finish (ms) of the cell's attempts, retries included.
    pub span: Option<(f64, f64)>,
}

/// What counting every message yields besides the cells' counts.
pub(super) struct Counted<'a> {
    /// Per planned cell, in the matrix's order.
    pub samples: Vec<CellSamples<'a>>,
    /// Per probe cell, in the probe matrix's order.
    pub probe_samples: Vec<CellSamples<'a>>,
    /// One point per sent planned message, in message (seq) order; probes have none.
    pub timeline: Vec<TimelinePoint>,
}

/// Which counts a message belongs to: exactly one of them, so every figure adds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A planned message, counted in the matrix cell at this position.
    Planned(usize),
    /// A probe of a change step, counted in the probe cell at this position.
    Probe(usize),
    /// Neither: a record no plan cell and no change step explains; counted only in the totals.
    Unplanned,
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

/// Whether a first attempt is a change step's probe: the run record lists it, or its phase is a
/// probe phase (`<phase>~probe`, as the change step names them) in case the list was cut short.
pub(super) fn is_probe(first: &AttemptRecord, probe_ids: &BTreeSet<&str>) -> bool {
    probe_ids.contains(first.attempt_id.as_str()) || first.phase.ends_with(PROBE_SUFFIX)
}

/// The suffix of the phase name the change step gives its probes.
pub(super) const PROBE_SUFFIX: &str = "~probe";

/// Sorts every message into its kind, creating a probe cell (in `probes`) for each probe phase ×
/// sender × TLS seen, ordered by phase, sender and the TLS mode's name.
pub(super) fn classify<'a>(
    by_seq: &BTreeMap<&'a str, Vec<&'a AttemptRecord>>,
    matrix: &Matrix,
    probes: &mut Matrix,
    probe_ids: &BTreeSet<&str>,
    observed: bool,
) -> BTreeMap<&'a str, Kind> {
    let mut probe_keys = BTreeMap::new();
    for attempts in by_seq.values() {
        let a = attempts[0];
        if is_probe(a, probe_ids) {
            let key = (a.phase.clone(), a.sender.clone(), a.tls_mode.as_str());
            probe_keys.entry(key).or_insert((a.source_ip, a.tls_mode));
        }
    }
    for ((phase, sender, _), (ip, tls)) in probe_keys {
        probes.insert(&phase, &sender, ip.to_string(), tls, observed);
    }
    by_seq
        .iter()
        .map(|(seq, attempts)| {
            let a = attempts[0];
            let kind = if is_probe(a, probe_ids) {
                probes
                    .position(&a.phase, &a.sender, a.tls_mode)
                    .map_or(Kind::Unplanned, Kind::Probe)
            } else {
                matrix
                    .position(&a.phase, &a.sender, a.tls_mode)
                    .map_or(Kind::Unplanned, Kind::Planned)
            };
            (*seq, kind)
        })
        .collect()
}

/// Counts every message into its cell: planned messages into the matrix, probes into the probe
/// cells; unplanned ones into neither. `phase_start` gives each phase's start (ms) for the timeline.
pub(super) fn count_messages<'a>(
    matrix: &mut Matrix,
    probes: &mut Matrix,
    by_seq: &BTreeMap<&str, Vec<&'a AttemptRecord>>,
    kinds: &BTreeMap<&str, Kind>,
    observations: &[ObservationRecord],
    phase_start: &BTreeMap<String, f64>,
) -> Counted<'a> {
    let obs_by_attempt = observations_by_attempt(observations);
    let mut counted = Counted {
        samples: vec![CellSamples::default(); matrix.cells.len()],
        probe_samples: vec![CellSamples::default(); probes.cells.len()],
        timeline: Vec::new(),
    };
    for (seq, attempts) in by_seq {
        let (c, samples) = match kinds.get(seq) {
            Some(Kind::Planned(i)) => (&mut matrix.cells[*i], &mut counted.samples[*i]),
            Some(Kind::Probe(i)) => (&mut probes.cells[*i], &mut counted.probe_samples[*i]),
            _ => continue,
        };
        let first = attempts[0];
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
            let observed = c.observed;
            if let Some(l) = count_delivery(c, copies.map(Vec::as_slice), observed) {
                samples.latencies.push(l);
            }
        }
        for a in attempts {
            let (lo, hi) = samples.span.unwrap_or((a.started_ms, a.finished_ms));
            samples.span = Some((lo.min(a.started_ms), hi.max(a.finished_ms)));
        }
        samples.firsts.push(first);
        if matches!(kinds.get(seq), Some(Kind::Planned(_))) {
            let start = phase_start.get(first.phase.as_str()).copied();
            counted
                .timeline
                .push(timeline_point(first, start.unwrap_or(0.0)));
        }
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
    c.sending_s = samples
        .span
        .map_or(0.0, |(lo, hi)| r3((hi - lo).max(0.0) / 1000.0));
    let mut lat = samples.latencies;
    lat.sort_by(f64::total_cmp);
    c.latency_p50_ms = nearest_rank(&lat, 50.0).map(r3);
    c.latency_p95_ms = nearest_rank(&lat, 95.0).map(r3);
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

/// A TLS version such as `1.2` as (major, minor) for ordering; (0, 0) for `none` or anything else.
pub(super) fn version_rank(v: &str) -> (u8, u8) {
    v.split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{attempt, cell, observation};
    use crate::record::ObservationStatus::{Anomaly, Found, Missing};

    #[test]
    fn a_message_s_attempts_are_grouped_first_attempt_first() {
        let records = vec![
            attempt("m2", 1, OutcomeClass::Accepted, 5.0),
            attempt("m1", 2, OutcomeClass::Accepted, 9.0),
            attempt("m1", 1, OutcomeClass::Throttled, 1.0),
        ];
        let by = attempts_by_message(&records);
        assert_eq!(by.keys().copied().collect::<Vec<_>>(), ["m1", "m2"]);
        let m1: Vec<u32> = by["m1"].iter().map(|a| a.attempt).collect();
        assert_eq!(m1, [1, 2]);
    }

    #[test]
    fn the_first_attempt_decides_the_outcome_and_retries_are_counted_apart() {
        let mut c = cell();
        let mut first = attempt("m", 1, OutcomeClass::Throttled, 0.0);
        first.token = Some("AS761".into());
        let second = attempt("m", 2, OutcomeClass::Deferred, 10.0);
        let third = attempt("m", 3, OutcomeClass::Accepted, 20.0);
        count_attempts(&mut c, &[&first, &second, &third]);
        assert_eq!((c.sent, c.throttled, c.accepted, c.deferred), (1, 1, 0, 0));
        assert_eq!((c.retries, c.accepted_after_retry), (2, 1));
        assert_eq!(c.accepted_in_the_end(), 1);
        assert_eq!(c.tokens["AS761"], 1);
        assert_eq!(c.tls_versions["1.3"], 1);
    }

    #[test]
    fn every_outcome_class_lands_in_its_own_count_and_failures_share_one() {
        let mut c = cell();
        for o in OutcomeClass::ALL {
            let mut a = attempt("m", 1, o, 0.0);
            a.tls = None;
            count_attempts(&mut c, &[&a]);
        }
        assert_eq!(c.sent, OutcomeClass::ALL.len() as u64);
        assert_eq!(c.failed, 4, "TLS, connect, timeout and protocol failures");
        for o in [
            OutcomeClass::Accepted,
            OutcomeClass::Throttled,
            OutcomeClass::RateLimited,
            OutcomeClass::Deferred,
            OutcomeClass::TlsRequired,
            OutcomeClass::Rejected,
            OutcomeClass::Interrupted,
        ] {
            assert_eq!(c.outcome_count(o), 1, "{o}");
        }
        assert_eq!(c.outcome_count(OutcomeClass::Timeout), 4);
        assert_eq!(c.tls_versions["none"], c.sent, "no TLS is counted as none");
        assert_eq!((c.retries, c.accepted_after_retry), (0, 0));
    }

    #[test]
    fn an_accepted_message_with_no_observation_is_missing_only_when_the_run_was_observed() {
        let mut c = cell();
        assert_eq!(count_delivery(&mut c, None, true), None);
        assert_eq!((c.missing, c.delivered), (1, 0));
        let mut c = cell();
        assert_eq!(count_delivery(&mut c, None, false), None);
        assert_eq!((c.missing, c.delivered), (0, 0));
    }

    #[test]
    fn one_missing_copy_makes_the_message_missing() {
        let found = observation("m#1", "a", Found, Some(FolderKind::Inbox), Some(50.0));
        let missing = observation("m#1", "b", Missing, None, None);
        let mut c = cell();
        assert_eq!(
            count_delivery(&mut c, Some(&[&found, &missing]), true),
            None
        );
        assert_eq!((c.missing, c.delivered, c.inbox), (1, 0, 0));
    }

    #[test]
    fn one_copy_in_junk_puts_the_message_in_junk_and_the_last_copy_gives_the_latency() {
        let inbox = observation("m#1", "a", Found, Some(FolderKind::Inbox), Some(900.0));
        let junk = observation("m#1", "b", Found, Some(FolderKind::Junk), Some(300.0));
        let mut c = cell();
        assert_eq!(
            count_delivery(&mut c, Some(&[&inbox, &junk]), true),
            Some(900.0)
        );
        assert_eq!((c.delivered, c.junk, c.inbox, c.missing), (1, 1, 0, 0));
        let mut c = cell();
        assert_eq!(count_delivery(&mut c, Some(&[&inbox]), true), Some(900.0));
        assert_eq!((c.delivered, c.junk, c.inbox), (1, 0, 1));
        // Found without a known latency: delivered, but no latency sample.
        let no_latency = observation("m#1", "a", Found, Some(FolderKind::Inbox), None);
        assert_eq!(count_delivery(&mut c, Some(&[&no_latency]), true), None);
        assert_eq!(c.delivered, 2);
    }

    #[test]
    fn copies_that_are_neither_found_nor_missing_count_nowhere() {
        let odd = observation("m#1", "a", Anomaly, None, None);
        let mut c = cell();
        assert_eq!(count_delivery(&mut c, Some(&[&odd]), true), None);
        assert_eq!((c.delivered, c.missing), (0, 0));
    }

    fn plan() -> Plan {
        let scn = crate::scenario::load_scenario(std::path::Path::new(
            "scenarios/connector-before-after.toml",
        ))
        .unwrap();
        let tgt = crate::scenario::load_target(None).unwrap();
        crate::scenario::build_plan(&scn, &tgt).unwrap()
    }

    #[test]
    fn the_matrix_has_one_cell_per_phase_sender_and_tls_in_plan_order() {
        let plan = plan();
        let m = Matrix::from_plan(&plan, false);
        let mut keys = Vec::new();
        for p in &plan.phases {
            for b in &p.bursts {
                if !keys.contains(&(p.name.clone(), b.sender.clone(), b.tls)) {
                    keys.push((p.name.clone(), b.sender.clone(), b.tls));
                }
            }
        }
        let got: Vec<_> = m
            .cells
            .iter()
            .map(|c| (c.phase.clone(), c.sender.clone(), c.tls))
            .collect();
        assert_eq!(got, keys);
        assert!(m.cells.iter().all(|c| !c.observed && c.sent == 0));
        assert_eq!(m.position("before", "primary", TlsMode::None), Some(0));
        assert_eq!(m.get("before", "nobody", TlsMode::None), None);
    }

    #[test]
    fn counting_leaves_out_probes_and_counts_unsent_messages_apart() {
        let plan = plan();
        let mut m = Matrix::from_plan(&plan, true);
        let cell_of = |a: &mut AttemptRecord| {
            a.phase = "before".into();
            a.sender = "primary".into();
            a.tls_mode = TlsMode::None;
        };
        let mut sent = attempt("m1", 1, OutcomeClass::Accepted, 1500.0);
        cell_of(&mut sent);
        let mut never = attempt("m2", 1, OutcomeClass::Interrupted, 1600.0);
        cell_of(&mut never);
        never.transcript.clear();
        let mut probe = attempt("probe", 1, OutcomeClass::Accepted, 1700.0);
        cell_of(&mut probe);
        probe.phase = "before~probe".into();
        let attempts = vec![sent, never, probe];
        let obs = vec![observation(
            "m1#1",
            "a",
            Found,
            Some(FolderKind::Inbox),
            Some(40.0),
        )];
        let start = BTreeMap::from([("before".to_string(), 1000.0)]);
        let by_seq = attempts_by_message(&attempts);
        let mut probes = Matrix::empty();
        let kinds = classify(&by_seq, &m, &mut probes, &BTreeSet::new(), true);
        assert_eq!(kinds["probe"], Kind::Probe(0));
        assert_eq!(kinds["m1"], Kind::Planned(0));
        let counted = count_messages(&mut m, &mut probes, &by_seq, &kinds, &obs, &start);
        let c = m.get("before", "primary", TlsMode::None).unwrap();
        assert_eq!((c.sent, c.unsent, c.accepted, c.delivered), (1, 1, 1, 1));
        assert_eq!(
            m.cells.iter().map(|c| c.sent).sum::<u64>(),
            1,
            "probe left out"
        );
        let p = &probes.cells[0];
        assert_eq!(
            (p.phase.as_str(), p.sent, p.accepted, p.missing),
            ("before~probe", 1, 1, 1),
            "the probe is counted in its own cell: accepted, and not found"
        );
        assert_eq!(counted.timeline.len(), 1, "probes have no timeline point");
        assert_eq!(
            counted.timeline[0].t_ms, 500.0,
            "ms since the phase started"
        );
        assert_eq!(counted.samples[0].latencies, [40.0]);
        assert_eq!(counted.samples[0].firsts.len(), 1);
        assert_eq!(counted.samples[0].span, Some((1500.0, 1600.0)));
    }

    #[test]
    fn a_probe_is_known_by_the_run_record_or_by_its_phase() {
        let mut listed = attempt("x", 1, OutcomeClass::Accepted, 0.0);
        let ids = BTreeSet::from(["x#1"]);
        assert!(is_probe(&listed, &ids));
        assert!(!is_probe(&listed, &BTreeSet::new()));
        listed.phase = "after~probe".into();
        assert!(is_probe(&listed, &BTreeSet::new()));
        // A message in no cell and not a probe is unplanned: counted in the totals only.
        let plan = plan();
        let m = Matrix::from_plan(&plan, true);
        let stray = vec![attempt("stray", 1, OutcomeClass::Accepted, 0.0)];
        let by_seq = attempts_by_message(&stray);
        let kinds = classify(&by_seq, &m, &mut Matrix::empty(), &BTreeSet::new(), true);
        assert_eq!(kinds["stray"], Kind::Unplanned);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(10.0));
        assert_eq!(nearest_rank(&v, 95.0), Some(19.0));
        assert_eq!(nearest_rank(&v, 100.0), Some(20.0));
        assert_eq!(nearest_rank(&v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&[7.0], 95.0), Some(7.0));
        assert_eq!(nearest_rank(&[1.0, 2.0], 50.0), Some(1.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn tls_versions_order_numerically_and_none_lowest() {
        assert_eq!(version_rank("1.2"), (1, 2));
        assert!(version_rank("1.10") > version_rank("1.3"));
        assert_eq!(version_rank("none"), (0, 0));
        assert_eq!(version_rank("SSLv3"), (0, 0));
    }

    /// First attempts at the given (start ms, outcome), indexed in order.
    fn firsts(spec: &[(f64, OutcomeClass)]) -> Vec<AttemptRecord> {
        spec.iter()
            .enumerate()
            .map(|(i, &(t, o))| {
                let mut a = attempt(&format!("m{i}"), 1, o, t);
                a.index = i as u32;
                a
            })
            .collect()
    }

    #[test]
    fn onset_is_the_first_throttled_message_with_the_accepted_before_it() {
        use OutcomeClass::*;
        let v = firsts(&[
            (1000.0, Accepted),
            (1500.0, Deferred),
            (2000.0, Accepted),
            (3250.0, Throttled),
            (4000.0, Accepted),
            (5000.0, Throttled),
        ]);
        let refs: Vec<&AttemptRecord> = v.iter().collect();
        let (pos, onset) = throttle_onset(&refs, 1000.0).unwrap();
        assert_eq!(pos, 3);
        assert_eq!(
            onset,
            Onset {
                index: 3,
                after_s: 2.25,
                accepted_before: 2
            }
        );
        // Started in the same millisecond: the burst's index decides which came first.
        let mut tie = firsts(&[(0.0, Accepted), (0.0, Throttled), (0.0, Throttled)]);
        tie.swap(1, 2);
        let mut c = cell();
        let samples = CellSamples {
            latencies: Vec::new(),
            firsts: tie.iter().collect(),
            span: None,
        };
        finish_cell(&mut c, samples, 0.0);
        assert_eq!(c.throttle_onset.map(|o| o.index), Some(1));
        let none = firsts(&[(0.0, Accepted), (1.0, Rejected)]);
        assert!(throttle_onset(&none.iter().collect::<Vec<_>>(), 0.0).is_none());
    }

    #[test]
    fn accepted_rate_needs_two_accepted_messages_and_a_time_span() {
        use OutcomeClass::*;
        // Three accepted from 0 to 29 900 + 100 ms: 6 a minute.
        let v = firsts(&[
            (0.0, Accepted),
            (10_000.0, Throttled),
            (15_000.0, Accepted),
            (29_900.0, Accepted),
        ]);
        let refs: Vec<&AttemptRecord> = v.iter().collect();
        assert_eq!(accepted_rate_per_min(&refs), Some(6.0));
        assert_eq!(accepted_rate_per_min(&refs[..2]), None, "one accepted");
        assert_eq!(accepted_rate_per_min(&[]), None);
        let mut same = firsts(&[(0.0, Accepted), (0.0, Accepted)]);
        for a in &mut same {
            a.finished_ms = 0.0;
        }
        assert_eq!(
            accepted_rate_per_min(&same.iter().collect::<Vec<_>>()),
            None,
            "no span"
        );
    }

    #[test]
    fn a_finished_cell_has_percentiles_lowest_tls_onset_and_the_rate_before_onset() {
        use OutcomeClass::*;
        let mut c = cell();
        c.tls_versions = BTreeMap::from([("1.2".into(), 3), ("1.3".into(), 1)]);
        // Out of send order on purpose: finish_cell sorts by start, then index.
        let v = firsts(&[
            (60_000.0, Accepted),
            (3_000.0, Throttled),
            (0.0, Accepted),
            (2_900.0, Accepted),
        ]);
        let samples = CellSamples {
            latencies: vec![300.0, 100.0, 200.0],
            firsts: v.iter().collect(),
            span: None,
        };
        finish_cell(&mut c, samples, 0.0);
        assert_eq!(c.latency_p50_ms, Some(200.0));
        assert_eq!(c.latency_p95_ms, Some(300.0));
        assert_eq!(c.latency_max_ms, Some(300.0));
        assert_eq!(c.min_tls_version.as_deref(), Some("1.2"));
        let onset = c.throttle_onset.clone().unwrap();
        assert_eq!(
            (onset.index, onset.after_s, onset.accepted_before),
            (1, 3.0, 2)
        );
        // Two accepted before the onset, from 0 to 3 000 ms: 40 a minute; the later one is left out.
        assert_eq!(c.accepted_rate_per_min, Some(40.0));

        let mut c = cell();
        c.tls_versions = BTreeMap::from([("1.3".into(), 2), ("none".into(), 1)]);
        finish_cell(&mut c, CellSamples::default(), 0.0);
        assert_eq!(c.min_tls_version.as_deref(), Some("none"));
        assert_eq!(
            (
                c.latency_p50_ms,
                c.throttle_onset.clone(),
                c.accepted_rate_per_min
            ),
            (None, None, None)
        );
    }
}
