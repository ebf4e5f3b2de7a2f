//! Observation against the real Dovecot of the test bed (`tests/testbed.sh up`): a burst through
//! Postfix is found with its evidence; Junk placement, missing and stray messages are reported;
//! clean-up removes exactly the run's messages; PEEK leaves everything unseen; the SINCE
//! fallback finds the same; `mailharness observe` rewrites observations.jsonl with the
//! documented exit codes.
//!
//! Run: `tests/testbed.sh up && . tests/.testbed/env && cargo test --test observe_dovecot`

mod observe_support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use mailharness::observe::{observe, ObserveOptions, SearchMode};
use mailharness::record::{FolderKind, ObservationRecord, ObservationStatus};
use mailharness::scenario::target::ImapTls;
use mailharness::vocab::OutcomeClass;
use observe_support::*;

fn opts(deadline_ms: u64, cleanup: bool) -> ObserveOptions {
    ObserveOptions {
        deadline: Duration::from_millis(deadline_ms),
        poll_interval: Duration::from_millis(200),
        cleanup,
        search: SearchMode::Auto,
    }
}

#[test]
fn burst_through_postfix_is_found_with_evidence_and_stays_unseen() {
    let bed = bed();
    let run = run_id("burst");
    let mut attempts = Vec::new();
    for i in 0..12 {
        let seq = format!(
            "before/primary/{}/{i}",
            if i % 2 == 0 { "starttls" } else { "none" }
        );
        swaks(&bed, &run, &seq, i % 2 == 0);
        attempts.push(attempt(
            &run,
            &seq,
            &bed.address(),
            OutcomeClass::Accepted,
            Utc::now(),
        ));
    }
    let obs = rt()
        .block_on(observe(
            &bed.target(ImapTls::Starttls),
            &run,
            &attempts,
            &opts(30_000, false),
        ))
        .expect("observe");
    let s = &obs.summary;
    assert_eq!(
        (s.expected, s.found, s.missing, s.anomalies),
        (12, 12, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.by_folder.get("inbox").map(|c| c.found), Some(12));
    assert_eq!(obs.records.len(), 12);
    for (r, a) in obs.records.iter().zip(&attempts) {
        assert_eq!(r.status, ObservationStatus::Found);
        assert_eq!(r.attempt_id.as_deref(), Some(a.attempt_id.as_str()));
        assert_eq!(r.message_id.as_deref(), Some(a.message_id.as_str()));
        assert_eq!(r.folder, Some(FolderKind::Inbox));
        assert_eq!(r.folder_name.as_deref(), Some("INBOX"));
        assert!(r.uid.is_some() && r.uidvalidity.is_some() && r.internal_date.is_some());
        let received = r.evidence.received.as_deref().expect("Received line");
        assert!(received.contains("Postfix"), "{received}");
        // INTERNALDATE has one-second resolution, so a copy can look up to 1 s "early".
        let latency = r.latency_ms.expect("latency");
        assert!((-1500.0..30_000.0).contains(&latency), "latency {latency}");
        if a.seq.contains("starttls") {
            let v = r.evidence.tls_version.as_deref().expect("TLS version");
            assert!(v == "1.3" || v == "1.2", "TLS version {v}");
            assert!(r
                .evidence
                .tls_cipher
                .as_deref()
                .is_some_and(|c| c.starts_with("TLS_") || c.contains('-')));
        } else {
            assert_eq!(r.evidence.tls_version.as_deref(), Some("none"));
            assert_eq!(r.evidence.tls_cipher, None);
        }
    }
    // BODY.PEEK over EXAMINE: nothing got the \Seen flag.
    for a in &attempts {
        let files = files_with(&bed.maildir(false), &a.message_id);
        assert_eq!(files.len(), 1, "{}: {files:?}", a.message_id);
        assert!(!files[0].1.contains('S'), "message became seen: {files:?}");
    }
}

#[test]
fn junk_missing_anomaly_and_cleanup_touch_only_this_run() {
    let bed = bed();
    let run = run_id("junk");
    let to = bed.address();
    let earlier = Utc::now() - chrono::Duration::seconds(5);
    let mut attempts = Vec::new();
    for i in 0..5 {
        let seq = format!("before/primary/none/{i}");
        let junk = i >= 3;
        place(
            &bed.maildir(junk),
            &message(Some(&run), Some(&seq), &message_id(&run, &seq), junk),
        );
        attempts.push(attempt(&run, &seq, &to, OutcomeClass::Accepted, earlier));
    }
    // Accepted but never delivered: missing after the deadline.
    attempts.push(attempt(
        &run,
        "before/primary/none/5",
        &to,
        OutcomeClass::Accepted,
        earlier,
    ));
    // Throttled: not expected anywhere.
    attempts.push(attempt(
        &run,
        "before/primary/none/6",
        &to,
        OutcomeClass::Throttled,
        earlier,
    ));
    // A run message no accepted attempt explains.
    place(
        &bed.maildir(false),
        &message(
            Some(&run),
            Some("stray/0"),
            &message_id(&run, "stray/0"),
            false,
        ),
    );
    // The corpus: a run id that merely contains ours (SEARCH HEADER matches substrings), and
    // mail without harness headers, in both folders.
    let other = format!("{run}-other");
    let corpus_ids: Vec<String> = (0..4)
        .map(|i| format!("<corpus.{i}.{run}@elsewhere>"))
        .collect();
    place(
        &bed.maildir(false),
        &message(
            Some(&other),
            Some("before/primary/none/0"),
            &corpus_ids[0],
            false,
        ),
    );
    place(
        &bed.maildir(true),
        &message(
            Some(&other),
            Some("before/primary/none/3"),
            &corpus_ids[1],
            true,
        ),
    );
    place(
        &bed.maildir(false),
        &message(None, None, &corpus_ids[2], false),
    );
    place(
        &bed.maildir(true),
        &message(None, None, &corpus_ids[3], true),
    );

    let started = std::time::Instant::now();
    let obs = rt()
        .block_on(observe(
            &bed.target(ImapTls::Implicit),
            &run,
            &attempts,
            &opts(1500, true),
        ))
        .expect("observe");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "must wait for the missing one"
    );
    let s = &obs.summary;
    assert_eq!(
        (s.expected, s.found, s.missing, s.anomalies),
        (6, 5, 1, 1),
        "{s:?}"
    );
    assert_eq!(
        s.by_folder.get("inbox").map(|c| (c.found, c.anomaly)),
        Some((3, 1))
    );
    assert_eq!(
        s.by_folder.get("junk").map(|c| (c.found, c.anomaly)),
        Some((2, 0))
    );
    let by_seq = |seq: &str| -> &ObservationRecord {
        obs.records
            .iter()
            .find(|r| r.seq.as_deref() == Some(seq))
            .unwrap_or_else(|| panic!("no record for {seq}"))
    };
    let junk = by_seq("before/primary/none/4");
    assert_eq!(junk.folder, Some(FolderKind::Junk));
    assert_eq!(junk.folder_name.as_deref(), Some("Junk"));
    assert_eq!(junk.evidence.sfv.as_deref(), Some("SPM"));
    assert_eq!(junk.evidence.scl, Some(6));
    assert_eq!(junk.evidence.delivery_dest.as_deref(), Some("J"));
    let inbox = by_seq("before/primary/none/0");
    assert_eq!(inbox.folder, Some(FolderKind::Inbox));
    assert_eq!(inbox.evidence.tls_version.as_deref(), Some("1.2"));
    assert_eq!(
        inbox.evidence.tls_cipher.as_deref(),
        Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
    );
    assert_eq!(inbox.evidence.cip.as_deref(), Some("127.0.0.2"));
    assert_eq!(inbox.evidence.dir.as_deref(), Some("INB"));
    assert_eq!(inbox.evidence.ipv.as_deref(), Some("NLI"));
    assert_eq!(inbox.evidence.cat.as_deref(), Some("NONE"));
    assert_eq!(inbox.evidence.auth_as.as_deref(), Some("Anonymous"));
    assert!(inbox
        .evidence
        .authentication_results
        .as_deref()
        .is_some_and(|a| a.starts_with("spf=none")));
    let latency = inbox.latency_ms.expect("latency");
    assert!((3000.0..60_000.0).contains(&latency), "latency {latency}");
    let missing = by_seq("before/primary/none/5");
    assert_eq!(missing.status, ObservationStatus::Missing);
    assert_eq!(missing.uid, None);
    let stray = by_seq("stray/0");
    assert_eq!(stray.status, ObservationStatus::Anomaly);
    assert_eq!(stray.attempt_id, None);
    assert!(obs
        .records
        .iter()
        .all(|r| r.seq.as_deref() != Some("before/primary/none/6")));

    // Clean-up: the 5 found + 1 stray are gone; the corpus is untouched.
    let cleanup = s.cleanup.as_ref().expect("cleanup ran");
    assert!(cleanup.errors.is_empty(), "{cleanup:?}");
    assert_eq!(cleanup.deleted, 6);
    for junk in [false, true] {
        let ours = files_with(&bed.maildir(junk), &format!("X-Harness-Run: {run}\r\n"));
        assert!(ours.is_empty(), "run messages left: {ours:?}");
    }
    for (i, id) in corpus_ids.iter().enumerate() {
        let files = files_with(&bed.maildir(i % 2 == 1), id);
        assert_eq!(files.len(), 1, "corpus message {id} touched: {files:?}");
        assert!(
            !files[0].1.contains('T') && !files[0].1.contains('S'),
            "{files:?}"
        );
    }
}

