//! Why a command could not give its result, and the one mapping from that to an exit code.
//!
//! Every module error is kept whole (`#[source]` chains intact, never flattened to a string), so
//! [`CliError::report`] can print the cause under the message and `exit_code` can ask the module
//! what kind of failure it was.

use std::path::PathBuf;
use std::process::ExitCode;

use mailharness::vocab::ErrorClass;
use mailharness::{analysis, connector, observe, ops, reply, run, scenario, send, sim};

/// Exit code: the command did what was asked and the result is good (pass, accepted, found).
pub const EXIT_OK: u8 = 0;
/// Exit code: a negative result (failed expectations, missing mail, an IP that cannot deliver).
pub const EXIT_FAIL: u8 = 1;
/// Exit code: usage or configuration (a bad file, flag or target).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: infrastructure (a server, file or socket failed) or the command was interrupted.
pub const EXIT_INFRA: u8 = 3;

/// Everything that can end a command without its result.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Scenario or target files (or the plan across them) are invalid; each error is positioned.
    #[error(transparent)]
    Files(#[from] scenario::Diagnostics),
    /// `run` could not run a scenario.
    #[error(transparent)]
    Run(#[from] run::RunError),
    /// `verify` or `confirm` could not run.
    #[error(transparent)]
    Ops(#[from] ops::OpsError),
    /// `send` could not send.
    #[error(transparent)]
    Send(#[from] send::SendError),
    /// The simulator could not start or stop.
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    /// Observation over IMAP could not run.
    #[error(transparent)]
    Observe(#[from] observe::ObserveError),
    /// A run directory's records could not be read.
    #[error(transparent)]
    Load(#[from] analysis::LoadError),
    /// Nothing to explain in the input.
    #[error(transparent)]
    Explain(#[from] reply::ExplainError),
    /// The connector request breaks a rule (each error names its field).
    #[error("{}", join_rules(.0))]
    Connector(Vec<connector::RuleError>),
    /// A flag's value is unusable.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag, e.g. `--subject`.
        flag: &'static str,
        /// What is wrong and what would be right.
        message: String,
    },
    /// An input file's content is unusable.
    #[error("{flag} {}: {message}", path.display())]
    BadInput {
        /// The flag naming it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and what would be right.
        message: String,
    },
    /// An input file (or stdin) could not be read.
    #[error("{flag} {}: cannot read it", path.display())]
    Input {
        /// The flag naming it.
        flag: &'static str,
        /// The file (`-` for stdin).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file the command writes could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A result could not be encoded as JSON.
    #[error("cannot encode the result as JSON")]
    Json(#[source] serde_json::Error),
    /// Standard output failed for another reason than a reader that went away.
    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
}

/// The connector's rule errors, one per line, each with its field.
fn join_rules(errors: &[connector::RuleError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\nerror: ")
}

/// The exit code of an error class: configuration 2, infrastructure 3.
fn of_class(c: ErrorClass) -> u8 {
    match c {
        ErrorClass::Config => EXIT_CONFIG,
        ErrorClass::Infra => EXIT_INFRA,
    }
}

impl CliError {
    /// The exit code: 2 when the input or configuration is at fault, 3 when the surroundings are.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Files(_)
            | CliError::Explain(_)
            | CliError::Connector(_)
            | CliError::Flag { .. }
            | CliError::BadInput { .. }
            | CliError::Input { .. } => EXIT_CONFIG,
            CliError::Run(e) => of_class(e.class()),
            CliError::Ops(e) => of_class(e.class()),
            CliError::Send(e) => match e {
                send::SendError::Config(_) | send::SendError::SourceIpNotLocal(_) => EXIT_CONFIG,
                _ => EXIT_INFRA,
            },
            CliError::Sim(e) => match e {
                sim::SimError::Config(_) => EXIT_CONFIG,
                _ => EXIT_INFRA,
            },
            CliError::Observe(e) if e.is_config() => EXIT_CONFIG,
            CliError::Load(analysis::LoadError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                EXIT_CONFIG
            }
            CliError::Observe(_)
            | CliError::Load(_)
            | CliError::Write { .. }
            | CliError::Runtime(_)
            | CliError::Json(_)
            | CliError::Stdout(_) => EXIT_INFRA,
        }
    }

    /// The text for stderr: positioned file errors as they are, anything else as `error: …`
    /// with each cause that adds something on its own `caused by:` line.
    pub fn report(&self) -> String {
        if let CliError::Files(d) = self {
            return d.to_string();
        }
        let mut out = format!("error: {self}");
        let mut shown = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            // Many module errors already quote their source in their own text: say it once.
            if !shown.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
                shown.push_str(&text);
            }
            cause = c.source();
        }
        out
    }

    /// The process exit code.
    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_shown_once_and_classes_map_to_2_and_3() {
        let e = CliError::Write {
            path: "x/junit.xml".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(
            e.report(),
            "error: cannot write x/junit.xml\n  caused by: disk full"
        );
        assert_eq!(e.exit_code(), EXIT_INFRA);
        let e = CliError::Flag {
            flag: "--subject",
            message: "is empty".into(),
        };
        assert_eq!(e.report(), "error: --subject: is empty");
        assert_eq!(e.exit_code(), EXIT_CONFIG);
        let e = CliError::Send(send::SendError::SourceIpNotLocal(
            "192.0.2.1".parse().unwrap(),
        ));
        assert_eq!(e.exit_code(), EXIT_CONFIG);
    }
}
