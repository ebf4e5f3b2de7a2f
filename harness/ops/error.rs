//! Why an ops command could not run. A failed delivery is a result, not an error.

use std::path::PathBuf;

use crate::endpoint::EndpointError;
use crate::observe::ObserveError;
use crate::send::SendError;
use crate::sim::SimError;
use crate::vocab::ErrorClass;

/// Why `verify` or `confirm` could not run; [`OpsError::class`] says which exit status it earns.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Where mail goes could not be resolved.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The recipient has no `@`.
    #[error("recipient {0:?} is not an email address")]
    NotAnAddress(String),
    /// The recipient's domain is outside the target's `[guard] allowed_domains`.
    #[error("{path}: [guard] allowed_domains ({allowed}) does not include {domain}; add it to send there")]
    NotAllowed {
        /// The target file.
        path: PathBuf,
        /// The allowed domains, comma-separated.
        allowed: String,
        /// The recipient's domain.
        domain: String,
    },
    /// `verify` has no test mailbox to send to.
    #[error("{path}: the target lists no [[mailboxes]]: verify needs a test mailbox to send to")]
    NoMailbox {
        /// The target file.
        path: PathBuf,
    },
    /// `confirm` has no sender IP to send from.
    #[error("{path}: the target lists no [senders]")]
    NoSender {
        /// The target file.
        path: PathBuf,
    },
    /// The target's IMAP settings are unusable.
    #[error("{path}: {source}")]
    Imap {
        /// The target file.
        path: PathBuf,
        /// What is wrong with them.
        source: ObserveError,
    },
    /// `--from-ip` cannot be sent from.
    #[error("--from-ip: {0}")]
    FromIp(#[source] SendError),
    /// `--out` cannot be created.
    #[error("--out {path}: cannot create this directory ({source}); give a directory path")]
    ReportDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--previous` cannot be read.
    #[error("--previous {path}: cannot read it: {source}")]
    PreviousUnreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--previous` is not a verify report.
    #[error("--previous {path}: not a `mailharness verify --json` report: {source}")]
    PreviousNotAReport {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `--previous` is a verify report of another schema.
    #[error("--previous {path}: schema {schema} is not the {expected} this version reads")]
    PreviousSchema {
        /// The file.
        path: PathBuf,
        /// Its schema.
        schema: u32,
        /// The schema this version reads.
        expected: u32,
    },
    /// The embedded simulator did not start.
    #[error("cannot start the embedded simulator: {0}")]
    Simulator(#[source] SimError),
    /// The simulator's message trace could not be read.
    #[error("reading the simulator's trace: {0}")]
    Trace(#[source] SimError),
    /// Observation over IMAP failed.
    #[error("observing over IMAP: {0}")]
    Observe(#[source] ObserveError),
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
    /// The report could not be encoded as JSON.
    #[error("cannot encode the report: {0}")]
    Encode(#[source] serde_json::Error),
}

impl OpsError {
    /// Whether the arguments or target are at fault (exit 2) or the surroundings (exit 3).
    pub fn class(&self) -> ErrorClass {
        match self {
            OpsError::Endpoint(e) => e.class(),
            OpsError::NotAnAddress(_)
            | OpsError::NotAllowed { .. }
            | OpsError::NoMailbox { .. }
            | OpsError::NoSender { .. }
            | OpsError::Imap { .. }
            | OpsError::FromIp(_)
            | OpsError::ReportDir { .. }
            | OpsError::PreviousUnreadable { .. }
            | OpsError::PreviousNotAReport { .. }
            | OpsError::PreviousSchema { .. } => ErrorClass::Config,
            OpsError::Simulator(_)
            | OpsError::Trace(_)
            | OpsError::Observe(_)
            | OpsError::Create { .. }
            | OpsError::Write { .. }
            | OpsError::Encode(_) => ErrorClass::Infra,
        }
    }
}
