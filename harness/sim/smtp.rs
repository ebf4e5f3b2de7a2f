//! The SMTP front end: a tokio state machine over smtp-proto's request parser.
//!
//! - PIPELINING (RFC 2920): every command already received is parsed and answered in order; the
//!   replies of one read are written together, once the input buffer is exhausted.
//! - STARTTLS (RFC 3207): after `220 2.0.0 SMTP server ready`, any plaintext bytes the client sent
//!   behind STARTTLS are discarded (the command-injection pitfall), and the session state is reset.
//! - DATA: dot-unstuffing by smtp-proto's `DataReceiver`; the SIZE limit is enforced while reading
//!   (the rest is discarded) and answered with 552 5.3.4 at the end of data.
//! - Bad input never ends the session: unknown commands get 500 5.3.3, syntax errors 501, over-long
//!   lines 500 5.5.2 (the rest of the line is skipped). Only QUIT, EOF, a timeout or shutdown end it.
//!
//! Replies mirror the EOP samples in the reference ("Greeting and EHLO of an EOP front end").

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use super::delivery::{Job, QueueMsg};
use super::policy::{Decision, RcptInput, Rule};
use super::reply::{rfc3339_ms, trailer, write_multiline, Reply};
use super::store::{self, Folder, StampInput};
use super::tls;
use super::trace::{RecipientTrace, TlsInfo, TraceRecord};
use super::Shared;
use crate::wire::{Framer, Scan};

/// Longest command line accepted, CRLF included (smtp-proto's own limit for split lines).
const MAX_COMMAND_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;
/// Read buffer per session.
const READ_BUF: usize = 64 * 1024;
/// Time allowed for a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for writing replies to a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// `354` text (Exchange).
const START_MAIL_INPUT: &str = "Start mail input; end with <CRLF>.<CRLF>";
/// 552 5.3.4 text (Exchange on-premises; EOP's exact text is unconfirmed, reference).
const SIZE_EXCEEDED: &str = "Message size exceeds fixed maximum message size";

enum Flow {
    Close,
    StartTls,
}

enum Mode {
    Command,
    Data {
        rx: DataReceiver,
        buf: Vec<u8>,
        too_big: bool,
    },
    /// Skipping the rest of an over-long command line.
    SkipLine,
    /// Skipping a BDAT chunk (CHUNKING is not offered).
    SkipBytes(usize),
}

struct Txn {
    mail_from: String,
    sender_domain: String,
    recipients: Vec<RecipientTrace>,
    accepted: Vec<String>,
    token_held: bool,
    connector: Option<String>,
    last_refusal: Option<(Decision, Rule, Reply)>,
}

struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    ip: IpAddr,
    /// `ip` as text, formatted once: it goes into three stamped headers and the trace record.
    ip_text: String,
    id: String,
    listener: &'static str,
    helo: Option<String>,
    tls: Option<TlsInfo>,
    txn: Option<Txn>,
    mode: Mode,
}

enum Action {
    Continue,
    Quit,
    StartTls,
}

/// Serves one connection to the end.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    implicit_tls: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
    let n = shared.session_seq.fetch_add(1, Ordering::Relaxed);
    let ip = canonical_ip(peer.ip());
    let mut s = Session {
        id: format!("{:08X}{:08X}", shared.session_base, n as u32),
        ip,
        ip_text: ip.to_string(),
        peer,
        listener: if implicit_tls { "smtps" } else { "smtp" },
        helo: None,
        tls: None,
        txn: None,
        mode: Mode::Command,
        shared,
    };
    let result = if implicit_tls {
        match s.handshake(stream).await {
            Some(mut tls) => {
                let g = s.greeting();
                if write_out(&mut tls, g.as_bytes()).await.is_err() {
                    return;
                }
                s.drive(&mut tls, &mut shutdown).await
            }
            None => return,
        }
    } else {
        let mut tcp = stream;
        let g = s.greeting();
        if write_out(&mut tcp, g.as_bytes()).await.is_err() {
            return;
        }
        match s.drive(&mut tcp, &mut shutdown).await {
            Ok(Flow::StartTls) => match s.handshake(tcp).await {
                Some(mut tls) => s.drive(&mut tls, &mut shutdown).await,
                None => Ok(Flow::Close),
            },
            other => other,
        }
    };
    if let Err(e) = result {
        tracing::debug!(session = %s.id, peer = %s.peer, "session ended: {e}");
    }
    s.end_transaction_abandoned();
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

