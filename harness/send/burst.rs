//! One burst: a dispatcher that releases messages at their scheduled times, up to `concurrency`
//! workers that each hold a connection for `per_connection` messages, retries on a doubling
//! backoff, and a stop that leaves exactly one record per planned attempt.
//!
//! Only the dispatcher writes records. Workers hand it each finished attempt; the dispatcher
//! keeps every released-but-unfinished job, so whatever happens to a worker (hard stop, panic), an
//! attempt is recorded once, never twice and never not at all.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;

use super::message::message_id;
use super::progress::{BurstBar, Progress};
use super::schedule::{backoff, Schedule};
use super::session::{attempt_on, dest_for, finish, AttemptLog, AttemptMeta, Session};
use super::sink::AttemptSink;
use super::{check_source_ip, CancelToken, SendContext, SendError};
use crate::record::AttemptRecord;
use crate::scenario::model::RetryPolicy;
use crate::scenario::plan::PlannedBurst;
use crate::stats::percentile;
use crate::vocab::OutcomeClass;

/// What a burst did.
#[derive(Debug, Clone, Serialize)]
pub struct BurstSummary {
    /// The burst's id.
    pub burst: String,
    /// Planned first attempts.
    pub planned: u32,
    /// Records written (first attempts, retries, interrupted ones).
    pub records: u64,
    /// First attempts actually started.
    pub started: u64,
    /// Retries made.
    pub retries: u64,
    /// Records per outcome.
    pub by_outcome: BTreeMap<OutcomeClass, u64>,
    /// Connections opened.
    pub connections: u64,
    /// Seconds from the first start to the last finish.
    pub duration_secs: f64,
    /// Achieved rate of first-attempt starts, per second (first to last start).
    pub send_rate_per_sec: Option<f64>,
    /// Median lateness of first-attempt starts against the schedule, ms.
    pub lateness_p50_ms: Option<f64>,
    /// 99th percentile lateness, ms.
    pub lateness_p99_ms: Option<f64>,
    /// Worst lateness, ms.
    pub lateness_max_ms: Option<f64>,
    /// Whether the burst was cancelled before it finished.
    pub interrupted: bool,
}

impl BurstSummary {
    /// Records of one outcome.
    pub fn count(&self, o: OutcomeClass) -> u64 {
        self.by_outcome.get(&o).copied().unwrap_or(0)
    }
}

/// One released message: first attempt or retry.
#[derive(Debug, Clone)]
struct Job {
    id: u64,
    index: u32,
    attempt: u32,
    scheduled: Instant,
}

/// What the workers need to know about the burst.
struct BurstInfo {
    phase: String,
    burst: PlannedBurst,
    per_connection: u32,
}

impl BurstInfo {
    fn seq(&self, index: u32) -> String {
        // The burst id is `<phase>/<sender>/<tls>/<burst index>`; `.n` numbers the message in it,
        // so seqs stay unique when a phase has several bursts of one sender and TLS mode.
        format!("{}.{index}", self.burst.id)
    }

    fn recipients(&self, index: u32) -> Vec<String> {
        let all = &self.burst.recipients;
        let per = (self.burst.recipients_per_message.max(1) as usize).min(all.len());
        let start = (index as usize).wrapping_mul(per) % all.len().max(1);
        (0..per)
            .map(|k| all[(start + k) % all.len()].clone())
            .collect()
    }

    fn meta(&self, job: &Job) -> AttemptMeta {
        let seq = self.seq(job.index);
        let retry_of = (job.attempt > 1).then(|| format!("{seq}#1"));
        AttemptMeta {
            seq,
            attempt: job.attempt,
            retry_of,
            phase: self.phase.clone(),
            burst: self.burst.id.clone(),
            index: job.index,
            sender: self.burst.sender.clone(),
            source_ip: self.burst.source_ip,
            tls_mode: self.burst.tls,
            recipients: self.recipients(job.index),
            body_size: self.burst.body_size,
            scheduled: job.scheduled,
        }
    }
}

