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
    let metric_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let lead = text.len() - text.trim_start().len();
    if lead > 0 || metric_end == 0 {
        return Err(err(
            lead..lead + 1,
            "a check starts with a metric name, e.g. \"throttle_rate <= 0.0\"",
        ));
    }
    let name = &text[..metric_end];
    let metric = Metric::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, m)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
            err(
                0..metric_end,
                format!(
                    "unknown metric `{name}`: expected one of {}",
                    names.join(", ")
                ),
            )
        })?;
    let rest_start =
        metric_end + (text[metric_end..].len() - text[metric_end..].trim_start().len());
    let rest = &text[rest_start..];
    let (op, op_len) = [
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
    .ok_or_else(|| {
        err(
            rest_start..rest_start + 1,
            format!("expected a comparison (<, <=, >, >=, ==, !=) after `{name}`"),
        )
    })?;
    let after_op = rest_start + op_len;
    let value_start = after_op + (text[after_op..].len() - text[after_op..].trim_start().len());
    let raw = text[value_start..].trim_end();
    if raw.is_empty() {
        return Err(err(
            value_start.min(text.len().saturating_sub(1))..text.len(),
            format!("expected a value after `{}`", op.as_str()),
        ));
    }
    let vr = value_start..value_start + raw.len();
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let value = match metric.kind() {
        MetricKind::Ratio => {
            let n: f64 = unquoted.parse().map_err(|_| {
                err(
                    vr.clone(),
                    format!("`{name}` compares with a fraction from 0.0 to 1.0, not `{raw}`"),
                )
            })?;
            if !(0.0..=1.0).contains(&n) {
                return Err(err(
                    vr,
                    format!("`{name}` is a fraction from 0.0 to 1.0; write 0.5 for 50%, not {raw}"),
                ));
            }
            Value::Number(n)
        }
        MetricKind::Count => {
            let n: u64 = unquoted.parse().map_err(|_| {
                err(
                    vr.clone(),
                    format!("`{name}` compares with a whole number of messages, not `{raw}`"),
                )
            })?;
            Value::Number(n as f64)
        }
        MetricKind::Duration => {
            let d = humantime::parse_duration(unquoted).map_err(|_| {
                err(
                    vr.clone(),
                    format!(
                        "`{name}` compares with a duration such as \"60s\" or \"2m\", not `{raw}`"
                    ),
                )
            })?;
            Value::Duration(d)
        }
        MetricKind::TlsVersion => {
            let v = unquoted.trim_start_matches("TLS").trim_start_matches("v");
            let parsed = v
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u8>().ok()?, b.parse::<u8>().ok()?)))
                .filter(|(a, b)| *a == 1 && *b <= 3);
            match parsed {
                Some((a, b)) => Value::TlsVersion(a, b),
                None => {
                    return Err(err(
                        vr,
                        format!("`tls_version` compares with \"1.0\", \"1.1\", \"1.2\" or \"1.3\", not `{raw}`"),
                    ))
                }
            }
        }
        MetricKind::Outcome => {
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(err(
                    rest_start..rest_start + op_len,
                    "`outcome` can only be compared with == or !=",
                ));
            }
            let o: OutcomeClass = unquoted.parse().map_err(|e: String| err(vr.clone(), e))?;
            Value::Outcome(o)
        }
    };
    Ok(Check { metric, op, value })
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
}