async fn write_out<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, async {
        io.write_all(bytes).await?;
        io.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client does not read replies",
        )),
    }
}

impl Session {
    fn cfg(&self) -> &super::config::TenantConfig {
        self.shared.policy.config()
    }

    fn now_wall(&self) -> chrono::DateTime<chrono::Utc> {
        self.shared.policy.clock().wall(Instant::now())
    }

    fn greeting(&self) -> String {
        format!(
            "220 {} Microsoft ESMTP MAIL Service ready at {} [{}]\r\n",
            self.shared.fqdn,
            self.now_wall().to_rfc2822(),
            self.id
        )
    }

    /// Adds the EOP trailer to negative replies.
    fn finish(&self, mut r: Reply) -> Reply {
        if r.code >= 400 && self.cfg().front_end.reply_trailer {
            r.text.push(' ');
            r.text.push_str(&trailer(
                &self.shared.trailer_host,
                self.now_wall(),
                &self.id,
            ));
        }
        r
    }

    fn send(&self, out: &mut Vec<u8>, r: Reply) -> Reply {
        let r = self.finish(r);
        r.write_to(out);
        r
    }

    async fn handshake(
        &mut self,
        tcp: TcpStream,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let acceptor = self.shared.tls.clone()?;
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                self.tls = Some(tls::describe(stream.get_ref().1));
                Some(stream)
            }
            Ok(Err(e)) => {
                tracing::debug!(session = %self.id, peer = %self.peer, "TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                tracing::debug!(session = %self.id, peer = %self.peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// Runs the command loop on one transport until QUIT, EOF, timeout, shutdown or STARTTLS.
    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        shutdown: &mut watch::Receiver<bool>,
    ) -> std::io::Result<Flow> {
        // Local to this transport: after STARTTLS, bytes read in plain text are gone with it.
        let mut framer = Framer::new(READ_BUF);
        let mut out: Vec<u8> = Vec::with_capacity(4096);
        let mut receiver = RequestReceiver::default();
        // One registration for the whole session, not one per read.
        let shutdown_signal = shutdown.changed();
        tokio::pin!(shutdown_signal);
        loop {
            let limit = match self.mode {
                Mode::Data { .. } | Mode::SkipBytes(_) => self.cfg().front_end.data_timeout.0,
                _ => self.cfg().front_end.command_timeout.0,
            };
            tokio::select! {
                r = tokio::time::timeout(limit, framer.read_from(io)) => match r {
                    Ok(Ok(0)) => return Ok(Flow::Close),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        let r = Reply::new(421, "4.4.2", format!("{} Connection timed out", self.shared.fqdn));
                        self.end_transaction_abandoned();
                        self.send(&mut out, r);
                        write_out(io, &out).await?;
                        return Ok(Flow::Close);
                    }
                },
                _ = &mut shutdown_signal => {
                    let r = Reply::new(421, "4.3.2", "Service not available, closing transmission channel");
                    self.end_transaction_abandoned();
                    self.send(&mut out, r);
                    write_out(io, &out).await?;
                    return Ok(Flow::Close);
                }
            }
            match self.ingest(&mut framer, &mut receiver, &mut out).await {
                Action::Continue => {}
                Action::Quit => {
                    write_out(io, &out).await?;
                    return Ok(Flow::Close);
                }
                Action::StartTls => {
                    // Whatever follows STARTTLS in this read is plaintext the client
                    // must not have sent: drop it (RFC 3207 section 4.2, injection).
                    write_out(io, &out).await?;
                    return Ok(Flow::StartTls);
                }
            }
            if !out.is_empty() {
                write_out(io, &out).await?;
                out.clear();
            }
        }
    }