/// The record of an attempt that never started or never finished because the run stopped.
fn interrupted(ctx: &SendContext, info: &BurstInfo, job: &Job, why: &str) -> AttemptRecord {
    let meta = info.meta(job);
    let mut log = AttemptLog {
        outcome: Some(OutcomeClass::Interrupted),
        error: Some(why.to_string()),
        ..Default::default()
    };
    log.started = None;
    let mid = message_id(&ctx.run_id, &meta.seq, meta.attempt, &ctx.helo);
    finish(ctx, &meta, log, dest_for(ctx, meta.tls_mode), mid)
}

/// Runs one planned burst to completion (or cancellation), writing every attempt to `sink`.
///
/// `phase` names the phase in records. On `cancel`, no new message is released; in-flight
/// attempts get `ctx.cancel_grace` to finish, then are cut and recorded `interrupted`, as is every
/// planned attempt not yet sent. Errors are for what stops the burst as a whole (source IP not
/// here, bad parameters, the attempts file failing); attempt failures are records.
pub async fn run_burst(
    ctx: &SendContext,
    burst: &PlannedBurst,
    phase: &str,
    sink: &AttemptSink,
    cancel: &CancelToken,
    progress: &Progress,
) -> Result<BurstSummary, SendError> {
    check_source_ip(burst.source_ip)?;
    if burst.recipients.is_empty() && burst.count > 0 {
        return Err(SendError::Config(format!(
            "burst {}: no recipients to send to",
            burst.id
        )));
    }
    let info = Arc::new(BurstInfo {
        phase: phase.to_string(),
        burst: burst.clone(),
        per_connection: burst.per_connection.max(1),
    });
    let workers_n = burst
        .concurrency
        .max(1)
        .min(burst.connections.max(1))
        .min(burst.count.max(1)) as usize;
    // A child token: a hard stop of this burst must not cancel the caller's token.
    let hard = CancelToken::new();
    let (job_tx, mut done_rx, mut workers) = spawn_workers(ctx, &info, workers_n, cancel, &hard);

    let mut st = State::new(ctx, sink, progress, info);
    st.release(&mut done_rx, &job_tx, cancel).await?;
    drop(job_tx);
    if st.cancelled {
        st.record_unreleased().await?;
    }
    st.drain(&mut done_rx, &hard, cancel).await?;
    while let Some(r) = workers.join_next().await {
        if let Err(e) = r {
            tracing::error!("a sender task of burst {} failed: {e}", burst.id);
        }
    }
    st.record_left().await?;
    st.bar.finish();
    Ok(st.summary())
}

/// Where workers report finished attempts: the job id and its record.
type DoneRx = mpsc::UnboundedReceiver<(u64, AttemptRecord)>;

/// Starts `n` workers sharing one job queue; returns the queue's sender, the receiver of
/// finished attempts, and the workers.
fn spawn_workers(
    ctx: &SendContext,
    info: &Arc<BurstInfo>,
    n: usize,
    cancel: &CancelToken,
    hard: &CancelToken,
) -> (mpsc::Sender<Job>, DoneRx, JoinSet<()>) {
    let (job_tx, job_rx) = mpsc::channel::<Job>(n);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(u64, AttemptRecord)>();
    let mut workers = JoinSet::new();
    for _ in 0..n {
        workers.spawn(worker(
            ctx.clone(),
            info.clone(),
            job_rx.clone(),
            done_tx.clone(),
            cancel.clone(),
            hard.clone(),
        ));
    }
    (job_tx, done_rx, workers)
}

async fn sleep_until_opt(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t.into()).await;
    }
}

/// The dispatcher's bookkeeping.
struct State<'a> {
    ctx: &'a SendContext,
    sink: &'a AttemptSink,
    info: Arc<BurstInfo>,
    bar: BurstBar,
    /// When each first attempt is due.
    sched: Schedule,
    /// The next first attempt to release.
    next: u32,
    retry: Option<RetryPolicy>,
    outstanding: HashMap<u64, Job>,
    retries: BinaryHeap<Reverse<(Instant, u64)>>,
    retry_jobs: HashMap<u64, Job>,
    next_id: u64,
    records: u64,
    retried: u64,
    by_outcome: BTreeMap<OutcomeClass, u64>,
    lateness: Vec<f64>,
    first_start: Option<Instant>,
    last_start: Option<Instant>,
    last_finish: Option<Instant>,
    cancelled: bool,
    /// Connection numbers seen in this burst's records (the counter is shared by the run).
    connections: HashSet<u64>,
}

