//! `mailharness report` renders analysis and the four reports from a run directory's records alone,
//! reproduces `summary.json` byte for byte, and fails (exit 1) when an expectation does not hold.
//!
//! The run directory is written here from the plan of the shipped main scenario and attempt records
//! shaped like the simulator's replies, so the analysis is checked on known numbers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use mailharness::record::*;
use mailharness::scenario;
use mailharness::vocab::{
    ApplyMethod, ConnectorAction, OutcomeClass, TargetKind, TlsMode, WaitMethod,
};

fn reply(stage: Stage, code: u16, enhanced: &str, text: &str) -> DecidingReply {
    DecidingReply {
        stage,
        code,
        enhanced: Some(enhanced.into()),
        text: text.into(),
    }
}

/// Writes a complete run directory; `spoil` lets a test break one record.
fn write_run(dir: &Path, spoil: impl Fn(&mut AttemptRecord)) {
    let scn = scenario::load_scenario(Path::new("scenarios/connector-before-after.toml")).unwrap();
    let tgt = scenario::load_target(None).unwrap();
    let plan = scenario::build_plan(&scn, &tgt).unwrap();
    std::fs::write(
        dir.join("plan.json"),
        serde_json::to_string_pretty(&plan).unwrap(),
    )
    .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap();
    let mut attempts = Vec::new();
    let mut observations = Vec::new();
    let mut trace = Vec::new();
    let mut phases = Vec::new();
    let mut clock = 0.0;
    let mut conn = 0;
    for phase in &plan.phases {
        let started = clock;
        let mut used: std::collections::HashMap<String, u32> = Default::default();
        for b in &phase.bursts {
            for i in 0..b.count {
                conn += 1;
                let seq = format!("{}/{}/{}/{}", phase.name, b.sender, b.tls, i);
                let n = used.entry(b.sender.clone()).or_default();
                *n += 1;
                // The simulator's story: 5 tokens per IP before the connector; TLS required after.
                let (outcome, rep, token) = match (phase.name.as_str(), b.tls) {
                    ("before", _) if *n <= 5 => (
                        OutcomeClass::Accepted,
                        reply(
                            Stage::EndOfData,
                            250,
                            "2.6.0",
                            "<x> Queued mail for delivery",
                        ),
                        None,
                    ),
                    ("before", _) => (
                        OutcomeClass::Throttled,
                        reply(
                            Stage::Rcpt,
                            451,
                            "4.7.500",
                            &format!(
                                "Server busy. Please try again later from [{}]. (AS761)",
                                b.source_ip
                            ),
                        ),
                        Some("AS761".to_string()),
                    ),
                    (_, TlsMode::None) => (
                        OutcomeClass::TlsRequired,
                        reply(
                            Stage::Rcpt,
                            451,
                            "5.7.3",
                            "STARTTLS is required to send mail",
                        ),
                        None,
                    ),
                    _ => (
                        OutcomeClass::Accepted,
                        reply(
                            Stage::EndOfData,
                            250,
                            "2.6.0",
                            "<x> Queued mail for delivery",
                        ),
                        None,
                    ),
                };
                let start_ms = clock;
                clock += 100.0;
                let tls = (b.tls != TlsMode::None).then(|| TlsInfo {
                    version: "1.3".into(),
                    cipher: "TLS13_AES_256_GCM_SHA384".into(),
                    peer_subject: Some("CN=mail.protection.outlook.com".into()),
                    peer_sans: vec!["*.mail.protection.outlook.com".into()],
                    peer_not_after: None,
                    verification: CertVerification::Valid,
                });
                let mid = format!("<{}.{}@mailharness.test>", phase.name, attempts.len());
                let mut a = AttemptRecord {
                    schema: RECORD_SCHEMA,
                    run_id: "test-run".into(),
                    seq: seq.clone(),
                    attempt_id: format!("{seq}#1"),
                    attempt: 1,
                    retry_of: None,
                    phase: phase.name.clone(),
                    burst: b.id.clone(),
                    index: i,
                    sender: b.sender.clone(),
                    source_ip: b.source_ip,
                    destination: "127.0.0.1:2525".into(),
                    tls_mode: b.tls,
                    tls,
                    message_id: mid.clone(),
                    recipients: vec![b.recipients[0].clone()],
                    size: 2048,
                    connection: conn,
                    connection_seq: 1,
                    scheduled_at: t0 + Duration::milliseconds(start_ms as i64),
                    scheduled_ms: start_ms,
                    started_at: t0 + Duration::milliseconds(start_ms as i64),
                    started_ms: start_ms,
                    finished_at: t0 + Duration::milliseconds(clock as i64),
                    finished_ms: clock,
                    transcript: vec![Exchange {
                        stage: Stage::Mail,
                        command: Some("MAIL FROM:<h@x>".into()),
                        code: Some(250),
                        enhanced: Some("2.1.0".into()),
                        lines: vec!["Sender OK".into()],
                        elapsed_ms: 1.0,
                        at_ms: start_ms,
                    }],
                    outcome,
                    reply: Some(rep),
                    token,
                    queue_id: None,
                    error: None,
                };
                spoil(&mut a);
                if a.outcome == OutcomeClass::Accepted {
                    observations.push(ObservationRecord {
                        schema: RECORD_SCHEMA,
                        run_id: "test-run".into(),
                        seq: Some(seq.clone()),
                        attempt_id: Some(a.attempt_id.clone()),
                        message_id: Some(mid.clone()),
                        mailbox: a.recipients[0].clone(),
                        status: ObservationStatus::Found,
                        folder: Some(FolderKind::Inbox),
                        folder_name: Some("INBOX".into()),
                        uidvalidity: Some(1),
                        uid: Some(attempts.len() as u32 + 1),
                        internal_date: Some(a.finished_at),
                        accepted_at: Some(a.finished_at),
                        latency_ms: Some(200.0 + f64::from(i)),
                        evidence: Evidence::default(),
                        observed_at: a.finished_at,
                    });
                }
                // A message never sent never reached the simulator's trace.
                let never_sent = a.outcome == OutcomeClass::Interrupted && a.transcript.is_empty();
                trace.extend((!never_sent).then(|| serde_json::json!({
                    "source_ip": a.source_ip.to_string(),
                    "decision": match a.outcome { OutcomeClass::Accepted => "accepted", OutcomeClass::Throttled => "throttled", OutcomeClass::TlsRequired => "tls_required", _ => "rejected" },
                    "message_id": (a.outcome == OutcomeClass::Accepted).then_some(mid),
                })));
                attempts.push(a);
            }
        }
        phases.push(PhaseRecord {
            name: phase.name.clone(),
            change: phase.change.as_ref().map(|c| ChangeRecord {
                action: ConnectorAction::Create,
                connector: c.connector_name.clone(),
                apply: ApplyMethod::Simulator,
                applied_ms: started - 3000.0,
                wait: WaitMethod::Poll,
                effective_after_ms: Some(3012.0),
                probes: vec!["probe#1".into(), "probe#2".into()],
                timed_out: false,
                error: None,
            }),
            started_ms: started,
            finished_ms: clock,
        });
        clock += 4000.0;
    }
    let run = RunRecord {
        schema: RECORD_SCHEMA,
        run_id: "test-run".into(),
        scenario: plan.scenario.clone(),
        target: plan.target.clone(),
        target_kind: TargetKind::Simulator,
        started_at: t0,
        finished_at: t0 + Duration::milliseconds(clock as i64),
        phases,
        interrupted: false,
        error: None,
    };
    std::fs::write(
        dir.join("run.json"),
        serde_json::to_string_pretty(&run).unwrap(),
    )
    .unwrap();
    let mut f = std::fs::File::create(dir.join("attempts.jsonl")).unwrap();
    for a in &attempts {
        writeln!(f, "{}", serde_json::to_string(a).unwrap()).unwrap();
    }
    let mut f = std::fs::File::create(dir.join("observations.jsonl")).unwrap();
    for o in &observations {
        writeln!(f, "{}", serde_json::to_string(o).unwrap()).unwrap();
    }
    let mut f = std::fs::File::create(dir.join("sim-trace.jsonl")).unwrap();
    for t in &trace {
        writeln!(f, "{t}").unwrap();
    }
}

