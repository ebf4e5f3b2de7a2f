//! Record types shared by every stage: defined once, here.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::vocab::{ApplyMethod, ConnectorAction, OutcomeClass, TargetKind, TlsMode, WaitMethod};

/// Version of the JSONL record schemas below; bump on incompatible change.
pub const RECORD_SCHEMA: u32 = 1;

/// The SMTP stage an exchange belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The TCP connect (no reply; elapsed is the connect time).
    Connect,
    /// The TLS handshake (implicit TLS or after STARTTLS).
    TlsHandshake,
    /// The 220 greeting.
    Greeting,
    /// EHLO (or HELO) before TLS.
    Ehlo,
    /// STARTTLS.
    Starttls,
    /// EHLO again after TLS.
    EhloTls,
    /// MAIL FROM.
    Mail,
    /// One RCPT TO.
    Rcpt,
    /// DATA.
    Data,
    /// The end of data (`.`): the final reply for the message.
    EndOfData,
    /// RSET between messages on a reused connection.
    Rset,
    /// QUIT.
    Quit,
}

/// One command and its reply, as seen on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Which stage.
    pub stage: Stage,
    /// The command sent (without CRLF; message content is never copied here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The reply code, when a reply was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The RFC 3463 enhanced status code, e.g. `4.7.500`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced: Option<String>,
    /// Every text line of the reply, without the code prefix.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Milliseconds from sending the command (or connecting) to the end of the reply.
    pub elapsed_ms: f64,
    /// Milliseconds since the run started when the reply ended.
    pub at_ms: f64,
}

/// How the peer's certificate verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertVerification {
    /// Chain and name verified.
    Valid,
    /// The certificate has expired (or is not yet valid).
    Expired,
    /// The certificate does not name the host.
    NameMismatch,
    /// The chain does not lead to a trusted root.
    UnknownIssuer,
    /// Another verification failure, with rustls's description.
    Invalid(String),
}

/// What a TLS session negotiated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `1.2` or `1.3`.
    pub version: String,
    /// Cipher suite, IANA name (e.g. `TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The peer certificate's subject, RFC 4514 form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_subject: Option<String>,
    /// The peer certificate's DNS and IP subject alternative names.
    #[serde(default)]
    pub peer_sans: Vec<String>,
    /// The peer certificate's expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_not_after: Option<DateTime<Utc>>,
    /// The verification result.
    pub verification: CertVerification,
}

/// The reply that decided an attempt's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecidingReply {
    /// The stage it answered.
    pub stage: Stage,
    /// Reply code.
    pub code: u16,
    /// Enhanced status code, if the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced: Option<String>,
    /// The reply text, lines joined with a space.
    pub text: String,
}

/// One attempted message: the unit every later stage counts. Exactly one per attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Record schema version.
    pub schema: u32,
    /// The run this attempt belongs to.
    pub run_id: String,
    /// `<phase>/<sender>/<tls>/<n>`: the `X-Harness-Seq` header; the same for every retry.
    pub seq: String,
    /// Unique id of this attempt: `<seq>#<attempt>`.
    pub attempt_id: String,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The first attempt's id when this is a retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<String>,
    /// Phase name.
    pub phase: String,
    /// The planned burst's id.
    pub burst: String,
    /// Message index within the burst, from 0.
    pub index: u32,
    /// Sender role.
    pub sender: String,
    /// The source IP the connection was bound to.
    pub source_ip: Ipv4Addr,
    /// `host:port` connected to.
    pub destination: String,
    /// The TLS mode asked for.
    pub tls_mode: TlsMode,
    /// What TLS negotiated, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// The Message-ID header value (with angle brackets).
    pub message_id: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Message size in bytes as sent.
    pub size: u64,
    /// Connection number within the run, and this message's position on it (from 1).
    pub connection: u64,
    /// Position of this message on its connection, from 1.
    pub connection_seq: u32,
    /// When the schedule said to send it.
    pub scheduled_at: DateTime<Utc>,
    /// The same, in milliseconds since the run started (monotonic).
    pub scheduled_ms: f64,
    /// When the attempt started (its first command, or the connect).
    pub started_at: DateTime<Utc>,
    /// The same, in milliseconds since the run started.
    pub started_ms: f64,
    /// When the attempt's outcome was known.
    pub finished_at: DateTime<Utc>,
    /// The same, in milliseconds since the run started.
    pub finished_ms: f64,
    /// Every exchange, in order, including the connection's set-up (repeated on reused connections).
    pub transcript: Vec<Exchange>,
    /// The outcome class.
    pub outcome: OutcomeClass,
    /// The reply that decided the outcome, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<DecidingReply>,
    /// The AS/S token of the deciding reply, e.g. `AS761`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The queue id (or message id) the receiver gave in its final 250.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    /// For failures without a reply: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AttemptRecord {
    /// Whether the run stopped before this attempt exchanged anything with the server: a planned
    /// message that was never tried, not a measurement.
    pub fn never_sent(&self) -> bool {
        self.outcome == OutcomeClass::Interrupted && self.transcript.is_empty()
    }
}

/// Where an observed message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderKind {
    /// The INBOX.
    Inbox,
    /// The folder flagged `\Junk` (SPECIAL-USE), whatever its name.
    Junk,
    /// Any other folder.
    Other,
}

/// Whether an expected message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservationStatus {
    /// An accepted message was found in a mailbox.
    Found,
    /// An accepted message was not found by the deadline.
    Missing,
    /// A message of this run was found that no attempt record says was accepted.
    Anomaly,
}

