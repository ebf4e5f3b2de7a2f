//! The JSON Schemas in schemas/ describe what mailharness really writes: Python's `jsonschema`
//! (an independent validator; tests/run.sh installs it) validates summary.json, run.json, plan.json
//! and every line of attempts.jsonl, observations.jsonl and sim-trace.jsonl of the golden run and
//! of a fresh run on the embedded simulator, and records with every optional field filled, which
//! real runs rarely write.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{TimeZone, Utc};
use mailharness::analysis::Summary;
use mailharness::record::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each run-directory file and the schema its content follows.
const FILES: [(&str, &str); 6] = [
    ("summary.json", "summary.schema.json"),
    ("run.json", "run-record.schema.json"),
    ("plan.json", "plan.schema.json"),
    ("attempts.jsonl", "attempt-record.schema.json"),
    ("observations.jsonl", "observation-record.schema.json"),
    ("sim-trace.jsonl", "sim-trace-record.schema.json"),
];

/// Runs tests/validate_schemas.py on (schema, data file) pairs; panics with its report on a
/// violation.
fn validate(pairs: &[(String, PathBuf)]) {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/validate_schemas.py"));
    for (schema, data) in pairs {
        cmd.arg(root().join("schemas").join(schema)).arg(data);
    }
    let out = cmd
        .output()
        .expect("python3 runs (tests/run.sh installs it and its jsonschema package)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("ok: ").count(), pairs.len(), "{text}");
}

/// Every file of a run directory against its schema.
fn validate_run_dir(dir: &Path) {
    let pairs: Vec<(String, PathBuf)> = FILES
        .iter()
        .map(|(file, schema)| (schema.to_string(), dir.join(file)))
        .collect();
    for (_, f) in &pairs {
        assert!(f.exists(), "{} missing", f.display());
    }
    validate(&pairs);
}

#[test]
fn the_golden_run_matches_the_schemas() {
    validate_run_dir(&root().join("tests/data/golden/main-run"));
}

#[test]
fn a_fresh_simulator_run_matches_the_schemas() {
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args([
            "run",
            "scenarios/connector-before-after.toml",
            "--no-progress",
            "--reports",
        ])
        .arg(reports.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dir = std::fs::read_dir(reports.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    validate_run_dir(&dir);
}

/// An attempt with every optional field set, and a retry of it.
fn full_attempt() -> AttemptRecord {
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let reply = DecidingReply {
        stage: Stage::Rcpt,
        code: 451,
        enhanced: Some("4.7.500".into()),
        text: "Server busy. (AS761)".into(),
    };
    AttemptRecord {
        schema: RECORD_SCHEMA,
        run_id: "r".into(),
        seq: "p/s/starttls/0".into(),
        attempt_id: "p/s/starttls/0#2".into(),
        attempt: 2,
        retry_of: Some("p/s/starttls/0#1".into()),
        phase: "p".into(),
        burst: "p/s/starttls/0".into(),
        index: 0,
        sender: "s".into(),
        source_ip: "127.0.0.2".parse().unwrap(),
        destination: "127.0.0.1:25".into(),
        tls_mode: mailharness::vocab::TlsMode::Starttls,
        tls: Some(TlsInfo {
            version: "1.2".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            peer_subject: Some("CN=mx".into()),
            peer_sans: vec!["mx.example".into()],
            peer_not_after: Some(t),
            verification: CertVerification::Invalid("bad signature".into()),
        }),
        message_id: "<m@x>".into(),
        recipients: vec!["a@example.com".into()],
        size: 10,
        connection: 1,
        connection_seq: 1,
        scheduled_at: t,
        scheduled_ms: 1.0,
        started_at: t,
        started_ms: 1.0,
        finished_at: t,
        finished_ms: 2.0,
        transcript: vec![Exchange {
            stage: Stage::Rcpt,
            command: Some("RCPT TO:<a@example.com>".into()),
            code: Some(451),
            enhanced: Some("4.7.500".into()),
            lines: vec!["Server busy. (AS761)".into()],
            elapsed_ms: 1.0,
            at_ms: 2.0,
        }],
        outcome: mailharness::vocab::OutcomeClass::Throttled,
        reply: Some(reply),
        token: Some("AS761".into()),
        queue_id: Some("q".into()),
        error: Some("e".into()),
    }
}

/// An observation with every optional field and every evidence header set.
fn full_observation() -> ObservationRecord {
    let t = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 1).unwrap();
    let s = |x: &str| Some(x.to_string());
    ObservationRecord {
        schema: RECORD_SCHEMA,
        run_id: "r".into(),
        seq: s("p/s/starttls/0"),
        attempt_id: s("p/s/starttls/0#2"),
        message_id: s("<m@x>"),
        mailbox: "a@example.com".into(),
        status: ObservationStatus::Found,
        folder: Some(FolderKind::Junk),
        folder_name: s("Junk Email"),
        uidvalidity: Some(1),
        uid: Some(2),
        internal_date: Some(t),
        accepted_at: Some(t),
        latency_ms: Some(12.5),
        evidence: Evidence {
            received: s("from x"),
            tls_version: s("1.2"),
            tls_cipher: s("c"),
            cip: s("127.0.0.2"),
            sfv: s("SPM"),
            scl: Some(5),
            cat: s("SPM"),
            dir: s("INB"),
            ipv: s("NLI"),
            auth_as: s("Anonymous"),
            authentication_results: s("spf=none"),
            delivery_dest: s("J"),
        },
        observed_at: t,
    }
}

fn jsonl<T: serde::Serialize>(path: &Path, records: &[T]) {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn records_and_a_summary_with_every_optional_field_match_the_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let golden = root().join("tests/data/golden/main-run");
    jsonl(&dir.path().join("attempts.jsonl"), &[full_attempt()]);
    jsonl(
        &dir.path().join("observations.jsonl"),
        &[full_observation()],
    );
    let mut run: RunRecord =
        serde_json::from_str(&std::fs::read_to_string(golden.join("run.json")).unwrap()).unwrap();
    run.error = Some("the simulator died".into());
    run.interrupted = true;
    let change = run.phases[1].change.as_mut().unwrap();
    change.error = Some("hook failed".into());
    change.timed_out = true;
    std::fs::write(
        dir.path().join("run.json"),
        serde_json::to_string(&run).unwrap(),
    )
    .unwrap();
    let mut s: Summary =
        serde_json::from_str(&std::fs::read_to_string(golden.join("summary.json")).unwrap())
            .unwrap();
    s.error = Some("the simulator died".into());
    s.record_problems = vec!["attempts.jsonl:9: cut short".into()];
    s.phases[1].change.as_mut().unwrap().error = Some("hook failed".into());
    s.expectations[0].skipped = true;
    s.trace_check = None;
    std::fs::write(
        dir.path().join("summary.json"),
        mailharness::report::summary_json(&s),
    )
    .unwrap();
    let pairs: Vec<(String, PathBuf)> = FILES[..5]
        .iter()
        .filter(|(f, _)| *f != "plan.json")
        .map(|(file, schema)| (schema.to_string(), dir.path().join(file)))
        .collect();
    validate(&pairs);
}
