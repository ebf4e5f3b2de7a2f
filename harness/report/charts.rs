//! The charts' data, computed once from a [`Summary`]: outcome timelines and per-phase latency
//! histograms with their axes, percentile marks and thresholds. The HTML renderer only draws it.

use std::collections::BTreeMap;

use super::model::ms;
use crate::analysis::{PhaseLatency, Summary};
use crate::vocab::{OutcomeClass, TlsMode};

/// The data of the HTML report's charts.
#[derive(Debug, Clone, PartialEq)]
pub struct Charts {
    /// One outcome timeline per phase that sent something.
    pub timelines: Vec<Timeline>,
    /// One delivery latency histogram per phase.
    pub latency: Vec<LatencyHistogram>,
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

/// One phase's delivery latencies in equal-width bins from 0 to the axis' end.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// Phase.
    pub phase: String,
    /// Delivered planned messages with a latency.
    pub delivered: usize,
    /// The x axis' end (ms): a round number at or above the largest latency.
    pub axis_end_ms: f64,
    /// The x axis' ticks: position (ms) and label.
    pub x_ticks: Vec<(f64, String)>,
    /// Number of bins across the axis.
    pub bins: usize,
    /// Messages per non-empty bin, by bin index; empty when nothing was delivered.
    pub counts: BTreeMap<usize, u64>,
    /// The y axis' end: the largest bin count, at least 1.
    pub peak: u64,
    /// The y axis' ticks (message counts).
    pub y_ticks: Vec<u64>,
    /// p50, p95 and the thresholds of the phase's latency expectations.
    pub marks: Vec<Mark>,
}

/// A vertical mark on a latency histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// What it marks, e.g. `p95 1140ms` or `latency_p95 <= 1m (held)`.
    pub label: String,
    /// Where (ms).
    pub ms: f64,
    /// A percentile of the phase, or an expectation's threshold and whether it held.
    pub kind: MarkKind,
    /// Whether it lies on the axis; a threshold far beyond every latency is drawn as an arrow at
    /// the axis' end instead, so the bars keep a readable scale.
    pub on_axis: bool,
}

/// What a mark is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// The phase's median (50) or 95th percentile (95).
    Percentile(u8),
    /// An expectation's threshold; `true` when it held in every cell.
    Threshold(bool),
}

/// Bins of a latency histogram.
const LATENCY_BINS: usize = 20;

/// A threshold further than this many times the largest latency is drawn off the axis.
const OFF_AXIS_FACTOR: f64 = 3.0;

