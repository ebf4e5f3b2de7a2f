//! `mailharness send`: one ad-hoc burst from the command line, for operators and the benchmark.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{
    check_source_ip, run_burst, AttemptSink, BurstSummary, CancelToken, Progress, SendContext,
    SendError, SinkSummary, TlsOptions, TlsVerify,
};
use crate::scenario::plan::PlannedBurst;
use crate::vocab::{HumanDuration, OutcomeClass, Rate, TlsMode};

/// Arguments of `mailharness send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The receiving SMTP server, IPv4 `ip:port` (loopback unless --allow-remote).
    #[arg(long)]
    pub server: SocketAddrV4,
    /// Allow a server outside 127.0.0.0/8: a careless burst must not hit a real MX by accident.
    #[arg(long)]
    pub allow_remote: bool,
    /// Port for `--tls implicit` on the server's address.
    #[arg(long, default_value_t = super::DEFAULT_IMPLICIT_TLS_PORT)]
    pub implicit_port: u16,
    /// Source IP to bind.
    #[arg(long, default_value = "127.0.0.2")]
    pub from_ip: Ipv4Addr,
    /// Recipient (repeat or comma-separate; messages go round-robin).
    #[arg(long, required = true, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Messages to send.
    #[arg(long, default_value_t = 10)]
    pub count: u32,
    /// Pace as a rate, e.g. `100/s`, `120/min` (default: as fast as the connections allow).
    #[arg(long, conflicts_with = "interval")]
    pub rate: Option<Rate>,
    /// Pace as the gap between sends, e.g. `10ms`.
    #[arg(long)]
    pub interval: Option<HumanDuration>,
    /// Connections open at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u32,
    /// Messages per connection.
    #[arg(long, default_value_t = 1)]
    pub per_connection: u32,
    /// TLS mode: none, starttls, starttls-opportunistic, implicit.
    #[arg(long, default_value = "none", value_parser = parse_tls)]
    pub tls: TlsMode,
    /// PEM file of extra trust anchors.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Certificate policy: verify (fail on a bad certificate) or record (record and continue).
    #[arg(long, default_value = "verify", value_parser = parse_verify)]
    pub tls_verify: TlsVerify,
    /// Name to verify the server certificate against (default: the server's IP).
    #[arg(long)]
    pub tls_name: Option<String>,
    /// EHLO name.
    #[arg(long, default_value = "mailharness.localdomain")]
    pub helo: String,
    /// Envelope sender.
    #[arg(long, default_value = "mailharness@mailharness.localdomain")]
    pub mail_from: String,
    /// Body size in bytes.
    #[arg(long, default_value_t = crate::scenario::plan::DEFAULT_BODY_SIZE)]
    pub size: u64,
    /// Sender role written in the records.
    #[arg(long, default_value = "primary")]
    pub sender: String,
    /// Run id (default: `send-<UTC time>-<random>`).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Connect timeout.
    #[arg(long, default_value = "30s")]
    pub connect_timeout: HumanDuration,
    /// Per-reply timeout.
    #[arg(long, default_value = "5m")]
    pub command_timeout: HumanDuration,
    /// Output directory; attempts go to DIR/attempts.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_tls(s: &str) -> Result<TlsMode, String> {
    TlsMode::ALL
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| {
            format!("unknown TLS mode `{s}`: expected none, starttls, starttls-opportunistic or implicit")
        })
}

fn parse_verify(s: &str) -> Result<TlsVerify, String> {
    match s {
        "verify" => Ok(TlsVerify::Verify),
        "record" => Ok(TlsVerify::Record),
        _ => Err(format!("unknown policy `{s}`: expected verify or record")),
    }
}

