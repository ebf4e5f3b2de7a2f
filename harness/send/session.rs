//! One SMTP connection and the attempts made on it: connect bound to a source IP, greeting, EHLO,
//! STARTTLS, EHLO again, then per message RSET (when reused), MAIL, RCPT…, DATA, the payload and
//! the end of data, pipelined when the server offers it (RFC 2920), and QUIT.
//!
//! Every exchange lands in the attempt's transcript the moment it completes, so an attempt that
//! fails, times out or is cut short by a hard stop still records everything up to that point.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;

use super::message::{build_message, message_id, MessageSpec};
use super::wire::{dot_stuff_into, Conn, ReadError};
use super::{SendContext, TapEvent};
use crate::record::{AttemptRecord, DecidingReply, Exchange, Stage, TlsInfo, RECORD_SCHEMA};
use crate::reply::{classify, parse_reply_lines, Context, Reply};
use crate::text::clip;
use crate::vocab::{OutcomeClass, TlsMode};
use crate::wire::Stream;

/// A reply code meaning the server is closing the connection (RFC 5321 §3.8).
const SERVICE_CLOSING: u16 = 421;
/// DATA's go-ahead.
const START_MAIL_INPUT: u16 = 354;
/// STARTTLS's go-ahead (and the greeting's "ready").
const READY: u16 = 220;
/// A reused connection idle longer than this is checked for a server-side close before use.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);
/// QUIT is a courtesy: never wait long for its reply.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who an attempt is for: everything in its record that the session does not find out.
#[derive(Debug, Clone)]
pub(crate) struct AttemptMeta {
    pub seq: String,
    pub attempt: u32,
    pub retry_of: Option<String>,
    pub phase: String,
    pub burst: String,
    pub index: u32,
    pub sender: String,
    pub source_ip: Ipv4Addr,
    pub tls_mode: TlsMode,
    pub recipients: Vec<String>,
    pub body_size: u64,
    pub scheduled: Instant,
}

impl AttemptMeta {
    /// `<seq>#<attempt>`.
    pub fn attempt_id(&self) -> String {
        format!("{}#{}", self.seq, self.attempt)
    }
}

/// What an attempt found out, filled in as it goes.
#[derive(Debug, Default)]
pub(crate) struct AttemptLog {
    pub transcript: Vec<Exchange>,
    pub tls: Option<TlsInfo>,
    pub started: Option<Instant>,
    pub deciding: Option<(Stage, Reply)>,
    pub outcome: Option<OutcomeClass>,
    pub token: Option<String>,
    pub error: Option<String>,
    pub queue_id: Option<String>,
    pub size: u64,
    pub connection: u64,
    pub connection_seq: u32,
}

