//! `mailharness run` on the embedded simulator: the shipped suites pass by design, a re-render
//! reproduces `summary.json` byte for byte, and a connector that never takes effect fails (exit 1).

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::run;

fn run_dirs(reports: &Path) -> Vec<PathBuf> {
    // `latest` links the newest run directory; the run directories themselves are real ones.
    let mut v: Vec<PathBuf> = std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.is_symlink())
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
        "--out",
        reports.path().to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, Some(0), "{out}");
    // Without a terminal (stdout and stderr are pipes here) the log tells the same story as the
    // screen: one line per finished burst with both phases' numbers, the before→after table.
    for line in [
        // With two connections at once, which of messages #4 and #5 meets the empty bucket first
        // varies: the onset index is not part of the story this line tells.
        "burst before/primary/none/0: sent 12, accepted 5, throttled 7, tls-required 0, other 0, onset #",
        "burst before/secondary/starttls/1: sent 12, accepted 0, throttled 12, tls-required 0, other 0, onset #0 at ",
        "burst after/primary/starttls/0: sent 12, accepted 12, throttled 0, tls-required 0, other 0, onset none",
        "burst after/secondary/none/1: sent 6, accepted 0, throttled 0, tls-required 6, other 0, onset none",
        "observed: 36 of 36 found, 0 missing",
        "PASS: 18 of 18 expectations held",
        "  before → after, per sender × TLS:",
    ] {
        assert!(out.contains(line), "`{line}` missing:\n{out}");
    }
    let row = |sender: &str, tls: &str| {
        out.lines()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&sender) && w.get(2) == Some(&tls)
            })
            .unwrap_or_else(|| panic!("no table row for {sender}/{tls}:\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        row("primary", "starttls").contains("0/12 → 12/12 12/12 → 0/12"),
        "{out}"
    );
    assert!(
        row("secondary", "none").contains("5/12 → 0/6 7/12 → 0/6 0/12 → 6/6"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}') && !out.contains('\r'),
        "no bars or colours in a log"
    );
    let dirs = run_dirs(reports.path());
    assert_eq!(dirs.len(), 1);
    let dir = &dirs[0];
    assert_eq!(
        std::fs::read_link(reports.path().join("latest")).unwrap(),
        dir.file_name().unwrap()
    );
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
    let junit = reports.path().join("suite").join("junit.xml");
    let (code, out) = run(&[
        "run",
        "scenarios/tls-enforcement.toml",
        "scenarios/smoke.toml",
        "--reports",
        reports.path().to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let dirs: Vec<PathBuf> = run_dirs(reports.path())
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n != "suite"))
        .collect();
    assert_eq!(dirs.len(), 2);
    // One total line for the suite, one JUnit file holding both runs' suites.
    let total = out
        .lines()
        .filter(|l| l.starts_with("SUITE "))
        .collect::<Vec<_>>();
    assert_eq!(total.len(), 1, "{out}");
    assert!(
        total[0].starts_with("SUITE PASS: 2 runs, 2 passed, 0 failed"),
        "{out}"
    );
    let x = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(x.matches("<testsuites").count(), 1, "{x}");
    assert_eq!(x.matches("<testsuite ").count(), 2, "{x}");
    assert!(
        x.contains("name=\"tls-enforcement\"") && x.contains("name=\"smoke\""),
        "{x}"
    );
    let smoke = dirs
        .iter()
        .find(|d| d.to_string_lossy().contains("smoke-"))
        .unwrap();
    assert_eq!(
        std::fs::read_link(reports.path().join("latest")).unwrap(),
        smoke.file_name().unwrap(),
        "latest is the newest run"
    );
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
        "--out",
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
        "--out",
        reports.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("08-unknown-sender-role.toml:7:12"), "{out}");
    assert!(run_dirs(reports.path()).is_empty(), "nothing ran");
}