    /// Answers every command and data block received so far, in order (PIPELINING), until more
    /// input is needed; stops at QUIT or STARTTLS.
    async fn ingest(
        &mut self,
        framer: &mut Framer,
        receiver: &mut RequestReceiver,
        out: &mut Vec<u8>,
    ) -> Action {
        loop {
            match &mut self.mode {
                Mode::Command => {
                    // The cap counts the line's CR but not its LF.
                    let Some(scan) = framer.line(MAX_COMMAND_LINE - 1) else {
                        return Action::Continue;
                    };
                    let req = match scan {
                        Scan::TooLong(_) => {
                            self.send(out, Reply::new(500, "5.5.2", "Line too long"));
                            continue;
                        }
                        Scan::Line => match receiver.ingest(&mut framer.last_line_raw().iter()) {
                            Ok(req) => Ok(into_owned(req)),
                            Err(ProtoError::NeedsMoreData { .. }) => continue,
                            Err(e) => Err(e),
                        },
                    };
                    let action = match req {
                        Ok(req) => self.handle(req, out).await,
                        Err(e) => {
                            self.protocol_error(e, out);
                            Action::Continue
                        }
                    };
                    if !matches!(action, Action::Continue) {
                        return action;
                    }
                }
                Mode::Data {
                    rx,
                    buf: msg,
                    too_big,
                } => {
                    let rest = framer.unframed();
                    if rest.is_empty() {
                        return Action::Continue;
                    }
                    let mut iter = rest.iter();
                    let done = rx.ingest(&mut iter, msg);
                    framer.advance(rest.len() - iter.as_slice().len());
                    let max = self.shared.max_size;
                    if msg.len() > max {
                        *too_big = true;
                        msg.clear();
                    }
                    if !done {
                        return Action::Continue;
                    }
                    let (msg, too_big) = (std::mem::take(msg), *too_big);
                    self.mode = Mode::Command;
                    self.end_of_data(msg, too_big, out).await;
                }
                // smtp-proto is only ever given whole lines (the framer skips the rest of an
                // over-long one), so nothing of a refused line is left to skip.
                Mode::SkipLine => self.mode = Mode::Command,
                Mode::SkipBytes(left) => {
                    // `skip` returns at most `left`, so it fits in usize.
                    *left = framer.skip(*left as u64) as usize;
                    if *left > 0 {
                        return Action::Continue;
                    }
                    self.mode = Mode::Command;
                }
            }
        }
    }

    fn protocol_error(&mut self, e: ProtoError, out: &mut Vec<u8>) {
        let r = match e {
            ProtoError::UnknownCommand => Reply::new(500, "5.3.3", "Unrecognized command"),
            ProtoError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Invalid address"),
            ProtoError::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Invalid address"),
            ProtoError::SyntaxError { syntax } => {
                Reply::new(501, "5.5.4", format!("Invalid arguments; syntax: {syntax}"))
            }
            ProtoError::InvalidParameter { param } => {
                Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
            }
            ProtoError::UnsupportedParameter { param } => Reply::new(
                555,
                "5.5.4",
                format!("Unsupported parameter {}", printable(&param)),
            ),
            ProtoError::ResponseTooLong => {
                self.mode = Mode::SkipLine;
                Reply::new(500, "5.5.2", "Line too long")
            }
            ProtoError::InvalidResponse { .. } | ProtoError::NeedsMoreData { .. } => {
                Reply::new(500, "5.5.2", "Syntax error, command unrecognized")
            }
        };
        self.send(out, r);
    }

