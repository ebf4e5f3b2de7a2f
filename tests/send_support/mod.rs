//! Helpers shared by the send engine's integration tests (tests/send_*.rs).

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use mailharness::record::{AttemptRecord, Stage};
use mailharness::scenario::model::RetryPolicy;
use mailharness::scenario::plan::PlannedBurst;
use mailharness::send::{run_burst, AttemptSink, BurstSummary, CancelToken, Progress, SendContext};
use mailharness::vocab::{OutcomeClass, TlsMode};

/// The first platform IP (never throttled by the test bed).
pub const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The second platform IP (the test bed's Postfix throttles it by default).
pub const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A planned burst as the scenario expansion would produce it.
#[allow(clippy::too_many_arguments)]
pub fn burst(
    phase: &str,
    sender: &str,
    ip: Ipv4Addr,
    tls: TlsMode,
    count: u32,
    interval_secs: f64,
    concurrency: u32,
    per_connection: u32,
    recipients: &[&str],
) -> PlannedBurst {
    let per = per_connection.max(1);
    PlannedBurst {
        id: format!("{phase}/{sender}/{tls}/0"),
        label: None,
        sender: sender.into(),
        source_ip: ip,
        tls,
        count,
        interval_secs,
        rate_per_min: if interval_secs > 0.0 {
            60.0 / interval_secs
        } else {
            0.0
        },
        concurrency,
        per_connection: per,
        connections: count.div_ceil(per),
        recipients_per_message: 1,
        recipients: recipients.iter().map(|s| s.to_string()).collect(),
        body_size: 512,
        expected_duration_secs: interval_secs * f64::from(count.saturating_sub(1)),
        retry: None,
    }
}

/// Adds a retry policy to a burst.
pub fn with_retry(mut b: PlannedBurst, attempts: u32, backoff_ms: u64) -> PlannedBurst {
    b.retry = Some(RetryPolicy {
        attempts,
        backoff: mailharness::vocab::HumanDuration(std::time::Duration::from_millis(backoff_ms)),
    });
    b
}

/// Every record in `dir/attempts.jsonl`, each line checked to be one whole JSON record.
pub fn read_records(dir: &Path) -> Vec<AttemptRecord> {
    let text = std::fs::read_to_string(dir.join("attempts.jsonl")).expect("attempts.jsonl");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "file ends mid-line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad record line {l}: {e}")))
        .collect()
}

/// Asserts exactly one record per planned attempt id of `burst_id` (`count` first attempts).
pub fn assert_one_record_each(records: &[AttemptRecord], burst_id: &str, count: u32) {
    let mut seen = std::collections::BTreeSet::new();
    for r in records.iter().filter(|r| r.burst == burst_id) {
        assert!(
            seen.insert(r.attempt_id.clone()),
            "two records for {}",
            r.attempt_id
        );
    }
    let firsts = records
        .iter()
        .filter(|r| r.burst == burst_id && r.attempt == 1)
        .count();
    assert_eq!(
        firsts, count as usize,
        "first-attempt records of {burst_id}"
    );
    for i in 0..count {
        assert!(
            seen.contains(&format!("{burst_id}.{i}#1")),
            "no record for message {i} of {burst_id}"
        );
    }
}

/// The stages of a record's transcript.
pub fn stages(r: &AttemptRecord) -> Vec<Stage> {
    r.transcript.iter().map(|e| e.stage).collect()
}

/// Counts records with this outcome.
pub fn count(records: &[AttemptRecord], o: OutcomeClass) -> usize {
    records.iter().filter(|r| r.outcome == o).count()
}

/// `127.0.0.1:port` as the engine wants it.
pub fn local(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

/// Runs one burst alone, with a fresh attempt sink in `dir`, and returns its summary and records.
pub async fn run_alone(
    ctx: &SendContext,
    b: &PlannedBurst,
    phase: &str,
    dir: &Path,
) -> (BurstSummary, Vec<AttemptRecord>) {
    let sink = AttemptSink::open(dir).unwrap();
    let s = run_burst(
        ctx,
        b,
        phase,
        &sink,
        &CancelToken::new(),
        &Progress::hidden(),
    )
    .await
    .unwrap();
    sink.close().await.unwrap();
    (s, read_records(dir))
}
