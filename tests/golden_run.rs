//! A recorded run of the main scenario on the embedded simulator (tests/data/golden/main-run/,
//! written by `mailharness run scenarios/connector-before-after.toml`) stays readable and
//! reproducible byte for byte: every record line round-trips through the record types unchanged,
//! and `mailharness report` re-derives the committed `summary.json` exactly. This is the safety net
//! for refactors of the record, analysis and report types; when the summary's content changes on
//! purpose, regenerate the golden run and say so in the commit.

use std::path::{Path, PathBuf};
use std::process::Command;

use mailharness::record::{AttemptRecord, ObservationRecord, RunRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/main-run")
}

/// Every line of a JSONL file, read into `T` and written back, is the same line.
fn round_trips<T: DeserializeOwned + Serialize>(file: &Path) -> usize {
    let text = std::fs::read_to_string(file).unwrap();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let rec: T = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: {e}", file.display(), i + 1));
        let again = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            again,
            line,
            "{}:{} changed on a round trip",
            file.display(),
            i + 1
        );
        n += 1;
    }
    n
}

#[test]
fn records_round_trip_byte_for_byte() {
    assert_eq!(
        round_trips::<AttemptRecord>(&golden().join("attempts.jsonl")),
        100
    );
    assert!(round_trips::<ObservationRecord>(&golden().join("observations.jsonl")) >= 36);
    let run = std::fs::read_to_string(golden().join("run.json")).unwrap();
    let rec: RunRecord = serde_json::from_str(&run).unwrap();
    let again = serde_json::to_value(&rec).unwrap();
    let orig: serde_json::Value = serde_json::from_str(&run).unwrap();
    assert_eq!(again, orig, "run.json changed on a round trip");
}

#[test]
fn report_reproduces_the_golden_summary() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "plan.json",
        "run.json",
        "attempts.jsonl",
        "observations.jsonl",
        "sim-trace.jsonl",
    ] {
        std::fs::copy(golden().join(f), dir.path().join(f)).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read(golden().join("summary.json")).unwrap();
    let got = std::fs::read(dir.path().join("summary.json")).unwrap();
    assert!(
        want == got,
        "summary.json differs from the golden one:\n{}",
        String::from_utf8_lossy(&got)
    );
}
