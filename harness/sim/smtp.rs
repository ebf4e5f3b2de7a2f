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
//! Replies mirror the EOP samples in the reference ("Greeting and EHLO of an EOP front end"); every
//! one of them is named in the table in `reply.rs`.
//!
//! Trace records of transactions that end here (refusals, abandoned transactions) are written
//! before the reply that follows them goes out, so a client that sees the reply finds the record;
//! the replies of one read share one write. Without `delivery.fsync` that write stays on the event
//! loop: it is a write to the page cache under the trace's std mutex, which no holder keeps across
//! an `fsync` (see `trace.rs`), and moving it to a blocking thread cost more than it saved (refused
//! transactions one at a time: 8 → 17–26 µs of server CPU each, 36k → 25k per second,
//! benches/sim_ab.sh). With `fsync` it runs on a blocking thread: a sync takes milliseconds.

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
use super::reply::{self as replies, rfc3339_ms, trailer};
use super::store::{self, Folder, StampInput};
use super::tls;
use super::trace::{RecipientTrace, TlsInfo, TraceRecord};
use super::{Shared, SimError};
use crate::reply::Reply;
use crate::wire::{Framer, Scan};

/// Longest command line accepted, CRLF included (smtp-proto's own limit for split lines).
const MAX_COMMAND_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;
/// Read buffer per session.
const READ_BUF: usize = 64 * 1024;
/// Time allowed for a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for writing replies to a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Trace records of transactions that ended, not yet written (see the module comment).
    pending_trace: Vec<TraceRecord>,
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
        pending_trace: Vec::new(),
        shared,
    };
    let result = if implicit_tls {
        match s.handshake(stream).await {
            Some(mut tls) => {
                if s.greet(&mut tls).await.is_err() {
                    return;
                }
                s.drive(&mut tls, &mut shutdown).await
            }
            None => return,
        }
    } else {
        let mut tcp = stream;
        if s.greet(&mut tcp).await.is_err() {
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
    s.write_trace().await;
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

    async fn greet<S: AsyncWrite + Unpin>(&self, io: &mut S) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(128);
        replies::greeting(&self.shared.fqdn, self.now_wall(), &self.id).write_to(&mut out);
        write_out(io, &out).await
    }

    /// Adds the EOP trailer to negative replies.
    fn finish(&self, mut r: Reply) -> Reply {
        if r.is_negative() && self.cfg().front_end.reply_trailer {
            r.append_text(&trailer(
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
                        let r = replies::timed_out(&self.shared.fqdn);
                        return self.close_with(io, &mut out, r).await;
                    }
                },
                _ = &mut shutdown_signal => {
                    return self.close_with(io, &mut out, replies::SHUTTING_DOWN.reply()).await;
                }
            }
            let end = match self.ingest(&mut framer, &mut receiver, &mut out).await {
                Action::Continue => None,
                Action::Quit => Some(Flow::Close),
                // Whatever follows STARTTLS in this read is plaintext the client must not have
                // sent: it goes with this transport's framer (RFC 3207 section 4.2, injection).
                Action::StartTls => Some(Flow::StartTls),
            };
            if !out.is_empty() || !self.pending_trace.is_empty() {
                self.write(io, &out).await?;
                out.clear();
            }
            if let Some(flow) = end {
                return Ok(flow);
            }
        }
    }

    /// Ends the session with a last reply (timeout, shutdown), tracing an open transaction.
    async fn close_with<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        out: &mut Vec<u8>,
        r: Reply,
    ) -> std::io::Result<Flow> {
        self.end_transaction_abandoned();
        self.send(out, r);
        self.write(io, out).await?;
        Ok(Flow::Close)
    }

    /// Writes pending trace records, then the replies: a client never sees a reply before the
    /// trace record of the transaction it ended.
    async fn write<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        out: &[u8],
    ) -> std::io::Result<()> {
        self.write_trace().await;
        if out.is_empty() {
            return Ok(());
        }
        write_out(io, out).await
    }

    /// Writes the pending trace records (see the module comment): here when that is a write to
    /// the page cache, on a blocking thread when it ends with an `fsync`.
    async fn write_trace(&mut self) {
        if self.pending_trace.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.pending_trace);
        let n = records.len() as u64;
        let trace = self.shared.trace.clone();
        let written = if trace.syncs() {
            tokio::task::spawn_blocking(move || trace.append_all_now(&records))
                .await
                .unwrap_or_else(|e| {
                    Err(SimError::Internal(format!("the trace thread failed: {e}")))
                })
        } else {
            trace.append_all_now(&records)
        };
        if let Err(e) = written {
            tracing::error!("message trace: {e}");
        }
        self.shared
            .stats
            .not_accepted
            .fetch_add(n, Ordering::AcqRel);
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
                            self.send(out, replies::LINE_TOO_LONG.reply());
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
            ProtoError::UnknownCommand => replies::UNRECOGNIZED_COMMAND.reply(),
            ProtoError::InvalidSenderAddress => replies::INVALID_SENDER.reply(),
            ProtoError::InvalidRecipientAddress => replies::INVALID_RECIPIENT.reply(),
            ProtoError::SyntaxError { syntax } => replies::invalid_arguments(syntax),
            ProtoError::InvalidParameter { param } => replies::invalid_parameter(param),
            ProtoError::UnsupportedParameter { param } => {
                replies::unsupported_parameter(&printable(&param))
            }
            ProtoError::ResponseTooLong => {
                self.mode = Mode::SkipLine;
                replies::LINE_TOO_LONG.reply()
            }
            ProtoError::InvalidResponse { .. } | ProtoError::NeedsMoreData { .. } => {
                replies::SYNTAX_ERROR.reply()
            }
        };
        self.send(out, r);
    }

    async fn handle(&mut self, req: Request<String>, out: &mut Vec<u8>) -> Action {
        let fixed = match req {
            Request::Ehlo { host } => {
                self.hello(&host);
                let starttls = self.shared.tls.is_some() && self.tls.is_none();
                replies::ehlo(&self.shared.fqdn, self.ip, self.shared.max_size, starttls)
                    .write_to(out);
                return Action::Continue;
            }
            Request::Helo { host } => {
                self.hello(&host);
                let r = replies::helo(&self.shared.fqdn, self.ip);
                self.send(out, r);
                return Action::Continue;
            }
            Request::Mail { from } => {
                self.mail(from, out);
                return Action::Continue;
            }
            Request::Rcpt { to } => {
                self.rcpt(to.address, out);
                return Action::Continue;
            }
            Request::Data => {
                self.data(out);
                return Action::Continue;
            }
            Request::StartTls => return self.starttls(out),
            Request::Quit => {
                self.end_transaction_abandoned();
                self.send(out, replies::CLOSING.reply());
                return Action::Quit;
            }
            Request::Help { .. } => {
                replies::help().write_to(out);
                return Action::Continue;
            }
            Request::Lhlo { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => replies::UNRECOGNIZED_COMMAND,
            Request::Bdat { chunk_size, .. } => {
                self.mode = Mode::SkipBytes(chunk_size);
                replies::BDAT_NOT_OFFERED
            }
            Request::Rset => {
                self.end_transaction_abandoned();
                replies::RESETTING
            }
            Request::Noop { .. } => replies::NOOP_OK,
            Request::Vrfy { .. } => replies::CANNOT_VRFY,
            Request::Expn { .. } => replies::NOT_IMPLEMENTED,
            Request::Auth { .. } => replies::UNRECOGNIZED_AUTH,
        };
        self.send(out, fixed.reply());
        Action::Continue
    }

    /// EHLO or HELO: a new session state, without an open transaction.
    fn hello(&mut self, host: &str) {
        self.end_transaction_abandoned();
        self.helo = Some(printable(host));
    }

    fn starttls(&mut self, out: &mut Vec<u8>) -> Action {
        if self.shared.tls.is_none() {
            self.send(out, replies::TLS_NOT_AVAILABLE.reply());
        } else if self.tls.is_some() {
            self.send(out, replies::TLS_ALREADY_ACTIVE.reply());
        } else {
            self.end_transaction_abandoned();
            self.helo = None;
            self.send(out, replies::READY_FOR_TLS.reply());
            return Action::StartTls;
        }
        Action::Continue
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<String>, out: &mut Vec<u8>) {
        if self.helo.is_none() {
            self.send(out, replies::SEND_HELLO_FIRST.reply());
            return;
        }
        if self.txn.is_some() {
            self.send(out, replies::SENDER_ALREADY_SPECIFIED.reply());
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
            let r = self.send(out, replies::MESSAGE_TOO_LARGE.reply());
            txn.last_refusal = Some((Decision::Rejected, Rule::MessageTooLarge, r));
            self.txn = Some(txn);
            self.end_transaction_abandoned();
            return;
        }
        self.txn = Some(txn);
        self.send(out, replies::SENDER_OK.reply());
    }

    fn rcpt(&mut self, address: String, out: &mut Vec<u8>) {
        let Some(txn) = &self.txn else {
            self.send(out, replies::NEED_MAIL.reply());
            return;
        };
        let address = printable(&address);
        if !address.contains('@') {
            self.send(out, replies::INVALID_RECIPIENT.reply());
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
            self.send(out, replies::NEED_MAIL.reply());
            return;
        };
        if txn.accepted.is_empty() {
            let r = if txn.recipients.is_empty() {
                replies::NEED_RCPT
            } else {
                replies::NO_VALID_RECIPIENTS
            };
            self.send(out, r.reply());
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
        replies::START_MAIL_INPUT.reply().write_to(out);
    }

    async fn end_of_data(&mut self, msg: Vec<u8>, too_big: bool, out: &mut Vec<u8>) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        if too_big {
            let r = self.send(out, replies::MESSAGE_TOO_LARGE.reply());
            let mut rec = self.record(txn, Decision::Rejected, Rule::MessageTooLarge, r);
            rec.size = None;
            self.write_refusal(rec);
            return;
        }
        let job = self.stamp(txn, msg);
        let reply = job.record.reply.clone();
        if let Err(mpsc::error::SendError(msg)) =
            self.shared.queue.send(QueueMsg::Job(Box::new(job))).await
        {
            // The delivery worker is gone (shutting down): do not claim the message was queued.
            let r = self.send(out, replies::NOT_ACCEPTING.reply());
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

    /// Stamps an accepted message with EOP's headers, files it (Inbox or Junk) and makes its
    /// delivery job, whose trace record holds the final `250 2.6.0`.
    fn stamp(&self, mut txn: Txn, msg: Vec<u8>) -> Job {
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
        let scl = if junk_rule.is_some() { cfg.junk.scl } else { 1 };
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
            spf_none: self.shared.junk.spf_none(&txn.sender_domain),
            scl,
            junk: junk_rule.is_some(),
            add_message_id: added_id.as_deref(),
        });
        let internal_id = self.shared.internal_base + seq;
        let reply = replies::queued(&message_id, internal_id, &self.shared.trailer_host);
        let mut mailboxes = std::mem::take(&mut txn.accepted);
        mailboxes.sort_unstable();
        mailboxes.dedup();
        let folder = if junk_rule.is_some() {
            Folder::Junk
        } else {
            Folder::Inbox
        };
        let mut record = self.record(txn, Decision::Accepted, Rule::Queued, reply);
        record.message_id = Some(message_id);
        record.internal_id = Some(internal_id);
        record.network_message_id = Some(nmid);
        record.size = Some(size);
        record.scl = Some(scl);
        record.junk_rule = junk_rule;
        Job {
            due: Instant::now() + cfg.delivery.delay.0,
            head,
            content: parsed.content,
            mailboxes,
            folder,
            record,
        }
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

    /// Queues the trace record of a transaction that ended without a message; it is written
    /// before the next reply goes out (`write`), or when the session ends.
    fn write_refusal(&mut self, rec: TraceRecord) {
        self.pending_trace.push(rec);
    }

    /// Traces an open transaction that ends without a message (RSET, QUIT, EHLO, EOF, ...).
    fn end_transaction_abandoned(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        let (decision, reason, reply) = match (&txn.last_refusal, txn.accepted.is_empty()) {
            (Some((d, r, reply)), true) => (*d, *r, reply.clone()),
            (_, false) => (
                Decision::Abandoned,
                Rule::DataIncomplete,
                replies::RECIPIENT_OK.reply(),
            ),
            (None, true) => (
                Decision::Abandoned,
                Rule::NoRecipients,
                replies::SENDER_OK.reply(),
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
