//! A focused IMAP4rev1 client over tokio and rustls: the one IMAP client of the harness.
//!
//! It speaks exactly what observation, `verify` and `confirm` need: CAPABILITY, STARTTLS, LOGIN,
//! AUTHENTICATE XOAUTH2, LIST, SELECT/EXAMINE, UID SEARCH, UID FETCH, UID STORE, UID EXPUNGE and
//! LOGOUT. Responses are framed whole by the shared [`Framer`], literals included, and parsed in
//! place with the grammar the simulator's server uses too ([`crate::wire::imap`]), so a
//! 10,000-message header fetch copies no header. Nothing here logs or returns a command's text,
//! because LOGIN and AUTHENTICATE carry secrets.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::token::Secret;
use super::ObserveError;
use crate::scenario::target::ImapTls;
pub use crate::wire::imap::Status;
use crate::wire::imap::{
    capability_list, literal_marker, number, parse_date_time, quote, resp_text_code, sequence_set,
    tagged, untagged, Cursor, ParseError,
};
use crate::wire::{Framer, Scan, Stream};

/// The largest literal accepted from a server: guards memory against a hostile or broken peer.
const MAX_LITERAL: usize = 64 * 1024 * 1024;
/// The longest line (outside literals) accepted from a server.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// Read chunk size.
const READ_CHUNK: usize = 64 * 1024;
/// UIDs per UID FETCH/STORE/EXPUNGE command: keeps command lines short even for sparse sets.
pub const UID_CHUNK: usize = 2000;

/// A tagged completion: status and the rest of the line (response code included).
#[derive(Debug, Clone)]
pub struct Completion {
    /// OK, NO or BAD.
    pub status: Status,
    /// The text after the status, e.g. `[READ-ONLY] Examine completed`.
    pub text: String,
}

/// One folder from LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// The name exactly as the server sent it (modified UTF-7), to send back verbatim.
    pub name: String,
    /// Flags such as `\Junk`, `\HasNoChildren`, `\Noselect`.
    pub flags: Vec<String>,
}

impl Folder {
    /// Whether the folder carries this flag (case-insensitive, as IMAP flags are).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// What SELECT or EXAMINE reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderStatus {
    /// UIDVALIDITY: UIDs are only meaningful together with it.
    pub uidvalidity: Option<u32>,
    /// Number of messages.
    pub exists: u32,
    /// Whether the server opened it read-only.
    pub read_only: bool,
}

/// One message of a UID FETCH, borrowed from the response buffer.
#[derive(Debug, Clone, Copy)]
pub struct FetchedHeaders<'a> {
    /// The UID.
    pub uid: u32,
    /// INTERNALDATE (one-second resolution).
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// The raw header block returned for `BODY.PEEK[HEADER.FIELDS (…)]`.
    pub header: &'a [u8],
}

/// An authenticated-or-not IMAP session.
pub struct ImapClient {
    stream: Stream,
    /// `host:port`, for error messages.
    server: String,
    /// Frames responses; the last one read stays in it until the next read.
    framer: Framer,
    tag: u32,
    /// Upper-cased capability atoms; `None` when they must be asked for again.
    caps: Option<Vec<String>>,
    timeout: Duration,
    /// The TLS protocol version and cipher, once TLS is up.
    tls: Option<(String, String)>,
}

