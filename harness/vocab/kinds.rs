//! Which kind of target a run goes to, and which kind of failure stopped a command.

use serde::{Deserialize, Serialize};

/// Which kind of receiver a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// The embedded simulated tenant, started in-process.
    Simulator,
    /// A real Microsoft 365 tenant.
    Tenant,
}

impl TargetKind {
    /// The spelling used in target files, records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Simulator => "simulator",
            TargetKind::Tenant => "tenant",
        }
    }
}

/// Why a command could not run, as far as its exit status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Its input was wrong: arguments, a file, a setting (exit 2).
    Config,
    /// Its surroundings failed: DNS, the network, the simulator, the disk (exit 3).
    Infra,
}

display_as_str!(TargetKind);