impl AttemptLog {
    fn start(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    /// Ends the attempt on a reply; `tls` says whether the session was encrypted.
    fn decide(&mut self, ctx: &SendContext, stage: Stage, reply: Reply, tls: bool) {
        let c = classify(
            &reply,
            &Context {
                session_tls: tls,
                host: ctx.receiver.as_deref(),
                recipient: None,
                assume: ctx.assume_origin,
                at_mx: ctx.at_mx,
            },
        );
        self.outcome = Some(c.outcome);
        self.token = c.token;
        self.deciding = Some((stage, reply));
    }

    /// Ends the attempt on a fault without (or despite) a reply.
    fn fault(&mut self, outcome: OutcomeClass, error: impl Into<String>) {
        self.outcome = Some(outcome);
        self.error = Some(error.into());
    }

    /// Ends an attempt cut short by a stop: `interrupted`, unless its fate was already known (a
    /// message accepted before a stop during QUIT stays accepted, or observation would call its
    /// copy an anomaly).
    pub(crate) fn cut_short(&mut self) {
        if self.outcome.is_none() {
            self.fault(
                OutcomeClass::Interrupted,
                "run interrupted while this attempt was in flight",
            );
        }
        self.start();
    }
}

/// Builds the record from what the meta said and what the log found.
pub(crate) fn finish(
    ctx: &SendContext,
    meta: &AttemptMeta,
    log: AttemptLog,
    dest: SocketAddrV4,
    message_id: String,
) -> AttemptRecord {
    let now = Instant::now();
    let started = log.started.unwrap_or(now);
    let (outcome, error) = match log.outcome {
        Some(o) => (o, log.error),
        None => (
            OutcomeClass::ProtocolError,
            Some(
                log.error
                    .unwrap_or_else(|| "attempt ended without an outcome".into()),
            ),
        ),
    };
    let reply = log.deciding.map(|(stage, r)| DecidingReply {
        stage,
        code: r.code,
        enhanced: r.enhanced.map(|e| e.to_string()),
        text: r.text(),
    });
    let rec = AttemptRecord {
        schema: RECORD_SCHEMA,
        run_id: ctx.run_id.clone(),
        attempt_id: meta.attempt_id(),
        seq: meta.seq.clone(),
        attempt: meta.attempt,
        retry_of: meta.retry_of.clone(),
        phase: meta.phase.clone(),
        burst: meta.burst.clone(),
        index: meta.index,
        sender: meta.sender.clone(),
        source_ip: meta.source_ip,
        destination: dest.to_string(),
        tls_mode: meta.tls_mode,
        tls: log.tls,
        message_id: format!("<{message_id}>"),
        recipients: meta.recipients.clone(),
        size: log.size,
        connection: log.connection,
        connection_seq: log.connection_seq,
        scheduled_at: ctx.clock.wall_at(meta.scheduled),
        scheduled_ms: ctx.clock.ms(meta.scheduled),
        started_at: ctx.clock.wall_at(started),
        started_ms: ctx.clock.ms(started),
        finished_at: ctx.clock.wall_at(now),
        finished_ms: ctx.clock.ms(now),
        transcript: log.transcript,
        outcome,
        reply,
        token: log.token,
        queue_id: log.queue_id,
        error,
    };
    tap(ctx, rec.connection, TapEvent::Finished(&rec));
    rec
}

/// Tells the context's transcript tap, if any, about a step of connection `conn`.
fn tap(ctx: &SendContext, conn: u64, ev: TapEvent<'_>) {
    if let Some(t) = &ctx.tap {
        t.event(conn, ev);
    }
}

/// An open, greeted, EHLO'd (and maybe encrypted) connection.
pub(crate) struct Session {
    conn: Conn,
    /// The set-up exchanges, copied into each later attempt's transcript.
    setup: Vec<Exchange>,
    tls: Option<TlsInfo>,
    pipelining: bool,
    id: u64,
    /// Transactions started on this connection.
    pub sent: u32,
    last_used: Instant,
}

/// How the attempt's connection ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// Still usable for another message.
    Usable,
    /// Closed or broken: open a new one.
    Gone,
}

fn io_fault_class(e: &ReadError) -> (OutcomeClass, String) {
    match e {
        ReadError::Closed => (
            OutcomeClass::ProtocolError,
            "connection closed by the server".into(),
        ),
        ReadError::Io(e) => (
            OutcomeClass::ProtocolError,
            format!("connection error: {e}"),
        ),
        ReadError::Protocol(m) => (OutcomeClass::ProtocolError, m.clone()),
    }
}

