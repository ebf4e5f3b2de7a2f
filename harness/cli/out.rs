//! The one way results reach standard output.
//!
//! `println!` panics when stdout is closed (`mailharness plan x.toml | head -1`); these helpers
//! notice the reader went away, print nothing more, and let the command finish with its own exit
//! code. Lines for people that are not the result (progress, warnings, causes) go to stderr, whose
//! failures are ignored: there is nowhere left to say so.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::error::CliError;

/// Set once a write to stdout found the reader gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout as it is. A reader that went away is not an error.
pub fn print(text: &str) -> Result<(), CliError> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(CliError::Stdout(e)),
    }
}

/// Writes one line to stdout.
pub fn line(text: &str) -> Result<(), CliError> {
    print(&format!("{text}\n"))
}

/// Writes one line to stderr, ignoring failures.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes `v` as one pretty JSON document to stdout.
pub fn json<T: Serialize>(v: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).map_err(CliError::Json)?;
    line(&text)
}

/// The result as JSON with `--json`, otherwise the text for people.
pub fn emit<T: Serialize>(
    as_json: bool,
    v: &T,
    text: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if as_json {
        json(v)
    } else {
        print(&text())
    }
}
