//! IMAP4rev1 command framing and parsing: the parts of RFC 3501 the simulator serves.
//!
//! [`CommandReader`] frames whole commands on the shared [`Framer`]: a line, and for each line
//! that ends in a literal marker `{n}` (synchronizing: the server answers `+`) or `{n+}`
//! (LITERAL+, RFC 7888) the `n` octets that follow and the rest of the command, literals in place.
//! Oversized lines and literals are discarded, never buffered, and reported as
//! [`Frame::Rejected`] so that the session answers a tagged `BAD` and goes on.
//!
//! [`parse_command`] reads a framed command with the IMAP grammar shared with the observer's
//! client ([`crate::wire::imap`]); what is here is which commands and arguments the simulator
//! serves, and the wording of its `BAD`s.

use std::io;

use chrono::NaiveDate;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::wire::frame::KEPT_PREFIX;
use crate::wire::imap::{literal_marker, perr, Cursor, Literal, PResult, ParseError};
pub use crate::wire::imap::{SeqNum, SeqSet};
use crate::wire::{Framer, Scan};

/// The longest command line (without literals) the server buffers.
pub const MAX_LINE: usize = 64 * 1024;
/// The most octets one command may carry, literals included.
pub const MAX_COMMAND: usize = 1024 * 1024;
/// The continuation request sent for a synchronizing literal.
const LITERAL_CONTINUATION: &[u8] = b"+ Ready for literal data\r\n";
/// Read chunk size.
const READ_CHUNK: usize = 16 * 1024;

/// One framed command, or why it was rejected.
#[derive(Debug)]
pub enum Frame {
    /// A whole command (tag, name, arguments, literals in place), without the final CRLF.
    Command(Vec<u8>),
    /// The command was too big or malformed at the framing level; it has been discarded.
    Rejected {
        /// The tag, when the start of the command had a valid one.
        tag: Option<String>,
        /// Why, for the `BAD` text.
        reason: &'static str,
    },
    /// The client closed the connection.
    Eof,
}

/// A line as read by [`CommandReader::read_line`].
#[derive(Debug)]
pub enum Line {
    /// The line without its CRLF (or bare LF).
    Line(Vec<u8>),
    /// Longer than allowed; discarded up to its end. Holds its first octets.
    TooLong(Vec<u8>),
    /// End of stream.
    Eof,
}

/// A body section: `BODY[<section>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Section {
    /// `[]`: the whole message.
    Full,
    /// `[HEADER]`.
    Header,
    /// `[HEADER.FIELDS (..)]` or `[HEADER.FIELDS.NOT (..)]`.
    HeaderFields {
        /// The field names as the client gave them.
        names: Vec<String>,
        /// `.NOT`.
        not: bool,
    },
    /// `[TEXT]`.
    Text,
}