impl<'a> State<'a> {
    /// Nothing released yet; the schedule starts now.
    fn new(
        ctx: &'a SendContext,
        sink: &'a AttemptSink,
        progress: &Progress,
        info: Arc<BurstInfo>,
    ) -> Self {
        let burst = &info.burst;
        let retry = burst.retry.clone();
        let lateness = Vec::with_capacity(burst.count.min(1_000_000) as usize);
        // A short lead so the first send is not late merely because workers were being spawned.
        let start = Instant::now() + Duration::from_millis(5);
        let sched = Schedule::new(start, burst.interval_secs, burst.count);
        let bar = progress.bar(&burst.id, u64::from(burst.count), ctx.clock.ms(start));
        State {
            ctx,
            sink,
            info,
            bar,
            sched,
            next: 0,
            retry,
            outstanding: HashMap::new(),
            retries: BinaryHeap::new(),
            retry_jobs: HashMap::new(),
            next_id: 0,
            records: 0,
            retried: 0,
            by_outcome: BTreeMap::new(),
            lateness,
            first_start: None,
            last_start: None,
            last_finish: None,
            cancelled: false,
            connections: HashSet::new(),
        }
    }

    /// Releases each planned message at its time and each retry when due, and records what the
    /// workers finish, until all is done, the workers are gone with nothing due, or a stop.
    async fn release(
        &mut self,
        done_rx: &mut DoneRx,
        job_tx: &mpsc::Sender<Job>,
        cancel: &CancelToken,
    ) -> Result<(), SendError> {
        let count = self.info.burst.count;
        let mut workers_alive = true;
        loop {
            if self.next >= count && self.retries.is_empty() && self.outstanding.is_empty() {
                break;
            }
            let first_due = (self.next < count).then(|| self.sched.at(self.next));
            let retry_due = self.retries.peek().map(|Reverse((t, _))| *t);
            let due = match (first_due, retry_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => { self.cancelled = true; break; }
                d = done_rx.recv(), if workers_alive => match d {
                    Some((id, rec)) => self.done(id, rec).await?,
                    None => { workers_alive = false; if due.is_none() { break; } }
                },
                _ = sleep_until_opt(due), if due.is_some() => {
                    let Some(job) = self.take_due(first_due, retry_due) else { continue };
                    if !workers_alive {
                        let rec = interrupted(self.ctx, &self.info, &job, "no sender was left to send this attempt");
                        self.write(rec, false).await?;
                        continue;
                    }
                    self.outstanding.insert(job.id, job.clone());
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => { self.cancelled = true; break; }
                        r = job_tx.send(job.clone()) => if r.is_err() {
                            // Every worker is gone; the job stays outstanding and is recorded later.
                            workers_alive = false;
                        },
                    }
                }
            }
        }
        Ok(())
    }

    /// The job due now: the first pending retry if it is earlier than the next planned message,
    /// else that message.
    fn take_due(&mut self, first_due: Option<Instant>, retry_due: Option<Instant>) -> Option<Job> {
        match (first_due, retry_due) {
            (_, Some(r)) if first_due.is_none_or(|f| r < f) => {
                let Reverse((_, id)) = self.retries.pop()?;
                self.retry_jobs.remove(&id)
            }
            _ => {
                let job = Job {
                    id: self.next_id,
                    index: self.next,
                    attempt: 1,
                    scheduled: self.sched.at(self.next),
                };
                self.next_id += 1;
                self.next += 1;
                Some(job)
            }
        }
    }

    /// After a stop: what was never released (the rest of the schedule, pending retries) is
    /// recorded `interrupted`.
    async fn record_unreleased(&mut self) -> Result<(), SendError> {
        for i in self.next..self.info.burst.count {
            let job = Job {
                id: u64::MAX,
                index: i,
                attempt: 1,
                scheduled: self.sched.at(i),
            };
            let rec = interrupted(
                self.ctx,
                &self.info,
                &job,
                "run interrupted before this attempt was sent",
            );
            self.write(rec, true).await?;
        }
        while let Some(Reverse((_, id))) = self.retries.pop() {
            if let Some(job) = self.retry_jobs.remove(&id) {
                let rec = interrupted(
                    self.ctx,
                    &self.info,
                    &job,
                    "run interrupted before this retry was sent",
                );
                self.write(rec, false).await?;
            }
        }
        Ok(())
    }

    /// Lets the workers finish what they hold (with a grace period after a stop, then a hard
    /// stop), recording each attempt, until every worker has gone.
    async fn drain(
        &mut self,
        done_rx: &mut DoneRx,
        hard: &CancelToken,
        cancel: &CancelToken,
    ) -> Result<(), SendError> {
        let grace_end = Instant::now() + self.ctx.cancel_grace;
        loop {
            tokio::select! {
                biased;
                d = done_rx.recv() => match d {
                    Some((id, rec)) => self.done(id, rec).await?,
                    None => break,
                },
                _ = tokio::time::sleep_until(grace_end.into()), if self.cancelled && !hard.is_cancelled() => {
                    hard.cancel();
                }
                _ = cancel.cancelled(), if !self.cancelled => { self.cancelled = true; }
            }
        }
        Ok(())
    }

    /// Released but never finished (left in the queue, or a worker died): still one record each.
    async fn record_left(&mut self) -> Result<(), SendError> {
        let mut left: Vec<Job> = self.outstanding.drain().map(|(_, j)| j).collect();
        left.sort_by_key(|j| j.id);
        for job in left {
            let why = if self.cancelled {
                "run interrupted before this attempt was sent"
            } else {
                "the sender task failed before finishing this attempt"
            };
            let rec = interrupted(self.ctx, &self.info, &job, why);
            self.write(rec, job.attempt == 1).await?;
        }
        Ok(())
    }

    /// What the burst did: counts, achieved rate, lateness percentiles.
    fn summary(mut self) -> BurstSummary {
        let mut lat = std::mem::take(&mut self.lateness);
        let p50 = percentile(&mut lat, 50.0);
        let p99 = percentile(&mut lat, 99.0);
        let max = lat.last().copied();
        let send_rate = match (self.first_start, self.last_start) {
            (Some(a), Some(b)) if b > a && lat.len() > 1 => {
                Some((lat.len() - 1) as f64 / b.duration_since(a).as_secs_f64())
            }
            _ => None,
        };
        BurstSummary {
            burst: self.info.burst.id.clone(),
            planned: self.info.burst.count,
            records: self.records,
            started: lat.len() as u64,
            retries: self.retried,
            by_outcome: self.by_outcome,
            connections: self.connections.len() as u64,
            duration_secs: match (self.first_start, self.last_finish) {
                (Some(a), Some(b)) if b > a => b.duration_since(a).as_secs_f64(),
                _ => 0.0,
            },
            send_rate_per_sec: send_rate,
            lateness_p50_ms: p50,
            lateness_p99_ms: p99,
            lateness_max_ms: max,
            interrupted: self.cancelled,
        }
    }

    /// A worker finished job `id`.
    async fn done(&mut self, id: u64, rec: AttemptRecord) -> Result<(), SendError> {
        let Some(job) = self.outstanding.remove(&id) else {
            // Already recorded (cannot happen: only the dispatcher removes jobs); never write twice.
            tracing::error!(
                "attempt {} finished twice; second record dropped",
                rec.attempt_id
            );
            return Ok(());
        };
        let now = Instant::now();
        self.last_finish = Some(now);
        if job.attempt == 1 && !rec.transcript.is_empty() {
            let started =
                self.ctx.clock.start + Duration::from_secs_f64((rec.started_ms.max(0.0)) / 1000.0);
            self.lateness
                .push((rec.started_ms - rec.scheduled_ms).max(0.0));
            self.first_start = Some(self.first_start.map_or(started, |f| f.min(started)));
            self.last_start = Some(self.last_start.map_or(started, |l| l.max(started)));
        }
        if let Some(p) = &self.retry {
            let transient = rec
                .reply
                .as_ref()
                .is_some_and(|r| (400..500).contains(&r.code));
            if transient && rec.attempt < p.attempts && !self.cancelled {
                let id = self.next_id;
                self.next_id += 1;
                let at = now + backoff(p.backoff.0, rec.attempt);
                self.retries.push(Reverse((at, id)));
                self.retry_jobs.insert(
                    id,
                    Job {
                        id,
                        index: job.index,
                        attempt: rec.attempt + 1,
                        scheduled: at,
                    },
                );
                self.retried += 1;
            }
        }
        self.write(rec, job.attempt == 1).await
    }

    async fn write(&mut self, rec: AttemptRecord, first: bool) -> Result<(), SendError> {
        self.records += 1;
        if rec.connection != 0 {
            self.connections.insert(rec.connection);
        }
        *self.by_outcome.entry(rec.outcome).or_default() += 1;
        self.bar.record(&rec, first);
        self.sink.write(rec).await
    }
}

