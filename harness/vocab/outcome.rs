//! How things ended: one attempt's outcome class, and a whole run's verdict.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The outcome class of one attempted message (design notes, "Outcome classes").
///
/// Classes key on the enhanced status code and the AS/S token, never on reply wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeClass {
    /// The final reply to the end of data was 2xx.
    Accepted,
    /// 4.7.500–4.7.699 (except 4.7.650/651): IP throttling, the "ASxxx" family.
    Throttled,
    /// 4.7.650/4.7.651: rate limited on IP reputation.
    RateLimited,
    /// Any other 4xx.
    Deferred,
    /// The receiver requires TLS and the session had none (e.g. 451 5.7.3, 530 5.7.0).
    TlsRequired,
    /// A 5xx rejection.
    Rejected,
    /// The TLS handshake failed or TLS was required but not offered.
    TlsFailure,
    /// The TCP connection could not be made.
    ConnectFailure,
    /// The server did not answer in time.
    Timeout,
    /// The server broke the protocol or dropped the connection.
    ProtocolError,
    /// The run was interrupted before the attempt finished.
    Interrupted,
}

impl OutcomeClass {
    /// Every class, in report order.
    pub const ALL: [OutcomeClass; 11] = [
        OutcomeClass::Accepted,
        OutcomeClass::Throttled,
        OutcomeClass::RateLimited,
        OutcomeClass::Deferred,
        OutcomeClass::TlsRequired,
        OutcomeClass::Rejected,
        OutcomeClass::TlsFailure,
        OutcomeClass::ConnectFailure,
        OutcomeClass::Timeout,
        OutcomeClass::ProtocolError,
        OutcomeClass::Interrupted,
    ];

    /// The kebab-case name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeClass::Accepted => "accepted",
            OutcomeClass::Throttled => "throttled",
            OutcomeClass::RateLimited => "rate-limited",
            OutcomeClass::Deferred => "deferred",
            OutcomeClass::TlsRequired => "tls-required",
            OutcomeClass::Rejected => "rejected",
            OutcomeClass::TlsFailure => "tls-failure",
            OutcomeClass::ConnectFailure => "connect-failure",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::ProtocolError => "protocol-error",
            OutcomeClass::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutcomeClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        OutcomeClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = OutcomeClass::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown outcome `{s}`: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A run's overall verdict: every expectation held (and the trace agreed), or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    /// Every expectation held, and nothing about the run itself failed.
    Pass,
    /// Something did not hold.
    Fail,
}

impl RunVerdict {
    /// `Pass` when `passed`, `Fail` otherwise.
    pub fn from_passed(passed: bool) -> RunVerdict {
        if passed {
            RunVerdict::Pass
        } else {
            RunVerdict::Fail
        }
    }

    /// The lower-case name used in `summary.json` and as a CSS class.
    pub fn as_str(self) -> &'static str {
        match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
        }
    }

    /// The name shouted in headings and on the terminal: `PASS` or `FAIL`.
    pub fn as_upper(self) -> &'static str {
        match self {
            RunVerdict::Pass => "PASS",
            RunVerdict::Fail => "FAIL",
        }
    }
}

display_as_str!(RunVerdict);