fn report(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .arg("report")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_designed_story_passes_and_re_rendering_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), |_| {});
    let (code, out) = report(dir.path());
    assert_eq!(code, Some(0), "{out}");
    for f in ["summary.json", "report.md", "report.html", "junit.xml"] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let first = std::fs::read(dir.path().join("summary.json")).unwrap();
    let (code, _) = report(dir.path());
    assert_eq!(code, Some(0));
    assert_eq!(
        first,
        std::fs::read(dir.path().join("summary.json")).unwrap(),
        "summary.json must be reproducible"
    );

    let s: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(s["schema"], 2);
    assert_eq!(s["verdict"], "pass");
    assert_eq!(s["trace_check"]["agreed"], true);
    // before: 24 messages per IP over two bursts, 5 accepted then AS761.
    let before_none = s["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["phase"] == "before" && c["sender"] == "primary" && c["tls"] == "none")
        .unwrap();
    assert_eq!(before_none["sent"], 12);
    assert_eq!(before_none["accepted"], 5);
    assert_eq!(before_none["throttled"], 7);
    assert_eq!(before_none["throttle_onset"]["index"], 5);
    assert_eq!(before_none["tokens"]["AS761"], 7);
    let deltas = s["deltas"].as_array().unwrap();
    assert!(deltas.iter().any(|d| d["sender"] == "secondary"
        && d["tls"] == "starttls"
        && d["throttle_rate_before"] == 1.0
        && d["throttle_rate_after"] == 0.0));
    assert_eq!(s["phases"][1]["change"]["effective_after_s"], 3.012);
    let throttling = s["replies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["token"] == "AS761")
        .unwrap();
    assert_eq!(throttling["family"], "ip-throttling");
    assert_eq!(throttling["connector"], "helps");

    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    // One per expectation, the trace cross-check, and the run itself.
    assert_eq!(
        junit.matches("<testcase ").count(),
        s["expectations"].as_array().unwrap().len() + 2
    );
    assert!(!junit.contains("<failure"));
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        html.contains("id=\"matrix-table\"")
            && html.contains("class=\"chart timeline\"")
            && html.contains("class=\"chart deltas\"")
            && html.contains("class=\"chart latency\"")
    );
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "no network references"
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("| before | primary | 127.0.0.2 | none | 12 | 5 (42%) | 7 (58%)"),
        "{md}"
    );
}

