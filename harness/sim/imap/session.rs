//! One IMAP connection: greeting, STARTTLS, authentication, folder commands.
//!
//! Replies follow Exchange Online's wording where it is public (`LOGIN completed.`,
//! `NO AUTHENTICATE failed.`, the XOAUTH2 failure challenge); everything malformed gets a
//! tagged `BAD` (untagged when not even a tag could be read) and the session goes on.
//!
//! Blocking work: a folder's first open (which indexes every file) and creating a mailbox's
//! folders at login run on tokio's blocking threads. Rescans, per-message file operations (FETCH
//! reads, STORE renames, EXPUNGE unlinks) and SEARCH stay on the session's thread: a thread hop
//! cost more than it saved, measured (see `refresh` and `search`).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::folder::{self, header_len, lock, FolderIndex};
use super::parse::Command;
use super::parse::{
    flag, parse_command, CommandReader, FetchAtt, Frame, Line, SearchKey, Section, SeqSet,
    StoreMode, MAX_LINE,
};
use super::{responses, ImapShared};
use crate::sim::SimError;

/// A mailbox folder as Exchange Online names it, with its Maildir++ directory and SPECIAL-USE flag.
#[derive(Debug, Clone, Copy)]
pub struct FolderDef {
    /// The IMAP name.
    pub name: &'static str,
    /// The Maildir++ sub-directory (empty for INBOX).
    pub dir: &'static str,
    /// RFC 6154 attribute.
    pub special_use: Option<&'static str>,
}

/// Exchange's folders (reference: `INBOX`, `Junk Email` `\Junk`, `Deleted Items` `\Trash`,
/// `Sent Items`, `Drafts`), in Exchange's LIST order (alphabetical).
pub const FOLDERS: [FolderDef; 5] = [
    FolderDef {
        name: "Deleted Items",
        dir: ".Deleted Items",
        special_use: Some("\\Trash"),
    },
    FolderDef {
        name: "Drafts",
        dir: ".Drafts",
        special_use: Some("\\Drafts"),
    },
    FolderDef {
        name: "INBOX",
        dir: "",
        special_use: None,
    },
    FolderDef {
        name: "Junk Email",
        dir: ".Junk Email",
        special_use: Some("\\Junk"),
    },
    FolderDef {
        name: "Sent Items",
        dir: ".Sent Items",
        special_use: Some("\\Sent"),
    },
];

/// The `\Recent` flag name (session-only, never stored).
const RECENT: &str = "\\Recent";
/// The SASL continuation with an empty challenge.
const EMPTY_CHALLENGE: &[u8] = b"+ \r\n";
/// The scope in the XOAUTH2 failure challenge (as the brief for Microsoft's gives it).
const XOAUTH2_SCOPE: &str = "https://outlook.office.com/.default";
/// Flush the output buffer once it holds this much (FETCH of many bodies streams).
const OUT_FLUSH: usize = 256 * 1024;
/// How often IDLE looks for new mail.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(500);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What ends a pass of the command loop.
enum End<S> {
    /// LOGOUT, EOF, timeout, shutdown or a write error.
    Closed,
    /// STARTTLS accepted: continue over TLS with this stream.
    StartTls(S),
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<ImapShared>,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    tracing::debug!("IMAP connection from {peer} (implicit TLS: {implicit_tls})");
    if implicit_tls {
        let Some(acceptor) = shared.tls.clone() else {
            return;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                Session::new(tls, shared, true, shutdown).run(true).await;
            }
            Ok(Err(e)) => tracing::debug!("IMAPS handshake with {peer} failed: {e}"),
            Err(_) => tracing::debug!("IMAPS handshake with {peer} timed out"),
        }
        return;
    }
    let session = Session::new(stream, shared.clone(), false, shutdown.clone());
    if let End::StartTls(stream) = session.run(true).await {
        let Some(acceptor) = shared.tls.clone() else {
            return;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                Session::new(tls, shared, true, shutdown).run(false).await;
            }
            Ok(Err(e)) => tracing::debug!("STARTTLS handshake with {peer} failed: {e}"),
            Err(_) => tracing::debug!("STARTTLS handshake with {peer} timed out"),
        }
    }
}

/// The selected folder as this session sees it.
struct Selected {
    index: Arc<Mutex<FolderIndex>>,
    read_only: bool,
    /// The session's message sequence: UIDs, ascending; position + 1 = sequence number.
    uids: Vec<u32>,
    /// UIDs this session reports as `\Recent`.
    recent: HashSet<u32>,
}

impl Selected {
    /// `(seq, uid)` pairs named by a set, ascending; `Err` for a sequence number out of range.
    fn targets(&self, uid_mode: bool, set: &SeqSet) -> Result<Vec<(usize, u32)>, String> {
        if uid_mode {
            let ranges = set.resolve(self.uids.last().copied().unwrap_or(0));
            Ok(self
                .uids
                .iter()
                .enumerate()
                .filter(|(_, u)| ranges.iter().any(|&(a, b)| (a..=b).contains(*u)))
                .map(|(i, &u)| (i + 1, u))
                .collect())
        } else {
            let n = self.uids.len() as u32;
            if set.max_explicit() > n {
                return Err(format!(
                    "Invalid messageset: the mailbox has {n} message(s)"
                ));
            }
            let ranges = set.resolve(n);
            Ok(self
                .uids
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let s = *i as u32 + 1;
                    ranges.iter().any(|&(a, b)| (a..=b).contains(&s))
                })
                .map(|(i, &u)| (i + 1, u))
                .collect())
        }
    }
}

struct Session<S> {
    r: CommandReader<S>,
    out: Vec<u8>,
    shared: Arc<ImapShared>,
    tls: bool,
    user: Option<String>,
    selected: Option<Selected>,
    shutdown: watch::Receiver<bool>,
}

/// What a command handler tells the loop.
enum Flow {
    Continue,
    Logout,
    StartTls,
}

