//! Expectation verdicts: each check measured on its cell, with the numbers behind it in a sentence.

use super::cells::version_rank;
use super::{r3, CellStats, Verdict};
use crate::scenario::check::{Check, Metric, Op, Value};
use crate::vocab::{OutcomeClass, TlsMode};

/// A check's result before it is tied to its cell: whether it held, the measured value as text
/// (`n/a` when nothing could be measured), and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Judgement {
    pub passed: bool,
    pub actual: String,
    pub detail: String,
}

impl Judgement {
    /// A check that cannot be measured fails, saying why.
    fn unmeasured(why: impl Into<String>) -> Self {
        Judgement {
            passed: false,
            actual: "n/a".into(),
            detail: why.into(),
        }
    }
}

/// A numeric measurement: the value compared, as shown, and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Measure {
    pub value: f64,
    pub shown: String,
    pub detail: String,
}

/// The verdict of `check` on the cell of `phase`, `sender` and `tls` (`None`: the plan has no such cell).
pub(super) fn evaluate(
    phase: &str,
    sender: &str,
    tls: TlsMode,
    check: &Check,
    cell: Option<&CellStats>,
) -> Verdict {
    let j = judge(check, cell);
    Verdict {
        phase: phase.into(),
        sender: sender.into(),
        tls,
        check: check.to_string(),
        passed: j.passed,
        actual: j.actual,
        detail: j.detail,
    }
}

/// Measures `check` on a cell and compares.
pub(super) fn judge(check: &Check, cell: Option<&CellStats>) -> Judgement {
    let c = match cell {
        Some(c) if c.sent > 0 => c,
        _ => return Judgement::unmeasured("no messages were sent in this cell"),
    };
    if check.metric.needs_observation() && !c.observed {
        return Judgement::unmeasured("delivery was not observed in this run (no observations.jsonl), so this cannot be measured");
    }
    match (check.metric, &check.value) {
        (Metric::TlsVersion, Value::TlsVersion(a, b)) => judge_tls_version(check.op, (*a, *b), c),
        (Metric::Outcome, Value::Outcome(o)) => judge_outcome(check.op, *o, c),
        (metric, value) => match measure(metric, c) {
            Some(m) => judge_measure(check.op, value, m),
            None => Judgement::unmeasured(why_unmeasured(metric, c)),
        },
    }
}

/// `tls_version op "a.b"`: the cell's lowest negotiated version against the wanted one; a cell
/// where some message had no TLS (`none`) never holds.
fn judge_tls_version(op: Op, want: (u8, u8), c: &CellStats) -> Judgement {
    let min = c.min_tls_version.clone().unwrap_or_else(|| "none".into());
    let have = version_rank(&min);
    let seen: Vec<String> = c
        .tls_versions
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    Judgement {
        passed: have != (0, 0) && op.holds(have, want),
        detail: format!(
            "lowest TLS version {min}; versions seen {}",
            seen.join(", ")
        ),
        actual: min,
    }
}

/// `outcome == "x"`: every sent message ended `x`; `outcome != "x"`: none did; other operators never hold.
fn judge_outcome(op: Op, o: OutcomeClass, c: &CellStats) -> Judgement {
    let n = c.outcome_count(o);
    Judgement {
        passed: match op {
            Op::Eq => n == c.sent,
            Op::Ne => n == 0,
            _ => false,
        },
        actual: format!("{n} of {}", c.sent),
        detail: format!("{n} of {} sent ended {o}", c.sent),
    }
}

/// A count, ratio or latency against the check's number or duration, both rounded to 3 decimals.
fn judge_measure(op: Op, want: &Value, m: Measure) -> Judgement {
    let want = match want {
        Value::Number(n) => *n,
        Value::Duration(d) => d.as_secs_f64() * 1000.0,
        _ => f64::NAN,
    };
    Judgement {
        passed: op.holds(r3(m.value), r3(want)),
        actual: m.shown,
        detail: m.detail,
    }
}

/// Why a numeric metric has no value in a cell that sent messages.
fn why_unmeasured(metric: Metric, c: &CellStats) -> &'static str {
    match metric {
        m if m.needs_observation() && c.accepted_in_the_end() == 0 => {
            "no message was accepted, so there is nothing to measure"
        }
        m if m.needs_observation() => "no delivered message to measure",
        _ => "no data",
    }
}

/// The cell's value of a count, ratio or latency metric; `None` for a ratio over nothing, a
/// latency with no delivered message, and the metrics that are not numeric.
pub(super) fn measure(metric: Metric, c: &CellStats) -> Option<Measure> {
    let in_the_end = c.accepted_in_the_end();
    match metric {
        Metric::Sent => Some(count(c.sent, format!("{} messages sent", c.sent))),
        Metric::Accepted => Some(count(c.accepted, of_sent(c.accepted, c.sent, "accepted"))),
        Metric::Throttled => Some(count(
            c.throttled,
            of_sent(c.throttled, c.sent, "throttled"),
        )),
        Metric::Rejected => Some(count(c.rejected, of_sent(c.rejected, c.sent, "rejected"))),
        Metric::Delivered => Some(count(
            c.delivered,
            format!("{} of {in_the_end} accepted were delivered", c.delivered),
        )),
        Metric::Junk => Some(count(
            c.junk,
            format!("{} of {} delivered were in Junk", c.junk, c.delivered),
        )),
        Metric::Missing => Some(count(
            c.missing,
            format!("{} of {in_the_end} accepted were missing", c.missing),
        )),
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
        Metric::DeliveredRate => ratio(c.delivered, in_the_end, "delivered", "accepted were"),
        Metric::MissingRate => ratio(c.missing, in_the_end, "missing", "accepted were"),
        Metric::JunkRate => ratio(c.junk, c.delivered, "in Junk", "delivered were"),
        Metric::InboxRate => ratio(c.inbox, c.delivered, "in the Inbox", "delivered were"),
        Metric::LatencyP50 => latency(c.latency_p50_ms, "median latency", c.delivered),
        Metric::LatencyP95 => latency(c.latency_p95_ms, "95th percentile latency", c.delivered),
        Metric::LatencyMax => latency(c.latency_max_ms, "largest latency", c.delivered),
        Metric::TlsVersion | Metric::Outcome => None,
    }
}

fn count(n: u64, detail: String) -> Measure {
    Measure {
        value: n as f64,
        shown: n.to_string(),
        detail,
    }
}

fn of_sent(n: u64, sent: u64, what: &str) -> String {
    format!("{n} of {sent} {what}")
}

/// `n / d` shown to 3 decimals, e.g. "3 of 12 sent were throttled"; `None` when `d` is 0.
fn ratio(n: u64, d: u64, what: &str, of: &str) -> Option<Measure> {
    if d == 0 {
        return None;
    }
    let r = n as f64 / d as f64;
    Some(Measure {
        value: r,
        shown: format!("{r:.3}"),
        detail: format!("{n} of {d} {of} {what}"),
    })
}

/// A latency in ms shown whole, e.g. "median latency 812ms over 12 delivered".
fn latency(ms: Option<f64>, what: &str, delivered: u64) -> Option<Measure> {
    ms.map(|l| Measure {
        value: l,
        shown: format!("{l:.0}ms"),
        detail: format!("{what} {l:.0}ms over {delivered} delivered"),
    })
}