/// A sender: takes released jobs, keeps its connection for `per_connection` messages.
async fn worker(
    ctx: SendContext,
    info: Arc<BurstInfo>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    done: mpsc::UnboundedSender<(u64, AttemptRecord)>,
    stop: CancelToken,
    hard: CancelToken,
) {
    let mut slot: Option<Session> = None;
    loop {
        let job = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            j = async { jobs.lock().await.recv().await } => match j {
                Some(j) => j,
                None => break,
            },
        };
        let meta = info.meta(&job);
        let mut log = AttemptLog::default();
        let mid = {
            let fut = attempt_on(&ctx, &mut slot, &meta, info.per_connection, &mut log);
            tokio::pin!(fut);
            tokio::select! {
                biased;
                m = &mut fut => Some(m),
                _ = hard.cancelled() => None,
            }
        };
        let mid = match mid {
            Some(m) => m,
            None => {
                // Cut short: the connection is mid-command, so it cannot be reused.
                slot = None;
                log.cut_short();
                message_id(&ctx.run_id, &meta.seq, meta.attempt, &ctx.helo)
            }
        };
        let rec = finish(&ctx, &meta, log, dest_for(&ctx, meta.tls_mode), mid);
        if done.send((job.id, rec)).is_err() {
            break;
        }
    }
    if let Some(s) = slot.take() {
        tokio::select! {
            _ = s.quit(&ctx, None) => {}
            _ = hard.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::TlsMode;
    use std::net::Ipv4Addr;

    fn burst(recipients: &[&str], per: u32) -> BurstInfo {
        BurstInfo {
            phase: "before".into(),
            per_connection: 1,
            burst: PlannedBurst {
                id: "before/primary/none/0".into(),
                label: None,
                sender: "primary".into(),
                source_ip: Ipv4Addr::LOCALHOST,
                tls: TlsMode::None,
                count: 10,
                interval_secs: 0.0,
                rate_per_min: 0.0,
                concurrency: 1,
                per_connection: 1,
                connections: 10,
                recipients_per_message: per,
                recipients: recipients.iter().map(|s| s.to_string()).collect(),
                body_size: 100,
                expected_duration_secs: 0.0,
                retry: None,
            },
        }
    }

    #[test]
    fn recipients_go_round_robin() {
        let b = burst(&["a", "b", "c"], 1);
        assert_eq!(b.recipients(0), vec!["a"]);
        assert_eq!(b.recipients(1), vec!["b"]);
        assert_eq!(b.recipients(3), vec!["a"]);
        let b = burst(&["a", "b", "c"], 2);
        assert_eq!(b.recipients(0), vec!["a", "b"]);
        assert_eq!(b.recipients(1), vec!["c", "a"]);
        let b = burst(&["a"], 5);
        assert_eq!(b.recipients(7), vec!["a"]);
    }

    #[test]
    fn seqs_and_retry_links() {
        let b = burst(&["a"], 1);
        let m = b.meta(&Job {
            id: 0,
            index: 7,
            attempt: 2,
            scheduled: Instant::now(),
        });
        assert_eq!(m.seq, "before/primary/none/0.7");
        assert_eq!(m.attempt_id(), "before/primary/none/0.7#2");
        assert_eq!(m.retry_of.as_deref(), Some("before/primary/none/0.7#1"));
    }
}