fn quote(s: &str) -> String {
    let atom = !s.is_empty()
        && s.bytes()
            .all(|c| c > 0x20 && c < 0x7f && !b"(){%*\"\\]".contains(&c));
    if atom {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn flags_text(bits: u8, recent: bool) -> String {
    let mut v: Vec<&str> = flag::ALL
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|&(_, n)| n)
        .collect();
    if recent {
        v.push(RECENT);
    }
    format!("({})", v.join(" "))
}

fn internal_date(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("\"%d-%b-%Y %H:%M:%S +0000\"")
        .to_string()
}

fn utc_date(secs: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .date_naive()
}

/// Header fields (each with its continuation lines) of a header section.
fn fields(header: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut start = None;
    let mut i = 0;
    while i < header.len() {
        let end = memchr::memchr(b'\n', &header[i..]).map_or(header.len(), |p| i + p + 1);
        let line = &header[i..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            if let Some(s) = start {
                out.push(&header[s..i]);
            }
            start = Some(i);
        }
        i = end;
    }
    if let Some(s) = start {
        out.push(&header[s..i]);
    }
    out
}

fn field_name(f: &[u8]) -> &[u8] {
    let c = memchr::memchr(b':', f).unwrap_or(f.len());
    let mut n = &f[..c];
    while n.last().is_some_and(|b| b.is_ascii_whitespace()) {
        n = &n[..n.len() - 1];
    }
    n
}

/// Unfolded values of every field called `name`.
fn header_values(header: &[u8], name: &str) -> Vec<String> {
    fields(header)
        .into_iter()
        .filter(|f| field_name(f).eq_ignore_ascii_case(name.as_bytes()))
        .map(|f| {
            let c = memchr::memchr(b':', f).map_or(f.len(), |c| c + 1);
            String::from_utf8_lossy(&f[c..])
                .split(['\r', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let n = needle.to_ascii_lowercase();
    let h = hay.to_ascii_lowercase();
    memchr::memmem::find(&h, &n).is_some()
}

/// `BODY[HEADER.FIELDS (..)]` / `.NOT`: the chosen fields and the blank line.
fn select_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(header) {
        let n = field_name(f);
        let listed = names.iter().any(|x| n.eq_ignore_ascii_case(x.as_bytes()));
        if listed != not {
            out.extend_from_slice(f);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn mailbox_dir(root: &std::path::Path, address: &str) -> Option<PathBuf> {
    let (local, domain) = address.rsplit_once('@')?;
    let safe = |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\', '\0']);
    (safe(local) && safe(domain)).then(|| root.join(domain).join(local))
}

/// Matches a LIST pattern (`*` anything, `%` anything but the delimiter), case-insensitively.
///
/// Dynamic programming over the name, not recursion: a pattern of thousands of wildcards from
/// the network costs pattern × name steps, never deep recursion.
fn list_match(pattern: &[u8], name: &[u8]) -> bool {
    let n = name.len();
    // dp[j]: the pattern so far matches name[..j].
    let mut dp = vec![false; n + 1];
    dp[0] = true;
    for &pc in pattern {
        let mut next = vec![false; n + 1];
        match pc {
            b'*' => {
                let mut any = false;
                for j in 0..=n {
                    any |= dp[j];
                    next[j] = any;
                }
            }
            b'%' => {
                let mut any = false;
                for j in 0..=n {
                    if j > 0 && name[j - 1] == responses::DELIMITER.as_bytes()[0] {
                        any = false;
                    }
                    any |= dp[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n {
                    next[j] = dp[j - 1] && name[j - 1].eq_ignore_ascii_case(&c);
                }
            }
        }
        dp = next;
    }
    dp[n]
}

fn find_folder(name: &str) -> Option<&'static FolderDef> {
    FOLDERS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(io: S, shared: Arc<ImapShared>, tls: bool, shutdown: watch::Receiver<bool>) -> Self {
        Session {
            r: CommandReader::new(io),
            out: Vec::with_capacity(4096),
            shared,
            tls,
            user: None,
            selected: None,
            shutdown,
        }
    }

    fn push(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn line(&mut self, s: &str) {
        self.push(s);
        self.out.extend_from_slice(b"\r\n");
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.r.io.write_all(&self.out).await?;
            self.out.clear();
        }
        self.r.io.flush().await
    }

    async fn maybe_flush(&mut self) -> io::Result<()> {
        if self.out.len() >= OUT_FLUSH {
            self.r.io.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    fn capabilities(&self) -> String {
        // Exchange Online's list, plus SPECIAL-USE, ENABLE and STARTTLS (plain port only).
        let mut c = String::from("IMAP4 IMAP4rev1");
        if self.user.is_none() {
            c.push_str(" AUTH=PLAIN AUTH=XOAUTH2 SASL-IR");
        }
        c.push_str(" UIDPLUS ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+ SPECIAL-USE ENABLE");
        if !self.tls && self.shared.tls.is_some() && self.user.is_none() {
            c.push_str(" STARTTLS");
        }
        c
    }

    /// Runs the command loop; `greet` sends the greeting first (not after STARTTLS).
    async fn run(mut self, greet: bool) -> End<S> {
        if greet {
            self.line(&responses::greeting(&self.shared.server_name));
            if self.flush().await.is_err() {
                return End::Closed;
            }
        }
        loop {
            let idle = self.shared.idle_timeout;
            let mut shutdown = self.shutdown.clone();
            let frame = tokio::select! {
                r = tokio::time::timeout(idle, self.r.read_command()) => Some(r),
                _ = shutdown.wait_for(|v| *v) => None,
            };
            let Some(frame) = frame else {
                self.line(&responses::BYE_SHUTDOWN.untagged());
                let _ = self.flush().await;
                return End::Closed;
            };
            let frame = match frame {
                Err(_) => {
                    self.line(&responses::BYE_AUTOLOGOUT.untagged());
                    let _ = self.flush().await;
                    return End::Closed;
                }
                Ok(Err(_)) | Ok(Ok(Frame::Eof)) => return End::Closed,
                Ok(Ok(f)) => f,
            };
            let flow = match frame {
                Frame::Eof => return End::Closed,
                Frame::Rejected { tag, reason } => {
                    self.line(&responses::bad(tag.as_deref(), reason));
                    Flow::Continue
                }
                Frame::Command(bytes) => match parse_command(&bytes) {
                    None => {
                        self.line(&responses::MISSING_TAG.untagged());
                        Flow::Continue
                    }
                    Some((tag, Err(e))) => {
                        self.line(&responses::bad(Some(&tag), &e.to_string()));
                        Flow::Continue
                    }
                    Some((tag, Ok(cmd))) => match self.dispatch(&tag, cmd).await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::debug!("IMAP session ended: {e}");
                            return End::Closed;
                        }
                    },
                },
            };
            if self.flush().await.is_err() {
                return End::Closed;
            }
            match flow {
                Flow::Continue => {}
                Flow::Logout => return End::Closed,
                Flow::StartTls => {
                    // RFC 3501 §6.2.1 / RFC 3207-style injection: plaintext behind STARTTLS is dropped.
                    self.r.discard_buffered();
                    return End::StartTls(self.r.into_inner());
                }
            }
        }
    }

    async fn dispatch(&mut self, tag: &str, cmd: Command) -> io::Result<Flow> {
        if !self.allowed(&cmd) {
            self.line(&responses::INVALID_STATE.tagged(tag));
            return Ok(Flow::Continue);
        }
        match cmd {
            Command::Capability => {
                let c = self.capabilities();
                self.line(&responses::capability(&c));
                self.line(&responses::completed(tag, "CAPABILITY"));
            }
            Command::Noop | Command::Check => {
                self.sync(true);
                let name = if matches!(cmd, Command::Noop) {
                    "NOOP"
                } else {
                    "CHECK"
                };
                self.line(&responses::completed(tag, name));
            }
            Command::Logout => {
                self.line(&responses::BYE_LOGOUT.untagged());
                self.line(&responses::completed(tag, "LOGOUT"));
                return Ok(Flow::Logout);
            }
            Command::Id => {
                self.line(responses::ID);
                self.line(&responses::completed(tag, "ID"));
            }
            Command::Enable(_) => {
                // Nothing this server offers needs enabling (no CONDSTORE/UTF8=ACCEPT).
                self.line(responses::ENABLED);
                self.line(&responses::completed(tag, "ENABLE"));
            }
            Command::Namespace => {
                self.line(&responses::namespace());
                self.line(&responses::completed(tag, "NAMESPACE"));
            }
            Command::StartTls => return Ok(self.starttls(tag)),
            Command::Login(user, pass) => self.login(tag, &user, &pass).await,
            Command::Authenticate(mech, initial) => self.authenticate(tag, &mech, initial).await?,
            Command::Select(name, read_only) => self.select(tag, &name, read_only).await,
            Command::List {
                reference,
                patterns,
                special_only,
                lsub,
            } => self.list(tag, &reference, &patterns, special_only, lsub),
            Command::Status(name, items) => self.status(tag, &name, &items).await,
            Command::Subscribe(name) => {
                if find_folder(&name).is_some() {
                    self.line(&responses::completed(tag, "SUBSCRIBE"));
                } else {
                    self.line(&responses::NOT_FOUND.tagged(tag));
                }
            }
            Command::Close => self.close(tag, true),
            Command::Unselect => self.close(tag, false),
            Command::Expunge(set) => self.expunge(tag, set),
            Command::Search(uid, key) => self.search(tag, uid, key),
            Command::Fetch(uid, set, atts) => self.fetch(tag, uid, &set, atts).await?,
            Command::Store {
                uid,
                set,
                mode,
                silent,
                flags,
            } => self.store(tag, uid, &set, mode, silent, flags),
            Command::Idle => self.idle(tag).await?,
            Command::Unsupported(name) => {
                self.line(&responses::not_supported(tag, &name));
            }
        }
        Ok(Flow::Continue)
    }

    /// Whether the command is valid in the session's state (RFC 3501 §3, §6).
    fn allowed(&self, cmd: &Command) -> bool {
        let authed = self.user.is_some();
        let selected = self.selected.is_some();
        match cmd {
            Command::Capability | Command::Noop | Command::Logout | Command::Id => true,
            Command::StartTls | Command::Login(..) | Command::Authenticate(..) => !authed,
            Command::Check
            | Command::Close
            | Command::Unselect
            | Command::Expunge(_)
            | Command::Search(..)
            | Command::Fetch(..)
            | Command::Store { .. } => selected,
            _ => authed,
        }
    }

    fn starttls(&mut self, tag: &str) -> Flow {
        if self.tls || self.shared.tls.is_none() {
            self.line(&responses::STARTTLS_UNAVAILABLE.tagged(tag));
            Flow::Continue
        } else {
            self.line(&responses::BEGIN_TLS.tagged(tag));
            Flow::StartTls
        }
    }

    async fn login(&mut self, tag: &str, user: &[u8], pass: &[u8]) {
        let user = String::from_utf8_lossy(user).to_ascii_lowercase();
        if self.shared.credentials.check_password(&user, pass) {
            self.log_in(tag, user, "LOGIN").await;
        } else {
            tracing::info!("IMAP LOGIN failed for {user}");
            self.line(&responses::failed(tag, "LOGIN"));
        }
    }

    /// CLOSE (expunges `\Deleted` messages unless read-only) or UNSELECT (does not).
    fn close(&mut self, tag: &str, close: bool) {
        if close {
            if let Some(sel) = &self.selected {
                if !sel.read_only {
                    let all: Vec<u32> = sel.uids.clone();
                    if let Err(e) = expunge_deleted(sel, &all) {
                        tracing::warn!("IMAP CLOSE: {e}");
                    }
                }
            }
        }
        self.selected = None;
        let name = if close { "CLOSE" } else { "UNSELECT" };
        self.line(&responses::completed(tag, name));
    }

    /// Marks the session authenticated and makes sure the mailbox's folders exist on disk
    /// (on a blocking thread: up to 15 directories and 4 files are created).
    async fn log_in(&mut self, tag: &str, user: String, verb: &str) {
        let Some(base) = mailbox_dir(&self.shared.maildir_root, &user) else {
            self.line(&responses::failed(tag, verb));
            return;
        };
        let made = tokio::task::spawn_blocking(move || prepare_folders(&base))
            .await
            .unwrap_or_else(|e| Err(format!("the folder thread failed: {e}")));
        if let Err(e) = made {
            tracing::error!("IMAP: {e}");
            self.line(&responses::PREPARE_FAILED.tagged(tag));
            return;
        }
        tracing::info!("IMAP {verb} as {user}");
        self.user = Some(user);
        self.line(&responses::completed(tag, verb));
    }

    /// Reads one SASL response line; `None` when the client cancelled (`*`) or sent garbage.
    async fn sasl_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        match self.r.read_line(MAX_LINE).await? {
            Line::Line(l) => Ok(Some(l)),
            Line::TooLong(_) => Ok(None),
            Line::Eof => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "client closed during AUTHENTICATE",
            )),
        }
    }

    async fn authenticate(
        &mut self,
        tag: &str,
        mech: &str,
        initial: Option<Vec<u8>>,
    ) -> io::Result<()> {
        if mech != "PLAIN" && mech != "XOAUTH2" {
            self.line(&responses::unsupported_mechanism(tag, mech));
            return Ok(());
        }
        let response = match initial {
            // SASL-IR: "=" is an empty initial response.
            Some(r) if r == b"=" => Vec::new(),
            Some(r) => r,
            None => {
                self.out.extend_from_slice(EMPTY_CHALLENGE);
                self.flush().await?;
                match self.sasl_line().await? {
                    Some(l) if l != b"*" => l,
                    _ => {
                        self.line(&responses::AUTHENTICATE_ABORTED.tagged(tag));
                        return Ok(());
                    }
                }
            }
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(response.trim_ascii());
        if mech == "PLAIN" {
            let ok_user = decoded.ok().and_then(|d| {
                let parts: Vec<&[u8]> = d.split(|&b| b == 0).collect();
                let [authz, user, pass] = parts.as_slice() else {
                    return None;
                };
                let user = String::from_utf8_lossy(user).to_ascii_lowercase();
                let authz_ok = authz.is_empty() || authz.eq_ignore_ascii_case(user.as_bytes());
                (authz_ok && self.shared.credentials.check_password(&user, pass)).then_some(user)
            });
            match ok_user {
                Some(u) => self.log_in(tag, u, "AUTHENTICATE").await,
                None => self.line(&responses::failed(tag, "AUTHENTICATE")),
            }
            return Ok(());
        }
        // XOAUTH2: user=<mailbox>^Aauth=Bearer <token>^A^A
        let parsed = decoded.ok().and_then(|d| {
            let mut user = None;
            let mut token = None;
            for part in d.split(|&b| b == 1) {
                if let Some(u) = part.strip_prefix(b"user=") {
                    user = Some(String::from_utf8_lossy(u).to_ascii_lowercase());
                } else if let Some(a) = part.strip_prefix(b"auth=") {
                    if a.len() > 7 && a[..7].eq_ignore_ascii_case(b"Bearer ") {
                        token = Some(a[7..].to_vec());
                    }
                }
            }
            Some((user?, token?))
        });
        if let Some((user, token)) = parsed {
            if self.shared.credentials.check_token(&user, &token) {
                self.log_in(tag, user, "AUTHENTICATE").await;
                return Ok(());
            }
            tracing::info!("IMAP XOAUTH2 failed for {user}");
        }
        // Microsoft's failure: a JSON challenge the client answers with an empty line, then NO.
        let json =
            format!("{{\"status\":\"401\",\"schema\":\"Bearer\",\"scope\":\"{XOAUTH2_SCOPE}\"}}");
        let challenge = base64::engine::general_purpose::STANDARD.encode(json);
        self.line(&responses::continuation(&challenge));
        self.flush().await?;
        let _ = self.sasl_line().await?;
        self.line(&responses::failed(tag, "AUTHENTICATE"));
        Ok(())
    }

    fn folder_dir(&self, f: &FolderDef) -> Option<PathBuf> {
        let user = self.user.as_deref()?;
        Some(mailbox_dir(&self.shared.maildir_root, user)?.join(f.dir))
    }

    /// The folder's index, opened on first use: a first open reads the whole folder, so it
    /// runs on a blocking thread; later opens find it in the registry here.
    async fn open_folder(
        &self,
        name: &str,
    ) -> Result<(&'static FolderDef, Arc<Mutex<FolderIndex>>), String> {
        let f = find_folder(name).ok_or_else(|| responses::NOT_FOUND.text.to_string())?;
        let dir = self
            .folder_dir(f)
            .ok_or_else(|| responses::NOT_FOUND.text.to_string())?;
        if let Some(idx) = self.shared.registry.cached(&dir) {
            return Ok((f, idx));
        }
        let shared = self.shared.clone();
        let d = dir.clone();
        let opened = tokio::task::spawn_blocking(move || shared.registry.open(&d))
            .await
            .unwrap_or_else(|e| Err(SimError::Internal(format!("the folder thread failed: {e}"))));
        let idx = opened.map_err(|e| {
            tracing::error!("IMAP: opening {}: {e}", dir.display());
            responses::cannot_open(name, &e.to_string())
        })?;
        Ok((f, idx))
    }

    async fn select(&mut self, tag: &str, name: &str, read_only: bool) {
        // RFC 3501: a failed SELECT leaves no folder selected.
        self.selected = None;
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let (f, index) = match self.open_folder(name).await {
            Ok(v) => v,
            Err(msg) => {
                self.line(&responses::no(tag, &msg));
                return;
            }
        };
        if let Err(e) = refresh(&index) {
            tracing::error!("IMAP: {e}");
            self.line(&responses::server_bug(tag, &e.to_string()));
            return;
        }
        let (uids, recent, first_unseen, validity, next) = {
            let mut idx = lock(&index);
            let mut recent = HashSet::new();
            for e in idx.entries.iter_mut() {
                if e.recent {
                    e.recent = false;
                    recent.insert(e.uid);
                }
            }
            let uids: Vec<u32> = idx.entries.iter().map(|e| e.uid).collect();
            let first_unseen = idx
                .entries
                .iter()
                .position(|e| e.flags & flag::SEEN == 0)
                .map(|p| p + 1);
            (uids, recent, first_unseen, idx.uidvalidity, idx.uidnext)
        };
        let all = flags_text(flag::ALL.iter().fold(0, |a, (b, _)| a | b), false);
        self.line(&responses::exists(uids.len()));
        self.line(&responses::recent(recent.len()));
        self.line(&responses::flags(&all));
        if read_only {
            self.line(&responses::NO_PERMANENT_FLAGS.untagged());
        } else {
            self.line(&responses::permanent_flags(&all));
        }
        if let Some(u) = first_unseen {
            self.line(&responses::unseen(u));
        }
        self.line(&responses::uid_validity(validity));
        self.line(&responses::uid_next(next));
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        self.line(&responses::completed_with(tag, mode, verb));
        tracing::debug!("IMAP {verb} {}", f.name);
        self.selected = Some(Selected {
            index,
            read_only,
            uids,
            recent,
        });
    }

    fn list(
        &mut self,
        tag: &str,
        reference: &str,
        patterns: &[String],
        special_only: bool,
        lsub: bool,
    ) {
        let verb = if lsub { "LSUB" } else { "LIST" };
        for p in patterns {
            if p.is_empty() && !lsub {
                // RFC 3501: the hierarchy delimiter and root.
                self.line(&responses::list_root());
                continue;
            }
            let full = format!("{reference}{p}");
            for f in &FOLDERS {
                if special_only && f.special_use.is_none() {
                    continue;
                }
                if !list_match(full.as_bytes(), f.name.as_bytes()) {
                    continue;
                }
                let mut attrs = vec!["\\HasNoChildren"];
                attrs.extend(f.special_use);
                self.line(&responses::list_item(
                    verb,
                    &attrs.join(" "),
                    &quote(f.name),
                ));
            }
        }
        self.line(&responses::completed(tag, verb));
    }

    async fn status(&mut self, tag: &str, name: &str, items: &[String]) {
        let (_, index) = match self.open_folder(name).await {
            Ok(v) => v,
            Err(msg) => {
                self.line(&responses::no(tag, &msg));
                return;
            }
        };
        if let Err(e) = refresh(&index) {
            tracing::warn!("IMAP STATUS: {e}");
        }
        let mut parts = Vec::new();
        {
            let idx = lock(&index);
            for it in items {
                let v = match it.as_str() {
                    "MESSAGES" => idx.entries.len() as u64,
                    "RECENT" => idx.entries.iter().filter(|e| e.recent).count() as u64,
                    "UIDNEXT" => u64::from(idx.uidnext),
                    "UIDVALIDITY" => u64::from(idx.uidvalidity),
                    _ => idx
                        .entries
                        .iter()
                        .filter(|e| e.flags & flag::SEEN == 0)
                        .count() as u64,
                };
                parts.push(format!("{it} {v}"));
            }
        }
        self.line(&responses::status(&quote(name), &parts.join(" ")));
        self.line(&responses::completed(tag, "STATUS"));
    }

    /// Brings the session's view up to date: new mail (EXISTS/RECENT) and, when allowed,
    /// messages removed by other sessions or readers (EXPUNGE).
    fn sync(&mut self, expunges: bool) {
        let Some(index) = self.selected.as_ref().map(|s| s.index.clone()) else {
            return;
        };
        if let Err(e) = refresh(&index) {
            tracing::warn!("IMAP: {e}");
        }
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let mut lines = Vec::new();
        {
            let mut idx = lock(&sel.index);
            if expunges {
                for i in (0..sel.uids.len()).rev() {
                    let uid = sel.uids[i];
                    if idx.position(uid).is_none() {
                        sel.uids.remove(i);
                        sel.recent.remove(&uid);
                        lines.push(responses::expunge(i + 1));
                    }
                }
            }
            let last = sel.uids.last().copied().unwrap_or(0);
            let before = sel.uids.len();
            for e in idx.entries.iter_mut().filter(|e| e.uid > last) {
                sel.uids.push(e.uid);
                if e.recent {
                    e.recent = false;
                    sel.recent.insert(e.uid);
                }
            }
            if sel.uids.len() != before {
                lines.push(responses::exists(sel.uids.len()));
                lines.push(responses::recent(sel.recent.len()));
            }
        }
        for l in lines {
            self.line(&l);
        }
    }

    fn expunge(&mut self, tag: &str, set: Option<SeqSet>) {
        let verb = if set.is_some() {
            "UID EXPUNGE"
        } else {
            "EXPUNGE"
        };
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        if sel.read_only {
            self.line(&responses::READ_ONLY.tagged(tag));
            return;
        }
        let candidates: Vec<u32> = match &set {
            Some(s) => match sel.targets(true, s) {
                Ok(t) => t.into_iter().map(|(_, u)| u).collect(),
                Err(e) => {
                    self.line(&responses::bad(Some(tag), &e));
                    return;
                }
            },
            None => sel.uids.clone(),
        };
        let removed = match expunge_deleted(sel, &candidates) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("IMAP {verb}: {e}");
                self.line(&responses::server_bug(tag, &e.to_string()));
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let gone: HashSet<u32> = removed.into_iter().collect();
        let mut lines = Vec::new();
        for i in (0..sel.uids.len()).rev() {
            if gone.contains(&sel.uids[i]) {
                let uid = sel.uids.remove(i);
                sel.recent.remove(&uid);
                lines.push(responses::expunge(i + 1));
            }
        }
        for l in lines {
            self.line(&l);
        }
        if set.is_none() {
            self.sync(true);
        }
        self.line(&responses::completed(tag, verb));
    }

    /// SEARCH stays on the session's thread: after a folder's first search its headers are in
    /// the index, so a search is work in memory under the index lock. On a blocking thread it was
    /// slower (4 clients, 5,000 messages: 414 → 344 searches/s, benches/sim_ab.sh): a thread
    /// hop, copies of the session's view, and more threads contending for the one index lock.
    fn search(&mut self, tag: &str, uid_mode: bool, key: SearchKey) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        let hits = search_hits(&sel.index, &sel.uids, &sel.recent, &key, uid_mode);
        let mut line = String::from("* SEARCH");
        for h in hits {
            let _ = write!(line, " {h}");
        }
        self.line(&line);
        let verb = if uid_mode { "UID SEARCH" } else { "SEARCH" };
        self.line(&responses::completed(tag, verb));
    }

    fn store(
        &mut self,
        tag: &str,
        uid_mode: bool,
        set: &SeqSet,
        mode: StoreMode,
        silent: bool,
        bits: u8,
    ) {
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        if sel.read_only {
            self.line(&responses::READ_ONLY.tagged(tag));
            return;
        }
        let targets = match sel.targets(uid_mode, set) {
            Ok(t) => t,
            Err(e) => {
                self.line(&responses::bad(Some(tag), &e));
                return;
            }
        };
        let mut lines = Vec::new();
        let mut failed = None;
        {
            let mut idx = lock(&sel.index);
            for (seq, uid) in targets {
                let Some(pos) = idx.position(uid) else {
                    continue;
                };
                let old = idx.entries[pos].flags;
                let new = match mode {
                    StoreMode::Replace => bits,
                    StoreMode::Add => old | bits,
                    StoreMode::Remove => old & !bits,
                };
                if let Err(e) = set_flags_retry(&mut idx, uid, new) {
                    failed.get_or_insert(e);
                    continue;
                }
                if !silent {
                    let uid_part = if uid_mode {
                        format!(" UID {uid}")
                    } else {
                        String::new()
                    };
                    lines.push(format!(
                        "* {seq} FETCH (FLAGS {}{uid_part})",
                        flags_text(new, sel.recent.contains(&uid))
                    ));
                }
            }
        }
        for l in lines {
            self.line(&l);
        }
        match failed {
            Some(e) => {
                tracing::error!("IMAP STORE: {e}");
                self.line(&responses::server_bug(tag, &e.to_string()));
            }
            None => {
                let verb = if uid_mode { "UID STORE" } else { "STORE" };
                self.line(&responses::completed(tag, verb));
            }
        }
    }

    async fn fetch(
        &mut self,
        tag: &str,
        uid_mode: bool,
        set: &SeqSet,
        mut atts: Vec<FetchAtt>,
    ) -> io::Result<()> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let targets = match sel.targets(uid_mode, set) {
            Ok(t) => t,
            Err(e) => {
                self.line(&responses::bad(Some(tag), &e));
                return Ok(());
            }
        };
        if uid_mode && !atts.contains(&FetchAtt::Uid) {
            atts.insert(0, FetchAtt::Uid);
        }
        let needs = Needs::of(&atts, sel.read_only);
        let index = sel.index.clone();
        let mut failed = None;
        for (seq, uid) in targets {
            let recent = self
                .selected
                .as_ref()
                .is_some_and(|s| s.recent.contains(&uid));
            match fetch_one(&index, uid, &atts, &needs, recent) {
                Ok(Some(items)) => self.fetch_response(seq, &items),
                // Expunged by another session since this one last synced.
                Ok(None) => continue,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            }
            self.maybe_flush().await?;
        }
        match failed {
            Some(e) => {
                tracing::error!("IMAP FETCH: {e}");
                self.line(&responses::unreadable(tag, &e));
            }
            None => {
                let verb = if uid_mode { "UID FETCH" } else { "FETCH" };
                self.line(&responses::completed(tag, verb));
            }
        }
        Ok(())
    }

    /// `* <seq> FETCH (<item> <item> ...)` (RFC 3501 §7.4.2).
    fn fetch_response(&mut self, seq: usize, items: &[Vec<u8>]) {
        self.push(&format!("* {seq} FETCH ("));
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b' ');
            }
            self.out.extend_from_slice(it);
        }
        self.out.extend_from_slice(b")\r\n");
    }

    async fn idle(&mut self, tag: &str) -> io::Result<()> {
        self.line(&responses::continuation(responses::IDLE_ACCEPTED));
        self.flush().await?;
        let deadline = tokio::time::Instant::now() + self.shared.idle_timeout;
        loop {
            let mut shutdown = self.shutdown.clone();
            let event = tokio::select! {
                l = self.r.read_line(MAX_LINE) => IdleEvent::Line(l?),
                _ = tokio::time::sleep(IDLE_POLL) => IdleEvent::Tick,
                _ = shutdown.wait_for(|v| *v) => IdleEvent::Shutdown,
            };
            match event {
                IdleEvent::Line(Line::Line(l)) if l.eq_ignore_ascii_case(b"DONE") => {
                    self.line(&responses::completed(tag, "IDLE"));
                    return Ok(());
                }
                IdleEvent::Line(Line::Eof) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during IDLE",
                    ));
                }
                IdleEvent::Line(_) => {
                    self.line(&responses::EXPECTED_DONE.tagged(tag));
                    return Ok(());
                }
                IdleEvent::Tick => {
                    self.sync(true);
                    self.flush().await?;
                    if tokio::time::Instant::now() >= deadline {
                        self.line(&responses::BYE_AUTOLOGOUT.untagged());
                        self.flush().await?;
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "IDLE timed out"));
                    }
                }
                IdleEvent::Shutdown => {
                    self.line(&responses::BYE_SHUTDOWN.untagged());
                    self.flush().await?;
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "shutdown"));
                }
            }
        }
    }
}