/// Settings for one connection.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Implicit TLS, STARTTLS or plain.
    pub tls: ImapTls,
    /// The rustls configuration (trust anchors); required unless plain.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Timeout for the connect and for every server response.
    pub timeout: Duration,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ImapClient {
    /// Connects, sets up TLS as asked, and reads the greeting.
    pub async fn connect(opts: &ConnectOptions) -> Result<ImapClient, ObserveError> {
        let server = format!("{}:{}", opts.host, opts.port);
        let tcp = tokio::time::timeout(
            opts.timeout,
            TcpStream::connect((opts.host.as_str(), opts.port)),
        )
        .await
        .map_err(|_| ObserveError::Timeout(format!("connecting to IMAP server {server}")))?
        .map_err(|e| ObserveError::Connect {
            server: server.clone(),
            source: e,
        })?;
        // Commands are small and latency-bound; don't let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let mut client = ImapClient {
            stream: Stream::Plain(tcp),
            server,
            framer: Framer::new(READ_CHUNK),
            tag: 0,
            caps: None,
            timeout: opts.timeout,
            tls: None,
        };
        if opts.tls == ImapTls::Implicit {
            client = client.start_tls(opts).await?;
        }
        client.read_greeting().await?;
        if opts.tls == ImapTls::Starttls {
            if !client.has_capability("STARTTLS").await? {
                // Never fall back to plain text: the next thing sent is a credential.
                return Err(ObserveError::Protocol(format!(
                    "IMAP server {} does not offer STARTTLS",
                    client.server
                )));
            }
            let done = client.run("STARTTLS", |_| Ok(())).await?;
            client.expect_ok("STARTTLS", done)?;
            // Anything the server sent before the handshake must not be trusted (RFC 3501 §6.2.1).
            client.framer.release();
            client.framer.discard_unframed();
            client = client.start_tls(opts).await?;
            client.caps = None;
        }
        Ok(client)
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The negotiated TLS version (e.g. `1.3`) and cipher suite, when TLS is in use.
    pub fn tls_info(&self) -> Option<(&str, &str)> {
        self.tls.as_ref().map(|(v, c)| (v.as_str(), c.as_str()))
    }

    /// The same session over TLS (implicit, or after STARTTLS's OK).
    async fn start_tls(self, opts: &ConnectOptions) -> Result<ImapClient, ObserveError> {
        let config = opts.tls_config.clone().ok_or_else(|| {
            ObserveError::Config("TLS requested but no TLS configuration given".into())
        })?;
        let name = match opts.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(opts.host.clone()).map_err(|e| {
                ObserveError::Config(format!("invalid IMAP host name {:?}: {e}", opts.host))
            })?,
        };
        let Stream::Plain(tcp) = self.stream else {
            return Err(ObserveError::Protocol(
                "TLS is already active on this connection".into(),
            ));
        };
        let tls = tokio::time::timeout(opts.timeout, TlsConnector::from(config).connect(name, tcp))
            .await
            .map_err(|_| ObserveError::Timeout(format!("TLS handshake with {}", self.server)))?
            .map_err(|e| ObserveError::Tls {
                server: self.server.clone(),
                detail: e.to_string(),
            })?;
        let (_, session) = tls.get_ref();
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "1.3".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "1.2".to_string(),
            Some(v) => format!("{v:?}"),
            None => "unknown".to_string(),
        };
        let cipher = session
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default();
        Ok(ImapClient {
            stream: Stream::Tls(Box::new(tls)),
            tls: Some((version, cipher)),
            ..self
        })
    }

    async fn read_greeting(&mut self) -> Result<(), ObserveError> {
        self.read_response().await?;
        let line = self.framer.message();
        let greeting = line.strip_prefix(b"* ").and_then(untagged);
        let refusal = match greeting {
            Some(u) if u.is("OK") || u.is("PREAUTH") => {
                self.caps = capability_code(u.rest);
                return Ok(());
            }
            Some(u) if u.is("BYE") => "refused the connection",
            _ => "sent an unexpected greeting",
        };
        Err(ObserveError::Protocol(format!(
            "IMAP server {} {refusal}: {}",
            self.server,
            server_text(&String::from_utf8_lossy(line))
        )))
    }

    /// The server's capabilities (asked for when not known yet), upper-cased.
    pub async fn capabilities(&mut self) -> Result<&[String], ObserveError> {
        if self.caps.is_none() {
            let mut caps = Vec::new();
            let done = self
                .run("CAPABILITY", |resp| {
                    if let Some(u) = untagged(resp).filter(|u| u.is("CAPABILITY")) {
                        caps.extend(capability_list(u.rest));
                    }
                    Ok(())
                })
                .await?;
            self.expect_ok("CAPABILITY", done)?;
            self.caps = Some(caps);
        }
        Ok(self.caps.as_deref().unwrap_or(&[]))
    }

    /// Whether the server has this capability (case-insensitive).
    pub async fn has_capability(&mut self, cap: &str) -> Result<bool, ObserveError> {
        Ok(self
            .capabilities()
            .await?
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cap)))
    }

    /// LOGIN with a user name and password.
    pub async fn login(&mut self, user: &str, password: &Secret) -> Result<(), ObserveError> {
        if self.has_capability("LOGINDISABLED").await? {
            return Err(ObserveError::Auth(format!(
                "IMAP server {} has LOGIN disabled (use TLS, or XOAUTH2)",
                self.server
            )));
        }
        let mut parts = vec![Part::Raw(b"LOGIN ".to_vec())];
        push_astring(&mut parts, user.as_bytes());
        parts.push(Part::Raw(b" ".to_vec()));
        push_astring(&mut parts, password.expose().as_bytes());
        let done = self.run_parts(&parts, |_| Ok(())).await?;
        match done.status {
            Status::Ok => {
                self.caps = capability_code(done.text.as_bytes());
                Ok(())
            }
            _ => Err(ObserveError::Auth(format!(
                "IMAP server {} rejected LOGIN for {user}: {}",
                self.server,
                clip_redacted(&done.text, &login_forms(password))
            ))),
        }
    }

    /// AUTHENTICATE XOAUTH2 with a bearer token.
    ///
    /// On failure the server sends a base64 JSON challenge; the client answers it with an empty
    /// line and then reads the tagged `NO`, as Microsoft's and Google's servers expect.
    pub async fn authenticate_xoauth2(
        &mut self,
        user: &str,
        token: &Secret,
    ) -> Result<(), ObserveError> {
        let initial = base64::engine::general_purpose::STANDARD.encode(format!(
            "user={user}\x01auth=Bearer {}\x01\x01",
            token.expose()
        ));
        let sasl_ir = self.has_capability("SASL-IR").await?;
        let tag = self.next_tag();
        let mut cmd = format!("{tag} AUTHENTICATE XOAUTH2");
        if sasl_ir {
            cmd.push(' ');
            cmd.push_str(&initial);
        }
        cmd.push_str("\r\n");
        self.send(cmd.as_bytes()).await?;
        let mut sent_initial = sasl_ir;
        let mut challenge_note = String::new();
        loop {
            self.read_response().await?;
            let resp = self.framer.message();
            if resp.first() == Some(&b'+') {
                if !sent_initial {
                    let mut line = initial.clone().into_bytes();
                    line.extend_from_slice(b"\r\n");
                    self.send(&line).await?;
                    sent_initial = true;
                } else {
                    // The error challenge: note what it says (it holds no secret), answer empty.
                    challenge_note = decode_challenge(resp);
                    self.send(b"\r\n").await?;
                }
                continue;
            }
            if let Some(data) = resp.strip_prefix(b"* ") {
                if let Some(u) = untagged(data).filter(|u| u.is("CAPABILITY")) {
                    self.caps = Some(capability_list(u.rest));
                }
                continue;
            }
            if let Some(done) = completion(resp, &tag) {
                return match done.status {
                    Status::Ok => {
                        self.caps = capability_code(done.text.as_bytes());
                        Ok(())
                    }
                    _ => {
                        let sent = [token.expose().to_string(), initial.clone()];
                        let mut msg = format!(
                            "IMAP server {} rejected XOAUTH2 for {user}: {}",
                            self.server,
                            clip_redacted(&done.text, &sent)
                        );
                        if !challenge_note.is_empty() {
                            let note = clip_redacted(&challenge_note, &sent);
                            let _ = write!(msg, " (challenge: {note})");
                        }
                        Err(ObserveError::Auth(msg))
                    }
                };
            }
            // Another tag's completion cannot happen: commands are never interleaved.
        }
    }

    /// LIST "" "*", asking for SPECIAL-USE flags when the server supports the extended form.
    pub async fn list(&mut self) -> Result<Vec<Folder>, ObserveError> {
        let extended = self.has_capability("LIST-EXTENDED").await?
            && self.has_capability("SPECIAL-USE").await?;
        let cmd = if extended {
            "LIST \"\" \"*\" RETURN (SPECIAL-USE)"
        } else {
            "LIST \"\" \"*\""
        };
        let mut folders = Vec::new();
        let done = self
            .run(cmd, |resp| {
                if let Some(u) = untagged(resp).filter(|u| u.is("LIST")) {
                    folders.push(parse_list(u.rest)?);
                }
                Ok(())
            })
            .await?;
        self.expect_ok("LIST", done)?;
        Ok(folders)
    }

    /// EXAMINE: opens a folder read-only (observation never changes a flag).
    pub async fn examine(&mut self, folder: &str) -> Result<FolderStatus, ObserveError> {
        self.open("EXAMINE", folder).await
    }

    /// SELECT: opens a folder read-write (for clean-up).
    pub async fn select(&mut self, folder: &str) -> Result<FolderStatus, ObserveError> {
        self.open("SELECT", folder).await
    }

    async fn open(&mut self, verb: &str, folder: &str) -> Result<FolderStatus, ObserveError> {
        let mut parts = vec![Part::Raw(format!("{verb} ").into_bytes())];
        push_astring(&mut parts, folder.as_bytes());
        let mut status = FolderStatus::default();
        let done = self
            .run_parts(&parts, |resp| {
                let Some(u) = untagged(resp) else {
                    return Ok(());
                };
                if let Some(n) = u.number.filter(|_| u.is("EXISTS")) {
                    status.exists = n;
                } else if let Some((code, args)) = resp_text_code(u.rest) {
                    if code.eq_ignore_ascii_case(b"UIDVALIDITY") {
                        status.uidvalidity = number(args);
                    }
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            return Err(ObserveError::Command {
                server: self.server.clone(),
                command: format!("{verb} {folder}"),
                status: done.status,
                text: server_text(&done.text),
            });
        }
        status.read_only = resp_text_code(done.text.as_bytes())
            .is_some_and(|(code, _)| code.eq_ignore_ascii_case(b"READ-ONLY"));
        Ok(status)
    }

    /// UID SEARCH with raw criteria (already quoted); the UIDs come back sorted and de-duplicated.
    ///
    /// A NO or BAD completion is returned as `Ok(Err(completion))`, so the caller can fall back.
    pub async fn uid_search_raw(
        &mut self,
        criteria: &[Part],
    ) -> Result<Result<Vec<u32>, Completion>, ObserveError> {
        let mut parts = vec![Part::Raw(b"UID SEARCH ".to_vec())];
        parts.extend_from_slice(criteria);
        let mut uids = Vec::new();
        let done = self
            .run_parts(&parts, |resp| {
                let Some(u) = untagged(resp).filter(|u| u.is("SEARCH")) else {
                    return Ok(());
                };
                for n in u.rest.split(|b| *b == b' ').filter(|s| !s.is_empty()) {
                    // A trailing "(MODSEQ n)" (CONDSTORE) is not a UID: stop there.
                    if n.first() == Some(&b'(') {
                        break;
                    }
                    uids.push(number(n).ok_or_else(|| {
                        ObserveError::Protocol(format!(
                            "bad UID in SEARCH response: {}",
                            server_text(&String::from_utf8_lossy(n))
                        ))
                    })?);
                }
                Ok(())
            })
            .await?;
        if done.status != Status::Ok {
            return Ok(Err(done));
        }
        // SEARCH results are an unordered set.
        uids.sort_unstable();
        uids.dedup();
        Ok(Ok(uids))
    }

    /// `UID SEARCH HEADER <field> <value>` (a substring match: callers compare exactly afterwards).
    pub async fn uid_search_header(
        &mut self,
        field: &str,
        value: &str,
    ) -> Result<Result<Vec<u32>, Completion>, ObserveError> {
        let mut parts = Vec::new();
        if !value.is_ascii() {
            parts.push(Part::Raw(b"CHARSET UTF-8 ".to_vec()));
        }
        parts.push(Part::Raw(b"HEADER ".to_vec()));
        push_astring(&mut parts, field.as_bytes());
        parts.push(Part::Raw(b" ".to_vec()));
        push_astring(&mut parts, value.as_bytes());
        self.uid_search_raw(&parts).await
    }

    /// `UID SEARCH SINCE <date>`: the fallback for servers that don't search custom headers.
    pub async fn uid_search_since(
        &mut self,
        date: chrono::NaiveDate,
    ) -> Result<Result<Vec<u32>, Completion>, ObserveError> {
        let crit = format!("SINCE {}", date.format("%-d-%b-%Y"));
        self.uid_search_raw(&[Part::Raw(crit.into_bytes())]).await
    }

    /// `UID FETCH` of UID, INTERNALDATE and `BODY.PEEK[HEADER.FIELDS (…)]`, in chunks, in UID
    /// order; `on_message` sees each message as it is parsed. PEEK: nothing becomes `\Seen`.
    pub async fn uid_fetch_headers<F>(
        &mut self,
        uids: &[u32],
        fields: &[&str],
        mut on_message: F,
    ) -> Result<(), ObserveError>
    where
        F: FnMut(FetchedHeaders<'_>) -> Result<(), ObserveError>,
    {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let field_list = fields.join(" ");
        for chunk in sorted.chunks(UID_CHUNK) {
            let cmd = format!(
                "UID FETCH {} (UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({field_list})])",
                sequence_set(chunk)
            );
            let done = self
                .run(&cmd, |resp| {
                    if let Some(msg) = parse_fetch(resp)? {
                        on_message(msg)?;
                    }
                    Ok(())
                })
                .await?;
            self.expect_ok("UID FETCH", done)?;
        }
        Ok(())
    }

    /// `UID STORE <uids> +FLAGS.SILENT (\Deleted)`, in chunks.
    pub async fn uid_store_deleted(&mut self, uids: &[u32]) -> Result<(), ObserveError> {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for chunk in sorted.chunks(UID_CHUNK) {
            let cmd = format!(
                "UID STORE {} +FLAGS.SILENT (\\Deleted)",
                sequence_set(chunk)
            );
            let done = self.run(&cmd, |_| Ok(())).await?;
            self.expect_ok("UID STORE", done)?;
        }
        Ok(())
    }

    /// `UID EXPUNGE <uids>` (UIDPLUS): removes exactly these messages, nothing else.
    pub async fn uid_expunge(&mut self, uids: &[u32]) -> Result<(), ObserveError> {
        if !self.has_capability("UIDPLUS").await? {
            return Err(ObserveError::Protocol(format!(
                "IMAP server {} lacks UIDPLUS, so it cannot expunge only chosen messages",
                self.server
            )));
        }
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for chunk in sorted.chunks(UID_CHUNK) {
            let cmd = format!("UID EXPUNGE {}", sequence_set(chunk));
            let done = self.run(&cmd, |_| Ok(())).await?;
            self.expect_ok("UID EXPUNGE", done)?;
        }
        Ok(())
    }

    /// NOOP: keeps a session alive and collects pending updates.
    pub async fn noop(&mut self) -> Result<(), ObserveError> {
        let done = self.run("NOOP", |_| Ok(())).await?;
        self.expect_ok("NOOP", done)
    }

    /// LOGOUT; errors are ignored because the session ends either way.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.run("LOGOUT", |_| Ok(()))).await;
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("H{}", self.tag)
    }

    fn expect_ok(&self, command: &str, done: Completion) -> Result<(), ObserveError> {
        if done.status == Status::Ok {
            Ok(())
        } else {
            Err(ObserveError::Command {
                server: self.server.clone(),
                command: command.to_string(),
                status: done.status,
                text: server_text(&done.text),
            })
        }
    }

    /// Runs a command without literals and feeds every untagged response (without `* `) to
    /// `on_untagged`.
    pub async fn run<F>(
        &mut self,
        command: &str,
        on_untagged: F,
    ) -> Result<Completion, ObserveError>
    where
        F: FnMut(&[u8]) -> Result<(), ObserveError>,
    {
        self.run_parts(&[Part::Raw(command.as_bytes().to_vec())], on_untagged)
            .await
    }

    /// Runs a command made of raw parts and literals (synchronizing, or LITERAL+ when offered).
    pub async fn run_parts<F>(
        &mut self,
        parts: &[Part],
        mut on_untagged: F,
    ) -> Result<Completion, ObserveError>
    where
        F: FnMut(&[u8]) -> Result<(), ObserveError>,
    {
        let tag = self.next_tag();
        if let Some(refused) = self.send_parts(&tag, parts, &mut on_untagged).await? {
            return Ok(refused);
        }
        loop {
            self.read_response().await?;
            let resp = self.framer.message();
            if let Some(data) = resp.strip_prefix(b"* ") {
                on_untagged(data)?;
                continue;
            }
            if let Some(done) = completion(resp, &tag) {
                return Ok(done);
            }
            if resp.first() == Some(&b'+') {
                return Err(ObserveError::Protocol(format!(
                    "IMAP server {} asked for a continuation nobody offered",
                    self.server
                )));
            }
            return Err(ObserveError::Protocol(format!(
                "IMAP server {} sent an unexpected response: {}",
                self.server,
                server_text(&String::from_utf8_lossy(resp))
            )));
        }
    }

    /// Sends a command; before each synchronizing literal, waits for the go-ahead. A completion
    /// that comes instead (the server refused the command early) is returned.
    async fn send_parts<F>(
        &mut self,
        tag: &str,
        parts: &[Part],
        on_untagged: &mut F,
    ) -> Result<Option<Completion>, ObserveError>
    where
        F: FnMut(&[u8]) -> Result<(), ObserveError>,
    {
        let has_literals = parts.iter().any(|p| matches!(p, Part::Literal(_)));
        // Only use known capabilities here (asking would recurse); synchronizing literals
        // always work.
        let literal_plus = has_literals
            && self
                .caps
                .as_ref()
                .is_some_and(|c| c.iter().any(|x| x == "LITERAL+"));
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        for part in parts {
            match part {
                Part::Raw(b) => out.extend_from_slice(b),
                Part::Literal(b) if literal_plus => {
                    out.extend_from_slice(format!("{{{}+}}\r\n", b.len()).as_bytes());
                    out.extend_from_slice(b);
                }
                Part::Literal(b) => {
                    out.extend_from_slice(format!("{{{}}}\r\n", b.len()).as_bytes());
                    self.send(&out).await?;
                    out.clear();
                    // Wait for the go-ahead; untagged data may come first.
                    loop {
                        self.read_response().await?;
                        let resp = self.framer.message();
                        if resp.first() == Some(&b'+') {
                            break;
                        }
                        if let Some(data) = resp.strip_prefix(b"* ") {
                            on_untagged(data)?;
                            continue;
                        }
                        if let Some(done) = completion(resp, tag) {
                            return Ok(Some(done));
                        }
                    }
                    out.extend_from_slice(b);
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        self.send(&out).await?;
        Ok(None)
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), ObserveError> {
        let server = &self.server;
        tokio::time::timeout(self.timeout, self.stream.send(data))
            .await
            .map_err(|_| ObserveError::Timeout(format!("writing to IMAP server {server}")))?
            .map_err(|e| ObserveError::Io {
                context: format!("writing to IMAP server {server}"),
                source: e,
            })
    }

    /// Reads one whole response, literals included; it is [`Framer::message`] until the next read.
    async fn read_response(&mut self) -> Result<(), ObserveError> {
        self.framer.release();
        loop {
            let Some(scan) = self.framer.line(MAX_LINE) else {
                self.fill().await?;
                continue;
            };
            if let Scan::TooLong(_) = scan {
                return Err(ObserveError::Protocol(format!(
                    "IMAP server {} sent an over-long response",
                    self.server
                )));
            }
            let n = match literal_marker(self.framer.last_line()) {
                None => return Ok(()),
                Some(Ok(lit)) => lit.len as usize,
                // More than 2^32-1: no valid size, and far past the limit.
                Some(Err(_)) => usize::MAX,
            };
            if n > MAX_LITERAL {
                let size = if n == usize::MAX {
                    "an over-sized".to_string()
                } else {
                    format!("a {n}-byte")
                };
                return Err(ObserveError::Protocol(format!(
                    "IMAP server {} announced {size} literal (limit {MAX_LITERAL})",
                    self.server
                )));
            }
            while self.framer.literal(n).is_none() {
                self.fill().await?;
            }
        }
    }

    /// Reads more of the response, within the timeout; the end of the stream is an error here.
    async fn fill(&mut self) -> Result<(), ObserveError> {
        let server = &self.server;
        let n = tokio::time::timeout(self.timeout, self.framer.read_from(&mut self.stream))
            .await
            .map_err(|_| ObserveError::Timeout(format!("waiting for IMAP server {server}")))?
            .map_err(|e| ObserveError::Io {
                context: format!("reading from IMAP server {server}"),
                source: e,
            })?;
        if n == 0 {
            return Err(ObserveError::Protocol(format!(
                "IMAP server {server} closed the connection"
            )));
        }
        Ok(())
    }
}

/// A piece of a command: raw protocol text, or a literal (sent as `{n}` + bytes).
#[derive(Debug, Clone)]
pub enum Part {
    /// Protocol text, sent as is.
    Raw(Vec<u8>),
    /// A string sent as a literal.
    Literal(Vec<u8>),
}

/// Appends `s` as an IMAP astring: quoted when it can be, a literal otherwise.
pub fn push_astring(parts: &mut Vec<Part>, s: &[u8]) {
    match quote(s) {
        Some(q) => parts.push(Part::Raw(q)),
        None => parts.push(Part::Literal(s.to_vec())),
    }
}

/// The forms in which LOGIN sends a password: raw (in a literal) and quoted with escapes.
fn login_forms(password: &Secret) -> Vec<String> {
    let raw = password.expose();
    let quoted = raw.replace('\\', "\\\\").replace('"', "\\\"");
    vec![raw.to_string(), quoted]
}

/// A tagged completion for `tag`, its text trimmed.
fn completion(resp: &[u8], tag: &str) -> Option<Completion> {
    tagged(resp, tag).map(|(status, text)| Completion {
        status,
        text: String::from_utf8_lossy(text).trim().to_string(),
    })
}

/// The capabilities in a `[CAPABILITY …]` response code, if the resp-text opens with one.
fn capability_code(text: &[u8]) -> Option<Vec<String>> {
    resp_text_code(text)
        .filter(|(code, _)| code.eq_ignore_ascii_case(b"CAPABILITY"))
        .map(|(_, args)| capability_list(args))
}

/// Decodes an XOAUTH2 error challenge (`+ <base64 JSON>`) into a short note.
fn decode_challenge(resp: &[u8]) -> String {
    let b64 = String::from_utf8_lossy(resp.get(1..).unwrap_or_default())
        .trim()
        .to_string();
    match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(bytes) => server_text(&String::from_utf8_lossy(&bytes)),
        Err(_) => server_text(&b64),
    }
}

/// A server's text for an error message, with every form in which a secret was `sent` masked
/// (a server may echo the command it refuses), cut to a readable length.
pub fn clip_redacted(text: &str, sent: &[String]) -> String {
    let mut t = text.to_string();
    for needle in sent {
        // A very short secret would mask ordinary words; such a secret is weak anyway.
        if needle.len() >= 4 {
            t = t.replace(needle.as_str(), "[redacted]");
        }
    }
    server_text(&t)
}

/// Most characters of server text quoted in an error message.
const SERVER_TEXT_MAX: usize = 300;

/// Server text for an error message: trimmed and cut to a readable length.
fn server_text(s: &str) -> String {
    crate::text::clip(s.trim(), SERVER_TEXT_MAX).into_owned()
}

/// A response the grammar cannot read, as a protocol error that shows where.
fn syntax_error(what: &str, c: &Cursor<'_>, e: ParseError) -> ObserveError {
    let near = String::from_utf8_lossy(c.rest());
    ObserveError::Protocol(format!(
        "cannot parse {what} ({e}) near: {}",
        server_text(&near)
    ))
}

/// Parses the rest of a `LIST` response: `(flags) "delim" name`.
fn parse_list(rest: &[u8]) -> Result<Folder, ObserveError> {
    let mut c = Cursor::new(rest);
    let mut read = || -> Result<Folder, ParseError> {
        let flags = c
            .flag_list()?
            .into_iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        c.skip_spaces();
        c.nstring()?; // the hierarchy delimiter (or NIL)
        c.skip_spaces();
        let name = c.astring()?;
        Ok(Folder {
            name: String::from_utf8_lossy(&name).into_owned(),
            flags,
        })
    };
    let folder = read();
    folder.map_err(|e| syntax_error("a LIST response", &c, e))
}

/// Parses `n FETCH (...)`; `None` for FETCH responses without a header section (flag updates).
fn parse_fetch(data: &[u8]) -> Result<Option<FetchedHeaders<'_>>, ObserveError> {
    let Some(u) = untagged(data).filter(|u| u.number.is_some() && u.is("FETCH")) else {
        return Ok(None);
    };
    let mut c = Cursor::new(u.rest);
    let items = fetch_items(&mut c).map_err(|e| syntax_error("a FETCH response", &c, e))?;
    Ok(match items {
        FetchItems {
            uid: Some(uid),
            internal_date,
            header: Some(header),
        } => Some(FetchedHeaders {
            uid,
            internal_date,
            header,
        }),
        _ => None,
    })
}

/// What a FETCH response says that observation uses.
#[derive(Default)]
struct FetchItems<'a> {
    uid: Option<u32>,
    internal_date: Option<DateTime<FixedOffset>>,
    header: Option<&'a [u8]>,
}

/// UID, INTERNALDATE and a header section from a FETCH response's items; others are skipped.
fn fetch_items<'a>(c: &mut Cursor<'a>) -> Result<FetchItems<'a>, ParseError> {
    let mut items = FetchItems::default();
    c.expect(b'(')?;
    loop {
        c.skip_spaces();
        if c.eat(b')') {
            return Ok(items);
        }
        let key = c.msg_att_name()?;
        c.skip_spaces();
        if key.eq_ignore_ascii_case(b"UID") {
            items.uid = Some(c.number()?);
        } else if key.eq_ignore_ascii_case(b"INTERNALDATE") {
            let raw = c.nstring()?.unwrap_or_default();
            items.internal_date = parse_date_time(&String::from_utf8_lossy(&raw));
        } else if key.len() >= 5 && key[..5].eq_ignore_ascii_case(b"BODY[") {
            items.header = Some(match c.nstring()? {
                Some(Cow::Borrowed(b)) => b,
                // A quoted header has no CRLFs, and NIL has none at all: treat either as empty
                // rather than copy.
                Some(Cow::Owned(_)) | None => &[],
            });
        } else {
            c.skip_value()?;
        }
    }
}

