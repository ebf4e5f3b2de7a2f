//! Expectation checks such as `throttle_rate <= 0.0` or `latency_p95 <= "60s"`.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::vocab::OutcomeClass;

/// What a metric measures, which decides the kind of value it compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A fraction from 0.0 to 1.0 of the cell's messages.
    Ratio,
    /// A number of messages.
    Count,
    /// A duration.
    Duration,
    /// A TLS protocol version (1.0 to 1.3).
    TlsVersion,
    /// An outcome class.
    Outcome,
}

/// A measurable quantity of one phase × sender × TLS cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Messages attempted (first attempts; retries are linked, not counted again).
    Sent,
    /// Messages accepted with a final 2xx.
    Accepted,
    /// Messages throttled (4.7.500–699).
    Throttled,
    /// Messages rejected with 5xx.
    Rejected,
    /// Accepted messages found in a mailbox.
    Delivered,
    /// Delivered messages found in the Junk folder.
    Junk,
    /// Accepted messages not found by the observation deadline.
    Missing,
    /// accepted / sent.
    AcceptedRate,
    /// throttled / sent.
    ThrottleRate,
    /// rejected / sent.
    RejectedRate,
    /// deferred (any 4xx that is not throttling) / sent.
    DeferredRate,
    /// tls-required / sent.
    TlsRequiredRate,
    /// delivered / accepted.
    DeliveredRate,
    /// junk / delivered.
    JunkRate,
    /// inbox / delivered.
    InboxRate,
    /// missing / accepted.
    MissingRate,
    /// Median delivery latency.
    LatencyP50,
    /// 95th percentile delivery latency.
    LatencyP95,
    /// Largest delivery latency.
    LatencyMax,
    /// The lowest TLS version negotiated in the cell ("none" ranks below every version).
    TlsVersion,
    /// The outcome class of every message in the cell.
    Outcome,
}

impl Metric {
    /// Every metric with its spelling in scenario files.
    pub const ALL: [(&'static str, Metric); 21] = [
        ("sent", Metric::Sent),
        ("accepted", Metric::Accepted),
        ("throttled", Metric::Throttled),
        ("rejected", Metric::Rejected),
        ("delivered", Metric::Delivered),
        ("junk", Metric::Junk),
        ("missing", Metric::Missing),
        ("accepted_rate", Metric::AcceptedRate),
        ("throttle_rate", Metric::ThrottleRate),
        ("rejected_rate", Metric::RejectedRate),
        ("deferred_rate", Metric::DeferredRate),
        ("tls_required_rate", Metric::TlsRequiredRate),
        ("delivered_rate", Metric::DeliveredRate),
        ("junk_rate", Metric::JunkRate),
        ("inbox_rate", Metric::InboxRate),
        ("missing_rate", Metric::MissingRate),
        ("latency_p50", Metric::LatencyP50),
        ("latency_p95", Metric::LatencyP95),
        ("latency_max", Metric::LatencyMax),
        ("tls_version", Metric::TlsVersion),
        ("outcome", Metric::Outcome),
    ];

    /// The spelling in scenario files.
    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// The kind of value this metric compares with.
    pub fn kind(self) -> MetricKind {
        use Metric::*;
        match self {
            Sent | Accepted | Throttled | Rejected | Delivered | Junk | Missing => {
                MetricKind::Count
            }
            AcceptedRate | ThrottleRate | RejectedRate | DeferredRate | TlsRequiredRate
            | DeliveredRate | JunkRate | InboxRate | MissingRate => MetricKind::Ratio,
            LatencyP50 | LatencyP95 | LatencyMax => MetricKind::Duration,
            TlsVersion => MetricKind::TlsVersion,
            Outcome => MetricKind::Outcome,
        }
    }

    /// Whether the metric needs IMAP observation (a target without mailboxes cannot measure it).
    pub fn needs_observation(self) -> bool {
        use Metric::*;
        matches!(
            self,
            Delivered
                | Junk
                | Missing
                | DeliveredRate
                | JunkRate
                | InboxRate
                | MissingRate
                | LatencyP50
                | LatencyP95
                | LatencyMax
        )
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// Applies the operator to two ordered values.
    pub fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

/// The right-hand side of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A ratio or count.
    Number(f64),
    /// A duration.
    Duration(Duration),
    /// A TLS version as (major, minor), e.g. (1, 2).
    TlsVersion(u8, u8),
    /// An outcome class.
    Outcome(OutcomeClass),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Duration(d) => write!(f, "\"{}\"", humantime::format_duration(*d)),
            Value::TlsVersion(a, b) => write!(f, "\"{a}.{b}\""),
            Value::Outcome(o) => write!(f, "\"{o}\""),
        }
    }
}