/// Brings a folder's index up to date, here on the session's thread. Nothing changed costs two
/// `stat` calls; a rescan (only while mail arrives) lists the folder. On a blocking thread it was
/// worse on this 2-core machine (4 sessions polling NOOP on one 5,000-message folder while 5,000
/// more arrive, medians of 5 rounds: p50 0.40 → 0.49 ms, p99 34.8 → 46.4 ms, max 53 → 117 ms,
/// benches/sim_ab.sh): every poll must wait for the scan anyway, the folder's lock serialises
/// the scans, and more threads then contend for it and the two cores. The IMAP server has its own
/// runtime and thread, so SMTP sessions never wait behind a scan. The index stays behind a std
/// mutex (tokio's mini-redis `db.rs` reasoning): no critical section spans an `.await`.
fn refresh(index: &Mutex<FolderIndex>) -> Result<bool, SimError> {
    lock(index).refresh()
}

/// Creates a mailbox's Maildir++ folders where missing.
fn prepare_folders(base: &std::path::Path) -> Result<(), String> {
    for f in &FOLDERS {
        let d = base.join(f.dir);
        ["cur", "new", "tmp"]
            .iter()
            .try_for_each(|s| std::fs::create_dir_all(d.join(s)))
            .and_then(|_| {
                if f.dir.is_empty() || d.join("maildirfolder").exists() {
                    Ok(())
                } else {
                    std::fs::File::create(d.join("maildirfolder")).map(|_| ())
                }
            })
            .map_err(|e| format!("creating folder {}: {e}", d.display()))?;
    }
    Ok(())
}

