//! Reading a run directory's records back.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::record::{AttemptRecord, JsonlError, ObservationRecord, RunRecord};
use crate::scenario::plan::Plan;

/// File names inside `reports/<run-id>/`.
pub mod files {
    /// The expanded plan the run executed.
    pub const PLAN: &str = "plan.json";
    /// The run's own record.
    pub const RUN: &str = "run.json";
    /// One line per attempted message.
    pub const ATTEMPTS: &str = "attempts.jsonl";
    /// One line per observed (or missing) message.
    pub const OBSERVATIONS: &str = "observations.jsonl";
    /// The simulator's message trace for the run (simulator runs only).
    pub const SIM_TRACE: &str = "sim-trace.jsonl";
    /// The analysis.
    pub const SUMMARY: &str = "summary.json";
    /// The Markdown report.
    pub const REPORT_MD: &str = "report.md";
    /// The HTML report.
    pub const REPORT_HTML: &str = "report.html";
    /// The JUnit report.
    pub const JUNIT: &str = "junit.xml";
}

/// The fields of a simulator trace record that the cross-check needs.
#[derive(Debug, Clone, Deserialize)]
pub struct TraceEntry {
    /// The connecting IP.
    pub source_ip: String,
    /// The transaction's decision, snake_case (`accepted`, `throttled`, `tls_required`, …).
    pub decision: String,
    /// The Message-ID, when the message got that far.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Everything analysis reads.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The plan.
    pub plan: Plan,
    /// The run record.
    pub run: RunRecord,
    /// Every attempt.
    pub attempts: Vec<AttemptRecord>,
    /// Every observation (empty when the run was not observed).
    pub observations: Vec<ObservationRecord>,
    /// Whether the run was observed at all (`observations.jsonl` exists); otherwise delivery is unknown, not missing.
    pub observed: bool,
    /// The simulator's trace, when the run has one.
    pub trace: Option<Vec<TraceEntry>>,
    /// What was wrong with the records and what was done about it (a torn last line skipped, a
    /// repeated attempt counted once). The numbers are then incomplete, and the reports say so.
    pub problems: Vec<String>,
}

/// Why a run directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (1 for whole-file JSON).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| LoadError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// Reads a JSONL file; a skipped torn last line becomes a problem the reports show.
fn read_jsonl<T: DeserializeOwned>(
    path: &Path,
    problems: &mut Vec<String>,
) -> Result<Vec<T>, LoadError> {
    let (records, torn) = crate::record::read_jsonl_noting_torn(path).map_err(|e| match e {
        JsonlError::Io { path, source } => LoadError::Io { path, source },
        JsonlError::Parse {
            path,
            line,
            message,
        } => LoadError::Parse {
            path,
            line,
            message,
        },
    })?;
    if let Some(line) = torn {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        problems.push(format!(
            "{name}:{line}: the last record was cut short (the run was killed while writing it) and is left out"
        ));
    }
    Ok(records)
}

/// Keeps the first record of each attempt id: a repeated one would be counted as a retry.
fn drop_repeated_attempts(attempts: &mut Vec<AttemptRecord>, problems: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    let mut repeated = Vec::new();
    attempts.retain(|a| {
        let first = seen.insert(a.attempt_id.clone());
        if !first {
            repeated.push(a.attempt_id.clone());
        }
        first
    });
    if !repeated.is_empty() {
        problems.push(format!(
            "{}: {} record(s) repeat an attempt already recorded (first: {}); each attempt is counted once",
            files::ATTEMPTS,
            repeated.len(),
            repeated[0]
        ));
    }
}

/// Reads a run directory. `observations.jsonl` and `sim-trace.jsonl` are optional.
pub fn load_run_dir(dir: &Path) -> Result<RunData, LoadError> {
    let plan: Plan = read_json(&dir.join(files::PLAN))?;
    let run: RunRecord = read_json(&dir.join(files::RUN))?;
    let mut problems = Vec::new();
    let mut attempts = read_jsonl(&dir.join(files::ATTEMPTS), &mut problems)?;
    drop_repeated_attempts(&mut attempts, &mut problems);
    let obs_path = dir.join(files::OBSERVATIONS);
    let observed = obs_path.exists();
    let observations = if observed {
        read_jsonl(&obs_path, &mut problems)?
    } else {
        Vec::new()
    };
    let trace_path = dir.join(files::SIM_TRACE);
    let trace = if trace_path.exists() {
        Some(read_jsonl(&trace_path, &mut problems)?)
    } else {
        None
    };
    Ok(RunData {
        plan,
        run,
        attempts,
        observations,
        observed,
        trace,
        problems,
    })
}
