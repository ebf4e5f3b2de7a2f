//! Every command's `--json` output is one document with a top-level `schema` version, and valid
//! against its published JSON Schema (`schemas/<command>.schema.json`), checked with Python's
//! `jsonschema` (tests/run.sh installs it). Everything runs against the embedded simulator.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn mh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailharness"))
}

/// Validates `doc` against `schemas/<name>.schema.json` (itself checked as a 2020-12 schema).
fn validate(name: &str, doc: &str) {
    let v: serde_json::Value =
        serde_json::from_str(doc).unwrap_or_else(|e| panic!("{name}: not JSON ({e}):\n{doc}"));
    assert!(v["schema"].as_u64().is_some(), "{name}: no schema version");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc).unwrap();
    let schema = Path::new("schemas").join(format!("{name}.schema.json"));
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys, jsonschema\n\
             s = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(s)\n\
             errs = sorted(jsonschema.Draft202012Validator(s).iter_errors(json.load(open(sys.argv[2]))), key=str)\n\
             for e in errs: print(list(e.absolute_path), e.message)\n\
             sys.exit(1 if errs else 0)",
        )
        .arg(&schema)
        .arg(file.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{name}: output does not match {}:\n{}{}\n{doc}",
        schema.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `mailharness <args>`, expects `code`, returns stdout.
fn json_of(args: &[&str], code: i32) -> String {
    let out = mh().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn plan_explain_and_connector_json_match_their_schemas() {
    validate(
        "plan",
        &json_of(
            &["plan", "scenarios/connector-before-after.toml", "--json"],
            0,
        ),
    );
    validate(
        "explain",
        &json_of(
            &[
                "explain",
                "--json",
                "451 4.7.500 Server busy. Please try again later from [203.0.113.10]. (AS761)",
            ],
            0,
        ),
    );
    validate("connector", &json_of(&["connector", "--json"], 0));
    let doc = json_of(
        &["connector", "--json", "--current", "127.0.0.2,192.0.2.1"],
        0,
    );
    validate("connector", &doc);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["change"]["diff"]["add"][0], "127.0.0.3", "{v}");
}

#[test]
fn run_report_and_observe_json_match_their_schemas_and_observe_reads_the_simulator_run() {
    let out = tempfile::tempdir().unwrap();
    let root = out.path().to_str().unwrap();
    let doc = json_of(&["run", "scenarios/smoke.toml", "--out", root, "--json"], 0);
    validate("run", &doc);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["total"]["runs"], 1);
    assert_eq!(v["runs"][0]["verdict"], "pass");
    let latest = out.path().join("latest");
    let dir = latest.to_str().unwrap();
    validate("report", &json_of(&["report", dir, "--json"], 0));
    // The simulator is gone; its Maildirs stayed in the run directory and are read again.
    let doc = json_of(&["observe", dir, "--json"], 0);
    validate("observe", &doc);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v["found"], 4, "{v}");
    assert_eq!(v["missing"], 0, "{v}");
    // No generated password was left in a file of the run directory.
    let pw = std::fs::read_dir(latest.join("sim")).unwrap().count();
    assert!(!latest.join("sim").join("imap-password").exists() && pw > 0);
}

#[test]
fn verify_and_confirm_json_match_their_schemas_and_verify_observes_the_simulator() {
    let doc = json_of(&["verify", "--json"], 0);
    validate("verify", &doc);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        v["observed"], true,
        "verify reads the simulator's mailboxes: {v}"
    );
    assert_eq!(v["ips"][0]["with_tls"]["observed"], "INBOX", "{v}");
    let out = tempfile::tempdir().unwrap();
    let doc = json_of(
        &[
            "confirm",
            "--to",
            "qa2@contoso.example",
            "--json",
            "--out",
            out.path().to_str().unwrap(),
        ],
        0,
    );
    validate("confirm", &doc);
}

/// `sim --json` prints one object with its addresses; `send --json` against it gives one
/// document per burst with every attempt.
#[cfg(unix)]
#[test]
fn sim_and_send_json_match_their_schemas() {
    let state = tempfile::tempdir().unwrap();
    let mut sim = mh()
        .args(["sim", "--json", "--state-dir"])
        .arg(state.path())
        .args(["--smtp-port", "0", "--smtps-port", "0", "--admin-port", "0"])
        .args(["--imap-port", "0", "--imaps-port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut doc = String::new();
    let mut lines = BufReader::new(sim.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        doc.push_str(&line);
        doc.push('\n');
        if line == "}" {
            break;
        }
    }
    validate("sim", &doc);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let smtp = v["smtp"].as_str().unwrap().to_string();
    let ca = v["ca_certificate"].as_str().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let send = json_of(
        &[
            "send",
            "--server",
            &smtp,
            "--from-ip",
            "127.0.0.4",
            "--to",
            "qa1@contoso.example",
            "--count",
            "2",
            "--tls",
            "starttls",
            "--ca-file",
            &ca,
            "--json",
            "--out",
            out.path().to_str().unwrap(),
        ],
        0,
    );
    validate("send", &send);
    let s: serde_json::Value = serde_json::from_str(&send).unwrap();
    assert_eq!(s["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(s["attempts"][0]["tls"]["version"], "1.3", "{s}");
    let killed = Command::new("kill")
        .args(["-TERM", &sim.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(sim.wait().unwrap().code(), Some(0));
}
