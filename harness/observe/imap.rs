//! A focused IMAP4rev1 client over tokio and rustls: the one IMAP client of the harness.
//!
//! It speaks exactly what observation, `verify` and `confirm` need: CAPABILITY, STARTTLS, LOGIN,
//! AUTHENTICATE XOAUTH2, LIST, SELECT/EXAMINE, UID SEARCH, UID FETCH, UID STORE, UID EXPUNGE and
//! LOGOUT. Responses are read whole, literals included, and parsed without copying the literal
//! bodies, so a 10,000-message header fetch stays small and fast. Nothing here logs or returns a
//! command's text, because LOGIN and AUTHENTICATE carry secrets.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::token::Secret;
use super::ObserveError;
use crate::scenario::target::ImapTls;

/// The largest literal accepted from a server: guards memory against a hostile or broken peer.
const MAX_LITERAL: usize = 64 * 1024 * 1024;
/// The longest line (outside literals) accepted from a server.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// UIDs per UID FETCH/STORE/EXPUNGE command: keeps command lines short even for sparse sets.
pub const UID_CHUNK: usize = 2000;

/// How a tagged command completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`: the server refused the operation.
    No,
    /// `BAD`: the server did not understand the command.
    Bad,
}

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

/// The transport under the IMAP session.
enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while STARTTLS swaps the stream.
    Closed,
}

impl Conn {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(data).await,
            Conn::Tls(s) => {
                s.write_all(data).await?;
                // rustls buffers records; flush so the command actually leaves.
                s.flush().await
            }
            Conn::Closed => Err(std::io::Error::from(std::io::ErrorKind::NotConnected)),
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Closed => Err(std::io::Error::from(std::io::ErrorKind::NotConnected)),
        }
    }
}