/// SIGTERM (what `timeout`, CI runners and systemd send) stops a run as Ctrl-C does: exit 3, the
/// reports are written, and every planned message has exactly one first-attempt record.
#[cfg(unix)]
#[test]
fn sigterm_stops_a_run_with_one_record_per_planned_message() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let scenario = "scenarios/connector-before-after.toml";
    let (code, plan) = run(&["plan", "--json", scenario]);
    assert_eq!(code, Some(0), "{plan}");
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let mut planned = BTreeMap::new();
    for phase in plan["phases"].as_array().unwrap() {
        for b in phase["bursts"].as_array().unwrap() {
            planned.insert(
                b["id"].as_str().unwrap().to_string(),
                b["count"].as_u64().unwrap(),
            );
        }
    }

    let reports = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(["run", scenario, "--no-progress", "--reports"])
        .arg(reports.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stop it once sending has begun.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = run_dirs(reports.path()).first().is_some_and(|d| {
            std::fs::metadata(d.join("attempts.jsonl")).is_ok_and(|m| m.len() > 0)
        });
        if started || child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the run never started sending");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run did not stop within 90 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3), "an interrupted run exits 3");

    let dir = &run_dirs(reports.path())[0];
    let s = summary(dir);
    assert_eq!(s["interrupted"], true);
    // The simulator's trace is copied after it has flushed, so it agrees with the records.
    assert_eq!(s["trace_check"]["agreed"], true, "{}", s["trace_check"]);
    for f in ["report.md", "report.html", "junit.xml"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let text = std::fs::read_to_string(dir.join("attempts.jsonl")).unwrap();
    let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("every line is a record");
        assert!(
            ids.insert(r["attempt_id"].as_str().unwrap().to_string()),
            "{line}"
        );
        let burst = r["burst"].as_str().unwrap();
        if r["attempt"] == 1 && planned.contains_key(burst) {
            let new = seen
                .entry(burst.to_string())
                .or_default()
                .insert(r["index"].as_u64().unwrap());
            assert!(new, "two first attempts for one message: {line}");
        }
    }
    for (burst, count) in &planned {
        let got = seen.get(burst).map_or(0, |s| s.len() as u64);
        assert_eq!(got, *count, "burst {burst}: records for {got} of {count}");
    }
    // Messages never sent are counted apart, and no expectation passes on a cell that sent none.
    let cells = s["cells"].as_array().unwrap();
    let accounted: u64 = cells
        .iter()
        .map(|c| c["sent"].as_u64().unwrap() + c["unsent"].as_u64().unwrap())
        .sum();
    assert_eq!(accounted, planned.values().sum::<u64>());
    for e in s["expectations"].as_array().unwrap() {
        let cell = cells
            .iter()
            .find(|c| {
                c["phase"] == e["phase"] && c["sender"] == e["sender"] && c["tls"] == e["tls"]
            })
            .unwrap();
        if cell["sent"] == 0 {
            assert_eq!(e["passed"], false, "{e}");
        }
    }
}

/// A simulated mailbox with its own password (from the environment) is observed with that
/// password; the others with the run's generated one, which is not left in the run directory.
#[test]
fn a_simulated_mailbox_with_its_own_password_is_observed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("own-password.toml");
    let builtin = std::fs::read_to_string("scenarios/targets/sim.toml").unwrap();
    std::fs::write(
        &target,
        format!(
            "{builtin}\n[simulator]\naccepted_domains = [\"contoso.example\"]\n\n\
             [[simulator.mailboxes]]\naddress = \"qa1@contoso.example\"\npassword_env = \"MH_RUN_SIM_TEST_PW\"\n\n\
             [[simulator.mailboxes]]\naddress = \"qa2@contoso.example\"\n\n\
             [[simulator.mailboxes]]\naddress = \"qa3@contoso.example\"\n"
        ),
    )
    .unwrap();
    let reports = dir.path().join("reports");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(["run", "scenarios/smoke.toml", "--no-progress", "--target"])
        .arg(&target)
        .arg("--reports")
        .arg(&reports)
        .env("MH_RUN_SIM_TEST_PW", "Own-Mailbox-Pw-9")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 missing"), "{text}");
    let run_dir = &run_dirs(&reports)[0];
    assert!(!run_dir.join("sim").join("imap-password").exists());
}

/// An error that ends a run is printed on stderr with its cause (here: the simulated mailbox's
/// password variable is not set), not only in the reports.
#[test]
fn an_error_that_ends_a_run_is_printed_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("unset-password.toml");
    let builtin = std::fs::read_to_string("scenarios/targets/sim.toml").unwrap();
    std::fs::write(
        &target,
        format!(
            "{builtin}\n[simulator]\naccepted_domains = [\"contoso.example\"]\n\n\
             [[simulator.mailboxes]]\naddress = \"qa1@contoso.example\"\npassword_env = \"MH_RUN_SIM_SURELY_UNSET_PW\"\n\n\
             [[simulator.mailboxes]]\naddress = \"qa2@contoso.example\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(["run", "scenarios/smoke.toml", "--no-progress", "--target"])
        .arg(&target)
        .arg("--out")
        .arg(dir.path().join("reports"))
        .env_remove("MH_RUN_SIM_SURELY_UNSET_PW")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("could not run scenarios/smoke.toml"), "{err}");
    assert!(
        err.contains("MH_RUN_SIM_SURELY_UNSET_PW") && err.contains("not set"),
        "{err}"
    );
}