    async fn handle(&mut self, req: Request<String>, out: &mut Vec<u8>) -> Action {
        match req {
            Request::Ehlo { host } => {
                self.end_transaction_abandoned();
                self.helo = Some(printable(&host));
                let mut lines = vec![format!("{} Hello [{}]", self.shared.fqdn, self.ip)];
                lines.push(format!("SIZE {}", self.shared.max_size));
                lines.push("PIPELINING".into());
                lines.push("DSN".into());
                lines.push("ENHANCEDSTATUSCODES".into());
                if self.shared.tls.is_some() && self.tls.is_none() {
                    lines.push("STARTTLS".into());
                }
                lines.push("8BITMIME".into());
                lines.push("SMTPUTF8".into());
                write_multiline(out, 250, &lines);
            }
            Request::Helo { host } => {
                self.end_transaction_abandoned();
                self.helo = Some(printable(&host));
                let r = Reply::plain(250, format!("{} Hello [{}]", self.shared.fqdn, self.ip));
                self.send(out, r);
            }
            Request::Lhlo { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.send(out, Reply::new(500, "5.3.3", "Unrecognized command"));
            }
            Request::Mail { from } => self.mail(from, out),
            Request::Rcpt { to } => self.rcpt(to.address, out),
            Request::Data => self.data(out),
            Request::Bdat { chunk_size, .. } => {
                self.mode = Mode::SkipBytes(chunk_size);
                self.send(
                    out,
                    Reply::new(503, "5.5.1", "BDAT not supported; CHUNKING was not offered"),
                );
            }
            Request::Rset => {
                self.end_transaction_abandoned();
                self.send(out, Reply::new(250, "2.0.0", "Resetting"));
            }
            Request::Noop { .. } => {
                self.send(out, Reply::new(250, "2.0.0", "OK"));
            }
            Request::Quit => {
                self.end_transaction_abandoned();
                self.send(
                    out,
                    Reply::new(221, "2.0.0", "Service closing transmission channel"),
                );
                return Action::Quit;
            }
            Request::Help { .. } => {
                write_multiline(
                    out,
                    214,
                    &[
                        "This server supports the following commands:".into(),
                        "HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP NOOP VRFY".into(),
                    ],
                );
            }
            Request::Vrfy { .. } => {
                self.send(
                    out,
                    Reply::new(
                        252,
                        "2.1.5",
                        "Cannot VRFY user, but will accept message for delivery",
                    ),
                );
            }
            Request::Expn { .. } => {
                self.send(out, Reply::new(502, "5.3.3", "Command not implemented"));
            }
            Request::Auth { .. } => {
                self.send(
                    out,
                    Reply::new(504, "5.7.4", "Unrecognized authentication type"),
                );
            }
            Request::StartTls => {
                if self.shared.tls.is_none() {
                    self.send(out, Reply::new(454, "4.7.0", "TLS not available"));
                } else if self.tls.is_some() {
                    self.send(out, Reply::new(503, "5.5.1", "TLS already active"));
                } else {
                    self.end_transaction_abandoned();
                    self.helo = None;
                    self.send(out, Reply::new(220, "2.0.0", "SMTP server ready"));
                    return Action::StartTls;
                }
            }
        }
        Action::Continue
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>, out: &mut Vec<u8>) {
        if self.helo.is_none() {
            self.send(out, Reply::new(503, "5.5.2", "Send hello first"));
            return;
        }
        if self.txn.is_some() {
            self.send(out, Reply::new(503, "5.5.2", "Sender already specified"));
            return;
        }
        let address = printable(&from.address);
        let sender_domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let mut txn = Txn {
            mail_from: address,
            sender_domain,
            recipients: Vec::new(),
            accepted: Vec::new(),
            token_held: false,
            connector: None,
            last_refusal: None,
        };
        if from.size > self.shared.max_size {
            let r = self.send(out, Reply::new(552, "5.3.4", SIZE_EXCEEDED));
            txn.last_refusal = Some((Decision::Rejected, Rule::MessageTooLarge, r));
            self.txn = Some(txn);
            self.end_transaction_abandoned();
            return;
        }
        self.txn = Some(txn);
        self.send(out, Reply::new(250, "2.1.0", "Sender OK"));
    }