/// One FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    /// `UID`.
    Uid,
    /// `FLAGS`.
    Flags,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822.SIZE`.
    Size,
    /// `BODY[..]`, `BODY.PEEK[..]`, with an optional `<origin.count>`.
    Body {
        /// Which part.
        section: Section,
        /// `<origin.count>`.
        partial: Option<(u32, u32)>,
        /// `.PEEK`: do not set `\Seen`.
        peek: bool,
    },
    /// `RFC822` (like `BODY[]`, named `RFC822` in the answer).
    Rfc822,
    /// `RFC822.HEADER` (like `BODY.PEEK[HEADER]`).
    Rfc822Header,
    /// `RFC822.TEXT` (like `BODY[TEXT]`).
    Rfc822Text,
}

/// A system flag, as a bit.
pub mod flag {
    /// `\Seen`.
    pub const SEEN: u8 = 1;
    /// `\Answered`.
    pub const ANSWERED: u8 = 2;
    /// `\Flagged`.
    pub const FLAGGED: u8 = 4;
    /// `\Deleted`.
    pub const DELETED: u8 = 8;
    /// `\Draft`.
    pub const DRAFT: u8 = 16;
    /// Every flag with its IMAP name, in the order FLAGS lists them.
    pub const ALL: [(u8, &str); 5] = [
        (ANSWERED, "\\Answered"),
        (FLAGGED, "\\Flagged"),
        (DELETED, "\\Deleted"),
        (SEEN, "\\Seen"),
        (DRAFT, "\\Draft"),
    ];

    /// The bit of a flag name (case-insensitive), `None` for keywords and `\Recent`.
    pub fn from_name(name: &str) -> Option<u8> {
        ALL.iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|&(b, _)| b)
    }
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// A SEARCH key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// `ALL`.
    All,
    /// Several keys, all of which must match (a parenthesized list, or keys in a row).
    And(Vec<SearchKey>),
    /// `OR a b`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `NOT a`.
    Not(Box<SearchKey>),
    /// `HEADER field value` (and SUBJECT/FROM/TO/CC/BCC): case-insensitive substring.
    Header(String, String),
    /// `BODY s`: substring of the body.
    Body(String),
    /// `TEXT s`: substring of header or body.
    Text(String),
    /// `SINCE d`: internal date on or after `d`.
    Since(NaiveDate),
    /// `BEFORE d`: internal date before `d`.
    Before(NaiveDate),
    /// `ON d`: internal date on `d`.
    On(NaiveDate),
    /// `SENTSINCE d`: Date header on or after `d`.
    SentSince(NaiveDate),
    /// `SENTBEFORE d`.
    SentBefore(NaiveDate),
    /// `SENTON d`.
    SentOn(NaiveDate),
    /// `UID set`.
    Uid(SeqSet),
    /// A sequence set.
    Seq(SeqSet),
    /// A flag is set (`SEEN`, ...) or not (`UNSEEN`, ...).
    Flag(u8, bool),
    /// `KEYWORD k` (`true`) / `UNKEYWORD k` (`false`): keywords are not kept.
    Keyword(bool),
    /// `NEW`: recent and unseen.
    New,
    /// `OLD`: not recent.
    Old,
    /// `RECENT`.
    Recent,
    /// `LARGER n`.
    Larger(u64),
    /// `SMALLER n`.
    Smaller(u64),
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `STARTTLS`.
    StartTls,
    /// `ID (...)` or `ID NIL`.
    Id,
    /// `ENABLE ...`.
    Enable(Vec<String>),
    /// `NAMESPACE`.
    Namespace,
    /// `LOGIN user password`.
    Login(Vec<u8>, Vec<u8>),
    /// `AUTHENTICATE mechanism [initial-response]`.
    Authenticate(String, Option<Vec<u8>>),
    /// `SELECT` (`false`) or `EXAMINE` (`true`).
    Select(String, bool),
    /// `LIST`/`LSUB`: reference, patterns, only special-use folders, LSUB.
    List {
        /// The reference name.
        reference: String,
        /// The mailbox patterns.
        patterns: Vec<String>,
        /// `(SPECIAL-USE)` selection option.
        special_only: bool,
        /// LSUB.
        lsub: bool,
    },
    /// `STATUS mailbox (items)`.
    Status(String, Vec<String>),
    /// `SUBSCRIBE`/`UNSUBSCRIBE` mailbox.
    Subscribe(String),
    /// `CHECK`.
    Check,
    /// `CLOSE`.
    Close,
    /// `UNSELECT`.
    Unselect,
    /// `EXPUNGE` or `UID EXPUNGE set`.
    Expunge(Option<SeqSet>),
    /// `[UID] SEARCH`.
    Search(bool, SearchKey),
    /// `[UID] FETCH set items`.
    Fetch(bool, SeqSet, Vec<FetchAtt>),
    /// `[UID] STORE set mode flags`.
    Store {
        /// UID STORE.
        uid: bool,
        /// The messages.
        set: SeqSet,
        /// Replace, add or remove.
        mode: StoreMode,
        /// `.SILENT`.
        silent: bool,
        /// System flags as bits.
        flags: u8,
    },
    /// `IDLE`.
    Idle,
    /// A known command the simulator does not implement (answered `NO`).
    Unsupported(String),
}

/// A parsed command line: its tag and the command, or the tag and a syntax error.
pub type Parsed = (String, PResult<Command>);

/// Buffered reader over a session's stream that frames commands and literals.
pub struct CommandReader<S> {
    /// The stream, also written to directly by the session.
    pub io: S,
    framer: Framer,
    /// The start of an over-long line whose rest is being skipped. Kept here, not in a local, so
    /// that [`CommandReader::read_line`] stays cancel-safe (IDLE polls it in a `select!`).
    too_long: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> CommandReader<S> {
    /// Wraps a stream.
    pub fn new(io: S) -> Self {
        CommandReader {
            io,
            framer: Framer::new(READ_CHUNK),
            too_long: None,
        }
    }

    /// Drops buffered input (after STARTTLS: plaintext sent behind the command must not count).
    pub fn discard_buffered(&mut self) -> usize {
        self.too_long = None;
        self.framer.discard_unframed()
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Reads more input; `Ok(0)` at end of stream. Cancel-safe.
    async fn fill(&mut self) -> io::Result<usize> {
        self.framer.read_from(&mut self.io).await
    }

    /// Reads one line of at most `max` octets. An over-long line is reported once it has been
    /// skipped to its end, so that the answer follows the whole line. Cancel-safe.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        loop {
            if self.too_long.is_some() {
                if self.framer.skip_line() {
                    return Ok(Line::TooLong(self.too_long.take().unwrap_or_default()));
                }
            } else {
                self.framer.release();
                match self.framer.line(max) {
                    Some(Scan::Line) => return Ok(Line::Line(self.framer.last_line().to_vec())),
                    Some(Scan::TooLong(prefix)) => {
                        self.too_long = Some(prefix);
                        continue;
                    }
                    None => {}
                }
            }
            if self.fill().await? == 0 {
                self.too_long = None;
                return Ok(Line::Eof);
            }
        }
    }

    /// Skips `n` announced octets without buffering them; false at end of stream.
    async fn skip(&mut self, mut n: u64) -> io::Result<bool> {
        loop {
            n = self.framer.skip(n);
            if n == 0 {
                return Ok(true);
            }
            if self.fill().await? == 0 {
                return Ok(false);
            }
        }
    }

    /// The first octets of the command framed so far, to find its tag once it is refused.
    fn command_prefix(&self) -> Vec<u8> {
        let m = self.framer.message();
        m[..KEPT_PREFIX.min(m.len())].to_vec()
    }

    /// Reads one whole command, answering `+` to synchronizing literals that fit.
    pub async fn read_command(&mut self) -> io::Result<Frame> {
        self.framer.release();
        // Once refused, a command is still read to its end, but not kept: why, and its start.
        let mut rejected: Option<(&'static str, Vec<u8>)> = None;
        loop {
            let Some(scan) = self.framer.line(MAX_LINE) else {
                if self.fill().await? == 0 {
                    return Ok(Frame::Eof);
                }
                continue;
            };
            if let Scan::TooLong(prefix) = scan {
                let prefix = rejected.map_or(prefix, |(_, p)| p);
                while !self.framer.skip_line() {
                    if self.fill().await? == 0 {
                        return Ok(Frame::Eof);
                    }
                }
                return Ok(Frame::rejected("Command line too long", &prefix));
            }
            let Some(marker) = literal_marker(self.framer.last_line()) else {
                break;
            };
            let Ok(Literal { len, sync }) = marker else {
                let prefix = rejected.map_or_else(|| self.command_prefix(), |(_, p)| p);
                return Ok(Frame::rejected("Invalid literal size", &prefix));
            };
            let size = self.framer.message().len() as u64 + u64::from(len);
            if rejected.is_none() && size > MAX_COMMAND as u64 {
                rejected = Some(("Literal too large", self.command_prefix()));
            }
            if rejected.is_some() {
                if sync {
                    // The client waits for `+` before sending the octets: refusing now ends it.
                    break;
                }
                // LITERAL+: the octets are on their way; skip them and the rest of the command.
                if !self.skip(u64::from(len)).await? {
                    return Ok(Frame::Eof);
                }
                continue;
            }
            if sync {
                self.io.write_all(LITERAL_CONTINUATION).await?;
                self.io.flush().await?;
            }
            // `len` is at most MAX_COMMAND here.
            while self.framer.literal(len as usize).is_none() {
                if self.fill().await? == 0 {
                    return Ok(Frame::Eof);
                }
            }
        }
        Ok(match rejected {
            None => Frame::Command(self.framer.message().to_vec()),
            Some((reason, prefix)) => Frame::rejected(reason, &prefix),
        })
    }
}

impl Frame {
    /// A refused command, with the tag found at the start of it, if any.
    fn rejected(reason: &'static str, prefix: &[u8]) -> Frame {
        Frame::Rejected {
            tag: Cursor::new(prefix).tag().ok().map(str::to_string),
            reason,
        }
    }
}

/// Parses one framed command into its tag and command (or a syntax error for a tagged `BAD`).
///
/// `None` means not even a tag could be read: the answer is an untagged `BAD`.
pub fn parse_command(line: &[u8]) -> Option<Parsed> {
    let mut p = Cursor::new(line);
    let tag = p.tag().ok()?.to_string();
    let cmd = (|| {
        p.sp()?;
        let mut name = p.atom_upper()?;
        let mut uid = false;
        if name == "UID" {
            p.sp()?;
            uid = true;
            name = p.atom_upper()?;
            if !matches!(
                name.as_str(),
                "FETCH" | "SEARCH" | "STORE" | "EXPUNGE" | "COPY" | "MOVE"
            ) {
                return perr(format!("UID {name} is not a UID command"));
            }
        }
        let cmd = command_body(&mut p, &name, uid)?;
        p.end()?;
        Ok(cmd)
    })();
    Some((tag, cmd))
}

/// The command named `name` (upper-cased), from its arguments on.
fn command_body(p: &mut Cursor<'_>, name: &str, uid: bool) -> PResult<Command> {
    use Command as C;
    Ok(match name {
        "CAPABILITY" => C::Capability,
        "NOOP" => C::Noop,
        "LOGOUT" => C::Logout,
        "STARTTLS" => C::StartTls,
        "NAMESPACE" => C::Namespace,
        "CHECK" => C::Check,
        "CLOSE" => C::Close,
        "UNSELECT" => C::Unselect,
        "IDLE" => C::Idle,
        "ID" => id(p)?,
        "ENABLE" => enable(p)?,
        "LOGIN" => {
            p.sp()?;
            let u = p.astring()?.into_owned();
            p.sp()?;
            let pw = p.astring()?.into_owned();
            C::Login(u, pw)
        }
        "AUTHENTICATE" => authenticate(p)?,
        "SELECT" | "EXAMINE" => {
            p.sp()?;
            // CONDSTORE/QRESYNC parameters are not supported.
            C::Select(p.astring_utf8()?, name == "EXAMINE")
        }
        "LIST" | "LSUB" => list(p, name == "LSUB")?,
        "STATUS" => status(p)?,
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            p.sp()?;
            C::Subscribe(p.astring_utf8()?)
        }
        "EXPUNGE" if uid => {
            p.sp()?;
            C::Expunge(Some(p.seq_set()?))
        }
        "EXPUNGE" => C::Expunge(None),
        "SEARCH" => search(p, uid)?,
        "FETCH" => {
            p.sp()?;
            let set = p.seq_set()?;
            p.sp()?;
            C::Fetch(uid, set, fetch_atts(p)?)
        }
        "STORE" => store(p, uid)?,
        "CREATE" | "DELETE" | "RENAME" | "APPEND" | "COPY" | "MOVE" | "GETQUOTAROOT" | "SETACL"
        | "GETACL" => {
            // Skip the arguments: the answer is NO whatever they are.
            p.skip_to_end();
            C::Unsupported(if uid {
                format!("UID {name}")
            } else {
                name.to_string()
            })
        }
        other => return perr(format!("unknown command {other}")),
    })
}

/// `ID (field value …)` or `ID NIL`: read and ignored.
fn id(p: &mut Cursor<'_>) -> PResult<Command> {
    p.sp()?;
    if p.eat(b'(') {
        while !p.eat(b')') {
            if p.at_end() {
                return perr("unterminated ID list");
            }
            if p.eat(b' ') {
                continue;
            }
            if p.peek().is_some_and(|c| c == b'N' || c == b'n') {
                p.atom()?;
            } else {
                p.string()?;
            }
        }
    } else if !p.atom_upper()?.eq("NIL") {
        return perr("ID expects a list or NIL");
    }
    Ok(Command::Id)
}

/// `ENABLE cap …`.
fn enable(p: &mut Cursor<'_>) -> PResult<Command> {
    let mut caps = Vec::new();
    while p.eat(b' ') {
        caps.push(p.atom_upper()?);
    }
    if caps.is_empty() {
        return perr("ENABLE needs a capability");
    }
    Ok(Command::Enable(caps))
}

/// `AUTHENTICATE mechanism [initial-response]` (SASL-IR).
fn authenticate(p: &mut Cursor<'_>) -> PResult<Command> {
    p.sp()?;
    let mech = p.atom_upper()?;
    let initial = if p.eat(b' ') {
        let r = p.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
        if r.is_empty() {
            return perr("invalid initial response");
        }
        Some(r.to_vec())
    } else {
        None
    };
    Ok(Command::Authenticate(mech, initial))
}

/// `LIST [(selection)] reference pattern(s) [RETURN (…)]` (RFC 5258), or `LSUB reference pattern`.
fn list(p: &mut Cursor<'_>, lsub: bool) -> PResult<Command> {
    p.sp()?;
    let mut special_only = false;
    if !lsub && p.eat(b'(') {
        while !p.eat(b')') {
            let opt = p.atom_upper()?;
            match opt.as_str() {
                "SPECIAL-USE" => special_only = true,
                "SUBSCRIBED" | "REMOTE" | "RECURSIVEMATCH" => {}
                other => return perr(format!("unknown LIST selection option {other}")),
            }
            p.eat(b' ');
        }
        p.sp()?;
    }
    let reference = p.astring_utf8()?;
    p.sp()?;
    let mut patterns = Vec::new();
    if !lsub && p.eat(b'(') {
        loop {
            patterns.push(p.list_mailbox()?);
            if p.eat(b')') {
                break;
            }
            p.sp()?;
        }
    } else {
        patterns.push(p.list_mailbox()?);
    }
    if !lsub && p.eat(b' ') {
        // RETURN (...) options: flags are always returned.
        if p.atom_upper()? != "RETURN" {
            return perr("expected RETURN");
        }
        p.sp()?;
        p.expect(b'(')?;
        while !p.eat(b')') {
            p.atom()?;
            p.eat(b' ');
        }
    }
    Ok(Command::List {
        reference,
        patterns,
        special_only,
        lsub,
    })
}

/// `STATUS mailbox (items)`.
fn status(p: &mut Cursor<'_>) -> PResult<Command> {
    p.sp()?;
    let m = p.astring_utf8()?;
    p.sp()?;
    p.expect(b'(')?;
    let mut items = Vec::new();
    loop {
        let it = p.atom_upper()?;
        if !matches!(
            it.as_str(),
            "MESSAGES" | "RECENT" | "UIDNEXT" | "UIDVALIDITY" | "UNSEEN"
        ) {
            return perr(format!("unknown STATUS item {it}"));
        }
        items.push(it);
        if p.eat(b')') {
            break;
        }
        p.sp()?;
    }
    Ok(Command::Status(m, items))
}

/// `[UID] SEARCH [CHARSET c] keys`.
fn search(p: &mut Cursor<'_>, uid: bool) -> PResult<Command> {
    p.sp()?;
    // CHARSET: US-ASCII and UTF-8 only (substring matching is byte-wise).
    let save = p.pos();
    if p.atom_upper().ok().as_deref() == Some("CHARSET") {
        p.sp()?;
        let cs = String::from_utf8_lossy(&p.astring()?).to_ascii_uppercase();
        if cs != "US-ASCII" && cs != "UTF-8" {
            return perr(format!("[BADCHARSET (US-ASCII UTF-8)] charset {cs}"));
        }
        p.sp()?;
    } else {
        p.set_pos(save);
    }
    Ok(Command::Search(uid, search_keys(p)?))
}

/// `[UID] STORE set [+-]FLAGS[.SILENT] flags`.
fn store(p: &mut Cursor<'_>, uid: bool) -> PResult<Command> {
    p.sp()?;
    let set = p.seq_set()?;
    p.sp()?;
    let item = p.atom_upper()?;
    let (mode, rest) = match item.as_bytes().first() {
        Some(b'+') => (StoreMode::Add, &item[1..]),
        Some(b'-') => (StoreMode::Remove, &item[1..]),
        _ => (StoreMode::Replace, item.as_str()),
    };
    let silent = match rest {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        other => return perr(format!("unknown STORE item {other}")),
    };
    p.sp()?;
    let flags = store_flags(p)?;
    Ok(Command::Store {
        uid,
        set,
        mode,
        silent,
        flags,
    })
}

/// STORE's flags, in a list or in a row, as bits.
fn store_flags(p: &mut Cursor<'_>) -> PResult<u8> {
    if p.peek() == Some(b'(') {
        return p
            .flag_list()?
            .into_iter()
            .try_fold(0, |bits, f| Ok(bits | flag_bit(f)?));
    }
    let mut bits = 0u8;
    loop {
        bits |= flag_bit(p.flag()?)?;
        if !p.eat(b' ') {
            return Ok(bits);
        }
    }
}

/// One flag as a bit; keywords are accepted and dropped (PERMANENTFLAGS has no `\*`).
fn flag_bit(f: &[u8]) -> PResult<u8> {
    if f.first() != Some(&b'\\') {
        return Ok(0);
    }
    let name = String::from_utf8_lossy(f);
    flag::from_name(&name).ok_or_else(|| ParseError(format!("invalid system flag {name}")))
}

/// FETCH's data items: one, or a parenthesized list.
fn fetch_atts(p: &mut Cursor<'_>) -> PResult<Vec<FetchAtt>> {
    if p.eat(b'(') {
        let mut v = Vec::new();
        loop {
            v.extend(fetch_att(p)?);
            if p.eat(b')') {
                break;
            }
            p.sp()?;
        }
        Ok(v)
    } else {
        fetch_att(p)
    }
}

/// One FETCH data item (a macro such as `FAST` is several).
fn fetch_att(p: &mut Cursor<'_>) -> PResult<Vec<FetchAtt>> {
    let s = p.pos();
    let name = p.take_while(|c| crate::wire::imap::is_atom_char(c) && c != b'[');
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let one = |a| Ok(vec![a]);
    match name.as_str() {
        "UID" => one(FetchAtt::Uid),
        "FLAGS" => one(FetchAtt::Flags),
        "INTERNALDATE" => one(FetchAtt::InternalDate),
        "RFC822.SIZE" => one(FetchAtt::Size),
        "RFC822" => one(FetchAtt::Rfc822),
        "RFC822.HEADER" => one(FetchAtt::Rfc822Header),
        "RFC822.TEXT" => one(FetchAtt::Rfc822Text),
        "FAST" => Ok(vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Size,
        ]),
        "BODY" | "BODY.PEEK" if p.peek() == Some(b'[') => {
            let section = section(p)?;
            let partial = if p.eat(b'<') {
                let origin = p.number()?;
                p.expect(b'.')?;
                let count = p.nz_number()?;
                p.expect(b'>')?;
                Some((origin, count))
            } else {
                None
            };
            one(FetchAtt::Body {
                section,
                partial,
                peek: name == "BODY.PEEK",
            })
        }
        "" => perr(format!("expected a fetch item at offset {s}")),
        "ENVELOPE" | "BODYSTRUCTURE" | "BODY" | "ALL" | "FULL" => perr(format!(
            "FETCH {name} is not supported by the simulator (use BODY.PEEK[HEADER] or BODY.PEEK[])"
        )),
        other => perr(format!("unknown fetch item {other}")),
    }
}

/// A body section `[…]`: the whole message, HEADER, TEXT or HEADER.FIELDS[.NOT].
fn section(p: &mut Cursor<'_>) -> PResult<Section> {
    p.expect(b'[')?;
    if p.eat(b']') {
        return Ok(Section::Full);
    }
    let spec = p.take_while(|c| c.is_ascii_alphanumeric() || c == b'.');
    let spec = String::from_utf8_lossy(spec).to_ascii_uppercase();
    let section = match spec.as_str() {
        "HEADER" => Section::Header,
        "TEXT" => Section::Text,
        "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
            p.sp()?;
            p.expect(b'(')?;
            let mut names = Vec::new();
            loop {
                let n = p.astring_utf8()?;
                if n.is_empty() || n.contains(':') || n.chars().any(|c| c.is_control()) {
                    return perr(format!("invalid header field name `{n}`"));
                }
                names.push(n);
                if p.eat(b')') {
                    break;
                }
                p.sp()?;
            }
            Section::HeaderFields {
                names,
                not: spec.ends_with(".NOT"),
            }
        }
        other => {
            return perr(format!(
                "body section [{other}] is not supported by the simulator"
            ))
        }
    };
    p.expect(b']')?;
    Ok(section)
}

/// Deepest SEARCH key nesting accepted, so input cannot exhaust the stack.
const MAX_SEARCH_DEPTH: u32 = 64;

/// SEARCH's keys: all must match.
fn search_keys(p: &mut Cursor<'_>) -> PResult<SearchKey> {
    let mut keys = Vec::new();
    loop {
        keys.push(search_key(p, 0)?);
        if p.at_end() {
            break;
        }
        p.sp()?;
    }
    Ok(if keys.len() == 1 {
        keys.remove(0)
    } else {
        SearchKey::And(keys)
    })
}

/// One search key at nesting `depth` (parentheses, NOT and OR nest).
fn search_key(p: &mut Cursor<'_>, depth: u32) -> PResult<SearchKey> {
    if depth >= MAX_SEARCH_DEPTH {
        return perr(format!(
            "search keys nested deeper than {MAX_SEARCH_DEPTH} levels"
        ));
    }
    if p.eat(b'(') {
        let mut keys = Vec::new();
        loop {
            keys.push(search_key(p, depth + 1)?);
            if p.eat(b')') {
                break;
            }
            p.sp()?;
        }
        return Ok(SearchKey::And(keys));
    }
    if p.peek().is_some_and(|c| c.is_ascii_digit() || c == b'*') {
        return Ok(SearchKey::Seq(p.seq_set()?));
    }
    let name = p.atom_upper()?;
    if let Some(k) = flag_key(&name) {
        return Ok(k);
    }
    named_search_key(p, &name, depth)
}

/// The search keys that take arguments (or none and are no flag test).
fn named_search_key(p: &mut Cursor<'_>, name: &str, depth: u32) -> PResult<SearchKey> {
    let text = |p: &mut Cursor<'_>| -> PResult<String> {
        p.sp()?;
        let v = p.astring()?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    };
    use SearchKey as K;
    Ok(match name {
        "ALL" => K::All,
        "HEADER" => {
            let f = text(p)?;
            let v = text(p)?;
            K::Header(f, v)
        }
        "SUBJECT" | "FROM" | "TO" | "CC" | "BCC" => K::Header(name.to_string(), text(p)?),
        "BODY" => K::Body(text(p)?),
        "TEXT" => K::Text(text(p)?),
        "SINCE" | "BEFORE" | "ON" | "SENTSINCE" | "SENTBEFORE" | "SENTON" => {
            p.sp()?;
            date_key(name, p.date()?)
        }
        "UID" => {
            p.sp()?;
            K::Uid(p.seq_set()?)
        }
        "NOT" => {
            p.sp()?;
            K::Not(Box::new(search_key(p, depth + 1)?))
        }
        "OR" => {
            p.sp()?;
            let a = search_key(p, depth + 1)?;
            p.sp()?;
            let b = search_key(p, depth + 1)?;
            K::Or(Box::new(a), Box::new(b))
        }
        "KEYWORD" | "UNKEYWORD" => {
            p.sp()?;
            p.atom()?;
            K::Keyword(name == "KEYWORD")
        }
        "NEW" => K::New,
        "OLD" => K::Old,
        "RECENT" => K::Recent,
        "LARGER" | "SMALLER" => {
            p.sp()?;
            let n = u64::from(p.number()?);
            if name == "LARGER" {
                K::Larger(n)
            } else {
                K::Smaller(n)
            }
        }
        other => return perr(format!("unknown search key {other}")),
    })
}

/// A date key by name (`SINCE`, `SENTON`, …).
fn date_key(name: &str, d: NaiveDate) -> SearchKey {
    use SearchKey as K;
    match name {
        "SINCE" => K::Since(d),
        "BEFORE" => K::Before(d),
        "ON" => K::On(d),
        "SENTSINCE" => K::SentSince(d),
        "SENTBEFORE" => K::SentBefore(d),
        _ => K::SentOn(d),
    }
}

/// A flag test by name (`SEEN`, `UNSEEN`, …), if `name` is one.
fn flag_key(name: &str) -> Option<SearchKey> {
    let (bit, set) = match name {
        "SEEN" | "UNSEEN" => (flag::SEEN, name == "SEEN"),
        "ANSWERED" | "UNANSWERED" => (flag::ANSWERED, name == "ANSWERED"),
        "FLAGGED" | "UNFLAGGED" => (flag::FLAGGED, name == "FLAGGED"),
        "DELETED" | "UNDELETED" => (flag::DELETED, name == "DELETED"),
        "DRAFT" | "UNDRAFT" => (flag::DRAFT, name == "DRAFT"),
        _ => return None,
    };
    Some(SearchKey::Flag(bit, set))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::imap::parse_date;
    use tokio::io::AsyncReadExt;

    fn cmd(s: &str) -> Command {
        let (_, c) = parse_command(s.as_bytes()).expect("tag");
        c.unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn bad(s: &str) -> String {
        let (_, c) = parse_command(s.as_bytes()).expect("tag");
        c.expect_err(s).0
    }

    #[test]
    fn basic_commands_and_strings() {
        assert_eq!(cmd("a CAPABILITY"), Command::Capability);
        assert_eq!(cmd("a noop"), Command::Noop);
        assert_eq!(
            cmd("a LOGIN \"qa1@contoso.example\" {3}\r\np\"w"),
            Command::Login(b"qa1@contoso.example".to_vec(), b"p\"w".to_vec())
        );
        assert_eq!(
            cmd("a LOGIN u \"a\\\\b\\\"c\""),
            Command::Login(b"u".to_vec(), b"a\\b\"c".to_vec())
        );
        assert_eq!(
            cmd("a SELECT \"Junk Email\""),
            Command::Select("Junk Email".into(), false)
        );
        assert_eq!(
            cmd("a EXAMINE INBOX"),
            Command::Select("INBOX".into(), true)
        );
        assert!(parse_command(b"").is_none());
        assert!(parse_command(b"(x NOOP").is_none());
        assert!(bad("a FOO").contains("unknown command"));
        assert!(bad("a NOOP extra").contains("unexpected"));
        assert!(bad("a LOGIN \"unterminated").contains("unterminated"));
        assert!(bad("a LOGIN {5}\r\nab").contains("shorter"));
    }

    #[test]
    fn sequence_sets() {
        let Command::Fetch(true, set, atts) = cmd("a UID FETCH 1:3,7,9:* (UID FLAGS)") else {
            panic!()
        };
        assert_eq!(atts, vec![FetchAtt::Uid, FetchAtt::Flags]);
        assert_eq!(set.resolve(12), vec![(1, 3), (7, 7), (9, 12)]);
        assert!(set.contains(10, 12) && !set.contains(5, 12));
        assert_eq!(
            SeqSet(vec![(SeqNum::Num(20), SeqNum::Star)]).resolve(5),
            vec![(5, 20)]
        );
        for b in [
            "a FETCH 0 FLAGS",
            "a FETCH 1: FLAGS",
            "a FETCH x FLAGS",
            "a FETCH 1,,2 FLAGS",
            "a FETCH 99999999999 FLAGS",
        ] {
            assert!(bad(b).contains("sequence set"), "{b}: {}", bad(b));
        }
    }

    #[test]
    fn fetch_items() {
        let Command::Fetch(false, _, atts) = cmd(
            "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (Message-ID \"X-Forefront-Antispam-Report\")] BODY[]<0.100> RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER] BODY[TEXT] FAST)",
        ) else {
            panic!()
        };
        assert_eq!(
            atts[0],
            FetchAtt::Body {
                section: Section::HeaderFields {
                    names: vec!["Message-ID".into(), "X-Forefront-Antispam-Report".into()],
                    not: false
                },
                partial: None,
                peek: true
            }
        );
        assert_eq!(
            atts[1],
            FetchAtt::Body {
                section: Section::Full,
                partial: Some((0, 100)),
                peek: false
            }
        );
        assert_eq!(atts.len(), 9);
        assert!(bad("a FETCH 1 (ENVELOPE)").contains("not supported"));
        assert!(bad("a FETCH 1 BODY[1.2]").contains("not supported"));
        assert!(bad("a FETCH 1 (FLAGS").contains("expected"));
    }

    #[test]
    fn search_keys() {
        let Command::Search(true, k) = cmd(
            "a UID SEARCH CHARSET UTF-8 HEADER Message-ID \"<x@y>\" SINCE 1-Feb-2024 UID 5:* NOT DELETED OR SEEN (FLAGGED)",
        ) else {
            panic!()
        };
        let SearchKey::And(keys) = k else { panic!() };
        assert_eq!(
            keys[0],
            SearchKey::Header("Message-ID".into(), "<x@y>".into())
        );
        assert_eq!(
            keys[1],
            SearchKey::Since(NaiveDate::from_ymd_opt(2024, 2, 1).unwrap())
        );
        assert_eq!(keys.len(), 5);
        assert_eq!(cmd("a SEARCH ALL"), Command::Search(false, SearchKey::All));
        assert!(bad("a SEARCH SINCE 31-Feb-2024").contains("invalid date"));
        assert!(bad("a SEARCH CHARSET KOI8-R ALL").contains("BADCHARSET"));
        assert!(bad("a SEARCH FOO").contains("unknown search key"));
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(bad(&deep).contains("nested"));
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(10_000));
        assert!(bad(&nots).contains("nested"));
        assert_eq!(
            parse_date("01-jan-2025"),
            NaiveDate::from_ymd_opt(2025, 1, 1)
        );
    }

    #[test]
    fn store_and_list() {
        assert_eq!(
            cmd("a UID STORE 1:* +FLAGS.SILENT (\\Deleted \\Seen $Junk)"),
            Command::Store {
                uid: true,
                set: SeqSet(vec![(SeqNum::Num(1), SeqNum::Star)]),
                mode: StoreMode::Add,
                silent: true,
                flags: flag::DELETED | flag::SEEN
            }
        );
        assert!(matches!(
            cmd("a STORE 1 FLAGS \\Seen"),
            Command::Store {
                flags: flag::SEEN,
                mode: StoreMode::Replace,
                ..
            }
        ));
        assert!(bad("a STORE 1 +FLAGS (\\Bogus)").contains("system flag"));
        assert_eq!(
            cmd("a LIST (SPECIAL-USE) \"\" (INBOX \"Junk*\") RETURN (SPECIAL-USE)"),
            Command::List {
                reference: String::new(),
                patterns: vec!["INBOX".into(), "Junk*".into()],
                special_only: true,
                lsub: false
            }
        );
        assert!(matches!(
            cmd("a LSUB \"\" *"),
            Command::List { lsub: true, .. }
        ));
        assert_eq!(
            cmd("a AUTHENTICATE XOAUTH2 dXNlcj1h"),
            Command::Authenticate("XOAUTH2".into(), Some(b"dXNlcj1h".to_vec()))
        );
        assert_eq!(cmd("a ID (\"name\" \"curl\" \"version\" NIL)"), Command::Id);
        assert_eq!(cmd("a ID NIL"), Command::Id);
    }

    async fn frames(input: &[u8]) -> (Vec<Frame>, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (mut client_rd, mut client_wr) = tokio::io::split(client);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            client_wr.write_all(&input).await.unwrap();
            client_wr.shutdown().await.unwrap();
        });
        let reading = tokio::spawn(async move {
            let mut written = Vec::new();
            client_rd.read_to_end(&mut written).await.unwrap();
            written
        });
        let mut r = CommandReader::new(server);
        let mut out = Vec::new();
        loop {
            let f = r.read_command().await.unwrap();
            let eof = matches!(f, Frame::Eof);
            out.push(f);
            if eof {
                break;
            }
        }
        drop(r);
        writer.await.unwrap();
        (out, reading.await.unwrap())
    }

    #[tokio::test]
    async fn reader_frames_literals_and_rejects_abuse() {
        let mut input = b"a1 LOGIN {3}\r\nabc {2+}\r\nde\r\n".to_vec();
        input.extend_from_slice(b"a2 LOGIN {2000000}\r\n");
        input.extend_from_slice(b"a3 LOGIN {2000000+}\r\n");
        input.extend(std::iter::repeat_n(b'x', 2_000_000));
        input.extend_from_slice(b" {1+}\r\ny\r\n");
        input.extend_from_slice(b"a4 ");
        input.extend(std::iter::repeat_n(b'y', MAX_LINE + 10));
        input.extend_from_slice(b"\r\na5 NOOP\r\n");
        let (f, written) = frames(&input).await;
        let shown: Vec<String> = f
            .iter()
            .map(|x| match x {
                Frame::Command(c) => String::from_utf8_lossy(&c[..c.len().min(40)]).into_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(f.len(), 6, "{shown:?}");
        assert!(matches!(&f[0], Frame::Command(c) if c == b"a1 LOGIN {3}\r\nabc {2+}\r\nde"));
        assert!(
            matches!(&f[1], Frame::Rejected { tag: Some(t), reason } if t == "a2" && reason.contains("too large"))
        );
        assert!(matches!(&f[2], Frame::Rejected { tag: Some(t), .. } if t == "a3"));
        assert!(
            matches!(&f[3], Frame::Rejected { tag: Some(t), reason } if t == "a4" && reason.contains("too long")),
            "{shown:?}"
        );
        assert!(matches!(&f[4], Frame::Command(c) if c == b"a5 NOOP"));
        assert!(matches!(&f[5], Frame::Eof));
        // One continuation, for the literal that fitted.
        assert_eq!(written, LITERAL_CONTINUATION);
    }
}
