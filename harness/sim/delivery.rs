//! The delivery queue: accepted messages wait `delivery.delay`, then one copy per distinct
//! mailbox is stored, and only then is the transaction's trace record written.
//!
//! The queue lives in memory, bounded by `delivery.queue_capacity`: when it is full the final
//! `250 2.6.0` waits (back-pressure), so a burst never loses a message. On shutdown every queued
//! message is delivered at once, ignoring the remaining delay.
//!
//! A message is stored no earlier than `delivery.delay` after its final 250 and, load permitting,
//! at most `DELIVERY_BATCH_SLEEP` (2 ms) later: the thread sleeps at least that long so that
//! messages falling due together are stored in one batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::policy::Clock;
use super::reply::rfc3339_ms;
use super::store::{Folder, MaildirStore};
use super::trace::{DeliveryTrace, TraceLog, TraceRecord};

/// Flush the trace at least this often while deliveries keep coming.
const TRACE_FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Flush the trace after this many unflushed records.
const TRACE_FLUSH_BATCH: usize = 512;
/// Shortest sleep of the delivery thread: a message is stored at most this long after its due time.
const DELIVERY_BATCH_SLEEP: Duration = Duration::from_millis(2);
/// Attempts to store one copy before giving up on it.
const STORE_ATTEMPTS: u32 = 3;

/// One accepted message waiting for delivery.
#[derive(Debug)]
pub struct Job {
    /// When it may be stored.
    pub due: Instant,
    /// The stamped header block.
    pub head: String,
    /// The message as received, sanitized.
    pub content: Vec<u8>,
    /// Distinct accepted mailboxes, lower-cased.
    pub mailboxes: Vec<String>,
    /// Where it is filed.
    pub folder: Folder,
    /// The trace record, completed here.
    pub record: TraceRecord,
}

/// What the queue carries.
#[derive(Debug)]
pub enum QueueMsg {
    /// A message to deliver.
    Job(Box<Job>),
    /// Deliver everything before this, then stop.
    Stop,
}

/// Counters shared by the front end and the delivery worker.
#[derive(Debug, Default)]
pub struct Stats {
    /// SMTP sessions opened.
    pub sessions: AtomicU64,
    /// Messages answered with 250 2.6.0.
    pub accepted: AtomicU64,
    /// Messages stored and traced.
    pub delivered: AtomicU64,
    /// Messages whose storing failed (traced with `delivery_error`).
    pub delivery_failed: AtomicU64,
    /// Trace records written for transactions that were not accepted.
    pub not_accepted: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// SMTP sessions opened.
    pub sessions: u64,
    /// Messages answered with 250 2.6.0.
    pub accepted: u64,
    /// Messages stored and traced.
    pub delivered: u64,
    /// Messages whose storing failed.
    pub delivery_failed: u64,
    /// Transactions traced that were not accepted.
    pub not_accepted: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            sessions: self.sessions.load(Ordering::Acquire),
            accepted: self.accepted.load(Ordering::Acquire),
            delivered: self.delivered.load(Ordering::Acquire),
            delivery_failed: self.delivery_failed.load(Ordering::Acquire),
            not_accepted: self.not_accepted.load(Ordering::Acquire),
        }
    }
}

/// Starts the delivery thread.
pub fn spawn_worker(
    mut rx: mpsc::Receiver<QueueMsg>,
    store: Arc<MaildirStore>,
    trace: Arc<TraceLog>,
    clock: Clock,
    stats: Arc<Stats>,
    draining: Arc<AtomicBool>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("sim-delivery".into())
        .spawn(move || {
            let mut unflushed: Vec<bool> = Vec::new();
            // Reused for every file: the stamped headers followed by the message.
            let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
            let mut last_flush = Instant::now();
            let flush = |unflushed: &mut Vec<bool>, last_flush: &mut Instant| {
                if unflushed.is_empty() {
                    return;
                }
                if let Err(e) = trace.flush() {
                    tracing::error!("message trace: {e}");
                }
                for ok in unflushed.drain(..) {
                    let c = if ok {
                        &stats.delivered
                    } else {
                        &stats.delivery_failed
                    };
                    c.fetch_add(1, Ordering::AcqRel);
                }
                *last_flush = Instant::now();
            };
            loop {
                let msg = match rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        flush(&mut unflushed, &mut last_flush);
                        match rx.blocking_recv() {
                            Some(m) => m,
                            None => break,
                        }
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                };
                let job = match msg {
                    QueueMsg::Job(j) => j,
                    QueueMsg::Stop => break,
                };
                wait_until(job.due, &draining, || {
                    flush(&mut unflushed, &mut last_flush)
                });
                let ok = deliver(*job, &store, &trace, &clock, &mut buf);
                unflushed.push(ok);
                if unflushed.len() >= TRACE_FLUSH_BATCH
                    || last_flush.elapsed() >= TRACE_FLUSH_INTERVAL
                {
                    flush(&mut unflushed, &mut last_flush);
                }
            }
            flush(&mut unflushed, &mut last_flush);
        })
}

/// Sleeps until `due`, waking early when draining; flushes the trace before a long sleep.
fn wait_until(due: Instant, draining: &AtomicBool, mut before_sleep: impl FnMut()) {
    let mut flushed = false;
    loop {
        if draining.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        if now >= due {
            return;
        }
        if !flushed {
            before_sleep();
            flushed = true;
        }
        // Sleep at least DELIVERY_BATCH_SLEEP: messages that fall due meanwhile are then stored
        // in one batch instead of one wake-up per message.
        thread::sleep((due - now).clamp(DELIVERY_BATCH_SLEEP, Duration::from_millis(50)));
    }
}

fn deliver(
    job: Job,
    store: &MaildirStore,
    trace: &TraceLog,
    clock: &Clock,
    buf: &mut Vec<u8>,
) -> bool {
    let Job {
        head,
        content,
        mailboxes,
        folder,
        mut record,
        ..
    } = job;
    buf.clear();
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(&content);
    drop(content);
    let mut errors = Vec::new();
    for m in &mailboxes {
        let mut last_err = None;
        for attempt in 0..STORE_ATTEMPTS {
            match store.deliver(m, folder, buf, clock.wall(Instant::now())) {
                Ok(path) => {
                    record.deliveries.push(DeliveryTrace {
                        mailbox: m.clone(),
                        folder: folder.name().to_string(),
                        path,
                    });
                    last_err = None;
                    break;
                }
                Err(e) => {
                    last_err = Some(e.to_string());
                    thread::sleep(Duration::from_millis(10 << attempt));
                }
            }
        }
        if let Some(e) = last_err {
            tracing::error!("delivery to {m} failed: {e}");
            errors.push(format!("{m}: {e}"));
        }
    }
    let ok = errors.is_empty();
    if !ok {
        record.delivery_error = Some(errors.join("; "));
    }
    record.delivered_at = Some(rfc3339_ms(clock.wall(Instant::now())));
    if let Err(e) = trace.append(&record) {
        tracing::error!("message trace: {e}");
    }
    ok
}