impl Session {
    /// Connects from `source_ip`, runs greeting, EHLO and the TLS mode's steps.
    /// On failure the log holds the outcome and the partial transcript.
    pub(crate) async fn open(
        ctx: &SendContext,
        source_ip: Ipv4Addr,
        mode: TlsMode,
        log: &mut AttemptLog,
    ) -> Option<Session> {
        log.start();
        let port = if mode == TlsMode::Implicit {
            ctx.implicit_tls_port
        } else {
            ctx.destination.port()
        };
        let dest = SocketAddrV4::new(*ctx.destination.ip(), port);
        let id = ctx.connections.fetch_add(1, Ordering::Relaxed) + 1;
        log.connection = id;
        let t0 = Instant::now();
        let tcp = match connect_tapped(ctx, id, source_ip, dest).await {
            Ok(s) => s,
            Err(e) => {
                push(ctx, log, Stage::Connect, None, None, t0);
                log.fault(OutcomeClass::ConnectFailure, e);
                return None;
            }
        };
        push(ctx, log, Stage::Connect, None, None, t0);
        let conn = if mode == TlsMode::Implicit {
            let (stream, info) = tls_handshake(ctx, log, tcp).await?;
            log.tls = Some(info);
            Conn::new(stream)
        } else {
            Conn::new(Stream::Plain(tcp))
        };
        let mut s = Session {
            conn,
            setup: Vec::new(),
            tls: log.tls.clone(),
            pipelining: false,
            id,
            sent: 0,
            last_used: Instant::now(),
        };
        let tls_now = s.tls.is_some();
        let greeting = s
            .read(ctx, log, Stage::Greeting, None, Instant::now())
            .await?;
        if greeting.code != READY {
            log.decide(ctx, Stage::Greeting, greeting, tls_now);
            return None;
        }
        let ehlo = s.ehlo(ctx, log, Stage::Ehlo).await?;
        let offers_starttls = has_capability(&ehlo, "STARTTLS");
        if matches!(mode, TlsMode::Starttls | TlsMode::StarttlsOpportunistic) {
            if offers_starttls {
                let reply = s
                    .command(ctx, log, Stage::Starttls, "STARTTLS".into())
                    .await?;
                if reply.code == READY {
                    s = s.upgrade(ctx, log).await?;
                    s.ehlo(ctx, log, Stage::EhloTls).await?;
                } else if mode == TlsMode::Starttls {
                    log.decide(ctx, Stage::Starttls, reply, false);
                    // Whatever the code says, the attempt failed because TLS could not be had.
                    log.outcome = Some(OutcomeClass::TlsFailure);
                    log.error = Some("the server refused STARTTLS".into());
                    return None;
                }
            } else if mode == TlsMode::Starttls {
                log.fault(
                    OutcomeClass::TlsFailure,
                    "STARTTLS is required but the server does not offer it",
                );
                return None;
            }
        }
        s.setup = log.transcript.clone();
        Some(s)
    }

    /// Sends EHLO and learns the extensions. A refused EHLO ends the attempt.
    async fn ehlo(
        &mut self,
        ctx: &SendContext,
        log: &mut AttemptLog,
        stage: Stage,
    ) -> Option<Reply> {
        let reply = self
            .command(ctx, log, stage, format!("EHLO {}", ctx.helo))
            .await?;
        if !reply.is_positive() {
            log.decide(ctx, stage, reply, self.tls.is_some());
            return None;
        }
        self.pipelining = has_capability(&reply, "PIPELINING");
        Some(reply)
    }

    /// STARTTLS accepted: runs the handshake on the same TCP connection.
    async fn upgrade(self, ctx: &SendContext, log: &mut AttemptLog) -> Option<Session> {
        if self.conn.has_buffered() {
            // Bytes after the 220 were sent in plain text before TLS: accepting them would let a
            // man in the middle inject commands (CVE-2011-0411 class).
            log.fault(
                OutcomeClass::ProtocolError,
                "the server sent data after its STARTTLS reply, before the handshake",
            );
            return None;
        }
        let Session {
            conn,
            setup,
            id,
            sent,
            ..
        } = self;
        let tcp = conn.into_plain()?;
        let (stream, info) = tls_handshake(ctx, log, tcp).await?;
        log.tls = Some(info.clone());
        Some(Session {
            conn: Conn::new(stream),
            setup,
            tls: Some(info),
            pipelining: false,
            id,
            sent,
            last_used: Instant::now(),
        })
    }

    /// Writes `cmd` and reads its reply; `None` when the connection failed (log says why).
    async fn command(
        &mut self,
        ctx: &SendContext,
        log: &mut AttemptLog,
        stage: Stage,
        cmd: String,
    ) -> Option<Reply> {
        let t = Instant::now();
        let mut line = Vec::with_capacity(cmd.len() + 2);
        line.extend_from_slice(cmd.as_bytes());
        line.extend_from_slice(b"\r\n");
        if !self.write(ctx, log, &line, stage).await {
            push(ctx, log, stage, Some(cmd), None, t);
            return None;
        }
        self.read(ctx, log, stage, Some(cmd), t).await
    }

