//! The attempts file: one JSON line per attempt, appended and flushed as attempts complete, by one
//! writer thread (so lines never interleave and JSON encoding stays off the async workers).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::SendError;
use crate::record::AttemptRecord;
use crate::vocab::OutcomeClass;

/// The file name inside the output directory.
pub const ATTEMPTS_FILE: &str = "attempts.jsonl";
/// Records queued for the writer; a full queue makes senders wait rather than grow memory.
const QUEUE: usize = 4096;
/// Write buffer: many small lines per write(2) when attempts complete in bursts.
const WRITE_BUFFER: usize = 256 * 1024;

enum Msg {
    Record(Box<AttemptRecord>),
    Close(oneshot::Sender<Result<SinkSummary, String>>),
}

/// What the writer wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkSummary {
    /// The file.
    pub path: PathBuf,
    /// Records written.
    pub records: u64,
    /// Records per outcome.
    pub by_outcome: BTreeMap<OutcomeClass, u64>,
}

/// The single writer of `attempts.jsonl`. Cheap to clone; every clone feeds the same file.
#[derive(Clone)]
pub struct AttemptSink {
    tx: mpsc::Sender<Msg>,
    path: PathBuf,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    error: Arc<Mutex<Option<String>>>,
}

impl AttemptSink {
    /// Creates `dir` if needed and opens `dir/attempts.jsonl` for appending (phases of one run share it).
    pub fn open(dir: &Path) -> Result<AttemptSink, SendError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SendError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(ATTEMPTS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| SendError::io(format!("opening {}", path.display()), e))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let p = path.clone();
        let error = Arc::new(Mutex::new(None));
        let e2 = error.clone();
        let thread = std::thread::Builder::new()
            .name("attempt-sink".into())
            .spawn(move || writer(file, p, rx, e2))
            .map_err(|e| SendError::io("starting the attempt writer thread", e))?;
        Ok(AttemptSink {
            tx,
            path,
            thread: Arc::new(Mutex::new(Some(thread))),
            error,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one record; fails only when the writer has stopped (it could not write the file).
    pub async fn write(&self, rec: AttemptRecord) -> Result<(), SendError> {
        self.tx
            .send(Msg::Record(Box::new(rec)))
            .await
            .map_err(|_| self.writer_gone())
    }

    fn writer_gone(&self) -> SendError {
        let cause = self.error.lock().ok().and_then(|g| g.clone());
        SendError::Sink(
            cause.unwrap_or_else(|| format!("the writer of {} has stopped", self.path.display())),
        )
    }

    /// Writes everything queued, flushes, syncs and stops the writer. Other clones can no longer write.
    pub async fn close(&self) -> Result<SinkSummary, SendError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Close(tx))
            .await
            .map_err(|_| self.writer_gone())?;
        let r = rx.await.map_err(|_| self.writer_gone())?;
        let handle = self.thread.lock().ok().and_then(|mut g| g.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        r.map_err(SendError::Sink)
    }
}

/// The writer thread: encodes, writes, and flushes whenever the queue runs dry.
fn writer(
    file: File,
    path: PathBuf,
    mut rx: mpsc::Receiver<Msg>,
    shared_error: Arc<Mutex<Option<String>>>,
) {
    let fail = |e: String, rx: &mut mpsc::Receiver<Msg>| {
        if let Ok(mut g) = shared_error.lock() {
            *g = Some(e.clone());
        }
        // Stop accepting: senders see the error instead of losing records silently.
        rx.close();
        e
    };
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut summary = SinkSummary {
        path: path.clone(),
        ..Default::default()
    };
    let mut failed: Option<String> = None;
    while let Some(msg) = rx.blocking_recv() {
        let mut next = Some(msg);
        while let Some(m) = next.take() {
            match m {
                Msg::Record(rec) => {
                    if failed.is_some() {
                        continue;
                    }
                    let r = serde_json::to_writer(&mut out, &*rec)
                        .map_err(|e| e.to_string())
                        .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()));
                    match r {
                        Ok(()) => {
                            summary.records += 1;
                            *summary.by_outcome.entry(rec.outcome).or_default() += 1;
                        }
                        Err(e) => {
                            failed =
                                Some(fail(format!("writing {}: {e}", path.display()), &mut rx));
                        }
                    }
                }
                Msg::Close(reply) => {
                    let r = match failed.take() {
                        Some(e) => Err(e),
                        None => out
                            .flush()
                            .and_then(|()| out.get_ref().sync_data())
                            .map(|()| summary.clone())
                            .map_err(|e| format!("flushing {}: {e}", path.display())),
                    };
                    let _ = reply.send(r);
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        // The queue is empty: whatever completed is on its way to disk now, not later.
        if failed.is_none() {
            if let Err(e) = out.flush() {
                failed = Some(fail(format!("flushing {}: {e}", path.display()), &mut rx));
            }
        }
    }
}