/// Runs the burst the arguments describe, Ctrl-C stopping it cleanly, and prints a summary.
pub async fn run_cli(args: SendArgs) -> Result<(BurstSummary, SinkSummary), SendError> {
    if !args.server.ip().is_loopback() && !args.allow_remote {
        return Err(SendError::Config(format!(
            "--server {} is not on loopback; add --allow-remote if you really mean to send there",
            args.server
        )));
    }
    if args.count == 0 {
        return Err(SendError::Config("--count must be at least 1".into()));
    }
    check_source_ip(args.from_ip)?;
    let extra_roots_pem = match &args.ca_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| SendError::io(format!("reading --ca-file {}", p.display()), e))?,
        ),
        None => None,
    };
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        format!(
            "send-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let mut ctx = SendContext::new(
        run_id.clone(),
        args.server,
        args.helo.clone(),
        args.mail_from.clone(),
        &TlsOptions {
            verify: args.tls_verify,
            extra_roots_pem,
            server_name: args.tls_name.clone(),
            no_public_roots: false,
        },
    )?;
    ctx.implicit_tls_port = args.implicit_port;
    ctx.connect_timeout = args.connect_timeout.0;
    ctx.command_timeout = args.command_timeout.0;
    let interval = match (args.rate, args.interval) {
        (Some(r), _) => r.interval(),
        (None, Some(i)) => i.0,
        (None, None) => Duration::ZERO,
    };
    let per = args.per_connection.max(1);
    let burst = PlannedBurst {
        id: format!("send/{}/{}/0", args.sender, args.tls),
        label: None,
        sender: args.sender.clone(),
        source_ip: args.from_ip,
        tls: args.tls,
        count: args.count,
        interval_secs: interval.as_secs_f64(),
        rate_per_min: if interval.is_zero() {
            0.0
        } else {
            60.0 / interval.as_secs_f64()
        },
        concurrency: args.concurrency.max(1),
        per_connection: per,
        connections: args.count.div_ceil(per),
        recipients_per_message: 1,
        recipients: args.to.clone(),
        body_size: args.size,
        expected_duration_secs: interval.as_secs_f64() * f64::from(args.count - 1),
        retry: None,
    };
    let sink = AttemptSink::open(&args.out)?;
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    let progress = Progress::stderr();
    let p2 = progress.clone();
    let ctrl_c = tokio::spawn(async move {
        crate::signal::stop_requested().await;
        p2.println("interrupted: no new messages; in-flight ones get the grace period");
        c2.cancel();
    });
    let result = run_burst(&ctx, &burst, "send", &sink, &cancel, &progress).await;
    ctrl_c.abort();
    let written = sink.close().await?;
    let summary = result?;
    if args.json {
        let v = serde_json::json!({ "run_id": run_id, "file": written.path, "summary": summary });
        println!("{v}");
    } else {
        print!("{}", render(&run_id, &summary, &written));
    }
    Ok((summary, written))
}

/// The human summary: counts by outcome, rates, lateness.
fn render(run_id: &str, s: &BurstSummary, w: &SinkSummary) -> String {
    let mut out = format!(
        "run {run_id}: {} records in {} ({} planned, {} connections{})\n",
        w.records,
        w.path.display(),
        s.planned,
        s.connections,
        if s.interrupted { ", INTERRUPTED" } else { "" }
    );
    for o in OutcomeClass::ALL {
        let n = s.count(o);
        if n > 0 {
            out.push_str(&format!("  {:<16} {n}\n", o.as_str()));
        }
    }
    let secs = s.duration_secs;
    if secs > 0.0 {
        out.push_str(&format!(
            "  duration {secs:.3} s, {:.1} msgs/s ({:.1} accepted/s)\n",
            s.records as f64 / secs,
            s.count(OutcomeClass::Accepted) as f64 / secs
        ));
    }
    if let Some(r) = s.send_rate_per_sec {
        out.push_str(&format!(
            "  send rate {r:.2} msgs/s (first to last start)\n"
        ));
    }
    if let (Some(p50), Some(p99), Some(max)) =
        (s.lateness_p50_ms, s.lateness_p99_ms, s.lateness_max_ms)
    {
        out.push_str(&format!(
            "  lateness vs schedule: p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms\n"
        ));
    }
    out
}
