//! The message trace: one JSONL record per SMTP transaction, the simulator's counterpart of
//! Exchange message trace (reference: "No documented header names the connector that matched;
//! Message trace is Microsoft's way to see it").
//!
//! A transaction starts at MAIL FROM and ends at the final reply after DATA, or when the client
//! abandons it (RSET, QUIT, a new EHLO/HELO/STARTTLS, disconnect, timeout). Its record is written
//! once its outcome is final:
//! - accepted messages: after every copy is in its Maildir (`delivered_at` set), so a record that
//!   says delivered always points at files that exist;
//! - everything else: when the transaction ends.
//!
//! Records are therefore ordered by completion, not by `time`. Each record carries the per-recipient
//! decisions (`recipients`) and, for accepted messages, one `deliveries` entry per distinct mailbox.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::{Decision, Rule};
use super::SimError;
use crate::reply::Reply;

/// The negotiated TLS parameters, spelled as EOP's `Received:` line spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// `TLS1_2` or `TLS1_3`.
    pub version: String,
    /// IANA cipher suite name, e.g. `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// The decision on one RCPT TO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientTrace {
    /// The address as given.
    pub address: String,
    /// Accepted or why not.
    pub decision: Decision,
    /// The rule that decided.
    pub reason: Rule,
    /// The reply sent.
    #[serde(with = "reply_json")]
    pub reply: Reply,
}

/// One stored copy of an accepted message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryTrace {
    /// The mailbox address.
    pub mailbox: String,
    /// `Inbox` or `Junk Email`.
    pub folder: String,
    /// The Maildir file.
    pub path: PathBuf,
}

/// One transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// When the transaction's final reply was sent (RFC 3339, ms, UTC).
    pub time: String,
    /// The SMTP session id (the 16 hex digits of the greeting and trailers).
    pub session_id: String,
    /// `smtp` (STARTTLS port) or `smtps` (implicit TLS port).
    pub listener: String,
    /// The connecting IP.
    pub source_ip: String,
    /// The connecting port.
    pub source_port: u16,
    /// The EHLO/HELO name.
    #[serde(default)]
    pub helo: Option<String>,
    /// TLS in effect, or null for plain text.
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    /// The inbound connector that matched, or null.
    #[serde(default)]
    pub connector: Option<String>,
    /// The envelope sender (empty for `<>`).
    pub mail_from: String,
    /// The transaction's outcome.
    pub decision: Decision,
    /// The rule behind it.
    pub reason: Rule,
    /// The reply that settled it (the final 250/5xx after DATA, or the deciding RCPT reply).
    #[serde(with = "reply_json")]
    pub reply: Reply,
    /// Every RCPT TO and its decision.
    pub recipients: Vec<RecipientTrace>,
    /// The Message-ID (given by the sender or added by the simulator).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The `InternalId` of the final 250 (the queue id).
    #[serde(default)]
    pub internal_id: Option<u64>,
    /// X-MS-Exchange-Organization-Network-Message-Id.
    #[serde(default)]
    pub network_message_id: Option<String>,
    /// Message size in bytes as received (after dot-unstuffing).
    #[serde(default)]
    pub size: Option<u64>,
    /// The spam confidence level stamped.
    #[serde(default)]
    pub scl: Option<u8>,
    /// Which junk rule fired, if any.
    #[serde(default)]
    pub junk_rule: Option<String>,
    /// When the last copy was stored (RFC 3339, ms).
    #[serde(default)]
    pub delivered_at: Option<String>,
    /// Stored copies, one per distinct accepted mailbox.
    #[serde(default)]
    pub deliveries: Vec<DeliveryTrace>,
    /// Why storing failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
}

/// The append-only JSONL trace file.
///
/// Writers (the delivery thread, SMTP sessions) share one buffered writer behind a std mutex:
/// a critical section is a record's serialization into memory or a write of the buffer to the
/// page cache, short and never held across an `.await`. The `fsync` (when on) is made outside
/// the lock, on a second handle to the file, so no writer waits on the disk for another's sync.
#[derive(Debug)]
pub struct TraceLog {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
    /// The same open file, for `sync_data` without the writer's lock (`None` without fsync).
    sync: Option<File>,
}

