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
        skipped: false,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::analysis::fixtures::cell;
    use crate::scenario::check::parse_check;

    fn check(text: &str) -> Check {
        parse_check(text).unwrap()
    }

    fn judged(text: &str, c: &CellStats) -> Judgement {
        judge(&check(text), Some(c))
    }

    /// A cell of 12 sent: 9 accepted (one of them after a retry), 2 throttled, 1 rejected; 9
    /// delivered (7 Inbox, 2 Junk), 0 missing.
    fn twelve() -> CellStats {
        let mut c = cell();
        (c.sent, c.accepted, c.throttled, c.rejected) = (12, 8, 2, 2);
        c.accepted_after_retry = 1;
        (c.delivered, c.inbox, c.junk) = (9, 7, 2);
        c.latency_p50_ms = Some(812.4);
        c.latency_p95_ms = Some(1140.0);
        c.latency_max_ms = Some(59_999.6);
        c.min_tls_version = Some("1.2".into());
        c.tls_versions = BTreeMap::from([("1.2".into(), 4), ("1.3".into(), 8)]);
        c
    }

    #[test]
    fn a_cell_that_sent_nothing_or_does_not_exist_fails_as_unmeasured() {
        let mut c = twelve();
        c.sent = 0;
        for j in [judge(&check("sent >= 0"), None), judged("sent >= 0", &c)] {
            assert_eq!(
                j,
                Judgement::unmeasured("no messages were sent in this cell")
            );
            assert_eq!(j.actual, "n/a");
        }
    }

    #[test]
    fn delivery_metrics_of_an_unobserved_run_fail_and_say_so() {
        let mut c = twelve();
        c.observed = false;
        let j = judged("delivered_rate >= 0", &c);
        assert!(!j.passed);
        assert!(
            j.detail.starts_with("delivery was not observed"),
            "{}",
            j.detail
        );
        // Sending metrics do not need observation.
        assert!(judged("accepted >= 8", &c).passed);
    }

    #[test]
    fn counts_compare_exactly_and_quote_their_numbers() {
        let c = twelve();
        let j = judged("accepted >= 8", &c);
        assert_eq!(
            (j.passed, j.actual.as_str(), j.detail.as_str()),
            (true, "8", "8 of 12 accepted")
        );
        assert!(!judged("accepted > 8", &c).passed);
        assert_eq!(judged("sent == 12", &c).detail, "12 messages sent");
        assert_eq!(judged("throttled <= 2", &c).detail, "2 of 12 throttled");
        assert_eq!(judged("rejected == 2", &c).detail, "2 of 12 rejected");
        // Delivery is measured against every accepted message, retried ones included.
        assert_eq!(
            judged("delivered == 9", &c).detail,
            "9 of 9 accepted were delivered"
        );
        assert_eq!(
            judged("junk <= 2", &c).detail,
            "2 of 9 delivered were in Junk"
        );
        assert_eq!(
            judged("missing == 0", &c).detail,
            "0 of 9 accepted were missing"
        );
    }

    #[test]
    fn ratios_show_three_decimals_and_compare_rounded() {
        let mut c = twelve();
        (c.sent, c.throttled) = (3, 1);
        let j = judged("throttle_rate <= 0.333", &c);
        assert_eq!(
            (j.passed, j.actual.as_str()),
            (true, "0.333"),
            "1/3 rounds to 0.333"
        );
        assert_eq!(j.detail, "1 of 3 sent were throttled");
        assert!(!judged("throttle_rate < 0.333", &c).passed);
        let c = twelve();
        assert_eq!(judged("delivered_rate >= 1", &c).actual, "1.000");
        assert_eq!(
            judged("inbox_rate >= 0.7", &c).detail,
            "7 of 9 delivered were in the Inbox"
        );
        assert_eq!(judged("junk_rate <= 0.05", &c).actual, "0.222");
        assert!(!judged("junk_rate <= 0.05", &c).passed);
        assert_eq!(
            judged("tls_required_rate == 0", &c).detail,
            "0 of 12 sent were refused for lack of TLS"
        );
    }

    #[test]
    fn a_ratio_over_nothing_has_no_value_and_says_why() {
        let mut c = twelve();
        assert_eq!(
            measure(
                Metric::JunkRate,
                &CellStats {
                    delivered: 0,
                    ..c.clone()
                }
            ),
            None
        );
        // Accepted but nothing delivered: nothing to measure junk against.
        c.delivered = 0;
        let j = judged("junk_rate <= 0.05", &c);
        assert_eq!(j, Judgement::unmeasured("no delivered message to measure"));
        // Accepted only after retrying, and not delivered: still something to measure against.
        (c.accepted, c.accepted_after_retry) = (0, 1);
        assert_eq!(
            judged("junk_rate <= 0.05", &c),
            Judgement::unmeasured("no delivered message to measure")
        );
        // Nothing accepted, not even after retrying.
        (c.accepted, c.accepted_after_retry) = (0, 0);
        assert_eq!(
            judged("delivered_rate >= 1", &c),
            Judgement::unmeasured("no message was accepted, so there is nothing to measure")
        );
        // Sending ratios over a cell with no sent messages have no value either.
        assert_eq!(measure(Metric::AcceptedRate, &cell()), None);
    }

    #[test]
    fn latencies_compare_in_ms_against_durations() {
        let c = twelve();
        let j = judged("latency_p95 <= \"1m\"", &c);
        assert_eq!((j.passed, j.actual.as_str()), (true, "1140ms"));
        assert_eq!(j.detail, "95th percentile latency 1140ms over 9 delivered");
        assert_eq!(
            judged("latency_p50 <= \"1s\"", &c).detail,
            "median latency 812ms over 9 delivered"
        );
        // 59 999.6 ms rounds to 3 decimals, not to whole ms: just under a minute.
        assert!(judged("latency_max < \"1m\"", &c).passed);
        assert_eq!(judged("latency_max < \"1m\"", &c).actual, "60000ms");
        let mut none = twelve();
        none.latency_p95_ms = None;
        assert_eq!(
            judged("latency_p95 <= \"1m\"", &none),
            Judgement::unmeasured("no delivered message to measure")
        );
    }

    #[test]
    fn tls_version_compares_the_lowest_version_numerically() {
        let c = twelve();
        let j = judged("tls_version >= \"1.2\"", &c);
        assert_eq!((j.passed, j.actual.as_str()), (true, "1.2"));
        assert_eq!(
            j.detail,
            "lowest TLS version 1.2; versions seen 1.2: 4, 1.3: 8"
        );
        assert!(!judged("tls_version >= \"1.3\"", &c).passed);
        assert!(!judged("tls_version == \"1.3\"", &c).passed);
        let mut ten = twelve();
        ten.min_tls_version = Some("1.10".into());
        assert!(
            judged("tls_version > \"1.3\"", &ten).passed,
            "1.10 is above 1.3"
        );
    }

    #[test]
    fn a_cell_with_a_plain_text_message_never_meets_a_tls_version() {
        let mut c = twelve();
        c.min_tls_version = Some("none".into());
        c.tls_versions.insert("none".into(), 1);
        let at_least_nothing = Check {
            metric: Metric::TlsVersion,
            op: Op::Ge,
            value: Value::TlsVersion(0, 0),
        };
        let j = judge(&at_least_nothing, Some(&c));
        assert!(!j.passed, "none is no version at all");
        assert_eq!(j.actual, "none");
        // No version recorded at all reads as none too.
        c.min_tls_version = None;
        assert_eq!(judged("tls_version != \"1.0\"", &c).actual, "none");
        assert!(!judged("tls_version != \"1.0\"", &c).passed);
    }

    #[test]
    fn outcome_checks_mean_every_message_or_none() {
        let mut c = cell();
        (c.sent, c.tls_required) = (6, 6);
        let j = judged("outcome == \"tls-required\"", &c);
        assert_eq!((j.passed, j.actual.as_str()), (true, "6 of 6"));
        assert_eq!(j.detail, "6 of 6 sent ended tls-required");
        assert!(judged("outcome != \"accepted\"", &c).passed);
        assert!(!judged("outcome != \"tls-required\"", &c).passed);
        c.accepted = 1;
        c.sent = 7;
        assert!(!judged("outcome == \"tls-required\"", &c).passed);
        assert!(!judged("outcome != \"accepted\"", &c).passed);
        // The failure classes share one count.
        let mut f = cell();
        (f.sent, f.failed) = (2, 2);
        assert!(judged("outcome == \"timeout\"", &f).passed);
        assert!(judged("outcome == \"connect-failure\"", &f).passed);
        // Ordering operators mean nothing for outcomes (the parser refuses them): never hold.
        let ordered = Check {
            metric: Metric::Outcome,
            op: Op::Ge,
            value: Value::Outcome(OutcomeClass::Timeout),
        };
        assert!(!judge(&ordered, Some(&f)).passed);
    }

    #[test]
    fn evaluate_names_the_cell_and_the_check_as_written() {
        let c = twelve();
        let v = evaluate(
            "p",
            "s",
            TlsMode::Starttls,
            &check("accepted_rate >= 0.5"),
            Some(&c),
        );
        assert_eq!(
            (v.phase.as_str(), v.sender.as_str(), v.tls),
            ("p", "s", TlsMode::Starttls)
        );
        assert_eq!(v.check, "accepted_rate >= 0.5");
        assert_eq!((v.passed, v.actual.as_str()), (true, "0.667"));
        assert_eq!(v.detail, "8 of 12 sent were accepted");
    }
}