/// The sequence numbers (or UIDs) of the session's messages that match `key`.
fn search_hits(
    index: &Mutex<FolderIndex>,
    uids: &[u32],
    recent: &HashSet<u32>,
    key: &SearchKey,
    uid_mode: bool,
) -> Vec<u32> {
    let mut idx = lock(index);
    let max_uid = uids.last().copied().unwrap_or(0);
    let count = uids.len() as u32;
    let mut hits = Vec::new();
    for (i, &uid) in uids.iter().enumerate() {
        let Some(pos) = idx.position(uid) else {
            continue;
        };
        let ctx = Ctx {
            seq: i as u32 + 1,
            uid,
            pos,
            max_uid,
            count,
            recent: recent.contains(&uid),
        };
        if matches(key, &ctx, &mut idx) {
            hits.push(if uid_mode { uid } else { ctx.seq });
        }
    }
    hits
}

/// What woke an IDLE wait.
enum IdleEvent {
    Line(Line),
    Tick,
    Shutdown,
}

/// What a FETCH needs from each message, worked out once per command.
struct Needs {
    /// A non-PEEK body section on a read-write folder sets `\Seen` (RFC 3501 §6.4.5).
    marks_seen: bool,
    body: bool,
    header: bool,
    size: bool,
}

impl Needs {
    fn of(atts: &[FetchAtt], read_only: bool) -> Needs {
        let any = |f: fn(&FetchAtt) -> bool| atts.iter().any(f);
        Needs {
            marks_seen: !read_only
                && any(|a| {
                    matches!(
                        a,
                        FetchAtt::Body { peek: false, .. }
                            | FetchAtt::Rfc822
                            | FetchAtt::Rfc822Text
                    )
                }),
            body: any(|a| {
                matches!(
                    a,
                    FetchAtt::Body {
                        section: Section::Full | Section::Text,
                        ..
                    } | FetchAtt::Rfc822
                        | FetchAtt::Rfc822Text
                )
            }),
            header: any(|a| {
                matches!(
                    a,
                    FetchAtt::Body {
                        section: Section::Header | Section::HeaderFields { .. },
                        ..
                    } | FetchAtt::Rfc822Header
                )
            }),
            size: atts.contains(&FetchAtt::Size),
        }
    }
}

