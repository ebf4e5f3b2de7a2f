//! `mailharness run` on the embedded simulator: the shipped suites pass by design, a re-render
//! reproduces `summary.json` byte for byte, and a connector that never takes effect fails (exit 1).

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::run;

fn run_dirs(reports: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_main_scenario_shows_throttling_before_and_none_after_for_both_ips() {
    let reports = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        "scenarios/connector-before-after.toml",
        "--reports",
        reports.path().to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let dirs = run_dirs(reports.path());
    assert_eq!(dirs.len(), 1);
    let dir = &dirs[0];
    for f in [
        "summary.json",
        "report.md",
        "report.html",
        "junit.xml",
        "attempts.jsonl",
        "observations.jsonl",
        "sim-trace.jsonl",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let s = summary(dir);
    assert_eq!(s["verdict"], "pass");
    assert_eq!(s["trace_check"]["agreed"], true, "{}", s["trace_check"]);
    for d in s["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["tls"] == "starttls")
    {
        assert!(d["throttle_rate_before"].as_f64().unwrap() > 0.5, "{d}");
        assert_eq!(d["throttle_rate_after"], 0.0, "{d}");
    }
    let senders: std::collections::BTreeSet<&str> = s["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders.len(), 2, "both IPs compared");

    // Re-rendering from the records reproduces summary.json byte for byte.
    let before = std::fs::read(dir.join("summary.json")).unwrap();
    let (code, out) = run(&["report", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(before, std::fs::read(dir.join("summary.json")).unwrap());
}

#[test]
fn the_tls_enforcement_and_smoke_suites_pass_in_one_run() {
    let reports = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        "scenarios/tls-enforcement.toml",
        "scenarios/smoke.toml",
        "--reports",
        reports.path().to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(run_dirs(reports.path()).len(), 2);
}

#[test]
fn a_connector_that_never_takes_effect_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // The simulator's connector takes effect only after an hour: after the change the IPs are
    // still throttled, and plain text is still accepted until the bucket empties.
    let target = dir.path().join("slow-connector.toml");
    let builtin = std::fs::read_to_string("scenarios/targets/sim.toml").unwrap();
    std::fs::write(
        &target,
        format!("{builtin}\n[simulator.connectors]\nactivation_delay = \"1h\"\n"),
    )
    .unwrap();
    let scenario = dir.path().join("short-poll.toml");
    let main = std::fs::read_to_string("scenarios/connector-before-after.toml").unwrap();
    std::fs::write(
        &scenario,
        main.replace("deadline = \"60s\"", "deadline = \"2s\""),
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let (code, out) = run(&[
        "run",
        scenario.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--reports",
        reports.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL after/primary/starttls: throttle_rate <= 0"),
        "{out}"
    );
    let s = summary(&run_dirs(&reports)[0]);
    assert_eq!(s["phases"][1]["change"]["timed_out"], true);
    let junit = std::fs::read_to_string(run_dirs(&reports)[0].join("junit.xml")).unwrap();
    assert!(
        junit.contains("<failure message=\"throttle_rate &lt;= 0 failed"),
        "{junit}"
    );
}

#[test]
fn bad_input_exits_2_before_anything_is_sent() {
    let reports = tempfile::tempdir().unwrap();
    let (code, out) = run(&[
        "run",
        "scenarios/smoke.toml",
        "tests/malformed/scenarios/08-unknown-sender-role.toml",
        "--reports",
        reports.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("08-unknown-sender-role.toml:7:12"), "{out}");
    assert!(run_dirs(reports.path()).is_empty(), "nothing ran");
}
