//! The connector change step between phases: what it does, how it is applied, how the harness
//! waits for it. Scenario files, plans and change records spell them the same way.

use serde::{Deserialize, Serialize};

/// What a change step does to the tenant's inbound connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorAction {
    /// Create the connector (`New-InboundConnector`).
    Create,
    /// Change its settings (`Set-InboundConnector`).
    Update,
    /// Turn it on.
    Enable,
    /// Turn it off.
    Disable,
    /// Remove it.
    Delete,
}

impl ConnectorAction {
    /// The spelling used in scenario files, records and the hook's environment.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorAction::Create => "create",
            ConnectorAction::Update => "update",
            ConnectorAction::Enable => "enable",
            ConnectorAction::Disable => "disable",
            ConnectorAction::Delete => "delete",
        }
    }
}

/// How a change step is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyMethod {
    /// Call the embedded simulator's admin API.
    Simulator,
    /// Print the admin steps and wait for the operator to press Enter.
    Prompt,
    /// Run a command; exit status 0 means done.
    Hook,
    /// Wait until a file appears (unattended runs).
    SignalFile,
}

impl ApplyMethod {
    /// The spelling used in scenario files and records.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyMethod::Simulator => "simulator",
            ApplyMethod::Prompt => "prompt",
            ApplyMethod::Hook => "hook",
            ApplyMethod::SignalFile => "signal-file",
        }
    }
}

/// How to wait for a change to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitMethod {
    /// Sleep a fixed time.
    Settle,
    /// Send small probes until throttling stops, or a deadline passes.
    Poll,
}

impl WaitMethod {
    /// The spelling used in scenario files and records.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitMethod::Settle => "settle",
            WaitMethod::Poll => "poll",
        }
    }
}

display_as_str!(ConnectorAction, ApplyMethod, WaitMethod);
