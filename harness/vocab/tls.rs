//! TLS words: how a burst negotiates TLS, and how strictly a client judges certificates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a burst negotiates TLS with the receiving MX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never issue STARTTLS.
    None,
    /// STARTTLS is required; the attempt fails if the server does not offer it.
    Starttls,
    /// STARTTLS when offered, plain text otherwise.
    StarttlsOpportunistic,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl TlsMode {
    /// Every mode, in display order.
    pub const ALL: [TlsMode; 4] = [
        TlsMode::None,
        TlsMode::Starttls,
        TlsMode::StarttlsOpportunistic,
        TlsMode::Implicit,
    ];

    /// The spelling used in scenario files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::StarttlsOpportunistic => "starttls-opportunistic",
            TlsMode::Implicit => "implicit",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Certificate verification policy for the MX's TLS certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsVerify {
    /// Fail the attempt when the certificate does not verify.
    #[default]
    Verify,
    /// Record the verification result and continue (MX probing).
    Record,
}