/// The FETCH items of one message; `Ok(None)` when it was expunged meanwhile.
fn fetch_one(
    index: &Mutex<FolderIndex>,
    uid: u32,
    atts: &[FetchAtt],
    needs: &Needs,
    recent: bool,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    // Gather what the index knows, under its lock; read bodies without it.
    let gathered = {
        let mut idx = lock(index);
        gather(&mut idx, uid, needs.marks_seen, needs.header, needs.size)?
    };
    let Some(g) = gathered else {
        return Ok(None);
    };
    let body = if needs.body {
        match read_body(index, uid, &g.path)? {
            Some(b) => Some(b),
            None => return Ok(None),
        }
    } else {
        None
    };
    let mut items: Vec<Vec<u8>> = Vec::with_capacity(atts.len() + 1);
    for a in atts {
        items.push(fetch_item(
            a,
            uid,
            &g,
            body.as_deref().unwrap_or_default(),
            recent,
        ));
    }
    if g.seen_changed && !atts.contains(&FetchAtt::Flags) {
        items.push(format!("FLAGS {}", flags_text(g.flags, recent)).into_bytes());
    }
    Ok(Some(items))
}

/// One FETCH item (RFC 3501 §7.4.2).
fn fetch_item(a: &FetchAtt, uid: u32, g: &Gathered, body: &[u8], recent: bool) -> Vec<u8> {
    let mut item = Vec::new();
    let text = |b: &[u8]| header_len(b).unwrap_or(b.len());
    match a {
        FetchAtt::Uid => item.extend_from_slice(format!("UID {uid}").as_bytes()),
        FetchAtt::Flags => {
            item.extend_from_slice(format!("FLAGS {}", flags_text(g.flags, recent)).as_bytes())
        }
        FetchAtt::InternalDate => {
            item.extend_from_slice(format!("INTERNALDATE {}", internal_date(g.internal)).as_bytes())
        }
        FetchAtt::Size => {
            item.extend_from_slice(format!("RFC822.SIZE {}", g.size.unwrap_or(0)).as_bytes())
        }
        FetchAtt::Rfc822 => literal(&mut item, "RFC822", body),
        FetchAtt::Rfc822Header => literal(
            &mut item,
            "RFC822.HEADER",
            g.header.as_deref().unwrap_or_default(),
        ),
        FetchAtt::Rfc822Text => literal(&mut item, "RFC822.TEXT", &body[text(body)..]),
        FetchAtt::Body {
            section, partial, ..
        } => {
            let hdr = g.header.as_deref().unwrap_or_default();
            let (spec, data): (String, std::borrow::Cow<'_, [u8]>) = match section {
                Section::Full => (String::new(), body.into()),
                Section::Text => ("TEXT".into(), body[text(body)..].into()),
                Section::Header => ("HEADER".into(), hdr.into()),
                Section::HeaderFields { names, not } => (
                    format!(
                        "HEADER.FIELDS{} ({})",
                        if *not { ".NOT" } else { "" },
                        names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(" ")
                    ),
                    select_fields(hdr, names, *not).into(),
                ),
            };
            let (name, data) = match partial {
                None => (format!("BODY[{spec}]"), &data[..]),
                Some((origin, count)) => {
                    let s = (*origin as usize).min(data.len());
                    let e = s.saturating_add(*count as usize).min(data.len());
                    (format!("BODY[{spec}]<{origin}>"), &data[s..e])
                }
            };
            literal(&mut item, &name, data);
        }
    }
    item
}

