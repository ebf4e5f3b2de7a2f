//! Why a run could not run, and why its observation step failed.

use std::path::PathBuf;

use crate::analysis::LoadError;
use crate::endpoint::EndpointError;
use crate::observe::ObserveError;
use crate::scenario::Diagnostics;
use crate::send::SendError;
use crate::sim::SimError;
use crate::vocab::ErrorClass;

/// Why a run could not run; [`RunError::class`] says which exit status it earns.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario does not expand against the target.
    #[error(transparent)]
    Plan(#[from] Diagnostics),
    /// Where mail goes could not be resolved.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// No send context could be built for the endpoint.
    #[error(transparent)]
    SendContext(EndpointError),
    /// The embedded simulator did not start.
    #[error("cannot start the embedded simulator: {0}")]
    Simulator(#[source] SimError),
    /// The attempts file could not be opened or closed.
    #[error(transparent)]
    Sink(SendError),
    /// The records could not be read back for analysis.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A directory or file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The directory or file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record could not be encoded as JSON.
    #[error("cannot encode {path}: {source}")]
    Encode {
        /// The file it was meant for.
        path: PathBuf,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// The simulator's trace could not be copied into the run directory.
    #[error("cannot copy the simulator trace to {path}: {source}")]
    CopyTrace {
        /// The copy's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The reports could not be written.
    #[error("cannot write reports into {dir}: {source}")]
    Reports {
        /// The run directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl RunError {
    /// Whether the configuration is at fault (exit 2) or the surroundings (exit 3).
    pub fn class(&self) -> ErrorClass {
        match self {
            RunError::Plan(_) => ErrorClass::Config,
            RunError::Endpoint(e) => e.class(),
            // Settings that pass the plan but make no TLS client have always counted as the
            // surroundings' fault here (`verify` and `confirm` call them configuration).
            RunError::SendContext(_)
            | RunError::Simulator(_)
            | RunError::Sink(_)
            | RunError::Load(_)
            | RunError::Create { .. }
            | RunError::Write { .. }
            | RunError::Encode { .. }
            | RunError::CopyTrace { .. }
            | RunError::Reports { .. } => ErrorClass::Infra,
        }
    }
}

/// Why reading the test mailboxes back failed; the run records it and still writes its reports.
#[derive(Debug, thiserror::Error)]
pub enum ObservationError {
    /// The IMAP side could not be set up or read.
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// The run was stopped while observing.
    #[error("interrupted")]
    Interrupted,
}
