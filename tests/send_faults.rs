//! Faults are recorded, never hung on, never lost: connect refused, a TLS handshake that fails, a
//! server that stalls past the timeout, a server that drops the connection mid-DATA, and a cancel
//! mid-burst. In every case the number of records equals the number of planned attempts.
//!
//! The fault servers are small scripted SMTP servers on loopback, written here.

mod send_support;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use mailharness::record::Stage;
use mailharness::send::{
    check_source_ip, run_burst, AttemptSink, CancelToken, Progress, SendContext, SendError,
    TlsOptions, TlsVerify,
};
use mailharness::vocab::{OutcomeClass, TlsMode};
use send_support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How a fault server misbehaves.
#[derive(Clone, Copy)]
enum Fault {
    /// Accepts and never says a word.
    Stall,
    /// Offers STARTTLS, says 220, then answers the ClientHello with garbage.
    BadTls,
    /// Says 354 to DATA, reads a little of the message, then closes.
    DropInData,
    /// Well-behaved, but each final reply takes this long.
    Slow(Duration),
    /// Well-behaved until QUIT, which it never answers.
    StallOnQuit,
}

async fn fault_server(fault: Fault) -> SocketAddrV4 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = match l.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        _ => unreachable!(),
    };
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(session(s, fault));
        }
    });
    addr
}

