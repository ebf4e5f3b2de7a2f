//! The send engine: scripted bursts from chosen source IPs, with and without TLS, every reply recorded.
//!
//! One SMTP client for the whole project. Bursts ([`run_burst`]), probes and the ops commands
//! ([`send_one`]) all go through the same session code, so a transcript means the same thing
//! wherever it was taken. Every attempt produces exactly one [`AttemptRecord`], written by one
//! [`AttemptSink`] as it completes, even when the attempt failed, timed out or was interrupted.
//!
//! Layout: `wire` (the byte stream and reply reader), `tls` (rustls on ring, verification
//! recording), `message` (the message builder), `session` (one connection and its attempts),
//! `schedule` (send times and lateness), `burst` (dispatcher and workers), `sink` (the JSONL writer),
//! `progress` (terminal bars and finished-burst lines), `adhoc` (the one burst of `mailharness send`),
//! `tap` (watching a dialogue as it happens).

mod adhoc;
mod burst;
mod message;
mod progress;
mod schedule;
mod session;
mod sink;
mod tap;
pub(crate) mod tls;
mod wire;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub use adhoc::{new_send_run_id, send_burst, SendOptions, SendOutcome};
pub use burst::{run_burst, BurstSummary};
pub use message::{build_message, sanitize_header_text, MessageSpec, MessageText};
pub use progress::{BurstCounts, Progress};
pub use schedule::Schedule;
pub use session::{send_one, send_one_until, OneShot};
pub use sink::{AttemptSink, SinkSummary, ATTEMPTS_FILE};
pub use tap::{TapEvent, TranscriptTap};
pub use tls::TlsOptions;
/// Cancellation for bursts: cancel it (e.g. on Ctrl-C) to stop scheduling new sends.
pub use tokio_util::sync::CancellationToken as CancelToken;

pub use crate::record::AttemptRecord;
pub use crate::vocab::{TlsMode, TlsVerify};

/// Default connect timeout (target files may override it).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default per-command reply timeout: RFC 5321 §4.5.3.2 suggests minutes; 5 m is its MAIL value.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time in-flight attempts get to finish after a cancel before they are recorded interrupted.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(10);
/// SMTP's well-known port for implicit TLS submission-style service (SMTPS).
pub const DEFAULT_IMPLICIT_TLS_PORT: u16 = 465;

/// What can stop the engine before or outside a single attempt (attempt failures are records, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The source IP cannot be bound on this host.
    #[error("{0} is not assigned to any interface here")]
    SourceIpNotLocal(Ipv4Addr),
    /// Bad settings (TLS roots, server name, burst parameters).
    #[error("{0}")]
    Config(String),
    /// An I/O error with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The attempts file could not be written; the run must stop rather than lose records.
    #[error("attempt records: {0}")]
    Sink(String),
}

impl SendError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SendError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The run's clock: one monotonic origin and the wall time it corresponds to.
///
/// Every record's `*_ms` offsets are from this origin, so times from different bursts of one run
/// compare exactly even if the wall clock is stepped mid-run.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// Monotonic origin.
    pub start: Instant,
    /// Wall-clock time at the origin.
    pub wall: DateTime<Utc>,
}

impl RunClock {
    /// A clock starting now.
    pub fn now() -> Self {
        RunClock {
            start: Instant::now(),
            wall: Utc::now(),
        }
    }

    /// Milliseconds from the origin to `t` (negative if before it).
    pub fn ms(&self, t: Instant) -> f64 {
        match t.checked_duration_since(self.start) {
            Some(d) => d.as_secs_f64() * 1000.0,
            None => -(self.start.duration_since(t).as_secs_f64() * 1000.0),
        }
    }

    /// Wall-clock time of `t`, derived from the monotonic offset (never from a stepped clock).
    pub fn wall_at(&self, t: Instant) -> DateTime<Utc> {
        let us = (self.ms(t) * 1000.0).round() as i64;
        self.wall + chrono::Duration::microseconds(us)
    }
}

/// Everything a send needs that does not change between bursts of one run.
#[derive(Debug, Clone)]
pub struct SendContext {
    /// The run id (the `X-Harness-Run` header and every record's `run_id`).
    pub run_id: String,
    /// The receiving MX: IPv4 only, because connectors match IPv4 senders (reference).
    pub destination: SocketAddrV4,
    /// Port for `implicit` TLS bursts, on the destination's address.
    pub implicit_tls_port: u16,
    /// EHLO name.
    pub helo: String,
    /// Envelope sender and From address.
    pub mail_from: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout for each reply (and each write).
    pub command_timeout: Duration,
    /// How long in-flight attempts may finish after a cancel.
    pub cancel_grace: Duration,
    /// The run's clock.
    pub clock: RunClock,
    /// The receiver's host name (the TLS server name), which tells the reply knowledge whose
    /// replies these are (a tenant's MX, consumer Outlook.com, another server).
    receiver: Option<String>,
    /// Who the receiver is known to be when its replies show nothing about it (a Microsoft 365
    /// target, simulated or real); `None` for an arbitrary server (`mailharness send`).
    pub assume_origin: Option<crate::reply::Origin>,
    /// Whether the destination is the receiver's inbound MX (port 25), where a tenant's inbound
    /// connectors act; `false` for an arbitrary server.
    pub at_mx: bool,
    /// Who watches every connection's dialogue as it happens (`mailharness send --transcript`).
    pub tap: Option<Arc<dyn TranscriptTap>>,
    tls: Arc<tls::TlsSetup>,
    connections: Arc<AtomicU64>,
}

impl SendContext {
    /// A context with default timeouts; `tls` sets verification, extra roots and the server name.
    pub fn new(
        run_id: impl Into<String>,
        destination: SocketAddrV4,
        helo: impl Into<String>,
        mail_from: impl Into<String>,
        tls: &TlsOptions,
    ) -> Result<Self, SendError> {
        let setup = tls::TlsSetup::new(tls, destination)?;
        Ok(SendContext {
            run_id: sanitize_header_text(&run_id.into()),
            destination,
            implicit_tls_port: DEFAULT_IMPLICIT_TLS_PORT,
            helo: helo.into(),
            mail_from: mail_from.into(),
            receiver: tls.server_name.clone(),
            assume_origin: None,
            at_mx: false,
            tap: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            clock: RunClock::now(),
            tls: Arc::new(setup),
            connections: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The certificate verification policy in force.
    pub fn tls_verify(&self) -> TlsVerify {
        self.tls.verify
    }
}

/// Checks, before anything is sent, that `ip` can be bound as a source address on this host.
pub fn check_source_ip(ip: Ipv4Addr) -> Result<(), SendError> {
    // Binding a UDP socket sends nothing, and fails with EADDRNOTAVAIL exactly when a TCP bind would.
    match std::net::UdpSocket::bind((ip, 0)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(SendError::SourceIpNotLocal(ip))
        }
        Err(e) => Err(SendError::io(format!("binding source address {ip}"), e)),
    }
}