#[test]
fn a_failed_expectation_exits_1_and_junit_quotes_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    // One message after the connector is throttled: `throttle_rate <= 0.0` must fail for that cell.
    write_run(dir.path(), throttle_one_after_the_change);
    let (code, out) = report(dir.path());
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL after/secondary/starttls: throttle_rate <= 0"),
        "{out}"
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("1 of 12 sent were throttled"), "{junit}");
    // The trace was written from the spoiled records too, so it still agrees.
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["verdict"], "fail");
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn junit(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("junit.xml")).unwrap()
}

#[test]
fn damaged_or_interrupted_runs_fail_in_junit_and_say_why() {
    // Interrupted: every expectation may hold, but CI must not see green.
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), |_| {});
    mark_interrupted(dir.path());
    report(dir.path());
    let j = junit(dir.path());
    assert!(
        j.contains("<failure message=\"the run was interrupted\""),
        "{j}"
    );
    assert_eq!(summary(dir.path())["verdict"], "fail");

    // A last line torn inside a multi-byte character, and a repeated record: both are left out,
    // and the reports name them.
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), |_| {});
    let path = dir.path().join("attempts.jsonl");
    let mut bytes = std::fs::read(&path).unwrap();
    let first_line = bytes.split(|&b| b == b'\n').next().unwrap().to_vec();
    bytes.extend_from_slice(&first_line);
    bytes.push(b'\n');
    bytes.extend_from_slice(b"{\"schema\":1,\"run_id\":\"caf\xc3");
    std::fs::write(&path, bytes).unwrap();
    let (code, out) = report(dir.path());
    assert_eq!(code, Some(1), "{out}");
    let s = summary(dir.path());
    let problems = s["record_problems"].to_string();
    assert!(
        problems.contains("attempts.jsonl:") && problems.contains("cut short"),
        "{problems}"
    );
    assert!(problems.contains("repeat an attempt"), "{problems}");
    assert_eq!(s["verdict"], "fail");
    assert!(junit(dir.path()).contains("cut short"));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("Record problem:"), "{md}");
    // The repeated record is counted once: the cell still has its 12 messages, no retries.
    let before = s["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["phase"] == "before" && c["sender"] == "primary" && c["tls"] == "none")
        .unwrap()
        .clone();
    assert_eq!(
        (before["sent"].as_u64(), before["retries"].as_u64()),
        (Some(12), Some(0)),
        "{before}"
    );
}