async fn session(s: TcpStream, fault: Fault) {
    if let Fault::Stall = fault {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return;
    }
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    if w.write_all(b"220 fault.example ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") {
            b"250-fault.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
        } else if cmd == "STARTTLS" {
            if let Fault::BadTls = fault {
                let _ = w.write_all(b"220 2.0.0 go ahead\r\n").await;
                let mut buf = [0u8; 512];
                let _ = r.read(&mut buf).await;
                let _ = w.write_all(b"this is not a TLS record\r\n").await;
                return;
            }
            b"454 4.7.0 TLS not available\r\n"
        } else if cmd.starts_with("MAIL") || cmd.starts_with("RCPT") || cmd == "RSET" {
            b"250 2.0.0 ok\r\n"
        } else if cmd == "DATA" {
            let _ = w.write_all(b"354 go ahead\r\n").await;
            if let Fault::DropInData = fault {
                let mut buf = [0u8; 64];
                let _ = r.read(&mut buf).await;
                return;
            }
            // Read to the end-of-data line.
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
            }
            if let Fault::Slow(d) = fault {
                tokio::time::sleep(d).await;
            }
            b"250 2.0.0 Ok: queued as FAULT1\r\n"
        } else if cmd == "QUIT" {
            if let Fault::StallOnQuit = fault {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else {
            b"502 5.5.2 unknown\r\n"
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}

fn ctx(dest: SocketAddrV4) -> SendContext {
    let mut c = SendContext::new(
        "send-faults",
        dest,
        "mta.platform.example",
        "sender@platform.example",
        &TlsOptions {
            verify: TlsVerify::Verify,
            ..Default::default()
        },
    )
    .unwrap();
    c.connect_timeout = Duration::from_secs(2);
    c.command_timeout = Duration::from_millis(400);
    c.cancel_grace = Duration::from_millis(300);
    c
}

/// Runs a burst of `n` against `dest`, bounded in time, and returns the records.
async fn run(
    c: &SendContext,
    tls: TlsMode,
    n: u32,
    cancel_after: Option<Duration>,
) -> Vec<mailharness::record::AttemptRecord> {
    let out = tempfile::tempdir().unwrap();
    let sink = AttemptSink::open(out.path()).unwrap();
    let b = burst(
        "faults",
        "primary",
        IP_A,
        tls,
        n,
        0.01,
        3,
        2,
        &["qa1@example.net"],
    );
    let cancel = CancelToken::new();
    if let Some(d) = cancel_after {
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            c2.cancel();
        });
    }
    let t = Instant::now();
    let s = tokio::time::timeout(
        Duration::from_secs(30),
        run_burst(c, &b, "faults", &sink, &cancel, &Progress::hidden()),
    )
    .await
    .expect("the burst must not hang")
    .unwrap();
    sink.close().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(20));
    let recs = read_records(out.path());
    assert_eq!(recs.len() as u64, s.records);
    assert_one_record_each(&recs, &b.id, n);
    assert_eq!(recs.len(), n as usize, "records == planned attempts");
    recs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_is_a_connect_failure() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let recs = run(&ctx(local(port)), TlsMode::None, 5, None).await;
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::ConnectFailure, "{r:?}");
        assert!(
            r.error.as_deref().unwrap_or("").contains("refused"),
            "{r:?}"
        );
        assert_eq!(stages(r), vec![Stage::Connect]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_handshake_is_a_tls_failure() {
    let dest = fault_server(Fault::BadTls).await;
    let recs = run(&ctx(dest), TlsMode::Starttls, 4, None).await;
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::TlsFailure, "{r:?}");
        assert!(r.tls.is_none());
        assert_eq!(stages(r).last(), Some(&Stage::TlsHandshake));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_starttls_fails_starttls_but_not_opportunistic() {
    let dest = fault_server(Fault::Slow(Duration::ZERO)).await;
    let recs = run(&ctx(dest), TlsMode::Starttls, 2, None).await;
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::TlsFailure, "{r:?}");
        assert_eq!(r.reply.as_ref().unwrap().code, 454);
    }
    let recs = run(&ctx(dest), TlsMode::StarttlsOpportunistic, 2, None).await;
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::Accepted, "{r:?}");
        assert!(r.tls.is_none());
        assert_eq!(r.queue_id.as_deref(), Some("FAULT1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out() {
    let dest = fault_server(Fault::Stall).await;
    let recs = run(&ctx(dest), TlsMode::None, 4, None).await;
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::Timeout, "{r:?}");
        assert!(
            r.error.as_deref().unwrap_or("").contains("greeting"),
            "{r:?}"
        );
        assert_eq!(stages(r), vec![Stage::Connect, Stage::Greeting]);
        assert!(r.finished_ms - r.started_ms < 2000.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_mid_data_is_a_protocol_error() {
    let dest = fault_server(Fault::DropInData).await;
    let recs = run(&ctx(dest), TlsMode::None, 4, None).await;
    for r in &recs {
        assert!(matches!(r.outcome, OutcomeClass::ProtocolError), "{r:?}");
        assert!(stages(r).contains(&Stage::Data));
        assert_eq!(r.queue_id, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_burst_leaves_one_record_per_planned_attempt() {
    // Each final reply takes 1 s: longer than the grace period, so in-flight attempts are cut.
    let dest = fault_server(Fault::Slow(Duration::from_millis(1000))).await;
    let mut c = ctx(dest);
    c.command_timeout = Duration::from_secs(5);
    let recs = run(&c, TlsMode::None, 40, Some(Duration::from_millis(150))).await;
    let interrupted = count(&recs, OutcomeClass::Interrupted);
    assert!(
        interrupted >= 30,
        "most of the burst was never sent: {interrupted}"
    );
    let in_flight: Vec<_> = recs
        .iter()
        .filter(|r| r.outcome == OutcomeClass::Interrupted && !r.transcript.is_empty())
        .collect();
    assert!(
        !in_flight.is_empty(),
        "attempts cut in flight keep their partial transcript"
    );
    for r in in_flight {
        assert!(stages(r).contains(&Stage::Data), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_enough_grace_lets_in_flight_attempts_finish() {
    let dest = fault_server(Fault::Slow(Duration::from_millis(100))).await;
    let mut c = ctx(dest);
    c.command_timeout = Duration::from_secs(5);
    c.cancel_grace = Duration::from_secs(5);
    let recs = run(&c, TlsMode::None, 40, Some(Duration::from_millis(120))).await;
    assert!(count(&recs, OutcomeClass::Accepted) >= 1);
    // Nothing was cut in flight: every interrupted record is a message that was never sent.
    assert!(recs
        .iter()
        .filter(|r| r.outcome == OutcomeClass::Interrupted)
        .all(|r| r.transcript.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_quit_keeps_the_accepted_outcome() {
    // One message per connection, so each attempt ends with a QUIT the server never answers. The
    // cancel and the end of the grace period both fall inside that QUIT.
    let dest = fault_server(Fault::StallOnQuit).await;
    let mut c = ctx(dest);
    c.command_timeout = Duration::from_secs(5);
    let out = tempfile::tempdir().unwrap();
    let sink = AttemptSink::open(out.path()).unwrap();
    let b = burst(
        "q",
        "primary",
        IP_A,
        TlsMode::None,
        2,
        0.0,
        2,
        1,
        &["qa1@example.net"],
    );
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        run_burst(&c, &b, "q", &sink, &cancel, &Progress::hidden()),
    )
    .await
    .expect("the hard stop ends the stalled QUITs")
    .unwrap();
    sink.close().await.unwrap();
    let recs = read_records(out.path());
    assert_one_record_each(&recs, &b.id, 2);
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::Accepted, "{r:?}");
        assert_eq!(r.queue_id.as_deref(), Some("FAULT1"), "{r:?}");
        assert!(r.error.is_none(), "{r:?}");
        assert_eq!(stages(r).last(), Some(&Stage::EndOfData), "{r:?}");
    }
    assert_eq!(s.count(OutcomeClass::Accepted), 2, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_send_stops_on_cancel_after_the_grace_period() {
    // A change step's probes go through send_one_until: a stalled server must not hold a stopped
    // run for the whole command timeout.
    let dest = fault_server(Fault::Stall).await;
    let mut c = ctx(dest);
    c.command_timeout = Duration::from_secs(30);
    let shot = mailharness::send::OneShot {
        source_ip: IP_A,
        sender: "primary".into(),
        tls_mode: TlsMode::None,
        recipients: vec!["qa1@example.net".into()],
        phase: "after~probe".into(),
        burst: "after~probe".into(),
        index: 0,
        body_size: 512,
        text: None,
    };
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c2.cancel();
    });
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        mailharness::send::send_one_until(&c, &shot, &cancel),
    )
    .await
    .expect("cancel ends the attempt after the grace period, not the 30 s timeout");
    assert_eq!(r.outcome, OutcomeClass::Interrupted, "{r:?}");
    assert_eq!(stages(&r), vec![Stage::Connect], "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_their_own_records_linked_to_the_first() {
    // Retries follow a 4xx: this server throttles every RCPT with EOP's 451 4.7.500 (AS761).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dest = match l.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        _ => unreachable!(),
    };
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 busy.example ESMTP\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let c = line.to_ascii_uppercase();
                    let reply: &[u8] = if c.starts_with("EHLO") {
                        b"250 busy.example\r\n"
                    } else if c.starts_with("RCPT") {
                        b"451 4.7.500 Server busy. Please try again later from [127.0.0.2]. (AS761)\r\n"
                    } else if c.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let out = tempfile::tempdir().unwrap();
    let b = with_retry(
        burst(
            "r",
            "primary",
            IP_A,
            TlsMode::None,
            3,
            0.0,
            2,
            1,
            &["qa1@example.net"],
        ),
        3,
        50,
    );
    let (s, recs) = run_alone(&ctx(dest), &b, "r", out.path()).await;
    assert_eq!(s.retries, 6, "{s:?}");
    assert_eq!(recs.len(), 9);
    for r in &recs {
        assert_eq!(r.outcome, OutcomeClass::Throttled);
        if r.attempt > 1 {
            assert_eq!(r.retry_of.as_deref(), Some(format!("{}#1", r.seq).as_str()));
            let first = recs
                .iter()
                .find(|f| f.seq == r.seq && f.attempt == 1)
                .unwrap();
            // Backoff doubles: 50 ms before attempt 2, 100 ms before attempt 3.
            let min_gap = 50.0 * f64::from(1u32 << (r.attempt - 2));
            let prev = recs
                .iter()
                .find(|f| f.seq == r.seq && f.attempt == r.attempt - 1)
                .unwrap();
            assert!(r.started_ms - prev.finished_ms >= min_gap - 1.0, "{r:?}");
            assert!(first.message_id != r.message_id);
        }
    }
}

#[test]
fn a_source_ip_that_is_not_here_is_caught_before_sending() {
    let e = check_source_ip("192.0.2.1".parse().unwrap()).unwrap_err();
    assert!(matches!(e, SendError::SourceIpNotLocal(_)));
    assert_eq!(
        e.to_string(),
        "192.0.2.1 is not assigned to any interface here"
    );
    check_source_ip(IP_A).unwrap();
    check_source_ip(IP_B).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_a_foreign_ip_sends_nothing() {
    let out = tempfile::tempdir().unwrap();
    let sink = AttemptSink::open(out.path()).unwrap();
    let b = burst(
        "x",
        "primary",
        "192.0.2.1".parse().unwrap(),
        TlsMode::None,
        3,
        0.0,
        1,
        1,
        &["qa1@example.net"],
    );
    let e = run_burst(
        &ctx(local(9)),
        &b,
        "x",
        &sink,
        &CancelToken::new(),
        &Progress::hidden(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("192.0.2.1 is not assigned"), "{e}");
    sink.close().await.unwrap();
    assert!(read_records(out.path()).is_empty());
}
