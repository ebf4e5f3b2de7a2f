//! `mailharness send`: one scripted burst, like swaks for a whole burst: a live transcript on
//! request, and an exit code that says the earliest SMTP stage any message failed at.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use mailharness::record::{AttemptRecord, DecidingReply, Exchange, Stage, TlsInfo};
use mailharness::send::{
    self, BurstSummary, CancelToken, SendOptions, TapEvent, TlsVerify, TranscriptTap,
};
use mailharness::vocab::{HumanDuration, OutcomeClass, Rate, TlsMode};
use serde::Serialize;

use super::common::{runtime, JsonOpt, ProgressOpt};
use super::error::{CliError, EXIT_INFRA, EXIT_OK};
use super::out;

/// Version of `send --json`'s document.
const SEND_SCHEMA: u32 = 1;

/// Arguments of `mailharness send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// The receiving SMTP server, IPv4 `ip:port` (loopback unless --allow-remote).
    #[arg(long, value_name = "IP:PORT")]
    pub server: SocketAddrV4,
    /// Allow a server outside 127.0.0.0/8: a careless burst must not hit a real MX by accident.
    #[arg(long)]
    pub allow_remote: bool,
    /// Port for `--tls implicit` on the server's address.
    #[arg(long, value_name = "PORT", default_value_t = send::DEFAULT_IMPLICIT_TLS_PORT)]
    pub implicit_port: u16,
    /// Source IP to bind.
    #[arg(long, value_name = "IP", default_value = "127.0.0.2")]
    pub from_ip: Ipv4Addr,
    /// Recipient (repeat or comma-separate; messages go round-robin).
    #[arg(long, value_name = "ADDRESS", required = true, value_delimiter = ',')]
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
    #[arg(long, value_name = "PEM")]
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
    #[arg(
        long,
        value_name = "ADDRESS",
        default_value = "mailharness@mailharness.localdomain"
    )]
    pub mail_from: String,
    /// Body size in bytes.
    #[arg(long, default_value_t = mailharness::scenario::plan::DEFAULT_BODY_SIZE)]
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
    /// Where attempts.jsonl goes (default: reports/<run-id>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the SMTP dialogue as it happens (`->` sent, `<-` received; `~>`/`<~` once TLS is up).
    #[arg(long)]
    pub transcript: bool,
    #[command(flatten)]
    pub json: JsonOpt,
    #[command(flatten)]
    pub progress: ProgressOpt,
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

impl SendArgs {
    /// The library's options; `tap` watches the dialogue when `--transcript` asks for it.
    fn options(&self, tap: Option<Arc<dyn TranscriptTap>>) -> SendOptions {
        let run_id = self.run_id.clone().unwrap_or_else(send::new_send_run_id);
        SendOptions {
            server: self.server,
            allow_remote: self.allow_remote,
            implicit_port: self.implicit_port,
            from_ip: self.from_ip,
            to: self.to.clone(),
            count: self.count,
            rate: self.rate,
            interval: self.interval.map(|i| i.0),
            concurrency: self.concurrency,
            per_connection: self.per_connection,
            tls: self.tls,
            ca_file: self.ca_file.clone(),
            tls_verify: self.tls_verify,
            tls_name: self.tls_name.clone(),
            helo: self.helo.clone(),
            mail_from: self.mail_from.clone(),
            size: self.size,
            sender: self.sender.clone(),
            out: self
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("reports").join(&run_id)),
            run_id,
            connect_timeout: self.connect_timeout.0,
            command_timeout: self.command_timeout.0,
            tap,
        }
    }
}

/// Runs the burst, Ctrl-C stopping it cleanly, and prints the summary (or the JSON document).
pub fn send(a: SendArgs) -> Result<ExitCode, CliError> {
    let tap: Option<Arc<dyn TranscriptTap>> = a.transcript.then(|| {
        Arc::new(Transcript {
            to_stderr: a.json.json,
            numbered: a.concurrency > 1,
            tls: Mutex::new(HashSet::new()),
        }) as Arc<dyn TranscriptTap>
    });
    let opts = a.options(tap);
    let progress = a.progress.progress();
    let outcome = runtime()?.block_on(async {
        let cancel = CancelToken::new();
        let (c2, p2) = (cancel.clone(), progress.clone());
        let stop = tokio::spawn(async move {
            mailharness::signal::stop_requested().await;
            p2.println("interrupted: no new messages; in-flight ones get the grace period");
            c2.cancel();
        });
        let r = send::send_burst(&opts, &progress, &cancel).await;
        stop.abort();
        r
    })?;
    let records: Vec<AttemptRecord> =
        mailharness::record::read_jsonl(&outcome.written.path).unwrap_or_default();
    let code = exit_code(&outcome.summary, &records);
    if a.json.json {
        out::json(&SendDoc::new(&outcome, &records, code))?;
    } else {
        out::print(&render(&outcome, &records, code))?;
    }
    Ok(ExitCode::from(code))
}