/// Appends `NAME {n}\r\n<data>`.
fn literal(item: &mut Vec<u8>, name: &str, data: &[u8]) {
    item.extend_from_slice(format!("{name} {{{}}}\r\n", data.len()).as_bytes());
    item.extend_from_slice(data);
}

/// What FETCH needs from the index for one message.
struct Gathered {
    flags: u8,
    seen_changed: bool,
    internal: i64,
    size: Option<u64>,
    header: Option<Arc<[u8]>>,
    path: PathBuf,
}

fn gather(
    idx: &mut FolderIndex,
    uid: u32,
    marks_seen: bool,
    needs_header: bool,
    needs_size: bool,
) -> Result<Option<Gathered>, String> {
    let Some(pos) = idx.position(uid) else {
        return Ok(None);
    };
    let mut seen_changed = false;
    if marks_seen && idx.entries[pos].flags & flag::SEEN == 0 {
        let f = idx.entries[pos].flags | flag::SEEN;
        set_flags_retry(idx, uid, f)?;
        seen_changed = true;
    }
    let header = if needs_header {
        Some(retry_read(idx, uid, |idx, p| idx.header(p))?)
    } else {
        None
    };
    let size = if needs_size {
        Some(retry_read(idx, uid, |idx, p| idx.size(p))?)
    } else {
        None
    };
    // A read above may have rescanned the folder: look the message up again.
    let Some(pos) = idx.position(uid) else {
        return Ok(None);
    };
    let e = &idx.entries[pos];
    Ok(Some(Gathered {
        flags: e.flags,
        seen_changed,
        internal: e.internal,
        size,
        header,
        path: e.path(idx.dir()),
    }))
}