    /// Writes bytes with the command timeout; false (and a fault in the log) on failure.
    async fn write(
        &mut self,
        ctx: &SendContext,
        log: &mut AttemptLog,
        data: &[u8],
        stage: Stage,
    ) -> bool {
        match tokio::time::timeout(ctx.command_timeout, self.conn.write_all(data)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                log.fault(
                    OutcomeClass::ProtocolError,
                    format!("connection error while sending {}: {e}", stage_name(stage)),
                );
                false
            }
            Err(_) => {
                log.fault(
                    OutcomeClass::Timeout,
                    format!(
                        "could not send {} within {}",
                        stage_name(stage),
                        humantime::format_duration(ctx.command_timeout)
                    ),
                );
                false
            }
        }
    }

    /// Reads one reply and records the exchange; `None` (with a fault in the log) on failure.
    async fn read(
        &mut self,
        ctx: &SendContext,
        log: &mut AttemptLog,
        stage: Stage,
        cmd: Option<String>,
        sent_at: Instant,
    ) -> Option<Reply> {
        let r = tokio::time::timeout(ctx.command_timeout, self.conn.read_reply_lines()).await;
        self.last_used = Instant::now();
        let raw = match r {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) => {
                push(ctx, log, stage, cmd, None, sent_at);
                let (class, text) = io_fault_class(&e);
                log.fault(
                    class,
                    format!("{text} (waiting for the reply to {})", stage_name(stage)),
                );
                return None;
            }
            Err(_) => {
                push(ctx, log, stage, cmd, None, sent_at);
                log.fault(
                    OutcomeClass::Timeout,
                    format!(
                        "no reply to {} within {}",
                        stage_name(stage),
                        humantime::format_duration(ctx.command_timeout)
                    ),
                );
                return None;
            }
        };
        match parse_reply_lines(&raw) {
            Ok(reply) => {
                push(ctx, log, stage, cmd, Some(&reply), sent_at);
                Some(reply)
            }
            Err(e) => {
                push(ctx, log, stage, cmd, None, sent_at);
                log.fault(
                    OutcomeClass::ProtocolError,
                    format!("bad reply to {}: {}", stage_name(stage), clip(&e, 200)),
                );
                None
            }
        }
    }

    /// Whether a reused connection was closed (or spoken on) by the server while idle.
    async fn went_away(&mut self) -> bool {
        if self.last_used.elapsed() < IDLE_CHECK_AFTER {
            return false;
        }
        if self.conn.has_buffered() {
            return true;
        }
        // A zero timeout polls the read once: data or EOF now means the server gave up on us.
        tokio::time::timeout(Duration::ZERO, self.conn.fill())
            .await
            .is_ok()
    }

    /// Runs one message transaction. The log holds the outcome afterwards.
    pub(crate) async fn transact(
        &mut self,
        ctx: &SendContext,
        log: &mut AttemptLog,
        recipients: &[String],
        payload: &[u8],
    ) -> After {
        log.start();
        log.connection = self.id;
        let tls = self.tls.is_some();
        let mut cmds: Vec<(Stage, String)> = Vec::with_capacity(recipients.len() + 3);
        if self.sent > 0 {
            cmds.push((Stage::Rset, "RSET".into()));
        }
        cmds.push((Stage::Mail, format!("MAIL FROM:<{}>", ctx.mail_from)));
        for r in recipients {
            cmds.push((Stage::Rcpt, format!("RCPT TO:<{r}>")));
        }
        cmds.push((Stage::Data, "DATA".into()));
        self.sent += 1;
        log.connection_seq = self.sent;

        // Replies in command order; sequential mode stops early, pipelining reads them all.
        let mut replies: Vec<(Stage, Reply)> = Vec::with_capacity(cmds.len());
        if self.pipelining {
            let t = Instant::now();
            let mut group = Vec::with_capacity(cmds.iter().map(|c| c.1.len() + 2).sum());
            for (_, c) in &cmds {
                group.extend_from_slice(c.as_bytes());
                group.extend_from_slice(b"\r\n");
            }
            if !self.write(ctx, log, &group, cmds[0].0).await {
                return After::Gone;
            }
            for (stage, cmd) in cmds {
                match self.read(ctx, log, stage, Some(cmd), t).await {
                    Some(r) => replies.push((stage, r)),
                    None => return After::Gone,
                }
            }
        } else {
            let mut accepted_rcpt = 0;
            for (stage, cmd) in cmds {
                if stage == Stage::Data && accepted_rcpt == 0 {
                    break;
                }
                let Some(r) = self.command(ctx, log, stage, cmd).await else {
                    return After::Gone;
                };
                let ok = r.is_positive();
                let closing = r.code == SERVICE_CLOSING;
                replies.push((stage, r));
                if closing || (stage == Stage::Mail && !ok) {
                    break;
                }
                if stage == Stage::Rcpt && ok {
                    accepted_rcpt += 1;
                }
            }
        }

        let closing = replies.iter().any(|(_, r)| r.code == SERVICE_CLOSING);
        let data_go = replies
            .iter()
            .any(|(s, r)| *s == Stage::Data && r.code == START_MAIL_INPUT);
        let refused = replies.iter().find(|(s, r)| {
            (*s == Stage::Rset && r.code == SERVICE_CLOSING)
                || (*s == Stage::Mail && !r.is_positive())
        });
        let rcpts: Vec<&(Stage, Reply)> =
            replies.iter().filter(|(s, _)| *s == Stage::Rcpt).collect();
        let decided_early: Option<(Stage, Reply)> = if let Some((s, r)) = refused {
            Some((*s, r.clone()))
        } else if !rcpts.is_empty() && rcpts.iter().all(|(_, r)| !r.is_positive()) {
            rcpts.first().map(|(s, r)| (*s, r.clone()))
        } else if rcpts.is_empty() {
            // Sequential mode stopped before any RCPT (MAIL refused is handled above).
            replies.last().map(|(s, r)| (*s, r.clone()))
        } else {
            replies
                .iter()
                .find(|(s, r)| *s == Stage::Data && r.code != START_MAIL_INPUT)
                .map(|(s, r)| (*s, r.clone()))
        };

        if let Some((stage, reply)) = decided_early {
            log.decide(ctx, stage, reply, tls);
            if data_go {
                // RFC 2920 §3.1: DATA was accepted although the transaction failed; end it with
                // an empty message so the connection stays in step.
                let t = Instant::now();
                if !self.write(ctx, log, b".\r\n", Stage::EndOfData).await {
                    return After::Gone;
                }
                let saved = (log.outcome, log.error.take());
                if self
                    .read(ctx, log, Stage::EndOfData, Some(".".into()), t)
                    .await
                    .is_none()
                {
                    log.outcome = saved.0;
                    return After::Gone;
                }
            }
            return if closing { After::Gone } else { After::Usable };
        }

        // DATA said 354: send the message and read the final reply.
        let t = Instant::now();
        log.size = payload.len() as u64;
        if !self.write(ctx, log, payload, Stage::EndOfData).await {
            return After::Gone;
        }
        let Some(reply) = self
            .read(ctx, log, Stage::EndOfData, Some(".".into()), t)
            .await
        else {
            return After::Gone;
        };
        if reply.is_positive() {
            log.queue_id = queue_id_of(&reply.text());
        }
        let gone = reply.code == SERVICE_CLOSING;
        log.decide(ctx, Stage::EndOfData, reply, tls);
        if gone {
            After::Gone
        } else {
            After::Usable
        }
    }

    /// Sends QUIT (recording it when `log` is given) and closes. Errors are noted, never fatal.
    pub(crate) async fn quit(mut self, ctx: &SendContext, log: Option<&mut AttemptLog>) {
        let mut scratch = AttemptLog::default();
        let log = match log {
            Some(l) => l,
            None => &mut scratch,
        };
        // Cloned, not taken: if a hard stop drops this future mid-QUIT, the log must still hold
        // the message's own outcome and error.
        let keep = (log.outcome, log.error.clone());
        let quick = SendContext {
            command_timeout: ctx.command_timeout.min(QUIT_TIMEOUT),
            ..ctx.clone()
        };
        let _ = self.command(&quick, log, Stage::Quit, "QUIT".into()).await;
        // QUIT's fate never changes the message's outcome.
        log.outcome = keep.0;
        log.error = keep.1;
        use tokio::io::AsyncWriteExt;
        let _ = tokio::time::timeout(QUIT_TIMEOUT, self.conn.stream.shutdown()).await;
    }
}