/// Reads one server response (without its CRLF) with every parser the observer uses, discarding
/// the results: the IMAP response fuzz target's entry point (fuzz/fuzz_targets/imap_response.rs).
#[doc(hidden)]
pub fn parse_any_response(resp: &[u8]) {
    let _ = completion(resp, "a1");
    let _ = capability_code(resp);
    let _ = decode_challenge(resp);
    if let Some(u) = untagged(resp) {
        if u.is("LIST") {
            let _ = parse_list(u.rest);
        }
    }
    let _ = parse_fetch(resp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_parses_any_order_and_sections() {
        let r = b"7 FETCH (INTERNALDATE \" 2-Jan-2019 17:40:34 +0000\" BODY[HEADER.FIELDS (MESSAGE-ID X-HARNESS-RUN)] {10}\r\nA: b\r\n\r\n\r\n UID 42 FLAGS (\\Recent))";
        let m = parse_fetch(r).unwrap().unwrap();
        assert_eq!(m.uid, 42);
        assert_eq!(m.header, b"A: b\r\n\r\n\r\n");
        assert_eq!(
            m.internal_date.unwrap().to_rfc3339(),
            "2019-01-02T17:40:34+00:00"
        );
        assert!(parse_fetch(b"3 FETCH (FLAGS (\\Seen))").unwrap().is_none());
        assert!(parse_fetch(b"3 FETCH (UID 1 BODY[HEADER] {99}\r\nshort)").is_err());
    }

    #[test]
    fn deeply_nested_unknown_items_are_skipped_without_recursion() {
        // 200,000 levels would overflow the stack of a recursive skip.
        let n = 200_000;
        let mut r = b"1 FETCH (UID 5 X-JUNK ".to_vec();
        r.extend(std::iter::repeat_n(b'(', n));
        r.extend(std::iter::repeat_n(b')', n));
        r.extend_from_slice(b" BODY[HEADER] {2}\r\nAB)");
        let m = parse_fetch(&r).unwrap().unwrap();
        assert_eq!((m.uid, m.header), (5, &b"AB"[..]));
        // Unclosed nesting is an error, not a hang or a panic.
        let mut r = b"1 FETCH (UID 5 X-JUNK ".to_vec();
        r.extend(std::iter::repeat_n(b'(', n));
        assert!(parse_fetch(&r).is_err());
        // Lists with values and spaces inside still skip as before.
        let m = parse_fetch(
            b"2 FETCH (FLAGS (\\Seen (a \"b c\" {1}\r\nd)) UID 6 BODY[HEADER] {0}\r\n)",
        )
        .unwrap()
        .unwrap();
        assert_eq!(m.uid, 6);
    }

    #[test]
    fn list_lines() {
        let f = parse_list(b"(\\HasNoChildren \\Junk) \"/\" \"Junk Email\"").unwrap();
        assert_eq!(f.name, "Junk Email");
        assert!(f.has_flag("\\junk"));
        let f = parse_list(b"() NIL INBOX").unwrap();
        assert_eq!(f.name, "INBOX");
        let f = parse_list(b"(\\Junk) \"/\" {4}\r\nSpam").unwrap();
        assert_eq!(f.name, "Spam");
    }

    #[test]
    fn astrings_quote_or_literal() {
        let mut p = Vec::new();
        push_astring(&mut p, b"a\"b\\c");
        match &p[0] {
            Part::Raw(b) => assert_eq!(b, b"\"a\\\"b\\\\c\""),
            _ => panic!("expected quoted"),
        }
        let mut p = Vec::new();
        push_astring(&mut p, "pässword".as_bytes());
        assert!(matches!(p[0], Part::Literal(_)));
    }
}