/// One parsed check: `metric op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is measured.
    pub metric: Metric,
    /// How it is compared.
    pub op: Op,
    /// What it is compared with.
    pub value: Value,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.metric.name(),
            self.op.as_str(),
            self.value
        )
    }
}

impl Serialize for Check {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_check(&s).map_err(|e| de::Error::custom(e.message))
    }
}

/// A parse error with the byte range inside the check text it refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckError {
    /// Byte range inside the check string.
    pub at: Range<usize>,
    /// What is wrong and what is expected.
    pub message: String,
}

fn err(at: Range<usize>, message: impl Into<String>) -> CheckError {
    CheckError {
        at,
        message: message.into(),
    }
}

/// Parses `metric op value`; quotes around the value are optional.
pub fn parse_check(text: &str) -> Result<Check, CheckError> {
    let (metric, metric_end) = parse_metric(text)?;
    let name = &text[..metric_end];
    let rest_start = metric_end + leading_space(&text[metric_end..]);
    let (op, op_len) = parse_op(&text[rest_start..]).ok_or_else(|| {
        err(
            rest_start..rest_start + 1,
            format!("expected a comparison (<, <=, >, >=, ==, !=) after `{name}`"),
        )
    })?;
    let after_op = rest_start + op_len;
    let value_start = after_op + leading_space(&text[after_op..]);
    let raw = text[value_start..].trim_end();
    if raw.is_empty() {
        return Err(err(
            value_start.min(text.len().saturating_sub(1))..text.len(),
            format!("expected a value after `{}`", op.as_str()),
        ));
    }
    // `outcome` only has equality: point at the operator, not the value.
    if metric.kind() == MetricKind::Outcome && !matches!(op, Op::Eq | Op::Ne) {
        return Err(err(
            rest_start..after_op,
            "`outcome` can only be compared with == or !=",
        ));
    }
    let value = parse_value(metric, raw).map_err(|message| CheckError {
        at: value_start..value_start + raw.len(),
        message,
    })?;
    Ok(Check { metric, op, value })
}

/// Bytes of whitespace at the start of `s`.
fn leading_space(s: &str) -> usize {
    s.len() - s.trim_start().len()
}

/// The metric a check starts with, and where its name ends.
fn parse_metric(text: &str) -> Result<(Metric, usize), CheckError> {
    let metric_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let lead = leading_space(text);
    if lead > 0 || metric_end == 0 {
        return Err(err(
            lead..lead + 1,
            "a check starts with a metric name, e.g. \"throttle_rate <= 0.0\"",
        ));
    }
    let name = &text[..metric_end];
    match Metric::ALL.iter().find(|(n, _)| *n == name) {
        Some((_, m)) => Ok((*m, metric_end)),
        None => {
            let names: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
            Err(err(
                0..metric_end,
                format!(
                    "unknown metric `{name}`: expected one of {}",
                    names.join(", ")
                ),
            ))
        }
    }
}

/// The comparison `rest` starts with, and its length.
fn parse_op(rest: &str) -> Option<(Op, usize)> {
    // Two-character operators first, so `<=` is not read as `<`.
    [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ]
    .iter()
    .find(|(s, _)| rest.starts_with(s))
    .map(|(s, o)| (*o, s.len()))
}