/// [`connect`], telling the transcript tap before it starts and once it is open.
async fn connect_tapped(
    ctx: &SendContext,
    id: u64,
    source_ip: Ipv4Addr,
    dest: SocketAddrV4,
) -> Result<tokio::net::TcpStream, String> {
    let ev = TapEvent::Connecting {
        from: source_ip,
        to: dest,
    };
    tap(ctx, id, ev);
    let r = connect(ctx, source_ip, dest).await;
    if r.is_ok() {
        tap(ctx, id, TapEvent::Connected);
    }
    r
}

/// Opens the TCP connection from `source_ip` (IPv4 only) within the connect timeout.
async fn connect(
    ctx: &SendContext,
    source_ip: Ipv4Addr,
    dest: SocketAddrV4,
) -> Result<tokio::net::TcpStream, String> {
    let sock = TcpSocket::new_v4().map_err(|e| format!("cannot create a socket: {e}"))?;
    if let Err(e) = sock.bind((source_ip, 0).into()) {
        return Err(match e.kind() {
            std::io::ErrorKind::AddrNotAvailable => {
                format!("{source_ip} is not assigned to any interface here")
            }
            std::io::ErrorKind::AddrInUse => {
                format!("no free local port on {source_ip}: the ephemeral port range is exhausted")
            }
            _ => format!("cannot bind source address {source_ip}: {e}"),
        });
    }
    match tokio::time::timeout(ctx.connect_timeout, sock.connect(dest.into())).await {
        Ok(Ok(s)) => {
            // Commands go out in whole groups; Nagle would only hold the next group back.
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(format!(
            "connecting {source_ip} → {dest}: no free local port on {source_ip} (ephemeral ports exhausted?): {e}"
        )),
        Ok(Err(e)) => Err(format!("connecting {source_ip} → {dest}: {e}")),
        Err(_) => Err(format!(
            "connecting {source_ip} → {dest}: no answer within {}",
            humantime::format_duration(ctx.connect_timeout)
        )),
    }
}

/// Runs the TLS handshake within the command timeout and records its stage. A failure becomes the
/// attempt's fault and ends the attempt.
async fn tls_handshake(
    ctx: &SendContext,
    log: &mut AttemptLog,
    tcp: tokio::net::TcpStream,
) -> Option<(Stream, crate::record::TlsInfo)> {
    let t = Instant::now();
    let result = tokio::time::timeout(ctx.command_timeout, ctx.tls.handshake(tcp)).await;
    push(ctx, log, Stage::TlsHandshake, None, None, t);
    match result {
        Ok(Ok(s)) => {
            let info = ctx.tls.info(&s);
            tap(ctx, log.connection, TapEvent::TlsStarted(&info));
            Some((Stream::Tls(Box::new(s)), info))
        }
        Ok(Err(e)) => {
            let (text, _) = super::tls::handshake_error_text(&e);
            log.fault(OutcomeClass::TlsFailure, text);
            None
        }
        Err(_) => {
            log.fault(
                OutcomeClass::Timeout,
                format!(
                    "TLS handshake did not finish within {}",
                    humantime::format_duration(ctx.command_timeout)
                ),
            );
            None
        }
    }
}

/// Records one exchange in the attempt's transcript.
fn push(
    ctx: &SendContext,
    log: &mut AttemptLog,
    stage: Stage,
    command: Option<String>,
    reply: Option<&Reply>,
    sent_at: Instant,
) {
    let now = Instant::now();
    log.transcript.push(Exchange {
        stage,
        command,
        code: reply.map(|r| r.code),
        enhanced: reply.and_then(|r| r.enhanced.map(|e| e.to_string())),
        lines: reply.map(|r| r.lines.clone()).unwrap_or_default(),
        elapsed_ms: now.duration_since(sent_at).as_secs_f64() * 1000.0,
        at_ms: ctx.clock.ms(now),
    });
    if let Some(ex) = log.transcript.last() {
        tap(ctx, log.connection, TapEvent::Exchange(ex));
    }
}

/// Whether an EHLO reply lists `ext` (first word of a line after the first, any case).
fn has_capability(ehlo: &Reply, ext: &str) -> bool {
    ehlo.lines.iter().skip(1).any(|l| {
        l.split_ascii_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(ext))
    })
}