impl TraceLog {
    /// Opens (creating or appending to) the trace file.
    pub fn open(path: &Path, sync: bool) -> Result<Self, SimError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| SimError::io(format!("opening trace file {}", path.display()), e))?;
        let sync =
            match sync {
                true => Some(file.try_clone().map_err(|e| {
                    SimError::io(format!("opening trace file {}", path.display()), e)
                })?),
                false => None,
            };
        Ok(TraceLog {
            path: path.to_path_buf(),
            file: Mutex::new(BufWriter::with_capacity(256 * 1024, file)),
            sync,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether every flush ends with an `fsync` (`delivery.fsync`).
    pub fn syncs(&self) -> bool {
        self.sync.is_some()
    }

    /// Buffers one record; it reaches the file at the next `flush`.
    pub fn append(&self, record: &TraceRecord) -> Result<(), SimError> {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let w: &mut BufWriter<File> = &mut f;
        serde_json::to_writer(&mut *w, record)
            .map_err(|e| SimError::Internal(format!("writing a trace record: {e}")))?;
        w.write_all(b"\n")
            .map_err(|e| SimError::io(format!("writing trace file {}", self.path.display()), e))
    }

    /// Writes one record and flushes.
    pub fn append_now(&self, record: &TraceRecord) -> Result<(), SimError> {
        self.append_all_now(std::slice::from_ref(record))
    }

    /// Writes records and flushes once: a write to the page cache, and an `fsync` when on, which
    /// async callers make on a blocking thread (the SMTP session does).
    pub fn append_all_now(&self, records: &[TraceRecord]) -> Result<(), SimError> {
        for r in records {
            self.append(r)?;
        }
        self.flush()
    }

    /// Flushes buffered records to the file (and to disk when `fsync` is on).
    pub fn flush(&self) -> Result<(), SimError> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush()
            .map_err(|e| SimError::io(format!("flushing trace file {}", self.path.display()), e))?;
        if let Some(f) = &self.sync {
            f.sync_data().map_err(|e| {
                SimError::io(format!("syncing trace file {}", self.path.display()), e)
            })?;
        }
        Ok(())
    }

    /// Reads the records written so far, optionally only those with `time >= since`.
    pub fn read(&self, since: Option<DateTime<Utc>>) -> Result<Vec<TraceRecord>, SimError> {
        self.flush()?;
        read_trace_file(&self.path, since)
    }
}

/// A reply in the trace as `{"code":250,"enhanced":"2.1.5","text":"Recipient OK"}`: the shape
/// trace files have always had (`enhanced` is `""` when the reply has none, the lines of a
/// multi-line reply are joined with a space), kept here so that the reply type stays free of a
/// serialization format of its own.
mod reply_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::reply::{EnhancedCode, Reply};

    #[derive(Serialize)]
    struct Out<'a> {
        code: u16,
        enhanced: Enhanced,
        text: std::borrow::Cow<'a, str>,
    }

    /// Written through `collect_str`, so no string is built per record.
    struct Enhanced(Option<EnhancedCode>);

    impl Serialize for Enhanced {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Some(e) => s.collect_str(&e),
                None => s.serialize_str(""),
            }
        }
    }

    #[derive(Deserialize)]
    struct In {
        code: u16,
        enhanced: String,
        text: String,
    }

    pub fn serialize<S: Serializer>(r: &Reply, s: S) -> Result<S::Ok, S::Error> {
        let text = match r.lines.as_slice() {
            [one] => std::borrow::Cow::Borrowed(one.as_str()),
            _ => std::borrow::Cow::Owned(r.text()),
        };
        Out {
            code: r.code,
            enhanced: Enhanced(r.enhanced),
            text,
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Reply, D::Error> {
        let r = In::deserialize(d)?;
        let enhanced = match r.enhanced.as_str() {
            "" => None,
            e => Some(
                e.parse::<EnhancedCode>()
                    .map_err(serde::de::Error::custom)?,
            ),
        };
        Ok(Reply::new(r.code, enhanced, r.text))
    }
}

/// Reads a trace file, skipping nothing: a line that does not parse is an error naming the line.
pub fn read_trace_file(
    path: &Path,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<TraceRecord>, SimError> {
    let f = File::open(path)
        .map_err(|e| SimError::io(format!("opening trace file {}", path.display()), e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line =
            line.map_err(|e| SimError::io(format!("reading trace file {}", path.display()), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: TraceRecord = serde_json::from_str(&line).map_err(|e| {
            SimError::Internal(format!(
                "{}:{}: bad trace record: {e}",
                path.display(),
                i + 1
            ))
        })?;
        if let Some(since) = since {
            match DateTime::parse_from_rfc3339(&rec.time) {
                Ok(t) if t.with_timezone(&Utc) < since => continue,
                _ => {}
            }
        }
        out.push(rec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden run's simulator trace reads into these types and writes back byte for byte:
    /// the trace format did not change when the simulator took the crate's one reply type.
    #[test]
    fn golden_trace_round_trips_byte_for_byte() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/golden/main-run/sim-trace.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let rec: TraceRecord = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1));
            assert_eq!(serde_json::to_string(&rec).unwrap(), line, "line {}", i + 1);
            n += 1;
        }
        assert!(n >= 100, "{n} records");
        // A reply without an enhanced code keeps `"enhanced":""`.
        let r = Reply::new(354, None, "Start mail input");
        let v = serde_json::to_string(&RecipientTrace {
            address: "a@b".into(),
            decision: Decision::Accepted,
            reason: Rule::Queued,
            reply: r.clone(),
        })
        .unwrap();
        assert!(
            v.contains(r#""reply":{"code":354,"enhanced":"","text":"Start mail input"}"#),
            "{v}"
        );
        let back: RecipientTrace = serde_json::from_str(&v).unwrap();
        assert_eq!(back.reply, r);
    }
}
