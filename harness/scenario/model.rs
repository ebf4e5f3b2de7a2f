//! The scenario file: what to send, in which phases, and what to expect.
//!
//! Field-by-field documentation lives in `scenarios/README.md`.

use serde::Deserialize;
use toml::Spanned;

use crate::vocab::{
    ApplyMethod, ByteSize, ConnectorAction, ConnectorCidr, HumanDuration, Rate, TlsMode, WaitMethod,
};

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, used in run ids and reports.
    pub name: Spanned<String>,
    /// What the scenario proves, in a sentence or two.
    #[serde(default)]
    pub description: String,
    /// The phases, run in order.
    pub phases: Spanned<Vec<Spanned<Phase>>>,
}

/// One phase: an optional change step, then bursts, then expectations about them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    /// Unique name within the scenario, e.g. `before` or `after`.
    pub name: Spanned<String>,
    /// Free text for reports.
    #[serde(default)]
    pub description: String,
    /// Whether the phase's bursts run one after another or at the same time.
    #[serde(default)]
    pub mode: PhaseMode,
    /// The change that precedes this phase (e.g. creating the connector).
    pub change: Option<Spanned<ChangeStep>>,
    /// What to send.
    pub bursts: Spanned<Vec<Spanned<Burst>>>,
    /// What to expect of each phase × sender × TLS cell.
    #[serde(default)]
    pub expect: Vec<Spanned<Expect>>,
}

/// How a phase schedules its bursts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseMode {
    /// One burst after another, in file order.
    #[default]
    Sequential,
    /// All bursts at once.
    Parallel,
}

/// One burst of messages from one sender role (or all of them) in one TLS mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Burst {
    /// Optional label for reports.
    pub name: Option<String>,
    /// A sender role defined by the target, or `all` for every role.
    pub sender: Spanned<String>,
    /// How to negotiate TLS.
    pub tls: TlsMode,
    /// How many messages.
    pub count: Spanned<u32>,
    /// Pace as a rate, e.g. `"30/min"` (exclusive with `interval`).
    pub rate: Option<Spanned<Rate>>,
    /// Pace as a gap between sends, e.g. `"2s"` (exclusive with `rate`).
    pub interval: Option<Spanned<HumanDuration>>,
    /// Connections open at the same time (default 1).
    pub concurrency: Option<Spanned<u32>>,
    /// Messages sent over one connection before it is closed (default 1).
    pub per_connection: Option<Spanned<u32>>,
    /// Recipients per message (default 1).
    pub recipients: Option<Spanned<u32>>,
    /// Body size of each message (default 2KiB).
    pub body_size: Option<ByteSize>,
    /// Explicit recipient addresses; default: the target's test mailboxes, round robin.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Retry refused messages to measure how long throttling lasts.
    pub retry: Option<Spanned<RetryPolicy>>,
}

/// Retrying refused (4xx) messages.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first (2 or more).
    pub attempts: u32,
    /// Wait before the first retry; doubles after each further one.
    pub backoff: HumanDuration,
}

/// The change that precedes a phase.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeStep {
    /// What happens to the connector.
    pub connector: ConnectorAction,
    /// Connector name (default "Trusted Mail Connector", as in the support article).
    pub name: Option<String>,
    /// Sender IPs the connector lists; default: every sender IP of the target.
    pub sender_ips: Option<Vec<Spanned<ConnectorCidr>>>,
    /// Reject mail not sent over TLS (`-RequireTls`); default true.
    pub require_tls: Option<bool>,
    /// Reject mail from other IPs (`-RestrictDomainsToIPAddresses`); default false.
    pub restrict_domains_to_ips: Option<bool>,
    /// How the change is applied; default `simulator` for the simulator, `prompt` otherwise.
    pub apply: Option<Spanned<ApplyMethod>>,
    /// The command for `apply = "hook"`, as a program and its arguments.
    pub command: Option<Spanned<Vec<String>>>,
    /// The file to wait for with `apply = "signal-file"`.
    pub signal_file: Option<Spanned<String>>,
    /// How to wait for the change to take effect (default `settle`).
    pub wait: Option<Spanned<WaitMethod>>,
    /// Fixed wait for `settle` (default 5s).
    pub settle: Option<HumanDuration>,
    /// Gap between probes for `poll` (default 5s).
    pub poll_interval: Option<HumanDuration>,
    /// Give up polling after this long (default 10m).
    pub deadline: Option<HumanDuration>,
    /// How long to wait for the operator or signal file (default 1h).
    pub apply_timeout: Option<HumanDuration>,
}

/// Checks about one phase × sender × TLS cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// A sender role, or `all` for every role the phase sends from.
    pub sender: Spanned<String>,
    /// A TLS mode, or `all` for every mode the phase uses for that sender.
    pub tls: Spanned<String>,
    /// Checks such as `"throttle_rate <= 0.0"`.
    pub checks: Spanned<Vec<Spanned<String>>>,
}