    fn rcpt(&mut self, address: String, out: &mut Vec<u8>) {
        let Some(txn) = &self.txn else {
            self.send(out, Reply::new(503, "5.5.1", "Need mail command"));
            return;
        };
        let address = printable(&address);
        if !address.contains('@') {
            self.send(out, Reply::new(501, "5.1.3", "Invalid address"));
            return;
        }
        let input = RcptInput {
            ip: self.ip,
            tls: self.tls.is_some(),
            sender_domain: &txn.sender_domain,
            rcpt: &address,
            accepted_so_far: txn.accepted.len(),
            token_held: txn.token_held,
        };
        let v = self.shared.policy.evaluate_rcpt(&input, Instant::now());
        let reply = self.send(out, v.reply);
        if let Some(txn) = &mut self.txn {
            if v.connector.is_some() {
                txn.connector = v.connector.clone();
            }
            if v.decision == Decision::Accepted {
                txn.accepted.push(address.to_ascii_lowercase());
                txn.token_held |= v.took_token;
            } else {
                txn.last_refusal = Some((v.decision, v.rule, reply.clone()));
            }
            txn.recipients.push(RecipientTrace {
                address,
                decision: v.decision,
                reason: v.rule,
                reply,
            });
        }
    }

    fn data(&mut self, out: &mut Vec<u8>) {
        let Some(txn) = &self.txn else {
            self.send(out, Reply::new(503, "5.5.1", "Need mail command"));
            return;
        };
        if txn.accepted.is_empty() {
            let r = if txn.recipients.is_empty() {
                Reply::new(503, "5.5.1", "Need rcpt command")
            } else {
                Reply::new(554, "5.5.1", "No valid recipients")
            };
            self.send(out, r);
            return;
        }
        let mut rx = DataReceiver::new();
        // Prime the receiver as if a CRLF preceded the data, so that a first line of "." ends an
        // empty message and a leading ".." is unstuffed.
        let mut scratch = Vec::with_capacity(2);
        let _ = rx.ingest(&mut b"\r\n".iter(), &mut scratch);
        self.mode = Mode::Data {
            rx,
            buf: Vec::with_capacity(8 * 1024),
            too_big: false,
        };
        Reply::plain(354, START_MAIL_INPUT).write_to(out);
    }

    async fn end_of_data(&mut self, msg: Vec<u8>, too_big: bool, out: &mut Vec<u8>) {
        let Some(mut txn) = self.txn.take() else {
            return;
        };
        if too_big {
            let r = self.send(out, Reply::new(552, "5.3.4", SIZE_EXCEEDED));
            let mut rec = self.record(txn, Decision::Rejected, Rule::MessageTooLarge, r);
            rec.size = None;
            self.write_refusal(rec);
            return;
        }
        let received_at = self.now_wall();
        let size = msg.len() as u64;
        let parsed = store::parse(msg);
        let seq = self.shared.internal_seq.fetch_add(1, Ordering::Relaxed);
        let nmid = network_message_id(self.shared.nmid_seed, seq);
        let added_id = parsed
            .message_id
            .is_none()
            .then(|| format!("<{nmid}@{}>", self.shared.fqdn));
        let message_id = parsed
            .message_id
            .clone()
            .or_else(|| added_id.clone())
            .unwrap_or_default();
        let cfg = self.cfg();
        let junk_rule = self.shared.junk.rule(&parsed, &txn.sender_domain);
        let spf_none = self.shared.junk.spf_none(&txn.sender_domain);
        let scl = if junk_rule.is_some() { cfg.junk.scl } else { 1 };
        let folder = if junk_rule.is_some() {
            Folder::Junk
        } else {
            Folder::Inbox
        };
        let head = store::stamp(&StampInput {
            helo: self.helo.as_deref().unwrap_or("unknown"),
            ip: &self.ip_text,
            tls: self.tls.as_ref(),
            fqdn: &self.shared.fqdn,
            auth_source: &self.shared.auth_source,
            received_at,
            network_message_id: &nmid,
            tenant_id: &cfg.tenant_id,
            sender_domain: &txn.sender_domain,
            spf_none,
            scl,
            junk: junk_rule.is_some(),
            add_message_id: added_id.as_deref(),
        });
        let internal_id = self.shared.internal_base + seq;
        let reply = Reply::new(
            250,
            "2.6.0",
            format!(
                "{message_id} [InternalId={internal_id}, Hostname={}] Queued mail for delivery",
                self.shared.trailer_host
            ),
        );
        let mut mailboxes = std::mem::take(&mut txn.accepted);
        mailboxes.sort_unstable();
        mailboxes.dedup();
        let due = Instant::now() + cfg.delivery.delay.0;
        let mut record = self.record(txn, Decision::Accepted, Rule::Queued, reply.clone());
        record.message_id = Some(message_id);
        record.internal_id = Some(internal_id);
        record.network_message_id = Some(nmid);
        record.size = Some(size);
        record.scl = Some(scl);
        record.junk_rule = junk_rule;
        let job = Job {
            due,
            head,
            content: parsed.content,
            mailboxes,
            folder,
            record,
        };
        if let Err(mpsc::error::SendError(msg)) =
            self.shared.queue.send(QueueMsg::Job(Box::new(job))).await
        {
            // The delivery worker is gone (shutting down): do not claim the message was queued.
            let r = self.send(
                out,
                Reply::new(451, "4.3.2", "System not accepting network messages"),
            );
            if let QueueMsg::Job(job) = msg {
                let mut rec = job.record;
                rec.decision = Decision::Deferred;
                rec.reply = r;
                self.write_refusal(rec);
            }
            return;
        }
        self.shared.stats.accepted.fetch_add(1, Ordering::AcqRel);
        reply.write_to(out);
    }