#[test]
fn since_fallback_finds_the_run_over_plain_imap() {
    let bed = bed();
    let run = run_id("since");
    let to = bed.address();
    let mut attempts = Vec::new();
    for i in 0..3 {
        let seq = format!("after/secondary/none/{i}");
        place(
            &bed.maildir(i == 2),
            &message(Some(&run), Some(&seq), &message_id(&run, &seq), i == 2),
        );
        attempts.push(attempt(&run, &seq, &to, OutcomeClass::Accepted, Utc::now()));
    }
    let decoy = format!("<decoy.{run}@x>");
    place(
        &bed.maildir(false),
        &message(
            Some(&format!("{run}x")),
            Some("after/secondary/none/0"),
            &decoy,
            false,
        ),
    );
    let mut o = opts(10_000, true);
    o.search = SearchMode::Since;
    let obs = rt()
        .block_on(observe(&bed.target(ImapTls::Plain), &run, &attempts, &o))
        .expect("observe");
    let s = &obs.summary;
    assert_eq!((s.found, s.missing, s.anomalies), (3, 0, 0), "{s:?}");
    assert_eq!(s.by_folder.get("junk").map(|c| c.found), Some(1));
    assert_eq!(s.cleanup.as_ref().map(|c| c.deleted), Some(3));
    assert_eq!(
        files_with(&bed.maildir(false), &decoy).len(),
        1,
        "decoy must survive"
    );
}