#[test]
fn a_message_is_delivered_only_when_every_recipient_copy_arrived() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), |_| {});
    // A second recipient's copy of one delivered message is missing.
    let obs_path = dir.path().join("observations.jsonl");
    let text = std::fs::read_to_string(&obs_path).unwrap();
    let found = text
        .lines()
        .find(|l| l.contains("after/primary/starttls/0#1") && l.contains("\"found\""))
        .unwrap();
    let mut copy: serde_json::Value = serde_json::from_str(found).unwrap();
    copy["status"] = "missing".into();
    copy["mailbox"] = "qa2@contoso.example".into();
    for k in [
        "folder",
        "folder_name",
        "latency_ms",
        "uid",
        "uidvalidity",
        "internal_date",
    ] {
        if let Some(o) = copy.as_object_mut() {
            o.remove(k);
        }
    }
    std::fs::write(&obs_path, format!("{text}{copy}\n")).unwrap();
    let (code, out) = report(dir.path());
    assert_eq!(code, Some(1), "{out}");
    let s = summary(dir.path());
    let cell = s["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["phase"] == "after" && c["sender"] == "primary" && c["tls"] == "starttls")
        .unwrap()
        .clone();
    assert_eq!(cell["missing"], 1, "{cell}");
    assert_eq!(
        cell["delivered"].as_u64().unwrap() + 1,
        cell["accepted"].as_u64().unwrap(),
        "{cell}"
    );
}

#[test]
fn a_missing_run_directory_is_a_usage_error() {
    let (code, out) = report(Path::new("reports/does-not-exist"));
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("plan.json"), "{out}");
}

/// Debian's `chromium`; tests/run.sh installs it.
fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: tests/run.sh installs Debian's chromium package")
}

/// A headless Chromium command for `html`, 1,280 px wide, with its own profile in `profile`.
fn chromium_at(html: &Path, profile: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,2000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(format!("file://{}", html.display()));
    c
}

/// Measures the rendered page in Chromium: a copy of the report with a script that, once laid
/// out, lists every element box outside the 1,280 px viewport, every table cell or paragraph
/// whose text overflows it, and every SVG text outside its SVG, and says where the failure
/// summary and the first chart are. The report itself has no script.
const LAYOUT_PROBE: &str = r#"<script>
window.addEventListener('load', () => {
  const W = window.innerWidth, bad = [];
  if (document.documentElement.scrollWidth > W) bad.push('page is ' + document.documentElement.scrollWidth + ' px wide');
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') && el.tagName !== 'svg') continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -0.5 || r.right > W + 0.5) bad.push('box outside the viewport: ' + el.tagName + '#' + el.id + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
    if (['TD', 'TH', 'P', 'LI', 'H1', 'H2'].includes(el.tagName) && el.scrollWidth > el.clientWidth + 1) bad.push('text overflows its ' + el.tagName + ': ' + el.textContent.slice(0, 60));
  }
  for (const svg of document.querySelectorAll('svg')) {
    const b = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || r.top < b.top - 0.5 || r.bottom > b.bottom + 0.5) bad.push('text outside its svg: ' + t.textContent);
    }
  }
  const top = (el) => el ? el.getBoundingClientRect().top + window.scrollY : -1;
  const out = document.createElement('pre');
  out.id = 'layout-result';
  out.textContent = JSON.stringify({problems: bad, failures: top(document.getElementById('failures')), chart: top(document.querySelector('svg.chart')), width: W, svg_texts: document.querySelectorAll('svg text').length});
  document.body.appendChild(out);
});
</script>"#;

/// Runs [`LAYOUT_PROBE`] on the report in `dir` and returns its findings.
fn layout(dir: &Path) -> serde_json::Value {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let probed = dir.join("layout.html");
    std::fs::write(
        &probed,
        html.replace("</body>", &format!("{LAYOUT_PROBE}</body>")),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = chromium_at(
        &probed,
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=5000"],
    )
    .output()
    .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom
        .find("<pre id=\"layout-result\">")
        .expect("the layout probe ran")
        + 24;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap()
}

/// Nothing sticks out of the 1,280 px viewport or out of its SVG, and the failure summary comes
/// before the first chart.
fn assert_layout(dir: &Path) {
    let l = layout(dir);
    assert_eq!(l["width"], 1280, "{l}");
    assert_eq!(l["problems"], serde_json::json!([]), "{l:#}");
    let (failures, chart) = (
        l["failures"].as_f64().unwrap(),
        l["chart"].as_f64().unwrap(),
    );
    assert!(
        failures >= 0.0 && chart > failures,
        "failure summary at {failures} px, first chart at {chart} px"
    );
    assert!(l["svg_texts"].as_u64().unwrap() > 20, "{l}");
}

/// Headless Chromium (Debian's `chromium`) renders the HTML report: the DOM after rendering has the
/// matrix and the charts, a screenshot is produced, and the layout holds at 1,280 px.
#[test]
fn the_html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), |_| {});
    let (code, out) = report(dir.path());
    assert_eq!(code, Some(0), "{out}");
    let html = dir.path().join("report.html");
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium_at(&html, profile.path(), &["--dump-dom"])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("id=\"matrix-table\""),
        "matrix missing from the rendered DOM"
    );
    for chart in ["chart timeline", "chart deltas", "chart latency"] {
        assert!(dom.contains(chart), "{chart} missing from the rendered DOM");
    }
    assert!(
        dom.matches("<circle").count() >= 84,
        "one timeline dot per message"
    );
    let shot = dir.path().join("shot.png");
    let st = chromium_at(
        &html,
        profile.path(),
        &[&format!("--screenshot={}", shot.display())],
    )
    .status()
    .expect("chromium runs");
    assert!(st.success());
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real PNG"
    );
    assert_layout(dir.path());
}

