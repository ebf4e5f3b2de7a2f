//! What storing one accepted message costs the simulator, part by part (criterion).
//!
//! `cargo bench --bench sim_store` measures, per message of smtp-source's default size:
//! - `front_end/parse_junk_stamp`: header scan, junk rules and the EOP header block;
//! - `trace/append`: one JSONL trace record into the buffered trace file;
//! - `maildir/deliver`: one Maildir file, stored as the simulator stores it, on tmpfs
//!   (`/dev/shm`, when present).
//!
//! These are the costs smtp-sink does not have; `benches/sim_throughput.sh` measures the whole
//! server against it, and benches/README.md puts the two together.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use mailharness::sim::config::JunkConfig;
use mailharness::sim::store::{self, Folder, JunkRules, MaildirStore, StampInput};
use mailharness::sim::trace::{TraceLog, TraceRecord};

/// The message `smtp-source -d -s 20` sends (its default body), as the simulator receives it.
const MESSAGE: &[u8] = b"From: <bench@platform.example>\r\nTo: <qa1@contoso.example>\r\nDate: Fri, 27 Nov 2026 07:33:42 +0000 (UTC)\r\nMessage-Id: <4016.0015.fffffff9@vm>\r\n\r\nLa de da de da 1.\r\nLa de da de da 2.\r\nLa de da de da 3.\r\nLa de da de da 4.\r\n";

/// An accepted message's trace record, as the simulator wrote it during smtp-source load.
const RECORD: &str = r#"{"time":"2026-11-27T07:33:42.833Z","session_id":"6B09325500000000","listener":"smtp","source_ip":"127.0.0.1","source_port":44258,"helo":"vm","tls":null,"connector":"Bench Connector","mail_from":"bench@platform.example","decision":"accepted","reason":"queued","reply":{"code":250,"enhanced":"2.6.0","text":"<4016.0003.751c@vm> [InternalId=64821000000001, Hostname=CH3PEPF00000015.namprd03.prod.outlook.com] Queued mail for delivery"},"recipients":[{"address":"qa1@contoso.example","decision":"accepted","reason":"connector_matched","reply":{"code":250,"enhanced":"2.1.5","text":"Recipient OK"}}],"message_id":"<4016.0003.751c@vm>","internal_id":64821000000001,"network_message_id":"130cd400-ce9d-45e3-b04d-514260c15682","size":215,"scl":1,"junk_rule":null,"delivered_at":"2026-11-27T07:33:43.033Z","deliveries":[{"mailbox":"qa1@contoso.example","folder":"Inbox","path":"/dev/shm/sim/maildir/contoso.example/qa1/new/1795764823.M33489P16379Q0.mailharness,S=1259,W=1259"}]}"#;

fn stamped() -> Vec<u8> {
    let parsed = store::parse(MESSAGE.to_vec());
    let head = store::stamp(&stamp_input(Utc::now()));
    let mut file = head.into_bytes();
    file.extend_from_slice(&parsed.content);
    file
}

fn stamp_input(now: chrono::DateTime<Utc>) -> StampInput<'static> {
    StampInput {
        helo: "vm",
        ip: "127.0.0.1",
        tls: None,
        fqdn: "contoso-example.mail.protection.outlook.com",
        auth_source: "CH3PEPF00000015.eop-namprd03.prod.protection.outlook.com",
        received_at: now,
        network_message_id: "130cd400-ce9d-45e3-b04d-514260c15682",
        tenant_id: "5f2b6a1c-3d4e-4f60-8a7b-9c0d1e2f3a4b",
        sender_domain: "platform.example",
        spf_none: false,
        scl: 1,
        junk: false,
        add_message_id: None,
    }
}

fn front_end(c: &mut Criterion) {
    let rules = JunkRules::new(&JunkConfig::default());
    c.bench_function("front_end/parse_junk_stamp", |b| {
        b.iter(|| {
            let parsed = store::parse(black_box(MESSAGE).to_vec());
            let junk = rules.rule(&parsed, "platform.example");
            let head = store::stamp(&stamp_input(Utc::now()));
            black_box((parsed, junk, head))
        })
    });
}

fn trace(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = TraceLog::open(&dir.path().join("trace.jsonl"), false).expect("trace file");
    let record: TraceRecord = serde_json::from_str(RECORD).expect("record");
    let mut n = 0u32;
    c.bench_function("trace/append", |b| {
        b.iter(|| {
            log.append(black_box(&record)).expect("append");
            // The delivery thread flushes every 512 records.
            n += 1;
            if n % 512 == 0 {
                log.flush().expect("flush");
            }
        })
    });
}

/// Stores `iters` files, timing only the stores; the files are removed afterwards, untimed.
fn deliver_batch(root: &Path, file: &[u8], iters: u64) -> Duration {
    let store = MaildirStore::create(root, &["qa1@contoso.example".into()], false).expect("store");
    let now = Utc::now();
    let start = Instant::now();
    for _ in 0..iters {
        black_box(
            store
                .deliver("qa1@contoso.example", Folder::Inbox, file, now)
                .expect("deliver"),
        );
    }
    let took = start.elapsed();
    drop(store);
    let _ = std::fs::remove_dir_all(root);
    took
}

fn maildir(c: &mut Criterion) {
    let file = stamped();
    // tmpfs: the file system's own cost without a disk. On ext4 the figure is dominated by
    // how recently inodes were freed (this bench deletes every batch), not by the store.
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::tempdir_in(&base).expect("temp dir");
    let mut group = c.benchmark_group("maildir");
    group.sample_size(20);
    let mut round = 0u32;
    group.bench_function("deliver", |b| {
        b.iter_custom(|iters| {
            round += 1;
            deliver_batch(&dir.path().join(round.to_string()), &file, iters)
        })
    });
    group.finish();
}

criterion_group!(benches, front_end, trace, maildir);
criterion_main!(benches);