#[test]
fn wrong_password_is_an_auth_error_without_the_password() {
    let bed = bed();
    let run = run_id("badpw");
    let var = "MH_OBSERVE_TEST_BAD_PASSWORD";
    std::env::set_var(var, "not-the-password-x7");
    let mut target = bed.target(ImapTls::Starttls);
    target.mailboxes[0].password = Some(mailharness::observe::SecretSource::Env(var.into()));
    let a = attempt(
        &run,
        "s/0",
        &bed.address(),
        OutcomeClass::Accepted,
        Utc::now(),
    );
    let err = rt()
        .block_on(observe(&target, &run, &[a], &opts(0, false)))
        .expect_err("must fail");
    let text = format!("{err} {err:?}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        !text.contains("not-the-password-x7"),
        "secret leaked: {text}"
    );
    assert!(!err.is_config());
}

#[test]
fn cli_observe_rewrites_observations_with_exit_codes() {
    let bed = bed();
    let run = run_id("cli");
    let to = bed.address();
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join(&run);
    fs::create_dir(&run_dir).expect("run dir");
    let mut attempts = Vec::new();
    for i in 0..2 {
        let seq = format!("before/primary/none/{i}");
        place(
            &bed.maildir(false),
            &message(Some(&run), Some(&seq), &message_id(&run, &seq), false),
        );
        attempts.push(attempt(&run, &seq, &to, OutcomeClass::Accepted, Utc::now()));
    }
    let write_attempts = |attempts: &[mailharness::record::AttemptRecord]| {
        let mut text = String::new();
        for a in attempts {
            text.push_str(&serde_json::to_string(a).expect("json"));
            text.push('\n');
        }
        fs::write(run_dir.join("attempts.jsonl"), text).expect("attempts.jsonl");
    };
    write_attempts(&attempts);
    fs::write(run_dir.join("observations.jsonl"), "stale\n").expect("stale file");
    let target = dir.path().join("testbed.target.toml");
    let target_text = |port: u16| {
        format!(
            r#"name = "testbed"
kind = "tenant"
[senders]
primary = "127.0.0.2"
[smtp]
domain = "{domain}"
mx = "127.0.0.1"
[imap]
host = "127.0.0.1"
port = {port}
tls = "implicit"
auth = "login"
ca_file = "{ca}"
[[mailboxes]]
address = "{to}"
login = "qa3"
password_env = "{PASSWORD_ENV}"
[guard]
allowed_domains = ["{domain}"]
max_messages_per_run = 100
max_rate_per_ip = "60/min"
"#,
            domain = bed.domain,
            ca = bed.tls_ca.display(),
        )
    };
    fs::write(&target, target_text(bed.imaps_port)).expect("target");
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
            .arg("observe")
            .arg(&run_dir)
            .arg("--target")
            .arg(&target)
            .args(args)
            .output()
            .expect("run mailharness");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
        assert!(!text.contains(&password), "password leaked: {text}");
        (out.status.code(), text)
    };
    let read_obs = || -> Vec<ObservationRecord> {
        fs::read_to_string(run_dir.join("observations.jsonl"))
            .expect("observations.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("observation record"))
            .collect()
    };

    let (code, text) = cli(&[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("2 found"), "{text}");
    let recs = read_obs();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.status == ObservationStatus::Found));

    // One more accepted attempt that never arrives: exit 1, three lines, one missing.
    attempts.push(attempt(
        &run,
        "before/primary/none/9",
        &to,
        OutcomeClass::Accepted,
        Utc::now(),
    ));
    write_attempts(&attempts);
    let (code, text) = cli(&[
        "--deadline",
        "600ms",
        "--poll-interval",
        "200ms",
        "--cleanup",
    ]);
    assert_eq!(code, Some(1), "{text}");
    let recs = read_obs();
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs.iter()
            .filter(|r| r.status == ObservationStatus::Missing)
            .count(),
        1
    );
    assert!(files_with(&bed.maildir(false), &format!("X-Harness-Run: {run}\r\n")).is_empty());

    // Infrastructure failure: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    fs::write(&target, target_text(port)).expect("target");
    let (code, text) = cli(&[]);
    assert_eq!(code, Some(3), "{text}");

    // Configuration error: the built-in simulator target has no [imap] yet.
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .arg("observe")
        .arg(&run_dir)
        .output()
        .expect("run mailharness");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