/// The stage an attempt failed at: its deciding reply's, or (for a fault) the last one it reached.
pub fn failed_stage(r: &AttemptRecord) -> Option<Stage> {
    if r.outcome == OutcomeClass::Accepted || r.never_sent() {
        return None;
    }
    r.reply
        .as_ref()
        .map(|d| d.stage)
        .or_else(|| r.transcript.last().map(|e| e.stage))
}

/// swaks' exit code for a failure at `stage` (connect is 20 here: 2 means configuration).
fn stage_code(outcome: OutcomeClass, stage: Option<Stage>) -> u8 {
    match (outcome, stage) {
        (OutcomeClass::ConnectFailure, _) | (_, Some(Stage::Connect) | None) => 20,
        (OutcomeClass::TlsFailure, _) | (_, Some(Stage::TlsHandshake | Stage::Starttls)) => 29,
        (_, Some(Stage::Greeting)) => 21,
        (_, Some(Stage::Ehlo)) => 22,
        (_, Some(Stage::EhloTls)) => 32,
        (_, Some(Stage::Mail | Stage::Rset)) => 23,
        (_, Some(Stage::Rcpt)) => 24,
        (_, Some(Stage::Data)) => 25,
        (_, Some(Stage::EndOfData)) => 26,
        (_, Some(Stage::Quit)) => 27,
    }
}

/// How early in a session a failure code's stage is: the earliest failure decides the exit code.
fn rank(code: u8) -> u8 {
    match code {
        20 => 0,
        29 => 1,
        c => c,
    }
}

/// One attempt's exit code: 0 accepted, 3 never sent or cut off, else its stage's code.
fn attempt_code(r: &AttemptRecord) -> u8 {
    match r.outcome {
        OutcomeClass::Accepted => EXIT_OK,
        OutcomeClass::Interrupted => EXIT_INFRA,
        o => stage_code(o, failed_stage(r)),
    }
}

/// The burst's exit code: 3 when interrupted, else the earliest stage any message failed at.
fn exit_code(s: &BurstSummary, records: &[AttemptRecord]) -> u8 {
    if s.interrupted {
        return EXIT_INFRA;
    }
    records
        .iter()
        .map(attempt_code)
        .filter(|c| *c != EXIT_OK)
        .min_by_key(|c| rank(*c))
        .unwrap_or(EXIT_OK)
}

/// What an exit code means, in the words of `--help`.
fn code_meaning(code: u8) -> &'static str {
    match code {
        0 => "every message was accepted",
        3 => "interrupted",
        20 => "could not connect",
        21 => "the greeting was refused or never came",
        22 => "EHLO was refused",
        23 => "MAIL FROM was refused",
        24 => "no recipient was accepted",
        25 => "DATA was refused",
        26 => "the message was refused after its data",
        29 => "TLS failed",
        32 => "EHLO after STARTTLS was refused",
        _ => "the session failed",
    }
}

/// One attempt in `send --json`.
#[derive(Debug, Serialize)]
struct AttemptDoc<'a> {
    attempt_id: &'a str,
    outcome: OutcomeClass,
    failed_stage: Option<Stage>,
    exit_code: u8,
    reply: Option<&'a DecidingReply>,
    error: Option<&'a str>,
    tls: Option<&'a TlsInfo>,
    transcript: &'a [Exchange],
}

/// `send --json`: the burst's summary, its exit code, and every attempt with its transcript.
#[derive(Debug, Serialize)]
struct SendDoc<'a> {
    schema: u32,
    run_id: &'a str,
    file: &'a std::path::Path,
    exit_code: u8,
    exit_meaning: &'static str,
    summary: &'a BurstSummary,
    attempts: Vec<AttemptDoc<'a>>,
}

impl<'a> SendDoc<'a> {
    fn new(o: &'a send::SendOutcome, records: &'a [AttemptRecord], code: u8) -> Self {
        SendDoc {
            schema: SEND_SCHEMA,
            run_id: &o.run_id,
            file: &o.written.path,
            exit_code: code,
            exit_meaning: code_meaning(code),
            summary: &o.summary,
            attempts: records
                .iter()
                .map(|r| AttemptDoc {
                    attempt_id: &r.attempt_id,
                    outcome: r.outcome,
                    failed_stage: failed_stage(r),
                    exit_code: attempt_code(r),
                    reply: r.reply.as_ref(),
                    error: r.error.as_deref(),
                    tls: r.tls.as_ref(),
                    transcript: &r.transcript,
                })
                .collect(),
        }
    }
}