/// The value a metric compares with, from its text (`raw`, quotes optional); the message
/// says what the metric wants.
fn parse_value(metric: Metric, raw: &str) -> Result<Value, String> {
    let name = metric.name();
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    match metric.kind() {
        MetricKind::Ratio => {
            let n: f64 = unquoted.parse().map_err(|_| {
                format!("`{name}` compares with a fraction from 0.0 to 1.0, not `{raw}`")
            })?;
            if !(0.0..=1.0).contains(&n) {
                return Err(format!(
                    "`{name}` is a fraction from 0.0 to 1.0; write 0.5 for 50%, not {raw}"
                ));
            }
            Ok(Value::Number(n))
        }
        MetricKind::Count => {
            let n: u64 = unquoted.parse().map_err(|_| {
                format!("`{name}` compares with a whole number of messages, not `{raw}`")
            })?;
            Ok(Value::Number(n as f64))
        }
        MetricKind::Duration => {
            let d = humantime::parse_duration(unquoted).map_err(|_| {
                format!("`{name}` compares with a duration such as \"60s\" or \"2m\", not `{raw}`")
            })?;
            Ok(Value::Duration(d))
        }
        MetricKind::TlsVersion => {
            let v = unquoted.trim_start_matches("TLS").trim_start_matches("v");
            v.split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
                .filter(|(a, b)| *a == 1 && *b <= 3)
                .map(|(a, b)| Value::TlsVersion(a, b))
                .ok_or_else(|| {
                    format!("`tls_version` compares with \"1.0\", \"1.1\", \"1.2\" or \"1.3\", not `{raw}`")
                })
        }
        MetricKind::Outcome => unquoted.parse::<OutcomeClass>().map(Value::Outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let c = parse_check("throttle_rate <= 0.0").unwrap();
        assert_eq!(
            (c.metric, c.op, c.value),
            (Metric::ThrottleRate, Op::Le, Value::Number(0.0))
        );
        let c = parse_check("latency_p95 <= \"60s\"").unwrap();
        assert_eq!(c.value, Value::Duration(Duration::from_secs(60)));
        let c = parse_check("tls_version >= \"1.2\"").unwrap();
        assert_eq!(c.value, Value::TlsVersion(1, 2));
        let c = parse_check("outcome == \"tls-required\"").unwrap();
        assert_eq!(c.value, Value::Outcome(OutcomeClass::TlsRequired));
        assert_eq!(c.to_string(), "outcome == \"tls-required\"");
        let c = parse_check("delivered_rate>=1.0").unwrap();
        assert_eq!(c.op, Op::Ge);
    }

    #[test]
    fn errors_point_at_the_bad_token() {
        let e = parse_check("throtle_rate <= 0").unwrap_err();
        assert_eq!(e.at, 0..12);
        assert!(e.message.contains("unknown metric"));
        let e = parse_check("throttle_rate => 0").unwrap_err();
        assert_eq!(e.at.start, 14);
        let e = parse_check("throttle_rate <= 50").unwrap_err();
        assert_eq!(e.at, 17..19);
        assert!(e.message.contains("fraction"));
        let e = parse_check("outcome >= \"accepted\"").unwrap_err();
        assert!(e.message.contains("== or !="));
        let e = parse_check("latency_p95 <= soon").unwrap_err();
        assert!(e.message.contains("duration"));
    }

    #[test]
    fn parse_op_reads_two_character_operators_first() {
        assert_eq!(parse_op("<= 1"), Some((Op::Le, 2)));
        assert_eq!(parse_op("< 1"), Some((Op::Lt, 1)));
        assert_eq!(parse_op(">=1"), Some((Op::Ge, 2)));
        assert_eq!(parse_op("!= x"), Some((Op::Ne, 2)));
        assert_eq!(parse_op("=> 1"), None);
        assert_eq!(parse_op(""), None);
    }

    #[test]
    fn parse_metric_wants_a_known_name_at_the_very_start() {
        assert_eq!(
            parse_metric("latency_p95<=1s"),
            Ok((Metric::LatencyP95, 11))
        );
        let e = parse_metric(" sent > 1").unwrap_err();
        assert_eq!(e.at, 1..2);
        assert!(e.message.starts_with("a check starts with a metric name"));
        let e = parse_metric("sends > 1").unwrap_err();
        assert_eq!(e.at, 0..5);
        assert!(e
            .message
            .starts_with("unknown metric `sends`: expected one of sent, accepted,"));
    }

    #[test]
    fn parse_value_follows_the_metrics_kind() {
        assert_eq!(parse_value(Metric::Sent, "\"12\""), Ok(Value::Number(12.0)));
        assert_eq!(
            parse_value(Metric::Sent, "1.5"),
            Err("`sent` compares with a whole number of messages, not `1.5`".into())
        );
        assert_eq!(
            parse_value(Metric::JunkRate, "1.5"),
            Err("`junk_rate` is a fraction from 0.0 to 1.0; write 0.5 for 50%, not 1.5".into())
        );
        assert_eq!(
            parse_value(Metric::LatencyMax, "2m"),
            Ok(Value::Duration(Duration::from_secs(120)))
        );
        assert_eq!(
            parse_value(Metric::TlsVersion, "TLSv1.3"),
            Ok(Value::TlsVersion(1, 3))
        );
        assert!(parse_value(Metric::TlsVersion, "1.4").is_err());
        assert!(parse_value(Metric::Outcome, "\"nonsense\"").is_err());
    }

    #[test]
    fn value_errors_point_at_the_value_and_outcome_errors_at_the_operator() {
        let e = parse_check("sent >=  ").unwrap_err();
        assert_eq!(
            (e.at, e.message.as_str()),
            (8..9, "expected a value after `>=`")
        );
        let e = parse_check("sent >= many ").unwrap_err();
        assert_eq!(e.at, 8..12);
        let e = parse_check("outcome <  accepted").unwrap_err();
        assert_eq!(e.at, 8..9);
    }
}