/// Each phase's outcome timeline: rows by sender, then the TLS mode's name.
pub(super) fn timelines(s: &Summary) -> Vec<Timeline> {
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

/// A round step (1, 2 or 5 times a power of ten) that cuts `span` into at most about 5 parts.
pub(super) fn nice_step(span: f64) -> f64 {
    let raw = (span / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag)
}

/// One phase's histogram: binned latencies, round axes, its p50 and p95, and its thresholds
/// (on the axis when within reach of the latencies, else off it).
pub(super) fn latency_histogram(p: &PhaseLatency) -> LatencyHistogram {
    let largest = p.latencies_ms.last().copied().unwrap_or(0.0).max(1.0);
    let reach = |t: f64| t <= largest * OFF_AXIS_FACTOR;
    let wanted = p
        .thresholds
        .iter()
        .map(|t| t.ms)
        .filter(|&t| reach(t))
        .fold(largest, f64::max);
    let step = nice_step(wanted);
    let axis_end_ms = (wanted / step).ceil().max(1.0) * step;
    let ticks = (axis_end_ms / step).round() as usize;
    let x_ticks = (0..=ticks)
        .map(|k| {
            let at = step * k as f64;
            (at, axis_label(at, axis_end_ms))
        })
        .collect();
    let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
    for v in &p.latencies_ms {
        let b = ((v / axis_end_ms) * LATENCY_BINS as f64).floor() as usize;
        *counts.entry(b.min(LATENCY_BINS - 1)).or_default() += 1;
    }
    let peak = counts.values().copied().max().unwrap_or(1);
    let y_step = nice_step(peak as f64).ceil().max(1.0) as u64;
    let y_ticks = (0..=peak.div_ceil(y_step)).map(|k| k * y_step).collect();
    let mut marks: Vec<Mark> = [(50, p.p50_ms), (95, p.p95_ms)]
        .into_iter()
        .filter_map(|(rank, v)| {
            v.map(|v| Mark {
                label: format!("p{rank} {}", ms(Some(v))),
                ms: v,
                kind: MarkKind::Percentile(rank),
                on_axis: true,
            })
        })
        .collect();
    marks.extend(p.thresholds.iter().map(|t| Mark {
        label: format!(
            "{} ({})",
            t.check.replace('"', ""),
            if t.passed { "held" } else { "failed" }
        ),
        ms: t.ms,
        kind: MarkKind::Threshold(t.passed),
        on_axis: t.ms <= axis_end_ms,
    }));
    LatencyHistogram {
        phase: p.phase.clone(),
        delivered: p.latencies_ms.len(),
        y_ticks,
        peak: peak.max(1),
        axis_end_ms,
        x_ticks,
        bins: LATENCY_BINS,
        counts,
        marks,
    }
}

/// A tick label in the unit that suits the axis: ms up to 10 s, seconds beyond.
fn axis_label(at_ms: f64, end_ms: f64) -> String {
    if end_ms > 10_000.0 {
        format!("{}s", short(at_ms / 1000.0))
    } else {
        format!("{}ms", short(at_ms))
    }
}

/// A number with at most 3 decimals and no trailing zeros: `0.6`, not `0.6000000000000001`.
fn short(x: f64) -> String {
    let t = format!("{x:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{LatencyThreshold, TimelinePoint};
    use crate::report::model::tests::golden;
    use crate::scenario::check::Metric;

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
            84,
            "planned messages only: the 16 probes have no dot"
        );
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(1140.0), 500.0);
        assert_eq!(nice_step(60_000.0), 20_000.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(1.0), 0.2);
    }

    fn phase(latencies: &[f64], thresholds: &[(f64, bool)]) -> PhaseLatency {
        PhaseLatency {
            phase: "after".into(),
            latencies_ms: latencies.to_vec(),
            p50_ms: crate::stats::nearest_rank(latencies, 50.0),
            p95_ms: crate::stats::nearest_rank(latencies, 95.0),
            thresholds: thresholds
                .iter()
                .map(|&(ms, passed)| LatencyThreshold {
                    check: format!("latency_p95 <= \"{}ms\"", ms),
                    metric: Metric::LatencyP95,
                    ms,
                    cells: vec!["primary/starttls".into()],
                    passed,
                })
                .collect(),
        }
    }

    #[test]
    fn a_histogram_has_round_axes_both_percentiles_and_its_thresholds() {
        let h = latency_histogram(&phase(
            &[0.0, 500.0, 990.0, 1000.0, 1000.0],
            &[(1500.0, true)],
        ));
        // The threshold is within reach: the axis runs to it.
        assert_eq!(
            (h.delivered, h.bins, h.axis_end_ms, h.peak),
            (5, 20, 1500.0, 3)
        );
        assert_eq!(h.x_ticks.first().unwrap().1, "0ms");
        assert_eq!(h.x_ticks.last().unwrap(), &(1500.0, "1500ms".to_string()));
        assert_eq!(h.counts, BTreeMap::from([(0, 1), (6, 1), (13, 3)]));
        assert_eq!(h.y_ticks, [0, 1, 2, 3]);
        let labels: Vec<&str> = h.marks.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            labels,
            ["p50 990ms", "p95 1000ms", "latency_p95 <= 1500ms (held)"]
        );
        assert!(h.marks.iter().all(|m| m.on_axis));
        // Far beyond every latency: drawn off the axis, which keeps the latencies' scale.
        let h = latency_histogram(&phase(&[600.0, 1140.0], &[(60_000.0, false)]));
        assert_eq!(h.axis_end_ms, 1500.0);
        assert_eq!(h.marks[2].kind, MarkKind::Threshold(false));
        assert!(!h.marks[2].on_axis);
        let h = latency_histogram(&phase(&[12_000.0, 30_000.0], &[]));
        assert_eq!(h.x_ticks[1], (10_000.0, "10s".to_string()));
        assert_eq!(short(0.2 * 3.0), "0.6");
        assert_eq!(short(0.0), "0");
        let empty = latency_histogram(&phase(&[], &[]));
        assert_eq!((empty.delivered, empty.counts.len(), empty.peak), (0, 0, 1));
        assert!(empty.marks.is_empty());
    }
}