/// An authenticated-or-not IMAP session.
pub struct ImapClient {
    conn: Conn,
    /// `host:port`, for error messages.
    server: String,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
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
            conn: Conn::Plain(tcp),
            server,
            buf: vec![0; 64 * 1024],
            pos: 0,
            end: 0,
            tag: 0,
            caps: None,
            timeout: opts.timeout,
            tls: None,
        };
        if opts.tls == ImapTls::Implicit {
            client.start_tls(opts).await?;
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
            client.pos = 0;
            client.end = 0;
            client.start_tls(opts).await?;
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

    async fn start_tls(&mut self, opts: &ConnectOptions) -> Result<(), ObserveError> {
        let config = opts.tls_config.clone().ok_or_else(|| {
            ObserveError::Config("TLS requested but no TLS configuration given".into())
        })?;
        let name = match opts.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(opts.host.clone()).map_err(|e| {
                ObserveError::Config(format!("invalid IMAP host name {:?}: {e}", opts.host))
            })?,
        };
        let tcp = match std::mem::replace(&mut self.conn, Conn::Closed) {
            Conn::Plain(t) => t,
            _ => {
                return Err(ObserveError::Protocol(
                    "TLS is already active on this connection".into(),
                ))
            }
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
        self.tls = Some((version, cipher));
        self.conn = Conn::Tls(Box::new(tls));
        Ok(())
    }

    async fn read_greeting(&mut self) -> Result<(), ObserveError> {
        let line = self.read_response().await?;
        let text = String::from_utf8_lossy(&line);
        let upper = text.to_ascii_uppercase();
        if upper.starts_with("* OK") || upper.starts_with("* PREAUTH") {
            self.caps = capability_code(&text);
            Ok(())
        } else if upper.starts_with("* BYE") {
            Err(ObserveError::Protocol(format!(
                "IMAP server {} refused the connection: {}",
                self.server,
                server_text(&text)
            )))
        } else {
            Err(ObserveError::Protocol(format!(
                "IMAP server {} sent an unexpected greeting: {}",
                self.server,
                server_text(&text)
            )))
        }
    }

    /// The server's capabilities (asked for when not known yet), upper-cased.
    pub async fn capabilities(&mut self) -> Result<&[String], ObserveError> {
        if self.caps.is_none() {
            let mut caps = Vec::new();
            let done = self
                .run("CAPABILITY", |resp| {
                    if let Some(rest) = strip_prefix_ci(resp, b"CAPABILITY ") {
                        caps.extend(
                            String::from_utf8_lossy(rest)
                                .split_ascii_whitespace()
                                .map(|s| s.to_ascii_uppercase()),
                        );
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
                self.caps = capability_code(&done.text);
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
            let resp = self.read_response().await?;
            if resp.first() == Some(&b'+') {
                if !sent_initial {
                    let mut line = initial.clone().into_bytes();
                    line.extend_from_slice(b"\r\n");
                    self.send(&line).await?;
                    sent_initial = true;
                } else {
                    // The error challenge: note what it says (it holds no secret), answer empty.
                    challenge_note = decode_challenge(&resp);
                    self.send(b"\r\n").await?;
                }
                continue;
            }
            if resp.starts_with(b"* ") {
                if let Some(rest) = strip_prefix_ci(&resp[2..], b"CAPABILITY ") {
                    self.caps = Some(
                        String::from_utf8_lossy(rest)
                            .split_ascii_whitespace()
                            .map(|s| s.to_ascii_uppercase())
                            .collect(),
                    );
                }
                continue;
            }
            if let Some(done) = parse_tagged(&resp, &tag) {
                return match done.status {
                    Status::Ok => {
                        self.caps = capability_code(&done.text);
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
                if let Some(rest) = strip_prefix_ci(resp, b"LIST ") {
                    folders.push(parse_list(rest)?);
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
                let text = String::from_utf8_lossy(resp);
                let upper = text.to_ascii_uppercase();
                if let Some(i) = upper.find("[UIDVALIDITY ") {
                    let digits: String = upper[i + 13..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    status.uidvalidity = digits.parse().ok();
                } else if let Some(n) = upper.strip_suffix(" EXISTS") {
                    status.exists = n.trim().parse().unwrap_or(0);
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
        status.read_only = done.text.to_ascii_uppercase().contains("[READ-ONLY]");
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
                if let Some(rest) = strip_prefix_ci(resp, b"SEARCH") {
                    for n in rest.split(|b| *b == b' ').filter(|s| !s.is_empty()) {
                        // A trailing "(MODSEQ n)" (CONDSTORE) is not a UID: stop there.
                        if n.first() == Some(&b'(') {
                            break;
                        }
                        uids.push(parse_u32(n).ok_or_else(|| {
                            ObserveError::Protocol(format!(
                                "bad UID in SEARCH response: {}",
                                server_text(&String::from_utf8_lossy(n))
                            ))
                        })?);
                    }
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
                uid_set(chunk)
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
            let cmd = format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", uid_set(chunk));
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
            let cmd = format!("UID EXPUNGE {}", uid_set(chunk));
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
        let has_literals = parts.iter().any(|p| matches!(p, Part::Literal(_)));
        // Only use known capabilities here (asking would recurse); synchronizing literals
        // always work.
        let literal_plus = has_literals
            && self
                .caps
                .as_ref()
                .is_some_and(|c| c.iter().any(|x| x == "LITERAL+"));
        let tag = self.next_tag();
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        for part in parts {
            match part {
                Part::Raw(b) => out.extend_from_slice(b),
                Part::Literal(b) => {
                    if literal_plus {
                        let _ = write!(LenWriter(&mut out), "{{{}+}}\r\n", b.len());
                        out.extend_from_slice(b);
                    } else {
                        let _ = write!(LenWriter(&mut out), "{{{}}}\r\n", b.len());
                        self.send(&out).await?;
                        out.clear();
                        // Wait for the go-ahead; untagged data may come first.
                        loop {
                            let resp = self.read_response().await?;
                            if resp.first() == Some(&b'+') {
                                break;
                            }
                            if resp.starts_with(b"* ") {
                                on_untagged(&resp[2..])?;
                                continue;
                            }
                            if let Some(done) = parse_tagged(&resp, &tag) {
                                return Ok(done);
                            }
                        }
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        self.send(&out).await?;
        loop {
            let (start, end) = self.read_response_range().await?;
            let resp = &self.buf[start..end];
            if resp.starts_with(b"* ") {
                on_untagged(&resp[2..])?;
                continue;
            }
            if let Some(done) = parse_tagged(resp, &tag) {
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

    async fn send(&mut self, data: &[u8]) -> Result<(), ObserveError> {
        let server = &self.server;
        tokio::time::timeout(self.timeout, self.conn.write_all(data))
            .await
            .map_err(|_| ObserveError::Timeout(format!("writing to IMAP server {server}")))?
            .map_err(|e| ObserveError::Io {
                context: format!("writing to IMAP server {server}"),
                source: e,
            })
    }

    /// Reads one whole response (literals included) and returns a copy of it.
    async fn read_response(&mut self) -> Result<Vec<u8>, ObserveError> {
        let (s, e) = self.read_response_range().await?;
        Ok(self.buf[s..e].to_vec())
    }

    /// Reads one whole response and returns its range in the buffer (valid until the next read).
    async fn read_response_range(&mut self) -> Result<(usize, usize), ObserveError> {
        // `scan` counts from `pos`, so compaction inside `fill` never invalidates it.
        let mut scan = 0usize;
        loop {
            let window = &self.buf[self.pos + scan..self.end];
            if let Some(i) = memchr::memmem::find(window, b"\r\n") {
                let line_end = self.pos + scan + i;
                let line = &self.buf[self.pos + scan..line_end];
                if let Some(n) = literal_len(line) {
                    if n > MAX_LITERAL {
                        return Err(ObserveError::Protocol(format!(
                            "IMAP server {} announced a {n}-byte literal (limit {MAX_LITERAL})",
                            self.server
                        )));
                    }
                    let need = line_end + 2 + n - self.pos;
                    while self.end - self.pos < need {
                        self.fill(need).await?;
                    }
                    scan = need;
                    continue;
                }
                let start = self.pos;
                self.pos = line_end + 2;
                return Ok((start, line_end));
            }
            scan = (self.end - self.pos).saturating_sub(1).max(scan);
            if self.end - self.pos > MAX_LINE + MAX_LITERAL {
                return Err(ObserveError::Protocol(format!(
                    "IMAP server {} sent an over-long response",
                    self.server
                )));
            }
            let want = self.end - self.pos + 1;
            self.fill(want).await?;
        }
    }

    /// Reads more bytes so that at least `want` bytes from `pos` can be held; compacts first.
    async fn fill(&mut self, want: usize) -> Result<(), ObserveError> {
        if self.pos > 0 && (self.buf.len() - self.end < 16 * 1024 || self.pos == self.end) {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let needed = (self.pos + want).max(self.end + 16 * 1024);
        if self.buf.len() < needed {
            let grow = needed.max(self.buf.len() * 2);
            self.buf.resize(grow, 0);
        }
        let server = &self.server;
        let end = self.end;
        let n = tokio::time::timeout(self.timeout, self.conn.read(&mut self.buf[end..]))
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
        self.end += n;
        // Shrink back after a huge literal so one big message doesn't pin memory.
        if self.pos == self.end && self.buf.len() > 1024 * 1024 {
            self.buf.truncate(64 * 1024);
            self.buf.shrink_to_fit();
            self.pos = 0;
            self.end = 0;
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

/// `fmt::Write` into a byte vector (for literal headers).
struct LenWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for LenWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `s` as an IMAP astring: quoted when it can be, a literal otherwise.
pub fn push_astring(parts: &mut Vec<Part>, s: &[u8]) {
    let quotable = s
        .iter()
        .all(|&b| b.is_ascii() && b != b'\r' && b != b'\n' && b != 0);
    if quotable {
        let mut q = Vec::with_capacity(s.len() + 2);
        q.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                q.push(b'\\');
            }
            q.push(b);
        }
        q.push(b'"');
        parts.push(Part::Raw(q));
    } else {
        parts.push(Part::Literal(s.to_vec()));
    }
}

/// The forms in which LOGIN sends a password: raw (in a literal) and quoted with escapes.
fn login_forms(password: &Secret) -> Vec<String> {
    let raw = password.expose();
    let quoted = raw.replace('\\', "\\\\").replace('"', "\\\"");
    vec![raw.to_string(), quoted]
}

/// A compact UID set (`1:5,7,9:12`) of sorted, de-duplicated UIDs.
pub fn uid_set(sorted: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j].wrapping_add(1) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            let _ = write!(out, "{start}:{}", sorted[j]);
        } else {
            let _ = write!(out, "{start}");
        }
        i = j + 1;
    }
    out
}

/// The announced length when a line ends with a literal marker `{n}`, `{n+}` or `~{n}`.
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', body)?;
    let mut digits = &body[open + 1..];
    if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
    }
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn parse_tagged(resp: &[u8], tag: &str) -> Option<Completion> {
    let rest = resp.strip_prefix(tag.as_bytes())?.strip_prefix(b" ")?;
    let (status, text) = if let Some(t) = strip_prefix_ci(rest, b"OK") {
        (Status::Ok, t)
    } else if let Some(t) = strip_prefix_ci(rest, b"NO") {
        (Status::No, t)
    } else if let Some(t) = strip_prefix_ci(rest, b"BAD") {
        (Status::Bad, t)
    } else {
        return None;
    };
    Some(Completion {
        status,
        text: String::from_utf8_lossy(text).trim().to_string(),
    })
}

/// The capabilities in a `[CAPABILITY …]` response code, if present.
fn capability_code(text: &str) -> Option<Vec<String>> {
    let upper = text.to_ascii_uppercase();
    let start = upper.find("[CAPABILITY ")? + 12;
    let end = start + upper[start..].find(']')?;
    Some(
        upper[start..end]
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
    )
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

/// A cursor over one response, for the few grammar pieces needed (RFC 3501 §9).
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> ObserveError {
        let ctx = String::from_utf8_lossy(&self.b[self.i.min(self.b.len())..]);
        ObserveError::Protocol(format!("cannot parse {what} near: {}", server_text(&ctx)))
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// An atom-like run up to a space or parenthesis; a `[...]` section is kept whole.
    fn atom(&mut self) -> &'a [u8] {
        let start = self.i;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' if depth == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    fn quoted(&mut self) -> Result<Vec<u8>, ObserveError> {
        if !self.eat(b'"') {
            return Err(self.err("a quoted string"));
        }
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        Err(self.err("a closed quoted string"))
    }

    fn literal(&mut self) -> Result<&'a [u8], ObserveError> {
        let start = self.i;
        if !self.eat(b'{') {
            return Err(self.err("a literal"));
        }
        let close = memchr::memchr(b'}', &self.b[self.i..]).ok_or_else(|| self.err("a literal"))?;
        let n = parse_u32(&self.b[self.i..self.i + close])
            .ok_or_else(|| self.err("a literal length"))? as usize;
        self.i += close + 1;
        if !self.b[self.i..].starts_with(b"\r\n") {
            self.i = start;
            return Err(self.err("a literal"));
        }
        self.i += 2;
        let body = self
            .b
            .get(self.i..self.i + n)
            .ok_or_else(|| self.err("a complete literal"))?;
        self.i += n;
        Ok(body)
    }

    /// nstring / astring: quoted, literal, NIL (empty) or atom.
    fn string(&mut self) -> Result<std::borrow::Cow<'a, [u8]>, ObserveError> {
        match self.peek() {
            Some(b'"') => Ok(std::borrow::Cow::Owned(self.quoted()?)),
            Some(b'{') => Ok(std::borrow::Cow::Borrowed(self.literal()?)),
            Some(b'~') => {
                self.i += 1;
                Ok(std::borrow::Cow::Borrowed(self.literal()?))
            }
            _ => {
                let a = self.atom();
                if a.eq_ignore_ascii_case(b"NIL") {
                    Ok(std::borrow::Cow::Borrowed(&[]))
                } else {
                    Ok(std::borrow::Cow::Borrowed(a))
                }
            }
        }
    }

    /// Skips any value: atom, number, string, literal or nested list.
    ///
    /// Iterative, not recursive: a server could nest lists deeply enough to overflow the stack.
    fn skip_value(&mut self) -> Result<(), ObserveError> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'(') => {
                    self.i += 1;
                    depth += 1;
                }
                Some(b')') if depth > 0 => {
                    self.i += 1;
                    depth -= 1;
                }
                Some(b'"') | Some(b'{') | Some(b'~') => {
                    self.string()?;
                }
                Some(_) => {
                    if self.atom().is_empty() {
                        return Err(self.err("a value"));
                    }
                }
                None if depth > 0 => return Err(self.err("a closed list")),
                None => return Err(self.err("a value")),
            }
            if depth == 0 {
                return Ok(());
            }
            self.skip_spaces();
        }
    }
}

/// Parses the rest of a `LIST` response: `(flags) "delim" name`.
fn parse_list(rest: &[u8]) -> Result<Folder, ObserveError> {
    let mut c = Cursor { b: rest, i: 0 };
    if !c.eat(b'(') {
        return Err(c.err("LIST flags"));
    }
    let mut flags = Vec::new();
    loop {
        c.skip_spaces();
        if c.eat(b')') {
            break;
        }
        let a = c.atom();
        if a.is_empty() {
            return Err(c.err("LIST flags"));
        }
        flags.push(String::from_utf8_lossy(a).into_owned());
    }
    c.skip_spaces();
    c.string()?; // the hierarchy delimiter (or NIL)
    c.skip_spaces();
    let name = c.string()?;
    Ok(Folder {
        name: String::from_utf8_lossy(&name).into_owned(),
        flags,
    })
}

/// Parses `n FETCH (...)`; `None` for FETCH responses without a header section (flag updates).
fn parse_fetch(resp: &[u8]) -> Result<Option<FetchedHeaders<'_>>, ObserveError> {
    let mut c = Cursor { b: resp, i: 0 };
    let num = c.atom();
    if parse_u32(num).is_none() {
        return Ok(None);
    }
    c.skip_spaces();
    if !c.atom().eq_ignore_ascii_case(b"FETCH") {
        return Ok(None);
    }
    c.skip_spaces();
    if !c.eat(b'(') {
        return Err(c.err("a FETCH response"));
    }
    let mut uid = None;
    let mut internal_date = None;
    let mut header: Option<&[u8]> = None;
    loop {
        c.skip_spaces();
        if c.eat(b')') {
            break;
        }
        let key = c.atom();
        if key.is_empty() {
            return Err(c.err("a FETCH item"));
        }
        c.skip_spaces();
        if key.eq_ignore_ascii_case(b"UID") {
            uid = Some(parse_u32(c.atom()).ok_or_else(|| c.err("a UID"))?);
        } else if key.eq_ignore_ascii_case(b"INTERNALDATE") {
            let raw = c.string()?;
            internal_date = parse_internal_date(&String::from_utf8_lossy(&raw));
        } else if strip_prefix_ci(key, b"BODY[").is_some() {
            match c.peek() {
                Some(b'{') | Some(b'~') => {
                    if c.peek() == Some(b'~') {
                        c.i += 1;
                    }
                    header = Some(c.literal()?);
                }
                _ => {
                    // Quoted or NIL: rare for headers, but legal.
                    let s = c.string()?;
                    if let std::borrow::Cow::Borrowed(b) = s {
                        header = Some(b);
                    } else {
                        // A quoted header has no CRLFs; treat it as empty rather than copy.
                        header = Some(&[]);
                    }
                }
            }
        } else {
            c.skip_value()?;
        }
    }
    match (uid, header) {
        (Some(uid), Some(header)) => Ok(Some(FetchedHeaders {
            uid,
            internal_date,
            header,
        })),
        _ => Ok(None),
    }
}

/// Parses an INTERNALDATE such as `17-Jul-1996 02:44:25 -0700` (day may be space-padded).
pub fn parse_internal_date(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compress_runs() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len(b"x {3+}"), Some(3));
        assert_eq!(literal_len(b"x {}"), None);
        assert_eq!(literal_len(b"x {a}"), None);
        assert_eq!(literal_len(b"x"), None);
    }

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