/// The golden run (probes, real latencies, a far threshold) and a failing run lay out within
/// 1,280 px, with the failure summary above the first chart.
#[test]
fn the_html_report_fits_1280_px_with_the_failures_first() {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/main-run");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "plan.json",
        "run.json",
        "attempts.jsonl",
        "observations.jsonl",
        "sim-trace.jsonl",
    ] {
        std::fs::copy(golden.join(f), dir.path().join(f)).unwrap();
    }
    assert_eq!(report(dir.path()).0, Some(0));
    assert_layout(dir.path());
    let failing = tempfile::tempdir().unwrap();
    write_run(failing.path(), throttle_one_after_the_change);
    assert_eq!(report(failing.path()).0, Some(1));
    let html = std::fs::read_to_string(failing.path().join("report.html")).unwrap();
    assert!(html.contains("<li>after/secondary/starttls: throttle_rate &lt;= 0 — actual 0.083 (1 of 12 sent were throttled)</li>"), "{html}");
    assert!(html.contains("<tr class=\"cell-fail\">"));
    assert_layout(failing.path());
}

/// Spoils the designed story: one message after the connector is throttled.
fn throttle_one_after_the_change(a: &mut AttemptRecord) {
    if a.seq == "after/secondary/starttls/3" {
        a.outcome = OutcomeClass::Throttled;
        a.reply = Some(reply(
            Stage::Rcpt,
            451,
            "4.7.500",
            "Server busy. Please try again later from [127.0.0.3]. (AS761)",
        ));
        a.token = Some("AS761".into());
    }
}

/// Marks the run in `dir` interrupted.
fn mark_interrupted(dir: &Path) {
    let run = dir.join("run.json");
    let text = std::fs::read_to_string(&run).unwrap();
    std::fs::write(
        &run,
        text.replace("\"interrupted\": false", "\"interrupted\": true"),
    )
    .unwrap();
}

/// `xmllint --schema` (libxml2-utils) validates `junit.xml` in `dir` against the published JUnit
/// schema in tests/data/junit/.
fn assert_junit_validates(dir: &Path) {
    let xsd = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit/junit-10.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(dir.join("junit.xml"))
        .output()
        .expect("xmllint is not installed: tests/testbed.sh installs libxml2-utils");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        junit(dir)
    );
}

#[test]
fn junit_xml_of_passing_failing_and_interrupted_runs_validates_against_the_schema() {
    let pass = tempfile::tempdir().unwrap();
    write_run(pass.path(), |_| {});
    assert_eq!(report(pass.path()).0, Some(0));
    assert_junit_validates(pass.path());

    let fail = tempfile::tempdir().unwrap();
    write_run(fail.path(), throttle_one_after_the_change);
    assert_eq!(report(fail.path()).0, Some(1));
    assert_junit_validates(fail.path());
    assert_eq!(junit(fail.path()).matches("<failure ").count(), 2);

    // Interrupted before `after` sent anything: its planned messages are recorded never sent.
    let stopped = tempfile::tempdir().unwrap();
    write_run(stopped.path(), |a| {
        if a.phase == "after" {
            a.outcome = OutcomeClass::Interrupted;
            a.transcript.clear();
            (a.reply, a.tls) = (None, None);
        }
    });
    mark_interrupted(stopped.path());
    assert_eq!(report(stopped.path()).0, Some(1));
    assert_junit_validates(stopped.path());
    let j = junit(stopped.path());
    let s = summary(stopped.path());
    let after = s["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["phase"] == "after")
        .count();
    assert_eq!(j.matches("<skipped message=\"not measured: the run was interrupted before this cell sent anything").count(), after, "{j}");
    assert!(j.contains(&format!("skipped=\"{after}\"")), "{j}");
    // Only the run itself fails: the cells it never reached are not failures.
    assert_eq!(j.matches("<failure ").count(), 1, "{j}");
    assert!(
        j.contains("<failure message=\"the run was interrupted\" type=\"run\">"),
        "{j}"
    );
    assert_eq!(
        j.matches(" time=\"").count(),
        j.matches("<testcase ").count() + 2
    );
}
