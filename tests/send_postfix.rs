//! The send engine against the test bed's real Postfix (`tests/testbed.sh up`): throttling of one
//! source IP classified from Postfix's rewritten reply, STARTTLS with the test CA, plain bursts,
//! certificate verification results, and one record per planned attempt.
//!
//! Run: `tests/testbed.sh up && . tests/.testbed/env && cargo test --test send_postfix`
//!
//! These tests send to qa1/qa2 only and never call `testbed.sh throttle` (tests/testbed.rs does,
//! concurrently); they rely on the bed's default: 127.0.0.3 throttled, 127.0.0.2 not.

mod send_support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use mailharness::record::{CertVerification, Stage};
use mailharness::send::{
    run_burst, send_one, AttemptSink, CancelToken, OneShot, Progress, SendContext, TlsOptions,
    TlsVerify,
};
use mailharness::vocab::{OutcomeClass, TlsMode};
use send_support::*;

const NOT_RUNNING: &str = "test bed not running: start it with `tests/testbed.sh up` and source \
                           <dir>/env, or use tests/run.sh";

struct Bed {
    smtp: SocketAddrV4,
    ca_pem: String,
    tls_name: String,
    throttled: Ipv4Addr,
    maildir_root: std::path::PathBuf,
}

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set. {NOT_RUNNING}"),
    }
}

fn bed() -> Bed {
    if std::env::var_os("MH_TESTBED_DIR").is_none() {
        panic!("{NOT_RUNNING}");
    }
    let host: Ipv4Addr = var("MH_TESTBED_SMTP_HOST").parse().expect("IPv4 SMTP host");
    let port: u16 = var("MH_TESTBED_SMTP_PORT").parse().expect("SMTP port");
    let ca = var("MH_TESTBED_TLS_CA");
    Bed {
        smtp: SocketAddrV4::new(host, port),
        ca_pem: std::fs::read_to_string(&ca).unwrap_or_else(|e| panic!("reading {ca}: {e}")),
        tls_name: var("MH_TESTBED_TLS_NAME"),
        throttled: var("MH_TESTBED_THROTTLED_IP")
            .parse()
            .expect("throttled IP"),
        maildir_root: var("MH_TESTBED_MAILDIR_ROOT").into(),
    }
}

fn ctx(bed: &Bed, run: &str, verify: TlsVerify, name: Option<&str>, roots: bool) -> SendContext {
    let mut c = SendContext::new(
        run,
        bed.smtp,
        "mta.platform.example",
        "sender@platform.example",
        &TlsOptions {
            verify,
            extra_roots_pem: roots.then(|| bed.ca_pem.clone()),
            server_name: name.map(str::to_string),
            no_public_roots: false,
        },
    )
    .expect("context");
    c.command_timeout = Duration::from_secs(20);
    c.connect_timeout = Duration::from_secs(5);
    c
}