/// Human name of a stage for error texts.
fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Connect => "the connect",
        Stage::TlsHandshake => "the TLS handshake",
        Stage::Greeting => "the greeting",
        Stage::Ehlo => "EHLO",
        Stage::Starttls => "STARTTLS",
        Stage::EhloTls => "EHLO after STARTTLS",
        Stage::Mail => "MAIL FROM",
        Stage::Rcpt => "RCPT TO",
        Stage::Data => "DATA",
        Stage::EndOfData => "the end of data",
        Stage::Rset => "RSET",
        Stage::Quit => "QUIT",
    }
}

/// The queue id in a final 250: Postfix's `queued as X`, else the first `<…>` (EOP gives the Message-ID).
pub(crate) fn queue_id_of(text: &str) -> Option<String> {
    if let Some(i) = text.find("queued as ") {
        let rest = &text[i + "queued as ".len()..];
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
            .collect();
        let id = id.trim_end_matches('.').to_string();
        if !id.is_empty() {
            return Some(id);
        }
    }
    let start = text.find('<')?;
    let end = text[start..].find('>')? + start;
    Some(text[start..=end].to_string())
}

/// A single message for probes and ops commands: one connection, one message, QUIT.
#[derive(Debug, Clone)]
pub struct OneShot {
    /// Source IP to bind.
    pub source_ip: Ipv4Addr,
    /// Sender role (for the record).
    pub sender: String,
    /// TLS mode.
    pub tls_mode: TlsMode,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// Phase name (for the record and the seq header).
    pub phase: String,
    /// Burst or probe label (for the record).
    pub burst: String,
    /// Index within the probe series.
    pub index: u32,
    /// Body size in bytes (of the generated body; ignored when `text` is given).
    pub body_size: u64,
    /// A subject and body for a person to read, instead of the generated ones.
    pub text: Option<super::MessageText>,
}