    fn record(&self, txn: Txn, decision: Decision, reason: Rule, reply: Reply) -> TraceRecord {
        TraceRecord {
            time: rfc3339_ms(self.now_wall()),
            session_id: self.id.clone(),
            listener: self.listener.to_string(),
            source_ip: self.ip_text.clone(),
            source_port: self.peer.port(),
            helo: self.helo.clone(),
            tls: self.tls.clone(),
            connector: txn.connector.or_else(|| {
                self.shared
                    .policy
                    .matching_connector(self.ip, &txn.sender_domain, Instant::now())
            }),
            mail_from: txn.mail_from,
            decision,
            reason,
            reply,
            recipients: txn.recipients,
            message_id: None,
            internal_id: None,
            network_message_id: None,
            size: None,
            scl: None,
            junk_rule: None,
            delivered_at: None,
            deliveries: Vec::new(),
            delivery_error: None,
        }
    }

    fn write_refusal(&self, rec: TraceRecord) {
        self.shared
            .stats
            .not_accepted
            .fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.shared.trace.append_now(&rec) {
            tracing::error!("message trace: {e}");
        }
    }

    /// Traces an open transaction that ends without a message (RSET, QUIT, EHLO, EOF, ...).
    fn end_transaction_abandoned(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        let (decision, reason, reply) = match (&txn.last_refusal, txn.accepted.is_empty()) {
            (Some((d, r, reply)), true) => (*d, *r, reply.clone()),
            (_, false) => (
                Decision::Abandoned,
                Rule::DataIncomplete,
                Reply::new(250, "2.1.5", "Recipient OK"),
            ),
            (None, true) => (
                Decision::Abandoned,
                Rule::NoRecipients,
                Reply::new(250, "2.1.0", "Sender OK"),
            ),
        };
        let rec = self.record(txn, decision, reason, reply);
        self.write_refusal(rec);
    }
}

/// A GUID-shaped Network-Message-Id, unique per message without a `getrandom` call each time:
/// an odd-multiplier bijection of the sequence number, offset by a per-start random seed.
fn network_message_id(seed: u128, seq: u64) -> String {
    const ODD: u128 = 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835;
    let v = seed.wrapping_add(u128::from(seq).wrapping_mul(ODD));
    uuid::Builder::from_random_bytes(v.to_be_bytes())
        .into_uuid()
        .to_string()
}

fn into_owned(req: Request<Cow<'_, str>>) -> Request<String> {
    req.into_owned()
}

/// Keeps client-supplied text printable for replies, traces and headers (no CR/LF injection).
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