/// The summary for people: counts by outcome, rates, lateness, and what the exit code says.
fn render(o: &send::SendOutcome, records: &[AttemptRecord], code: u8) -> String {
    let (s, w) = (&o.summary, &o.written);
    let mut out = format!(
        "run {}: {} records in {} ({} planned, {} connections{})\n",
        o.run_id,
        w.records,
        w.path.display(),
        s.planned,
        s.connections,
        if s.interrupted { ", INTERRUPTED" } else { "" }
    );
    for oc in OutcomeClass::ALL {
        let n = s.count(oc);
        if n > 0 {
            out.push_str(&format!("  {:<16} {n}\n", oc.as_str()));
        }
    }
    if s.duration_secs > 0.0 {
        out.push_str(&format!(
            "  duration {:.3} s, {:.1} msgs/s ({:.1} accepted/s)\n",
            s.duration_secs,
            s.records as f64 / s.duration_secs,
            s.count(OutcomeClass::Accepted) as f64 / s.duration_secs
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
    if let Some(r) = records
        .iter()
        .find(|r| attempt_code(r) == code && code != EXIT_OK)
    {
        out.push_str(&format!("  first failure: {} — {}\n", r.attempt_id, why(r)));
    }
    out.push_str(&format!("exit {code}: {}\n", code_meaning(code)));
    out
}

/// Why an attempt failed: its reply, or its error.
fn why(r: &AttemptRecord) -> String {
    match (&r.reply, &r.error) {
        (Some(d), _) => format!(
            "{} {}{} (at {})",
            d.code,
            d.enhanced
                .as_deref()
                .map(|e| format!("{e} "))
                .unwrap_or_default(),
            d.text,
            stage_word(d.stage)
        ),
        (None, Some(e)) => e.clone(),
        (None, None) => r.outcome.as_str().to_string(),
    }
}

/// The SMTP name of a stage, as the transcript shows it.
fn stage_word(s: Stage) -> &'static str {
    match s {
        Stage::Connect => "connect",
        Stage::TlsHandshake => "TLS handshake",
        Stage::Greeting => "greeting",
        Stage::Ehlo => "EHLO",
        Stage::Starttls => "STARTTLS",
        Stage::EhloTls => "EHLO after STARTTLS",
        Stage::Mail => "MAIL FROM",
        Stage::Rcpt => "RCPT TO",
        Stage::Data => "DATA",
        Stage::EndOfData => "end of data",
        Stage::Rset => "RSET",
        Stage::Quit => "QUIT",
    }
}

/// `--transcript`: prints each connection's dialogue as it happens, swaks-style. `->` is sent and
/// `<-` received in plain text; once TLS is up on a connection, `~>` and `<~`.
#[derive(Debug)]
struct Transcript {
    /// With `--json`, stdout carries the document: the transcript goes to stderr.
    to_stderr: bool,
    /// Several connections at once: each line says whose it is.
    numbered: bool,
    /// Connections that have negotiated TLS.
    tls: Mutex<HashSet<u64>>,
}

impl Transcript {
    fn emit(&self, conn: u64, lines: &[String]) {
        let prefix = if self.numbered {
            format!("[{conn}] ")
        } else {
            String::new()
        };
        let text: String = lines.iter().map(|l| format!("{prefix}{l}\n")).collect();
        if self.to_stderr {
            out::note(text.trim_end_matches('\n'));
        } else {
            let _ = out::print(&text);
        }
    }

    fn is_tls(&self, conn: u64) -> bool {
        self.tls.lock().map(|s| s.contains(&conn)).unwrap_or(false)
    }

    /// A command and its reply, with the arrows of the connection's state.
    fn exchange(&self, conn: u64, ex: &Exchange) -> Vec<String> {
        let (snd, rcv) = if self.is_tls(conn) {
            (" ~> ", "<~  ")
        } else {
            (" -> ", "<-  ")
        };
        let mut v = Vec::new();
        if let Some(cmd) = &ex.command {
            if ex.stage == Stage::EndOfData {
                v.push(format!("{snd}<message data>"));
            }
            v.push(format!("{snd}{cmd}"));
        }
        if let Some(code) = ex.code {
            let n = ex.lines.len().max(1);
            for i in 0..n {
                let sep = if i + 1 == n { ' ' } else { '-' };
                let en = ex
                    .enhanced
                    .as_deref()
                    .map(|e| format!("{e} "))
                    .unwrap_or_default();
                let text = ex.lines.get(i).map(String::as_str).unwrap_or("");
                v.push(format!("{rcv}{code}{sep}{en}{text}"));
            }
        }
        v
    }
}

impl TranscriptTap for Transcript {
    fn event(&self, conn: u64, ev: TapEvent<'_>) {
        let lines = match ev {
            TapEvent::Connecting { from, to } => vec![format!("=== Trying {to} from {from}...")],
            TapEvent::Connected => vec!["=== Connected".to_string()],
            TapEvent::Exchange(ex) => self.exchange(conn, ex),
            TapEvent::TlsStarted(t) => {
                if let Ok(mut s) = self.tls.lock() {
                    s.insert(conn);
                }
                vec![format!(
                    "=== TLS started: TLS {}, cipher {}, peer {}, certificate {:?}",
                    t.version,
                    t.cipher,
                    t.peer_subject.as_deref().unwrap_or("(none)"),
                    t.verification
                )]
            }
            TapEvent::Finished(r) => vec![format!(
                "=== {}: {}{}",
                r.attempt_id,
                r.outcome,
                if r.outcome == OutcomeClass::Accepted {
                    String::new()
                } else {
                    format!(" — {}", why(r))
                }
            )],
        };
        if !lines.is_empty() {
            self.emit(conn, &lines);
        }
    }
}
