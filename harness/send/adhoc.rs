//! One ad-hoc burst (what `mailharness send` runs): plain options in, records and a summary out.
//! The command line, its printing and its exit codes live in the binary.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{
    check_source_ip, run_burst, AttemptSink, BurstSummary, CancelToken, Progress, SendContext,
    SendError, SinkSummary, TlsOptions, TlsVerify, TranscriptTap,
};
use crate::scenario::plan::PlannedBurst;
use crate::vocab::{Rate, TlsMode};

/// What to send, from where, to where, and how fast.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The receiving SMTP server (loopback unless `allow_remote`).
    pub server: SocketAddrV4,
    /// Allow a server outside 127.0.0.0/8: a careless burst must not hit a real MX by accident.
    pub allow_remote: bool,
    /// Port for implicit TLS on the server's address.
    pub implicit_port: u16,
    /// Source IP to bind.
    pub from_ip: Ipv4Addr,
    /// Recipients, round-robin.
    pub to: Vec<String>,
    /// Messages to send.
    pub count: u32,
    /// Pace as a rate (wins over `interval`).
    pub rate: Option<Rate>,
    /// Pace as the gap between sends.
    pub interval: Option<Duration>,
    /// Connections open at once.
    pub concurrency: u32,
    /// Messages per connection.
    pub per_connection: u32,
    /// TLS mode.
    pub tls: TlsMode,
    /// PEM file of extra trust anchors.
    pub ca_file: Option<PathBuf>,
    /// Certificate policy.
    pub tls_verify: TlsVerify,
    /// Name to verify the certificate against (default: the server's IP).
    pub tls_name: Option<String>,
    /// EHLO name.
    pub helo: String,
    /// Envelope sender.
    pub mail_from: String,
    /// Body size in bytes.
    pub size: u64,
    /// Sender role written in the records.
    pub sender: String,
    /// Run id.
    pub run_id: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Per-reply timeout.
    pub command_timeout: Duration,
    /// Directory of `attempts.jsonl`.
    pub out: PathBuf,
    /// Who watches the dialogue as it happens (`--transcript`).
    pub tap: Option<Arc<dyn TranscriptTap>>,
}

/// A finished ad-hoc burst.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// The run id in every record.
    pub run_id: String,
    /// What the burst did.
    pub summary: BurstSummary,
    /// The attempts file written.
    pub written: SinkSummary,
}

/// A fresh run id for an ad-hoc burst: `send-<UTC time>-<8 hex>`.
pub fn new_send_run_id() -> String {
    format!(
        "send-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Checks the options before anything is opened: the server's address, the count, the source IP.
fn check(opts: &SendOptions) -> Result<(), SendError> {
    if !opts.server.ip().is_loopback() && !opts.allow_remote {
        return Err(SendError::Config(format!(
            "--server {} is not on loopback; add --allow-remote if you really mean to send there",
            opts.server
        )));
    }
    if opts.count == 0 {
        return Err(SendError::Config("--count must be at least 1".into()));
    }
    check_source_ip(opts.from_ip)
}

/// The send context the options describe.
fn context(opts: &SendOptions) -> Result<SendContext, SendError> {
    let extra_roots_pem = match &opts.ca_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| SendError::io(format!("reading --ca-file {}", p.display()), e))?,
        ),
        None => None,
    };
    let mut ctx = SendContext::new(
        opts.run_id.clone(),
        opts.server,
        opts.helo.clone(),
        opts.mail_from.clone(),
        &TlsOptions {
            verify: opts.tls_verify,
            extra_roots_pem,
            server_name: opts.tls_name.clone(),
            no_public_roots: false,
        },
    )?;
    ctx.implicit_tls_port = opts.implicit_port;
    ctx.connect_timeout = opts.connect_timeout;
    ctx.command_timeout = opts.command_timeout;
    ctx.tap = opts.tap.clone();
    Ok(ctx)
}

/// The one planned burst the options describe.
fn planned(opts: &SendOptions) -> PlannedBurst {
    let interval = match (opts.rate, opts.interval) {
        (Some(r), _) => r.interval(),
        (None, Some(i)) => i,
        (None, None) => Duration::ZERO,
    };
    let per = opts.per_connection.max(1);
    PlannedBurst {
        id: format!("send/{}/{}/0", opts.sender, opts.tls),
        label: None,
        sender: opts.sender.clone(),
        source_ip: opts.from_ip,
        tls: opts.tls,
        count: opts.count,
        interval_secs: interval.as_secs_f64(),
        rate_per_min: if interval.is_zero() {
            0.0
        } else {
            60.0 / interval.as_secs_f64()
        },
        concurrency: opts.concurrency.max(1),
        per_connection: per,
        connections: opts.count.div_ceil(per),
        recipients_per_message: 1,
        recipients: opts.to.clone(),
        body_size: opts.size,
        expected_duration_secs: interval.as_secs_f64() * f64::from(opts.count.saturating_sub(1)),
        retry: None,
    }
}

/// Runs the burst the options describe into `<out>/attempts.jsonl`; `cancel` stops it cleanly
/// (every unsent message is still recorded, `interrupted`).
pub async fn send_burst(
    opts: &SendOptions,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<SendOutcome, SendError> {
    check(opts)?;
    let ctx = context(opts)?;
    let burst = planned(opts);
    let sink = AttemptSink::open(&opts.out)?;
    let result = run_burst(&ctx, &burst, "send", &sink, cancel, progress).await;
    let written = sink.close().await?;
    Ok(SendOutcome {
        run_id: opts.run_id.clone(),
        summary: result?,
        written,
    })
}