fn run_id(test: &str) -> String {
    format!(
        "send-postfix-{test}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    )
}

/// Whether a delivered message of `run` is in `mailbox`'s Maildir (polls up to 10 s).
fn delivered(bed: &Bed, mailbox: &str, run: &str) -> bool {
    let dir = bed.maildir_root.join(mailbox).join("new");
    let needle = format!("X-Harness-Run: {run}");
    for _ in 0..100 {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                if std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&needle)) {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_throttled_ip_gets_as761_and_every_attempt_has_one_record() {
    let bed = bed();
    assert_eq!(
        bed.throttled, IP_B,
        "the bed throttles 127.0.0.3 by default"
    );
    let run = run_id("throttle");
    let out = tempfile::tempdir().unwrap();
    let sink = AttemptSink::open(out.path()).unwrap();
    let c = ctx(&bed, &run, TlsVerify::Verify, Some(&bed.tls_name), true);
    let cancel = CancelToken::new();
    let rcpts = ["qa1@testbed.example", "qa2@testbed.example"];
    let a = burst(
        "before",
        "primary",
        IP_A,
        TlsMode::None,
        6,
        0.02,
        2,
        3,
        &rcpts,
    );
    let b = burst(
        "before",
        "secondary",
        IP_B,
        TlsMode::None,
        6,
        0.02,
        2,
        3,
        &rcpts,
    );
    let progress = Progress::hidden();
    let (sa, sb) = tokio::join!(
        run_burst(&c, &a, "before", &sink, &cancel, &progress),
        run_burst(&c, &b, "before", &sink, &cancel, &progress),
    );
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    let summary = sink.close().await.unwrap();
    assert_eq!(summary.records, 12);
    assert_eq!(sa.count(OutcomeClass::Accepted), 6, "{sa:?}");
    assert_eq!(sb.count(OutcomeClass::Throttled), 6, "{sb:?}");
    // Reuse: 6 messages at 3 per connection. The 2 workers take jobs from one queue, so which
    // worker sends which message depends on who is free first: a 3+3 split needs 2 connections,
    // a 4+2 split needs 3 (the 4th message of a worker opens its second connection). Count what
    // each connection carried instead of the exact number of connections.
    assert!(sa.connections >= 2, "{sa:?}");

    let recs = read_records(out.path());
    assert_eq!(recs.len(), 12);
    assert_one_record_each(&recs, &a.id, 6);
    assert_one_record_each(&recs, &b.id, 6);
    let mut per_conn: std::collections::BTreeMap<u64, u32> = Default::default();
    for r in recs.iter().filter(|r| r.burst == a.id) {
        assert!(
            r.connection_seq <= 3,
            "at most per_connection messages on one connection"
        );
        *per_conn.entry(r.connection).or_default() += 1;
    }
    assert!(
        per_conn.values().any(|n| *n >= 2),
        "connections were reused: {per_conn:?}"
    );
    for r in &recs {
        assert_eq!(r.run_id, run);
        assert!(r.tls.is_none(), "a `none` burst negotiates no TLS");
        assert!(!stages(r).contains(&Stage::Starttls));
        if r.source_ip == IP_B {
            assert_eq!(r.outcome, OutcomeClass::Throttled, "{r:?}");
            assert_eq!(r.token.as_deref(), Some("AS761"));
            let reply = r.reply.as_ref().expect("deciding reply");
            assert_eq!(reply.stage, Stage::Rcpt);
            assert_eq!(reply.code, 451);
            assert_eq!(reply.enhanced.as_deref(), Some("4.7.500"));
            assert!(reply.text.contains("[127.0.0.3]"), "{}", reply.text);
            assert!(!stages(r).contains(&Stage::EndOfData));
        } else {
            assert_eq!(r.source_ip, IP_A);
            assert_eq!(r.outcome, OutcomeClass::Accepted, "{r:?}");
            assert_eq!(r.token, None);
            assert!(r.queue_id.is_some(), "Postfix's `queued as` id: {r:?}");
            assert!(r.size > 512);
        }
        // Every record carries the connection set-up, even on a reused connection.
        let st = stages(r);
        assert_eq!(&st[..3], &[Stage::Connect, Stage::Greeting, Stage::Ehlo]);
        if r.connection_seq > 1 {
            assert!(st.contains(&Stage::Rset));
        }
        assert!(r.started_ms >= r.scheduled_ms - 0.001);
        assert!(r.finished_ms >= r.started_ms);
    }
    // The third message on each connection ends it with QUIT.
    assert!(recs
        .iter()
        .filter(|r| r.connection_seq == 3)
        .all(|r| stages(r).last() == Some(&Stage::Quit)));
    assert!(delivered(&bed, "qa1", &run) || delivered(&bed, "qa2", &run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_records_version_cipher_and_certificate() {
    let bed = bed();
    let run = run_id("starttls");
    let out = tempfile::tempdir().unwrap();
    let c = ctx(&bed, &run, TlsVerify::Verify, Some(&bed.tls_name), true);
    let b = burst(
        "tls",
        "primary",
        IP_A,
        TlsMode::Starttls,
        4,
        0.0,
        2,
        2,
        &["qa1@testbed.example"],
    );
    let (s, recs) = run_alone(&c, &b, "tls", out.path()).await;
    assert_eq!(s.count(OutcomeClass::Accepted), 4, "{s:?}");
    assert_one_record_each(&recs, &b.id, 4);
    for r in &recs {
        let tls = r.tls.as_ref().expect("TLS info");
        assert!(tls.version == "1.2" || tls.version == "1.3", "{tls:?}");
        assert!(tls.cipher.starts_with("TLS"), "{tls:?}");
        let subject = tls.peer_subject.as_deref().unwrap_or("");
        assert!(subject.contains(&bed.tls_name), "subject {subject}");
        assert!(tls.peer_sans.iter().any(|s| s == &bed.tls_name), "{tls:?}");
        assert!(tls.peer_not_after.is_some());
        assert_eq!(tls.verification, CertVerification::Valid);
        let st = stages(r);
        let want = [
            Stage::Connect,
            Stage::Greeting,
            Stage::Ehlo,
            Stage::Starttls,
            Stage::TlsHandshake,
            Stage::EhloTls,
        ];
        assert_eq!(&st[..6], &want, "{st:?}");
        assert!(st.contains(&Stage::EndOfData));
    }
    assert!(delivered(&bed, "qa1", &run));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_mode_reports_bad_certificates_and_verify_mode_fails_them() {
    let bed = bed();
    let run = run_id("verify");
    let shot = |mode| OneShot {
        source_ip: IP_A,
        sender: "primary".into(),
        tls_mode: mode,
        recipients: vec!["qa2@testbed.example".into()],
        phase: "probe".into(),
        burst: "probe".into(),
        index: 0,
        body_size: 100,
        text: None,
    };
    // Wrong name, record mode: the message goes through, the mismatch is on record.
    let c = ctx(&bed, &run, TlsVerify::Record, Some("wrong.example"), true);
    let r = send_one(&c, &shot(TlsMode::Starttls)).await;
    assert_eq!(r.outcome, OutcomeClass::Accepted, "{r:?}");
    assert_eq!(
        r.tls.as_ref().unwrap().verification,
        CertVerification::NameMismatch
    );
    assert_eq!(stages(&r).last(), Some(&Stage::Quit));
    // No test CA, record mode: unknown issuer.
    let c = ctx(&bed, &run, TlsVerify::Record, Some(&bed.tls_name), false);
    let r = send_one(&c, &shot(TlsMode::StarttlsOpportunistic)).await;
    assert_eq!(r.outcome, OutcomeClass::Accepted, "{r:?}");
    assert_eq!(
        r.tls.as_ref().unwrap().verification,
        CertVerification::UnknownIssuer
    );
    // Verify mode fails the attempt on the same certificate problem.
    let c = ctx(&bed, &run, TlsVerify::Verify, Some("wrong.example"), true);
    let r = send_one(&c, &shot(TlsMode::Starttls)).await;
    assert_eq!(r.outcome, OutcomeClass::TlsFailure, "{r:?}");
    assert!(
        r.error.as_deref().unwrap_or("").contains("certificate"),
        "{r:?}"
    );
    assert!(r.tls.is_none());
    // The IP of the destination verifies too (the bed's certificate names 127.0.0.1).
    let c = ctx(&bed, &run, TlsVerify::Verify, None, true);
    let r = send_one(&c, &shot(TlsMode::Starttls)).await;
    assert_eq!(r.outcome, OutcomeClass::Accepted, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_from_the_throttled_ip_is_throttled_with_a_full_transcript() {
    let bed = bed();
    let c = ctx(
        &bed,
        &run_id("probe"),
        TlsVerify::Verify,
        Some(&bed.tls_name),
        true,
    );
    let r = send_one(
        &c,
        &OneShot {
            source_ip: IP_B,
            sender: "secondary".into(),
            tls_mode: TlsMode::Starttls,
            recipients: vec!["qa1@testbed.example".into()],
            phase: "probe".into(),
            burst: "probe".into(),
            index: 3,
            body_size: 100,
            text: None,
        },
    )
    .await;
    assert_eq!(r.outcome, OutcomeClass::Throttled, "{r:?}");
    assert_eq!(r.seq, "probe/secondary/starttls/3");
    assert_eq!(r.token.as_deref(), Some("AS761"));
    assert!(r.tls.is_some(), "throttled over TLS: {r:?}");
    let rcpt = r
        .transcript
        .iter()
        .find(|e| e.stage == Stage::Rcpt)
        .unwrap();
    assert_eq!(rcpt.code, Some(451));
    assert_eq!(
        rcpt.command.as_deref(),
        Some("RCPT TO:<qa1@testbed.example>")
    );
    assert!(rcpt.lines[0].contains("(AS761)"));
    assert_eq!(stages(&r).last(), Some(&Stage::Quit));
}