/// What the receiver stamped on a delivered copy (reference: "Headers on the delivered copy").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The receiver's `Received:` line (the topmost one), unfolded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<String>,
    /// TLS version from that line (`version=TLS1_2` gives `1.2`); `none` when it shows no TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// Cipher from that line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cipher: Option<String>,
    /// X-Forefront-Antispam-Report CIP: the connecting IP the receiver saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cip: Option<String>,
    /// SFV: spam filter verdict (NSPM, SPM, SKx, BLK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfv: Option<String>,
    /// SCL: spam confidence level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scl: Option<i32>,
    /// CAT: category (NONE, SPM, BULK, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cat: Option<String>,
    /// DIR: direction (INB, OUT, INT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// IPV: IP allow-list verdict (CAL, NLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv: Option<String>,
    /// X-MS-Exchange-Organization-AuthAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_as: Option<String>,
    /// Authentication-Results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_results: Option<String>,
    /// `dest:` of X-Microsoft-Antispam-Mailbox-Delivery (`I` inbox, `J` junk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_dest: Option<String>,
}

/// One observation: an accepted message found or missing, or a stray message of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationRecord {
    /// Record schema version.
    pub schema: u32,
    /// The run.
    pub run_id: String,
    /// The `X-Harness-Seq` of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
    /// The accepted attempt this observation belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_id: Option<String>,
    /// The Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The mailbox searched or found in.
    pub mailbox: String,
    /// Found, missing or anomaly.
    pub status: ObservationStatus,
    /// The folder's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<FolderKind>,
    /// The folder's name on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_name: Option<String>,
    /// IMAP UIDVALIDITY of the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uidvalidity: Option<u32>,
    /// IMAP UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// IMAP INTERNALDATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_date: Option<DateTime<Utc>>,
    /// The time of the final 250, from the attempt record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
    /// Delivery latency in milliseconds (arrival − final 250), from the finer of INTERNALDATE and the
    /// Received date; with whole-second timestamps it is an upper bound (the end of that second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// The receiver's headers.
    #[serde(default)]
    pub evidence: Evidence,
    /// When this observation was made.
    pub observed_at: DateTime<Utc>,
}

/// What a change step between phases did, and when it took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The connector action (`create`, `update`, …).
    pub action: ConnectorAction,
    /// Connector name.
    pub connector: String,
    /// How it was applied (`simulator`, `prompt`, `hook`, `signal-file`).
    pub apply: ApplyMethod,
    /// Milliseconds since the run started when the change was applied.
    pub applied_ms: f64,
    /// How the harness waited (`settle` or `poll`).
    pub wait: WaitMethod,
    /// For `poll`: milliseconds from applying until the first unthrottled probe; `None` if it never was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_after_ms: Option<f64>,
    /// The probe attempts sent while polling (their attempt ids, in order).
    #[serde(default)]
    pub probes: Vec<String>,
    /// Whether the poll deadline passed without the change taking effect.
    #[serde(default)]
    pub timed_out: bool,
    /// An error applying the change, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One phase as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// Phase name.
    pub name: String,
    /// The change step before it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeRecord>,
    /// Milliseconds since the run started when its first burst started.
    pub started_ms: f64,
    /// Milliseconds since the run started when its last attempt finished.
    pub finished_ms: f64,
}

/// The run's own record: what ran, when, and how it ended (`run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Record schema version.
    pub schema: u32,
    /// The run id (also the directory name).
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Target name.
    pub target: String,
    /// `simulator` or `tenant`.
    pub target_kind: TargetKind,
    /// Wall-clock start; `*_ms` fields elsewhere count from here.
    pub started_at: DateTime<Utc>,
    /// Wall-clock end.
    pub finished_at: DateTime<Utc>,
    /// The phases as they ran.
    pub phases: Vec<PhaseRecord>,
    /// Whether the run was interrupted (Ctrl-C) before it finished.
    #[serde(default)]
    pub interrupted: bool,
    /// Why the run could not finish, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a JSONL record file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not a record of the expected type.
    #[error("{path}:{line}: not a valid record: {message}")]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads a JSONL file of records (`attempts.jsonl`, `observations.jsonl`, a trace).
///
/// A last line without its newline is a write torn by an interruption and is skipped (with a
/// warning); any other bad line is an error naming its line, since records are never silently
/// lost. [`read_jsonl_noting_torn`] also says which line was skipped.
pub fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<Vec<T>, JsonlError> {
    read_jsonl_noting_torn(path).map(|(records, _)| records)
}

/// [`read_jsonl`], also returning the 1-based number of a torn last line that was skipped.
pub fn read_jsonl_noting_torn<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<(Vec<T>, Option<usize>), JsonlError> {
    // Bytes, not a string: a write torn inside a multi-byte character must not make the whole
    // file unreadable.
    let bytes = std::fs::read(path).map_err(|source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.is_empty() {
        return Ok((Vec::new(), None));
    }
    let complete = bytes.ends_with(b"\n");
    let lines: Vec<&[u8]> = bytes
        .strip_suffix(b"\n")
        .unwrap_or(&bytes)
        .split(|&b| b == b'\n')
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut torn = None;
    for (i, raw) in lines.iter().enumerate() {
        let last_torn = i + 1 == lines.len() && !complete;
        let parsed = std::str::from_utf8(raw)
            .map_err(|e| format!("not UTF-8 ({e})"))
            .and_then(|line| {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    Ok(None)
                } else {
                    serde_json::from_str(line)
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
            });
        match parsed {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(_) if last_torn => {
                tracing::warn!(file = %path.display(), line = i + 1, "skipping a torn last line");
                torn = Some(i + 1);
            }
            Err(message) => {
                return Err(JsonlError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message,
                })
            }
        }
    }
    Ok((out, torn))
}