impl OneShot {
    /// The `<phase>/<sender>/<tls>/<n>` sequence of this probe.
    pub fn seq(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.phase, self.sender, self.tls_mode, self.index
        )
    }
}

/// Sends one message on its own connection and returns its record (never fails: faults are records).
pub async fn send_one(ctx: &SendContext, shot: &OneShot) -> AttemptRecord {
    send_one_until(ctx, shot, &super::CancelToken::new()).await
}

/// [`send_one`] that stops on `cancel`: the attempt gets `ctx.cancel_grace` to finish, then it is
/// cut and recorded `interrupted`.
pub async fn send_one_until(
    ctx: &SendContext,
    shot: &OneShot,
    cancel: &super::CancelToken,
) -> AttemptRecord {
    let meta = AttemptMeta {
        seq: shot.seq(),
        attempt: 1,
        retry_of: None,
        phase: shot.phase.clone(),
        burst: shot.burst.clone(),
        index: shot.index,
        sender: shot.sender.clone(),
        source_ip: shot.source_ip,
        tls_mode: shot.tls_mode,
        recipients: shot.recipients.clone(),
        body_size: shot.body_size,
        scheduled: Instant::now(),
    };
    let mut log = AttemptLog::default();
    let (mid, payload) = match prepare(ctx, &meta, shot.text.as_ref()) {
        Ok(x) => x,
        Err(e) => {
            log.fault(OutcomeClass::ProtocolError, e.to_string());
            let mid = message_id(&ctx.run_id, &meta.seq, meta.attempt, &ctx.helo);
            return finish(ctx, &meta, log, dest_for(ctx, meta.tls_mode), mid);
        }
    };
    let cut = {
        let fut = async {
            if let Some(mut s) = Session::open(ctx, meta.source_ip, meta.tls_mode, &mut log).await {
                let after = s.transact(ctx, &mut log, &meta.recipients, &payload).await;
                if after == After::Usable {
                    s.quit(ctx, Some(&mut log)).await;
                }
            }
        };
        tokio::pin!(fut);
        tokio::select! {
            biased;
            () = &mut fut => false,
            () = async {
                cancel.cancelled().await;
                tokio::time::sleep(ctx.cancel_grace).await;
            } => true,
        }
    };
    if cut {
        log.cut_short();
    }
    finish(ctx, &meta, log, dest_for(ctx, meta.tls_mode), mid)
}