/// Runs a file read for `uid`; if the file moved (another reader renamed it), rescans once.
fn retry_read<T>(
    idx: &mut FolderIndex,
    uid: u32,
    mut f: impl FnMut(&mut FolderIndex, usize) -> io::Result<T>,
) -> Result<T, String> {
    for attempt in 0..2 {
        let Some(pos) = idx.position(uid) else {
            return Err(format!("UID {uid} disappeared"));
        };
        match f(idx, pos) {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt == 0 => {
                idx.refresh().map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(format!("reading UID {uid}: {e}")),
        }
    }
    Err(format!("UID {uid} could not be read"))
}

fn set_flags_retry(idx: &mut FolderIndex, uid: u32, flags: u8) -> Result<(), String> {
    for attempt in 0..2 {
        let Some(pos) = idx.position(uid) else {
            return Ok(());
        };
        match idx.set_flags(pos, flags) {
            Ok(()) => return Ok(()),
            Err(e) if attempt == 0 => {
                tracing::debug!("IMAP: {e}; rescanning");
                idx.refresh().map_err(|e| e.to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Reads a message body; `Ok(None)` if it was expunged meanwhile.
fn read_body(
    index: &Mutex<FolderIndex>,
    uid: u32,
    path: &std::path::Path,
) -> Result<Option<Vec<u8>>, String> {
    match folder::read_message(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut idx = lock(index);
            idx.refresh().map_err(|e| e.to_string())?;
            let Some(pos) = idx.position(uid) else {
                return Ok(None);
            };
            let p = idx.entries[pos].path(idx.dir());
            drop(idx);
            folder::read_message(&p)
                .map(Some)
                .map_err(|e| format!("reading {}: {e}", p.display()))
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Deletes the `\Deleted` messages among `candidates`; returns the UIDs removed.
fn expunge_deleted(sel: &Selected, candidates: &[u32]) -> Result<Vec<u32>, String> {
    let mut idx = lock(&sel.index);
    let doomed: Vec<u32> = candidates
        .iter()
        .copied()
        .filter(|&u| {
            idx.position(u)
                .is_some_and(|p| idx.entries[p].flags & flag::DELETED != 0)
        })
        .collect();
    idx.expunge(&doomed).map_err(|e| e.to_string())
}

/// Per-message facts for SEARCH.
struct Ctx {
    seq: u32,
    uid: u32,
    pos: usize,
    max_uid: u32,
    count: u32,
    recent: bool,
}

fn matches(key: &SearchKey, c: &Ctx, idx: &mut FolderIndex) -> bool {
    use SearchKey as K;
    let header = |idx: &mut FolderIndex| idx.header(c.pos).ok();
    let sent_date = |idx: &mut FolderIndex| -> Option<NaiveDate> {
        let h = idx.header(c.pos).ok()?;
        let v = header_values(&h, "Date").into_iter().next()?;
        DateTime::parse_from_rfc2822(&v)
            .ok()
            .map(|d| d.date_naive())
    };
    let body = |idx: &mut FolderIndex| -> Option<Vec<u8>> {
        folder::read_message(&idx.entries[c.pos].path(idx.dir())).ok()
    };
    let e_flags = idx.entries[c.pos].flags;
    let internal = utc_date(idx.entries[c.pos].internal);
    match key {
        K::All => true,
        K::And(ks) => ks.iter().all(|k| matches(k, c, idx)),
        K::Or(a, b) => matches(a, c, idx) || matches(b, c, idx),
        K::Not(k) => !matches(k, c, idx),
        K::Header(name, value) => header(idx).is_some_and(|h| {
            header_values(&h, name)
                .iter()
                .any(|v| contains_ci(v.as_bytes(), value.as_bytes()))
        }),
        K::Body(s) => body(idx).is_some_and(|b| {
            let start = header_len(&b).unwrap_or(b.len());
            contains_ci(&b[start..], s.as_bytes())
        }),
        K::Text(s) => body(idx).is_some_and(|b| contains_ci(&b, s.as_bytes())),
        K::Since(d) => internal >= *d,
        K::Before(d) => internal < *d,
        K::On(d) => internal == *d,
        K::SentSince(d) => sent_date(idx).is_some_and(|x| x >= *d),
        K::SentBefore(d) => sent_date(idx).is_some_and(|x| x < *d),
        K::SentOn(d) => sent_date(idx).is_some_and(|x| x == *d),
        K::Uid(set) => set.contains(c.uid, c.max_uid),
        K::Seq(set) => set.contains(c.seq, c.count),
        K::Flag(b, set) => (e_flags & b != 0) == *set,
        K::Keyword(k) => !*k,
        K::New => c.recent && e_flags & flag::SEEN == 0,
        K::Old => !c.recent,
        K::Recent => c.recent,
        K::Larger(n) => idx.size(c.pos).is_ok_and(|s| s > *n),
        K::Smaller(n) => idx.size(c.pos).is_ok_and(|s| s < *n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(list_match(b"*", b"Junk Email"));
        assert!(list_match(b"%", b"INBOX"));
        assert!(list_match(b"junk*", b"Junk Email"));
        assert!(list_match(b"inbox", b"INBOX"));
        assert!(!list_match(b"Sent", b"Sent Items"));
        assert!(!list_match(b"%", b"a/b"));
        assert!(list_match(b"a/%", b"a/b"));
        assert!(list_match(b"%/b", b"a/b"));
        assert!(!list_match(b"INBOX%x", b"INBOX"));
        let stars = vec![b'*'; 60_000];
        assert!(list_match(&stars, b"Junk Email"));
        assert_eq!(quote("INBOX"), "INBOX");
        assert_eq!(quote("Junk Email"), "\"Junk Email\"");
    }

    #[test]
    fn header_helpers() {
        let h = b"Subject: a\r\n b\r\nX-Forefront-Antispam-Report: CIP:1;\r\nsubject: c\r\n\r\n";
        assert_eq!(header_values(h, "SUBJECT"), vec!["a b", "c"]);
        assert_eq!(
            select_fields(h, &["x-forefront-antispam-report".into()], false),
            b"X-Forefront-Antispam-Report: CIP:1;\r\n\r\n"
        );
        assert_eq!(
            select_fields(h, &["Subject".into()], true),
            b"X-Forefront-Antispam-Report: CIP:1;\r\n\r\n"
        );
        assert!(contains_ci(b"CIP:127.0.0.1;SFV:NSPM", b"sfv:nspm"));
    }
}