/// The address an attempt in `mode` connects to.
pub(crate) fn dest_for(ctx: &SendContext, mode: TlsMode) -> SocketAddrV4 {
    if mode == TlsMode::Implicit {
        SocketAddrV4::new(*ctx.destination.ip(), ctx.implicit_tls_port)
    } else {
        ctx.destination
    }
}

/// Builds the attempt's message and its wire form: (Message-ID, dot-stuffed payload with terminator).
pub(crate) fn prepare(
    ctx: &SendContext,
    meta: &AttemptMeta,
    text: Option<&super::MessageText>,
) -> Result<(String, Vec<u8>), super::SendError> {
    let mid = message_id(&ctx.run_id, &meta.seq, meta.attempt, &ctx.helo);
    let msg = build_message(&MessageSpec {
        run_id: &ctx.run_id,
        seq: &meta.seq,
        message_id: &mid,
        from: &ctx.mail_from,
        to: &meta.recipients,
        body_size: meta.body_size,
        date: chrono::Utc::now(),
        text,
    })?;
    let mut wire = Vec::with_capacity(msg.len() + 64);
    dot_stuff_into(&msg, &mut wire);
    Ok((mid, wire))
}

/// Runs one attempt on `slot`'s connection (opening one when needed), closing it after
/// `per_connection` messages. Returns the log and the Message-ID.
pub(crate) async fn attempt_on(
    ctx: &SendContext,
    slot: &mut Option<Session>,
    meta: &AttemptMeta,
    per_connection: u32,
    log: &mut AttemptLog,
) -> String {
    let (mid, payload) = match prepare(ctx, meta, None) {
        Ok(x) => x,
        Err(e) => {
            log.start();
            log.fault(OutcomeClass::ProtocolError, e.to_string());
            return message_id(&ctx.run_id, &meta.seq, meta.attempt, &ctx.helo);
        }
    };
    if let Some(s) = slot.as_mut() {
        if s.went_away().await {
            if let Some(s) = slot.take() {
                drop(s);
            }
        }
    }
    if let Some(s) = slot.as_ref() {
        log.start();
        log.transcript.extend(s.setup.iter().cloned());
        log.tls = s.tls.clone();
    } else {
        *slot = Session::open(ctx, meta.source_ip, meta.tls_mode, log).await;
    }
    let Some(s) = slot.as_mut() else {
        return mid;
    };
    let after = s.transact(ctx, log, &meta.recipients, &payload).await;
    if after == After::Gone {
        *slot = None;
    } else if s.sent >= per_connection.max(1) {
        if let Some(s) = slot.take() {
            s.quit(ctx, Some(log)).await;
        }
    }
    mid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids_are_found() {
        assert_eq!(
            queue_id_of("2.0.0 Ok: queued as 4ZxYq01abcz").as_deref(),
            Some("4ZxYq01abcz")
        );
        assert_eq!(
            queue_id_of("2.6.0 <a.b@c> [InternalId=1, Hostname=x] Queued mail for delivery")
                .as_deref(),
            Some("<a.b@c>")
        );
        assert_eq!(queue_id_of("Ok"), None);
    }

    #[test]
    fn capabilities_are_matched_on_the_first_word() {
        let r = parse_reply_lines(&["250-mx Hello", "250-PIPELINING", "250 starttls"]).unwrap();
        assert!(has_capability(&r, "STARTTLS"));
        assert!(has_capability(&r, "pipelining"));
        assert!(!has_capability(&r, "CHUNKING"));
        let r = parse_reply_lines(&["250 PIPELINING is the greeting text"]).unwrap();
        assert!(!has_capability(&r, "PIPELINING"));
    }
}
