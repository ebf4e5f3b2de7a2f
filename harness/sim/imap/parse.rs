//! IMAP4rev1 command framing and parsing (RFC 3501 §9 grammar, the parts the simulator serves).
//!
//! [`CommandReader`] turns the byte stream into whole commands: a line, and for each line that
//! ends in a literal marker `{n}` (synchronizing: the server answers `+`) or `{n+}` (LITERAL+,
//! RFC 7888) the `n` octets that follow and the rest of the command. The command is kept as one
//! buffer with the literals in place, so [`Parser`] works on plain bytes. Oversized lines and
//! literals are discarded, never buffered, and reported as [`Frame::Rejected`] so that the
//! session answers a tagged `BAD` and goes on.

use std::borrow::Cow;
use std::io;

use chrono::NaiveDate;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest command line (without literals) the server buffers.
pub const MAX_LINE: usize = 64 * 1024;
/// The most octets one command may carry, literals included.
pub const MAX_COMMAND: usize = 1024 * 1024;
/// The continuation request sent for a synchronizing literal.
const LITERAL_CONTINUATION: &[u8] = b"+ Ready for literal data\r\n";
/// How many octets of a rejected command are kept to find its tag.
const TAG_PREFIX: usize = 128;
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

/// Buffered reader over a session's stream that frames commands and literals.
pub struct CommandReader<S> {
    /// The stream, also written to directly by the session.
    pub io: S,
    buf: Vec<u8>,
    start: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> CommandReader<S> {
    /// Wraps a stream.
    pub fn new(io: S) -> Self {
        CommandReader {
            io,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
        }
    }

    /// Drops buffered input (after STARTTLS: plaintext sent behind the command must not count).
    pub fn discard_buffered(&mut self) -> usize {
        let n = self.buf.len() - self.start;
        self.buf.clear();
        self.start = 0;
        n
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Reads more input into the buffer; `Ok(0)` at end of stream. Cancel-safe.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > READ_CHUNK {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; READ_CHUNK];
        let n = self.io.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one line of at most `max` octets.
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut scanned = 0;
        loop {
            let pending = &self.buf[self.start..];
            if let Some(p) = memchr::memchr(b'\n', &pending[scanned..]) {
                let end = scanned + p;
                if end > max {
                    let prefix = pending[..TAG_PREFIX.min(end)].to_vec();
                    self.start += end + 1;
                    return Ok(Line::TooLong(prefix));
                }
                let mut line = pending[..end].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.start += end + 1;
                return Ok(Line::Line(line));
            }
            scanned = pending.len();
            if pending.len() > max {
                let prefix = pending[..TAG_PREFIX.min(pending.len())].to_vec();
                self.start = self.buf.len();
                return self.skip_to_line_end(prefix).await;
            }
            if self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Discards input up to and including the next LF.
    async fn skip_to_line_end(&mut self, prefix: Vec<u8>) -> io::Result<Line> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(p) = memchr::memchr(b'\n', pending) {
                self.start += p + 1;
                return Ok(Line::TooLong(prefix));
            }
            self.start = self.buf.len();
            if self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Reads exactly `n` octets into `out`, or discards them when `out` is `None`.
    async fn take(&mut self, mut n: u64, mut out: Option<&mut Vec<u8>>) -> io::Result<bool> {
        while n > 0 {
            if self.start == self.buf.len() && self.fill().await? == 0 {
                return Ok(false);
            }
            let avail = (self.buf.len() - self.start) as u64;
            let k = avail.min(n) as usize;
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&self.buf[self.start..self.start + k]);
            }
            self.start += k;
            n -= k as u64;
        }
        Ok(true)
    }

    /// Reads one whole command, answering `+` to synchronizing literals that fit.
    pub async fn read_command(&mut self) -> io::Result<Frame> {
        let mut cmd: Vec<u8> = Vec::new();
        let mut rejected: Option<&'static str> = None;
        let mut prefix: Vec<u8> = Vec::new();
        loop {
            let line = match self.read_line(MAX_LINE).await? {
                Line::Eof => return Ok(Frame::Eof),
                Line::TooLong(p) => {
                    if prefix.is_empty() {
                        prefix = p;
                    }
                    rejected = Some("Command line too long");
                    break;
                }
                Line::Line(l) => l,
            };
            if prefix.is_empty() {
                prefix = line[..TAG_PREFIX.min(line.len())].to_vec();
            }
            let literal = literal_suffix(&line);
            if rejected.is_none() {
                cmd.extend_from_slice(&line);
            }
            let Some(lit) = literal else { break };
            let (n, sync) = match lit {
                Ok(v) => v,
                Err(()) => {
                    rejected = Some("Invalid literal size");
                    break;
                }
            };
            if rejected.is_none() && cmd.len() as u64 + n > MAX_COMMAND as u64 {
                rejected = Some("Literal too large");
            }
            if rejected.is_some() {
                if sync {
                    // The client waits for `+` before sending the octets: refusing now ends it.
                    break;
                }
                // LITERAL+: the octets are on their way; skip them and the rest of the command.
                if !self.take(n, None).await? {
                    return Ok(Frame::Eof);
                }
                continue;
            }
            if sync {
                self.io.write_all(LITERAL_CONTINUATION).await?;
                self.io.flush().await?;
            }
            cmd.extend_from_slice(b"\r\n");
            if !self.take(n, Some(&mut cmd)).await? {
                return Ok(Frame::Eof);
            }
        }
        match rejected {
            None => Ok(Frame::Command(cmd)),
            Some(reason) => Ok(Frame::Rejected {
                tag: Parser::new(&prefix).tag().ok().map(str::to_string),
                reason,
            }),
        }
    }
}

/// If `line` ends in a literal marker: `Ok((size, synchronizing))`, or `Err` for a bad size.
fn literal_suffix(line: &[u8]) -> Option<Result<(u64, bool), ()>> {
    let body = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', body)?;
    let mut digits = &body[open + 1..];
    let mut sync = true;
    if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
        sync = false;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        // `{abc}` is no literal marker; the parser reports the syntax error.
        return None;
    }
    // RFC 3501 number: at most 2^32-1.
    let n = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u32>().ok());
    Some(n.map(|n| (u64::from(n), sync)).ok_or(()))
}

/// A syntax error, reported as a tagged `BAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parse result.
pub type PResult<T> = Result<T, ParseError>;

fn perr<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParseError(msg.into()))
}

/// One end of a sequence range: a number or `*` (the largest in the mailbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    /// A number.
    Num(u32),
    /// `*`.
    Star,
}

/// A sequence set such as `1:5,7,9:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

impl SeqSet {
    /// Ranges with `*` replaced by `largest`, each ordered low..=high.
    pub fn resolve(&self, largest: u32) -> Vec<(u32, u32)> {
        let v = |s: SeqNum| match s {
            SeqNum::Num(n) => n,
            SeqNum::Star => largest,
        };
        let mut r: Vec<(u32, u32)> = self
            .0
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (v(a), v(b));
                (a.min(b), a.max(b))
            })
            .collect();
        r.sort_unstable();
        r
    }

    /// Whether `n` is in the set.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.resolve(largest)
            .iter()
            .any(|&(a, b)| (a..=b).contains(&n))
    }

    /// The largest number named explicitly (not `*`).
    pub fn max_explicit(&self) -> u32 {
        self.0
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter_map(|s| match s {
                SeqNum::Num(n) => Some(n),
                SeqNum::Star => None,
            })
            .max()
            .unwrap_or(0)
    }
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

/// Cursor over a framed command.
pub struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    /// Nesting of SEARCH keys (parentheses, NOT, OR), bounded so input cannot exhaust the stack.
    depth: u32,
}

/// Deepest SEARCH key nesting accepted.
const MAX_SEARCH_DEPTH: u32 = 64;

fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

fn is_tag_char(c: u8) -> bool {
    is_atom_char(c) && c != b'+'
}

impl<'a> Parser<'a> {
    /// A parser at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Parser {
            b,
            pos: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        if self.eat(c) {
            Ok(())
        } else {
            perr(format!(
                "expected '{}' at offset {}",
                char::from(c).escape_default(),
                self.pos
            ))
        }
    }

    fn sp(&mut self) -> PResult<()> {
        self.expect(b' ')
    }

    /// Requires the end of the command.
    fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            perr(format!("unexpected characters at offset {}", self.pos))
        }
    }

    /// The tag.
    pub fn tag(&mut self) -> PResult<&'a str> {
        let s = self.pos;
        while self.peek().is_some_and(is_tag_char) {
            self.pos += 1;
        }
        if self.pos == s {
            return perr("missing or invalid tag");
        }
        // Tag characters are ASCII.
        std::str::from_utf8(&self.b[s..self.pos]).or_else(|_| perr("invalid tag"))
    }

    /// An atom (ASTRING-CHAR allows ']' too when `allow_bracket`).
    fn atom_with(&mut self, allow_bracket: bool) -> PResult<&'a [u8]> {
        let s = self.pos;
        while self
            .peek()
            .is_some_and(|c| is_atom_char(c) || (allow_bracket && c == b']'))
        {
            self.pos += 1;
        }
        if self.pos == s {
            return perr(format!("expected an atom at offset {s}"));
        }
        Ok(&self.b[s..self.pos])
    }

    fn atom(&mut self) -> PResult<&'a [u8]> {
        self.atom_with(false)
    }

    fn atom_upper(&mut self) -> PResult<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return perr("unterminated quoted string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return perr("invalid escape in quoted string"),
                    }
                }
                Some(b'\r' | b'\n' | 0) => return perr("CR, LF or NUL in quoted string"),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> PResult<&'a [u8]> {
        self.expect(b'{')?;
        let s = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let n: usize = std::str::from_utf8(&self.b[s..self.pos])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| ParseError("invalid literal size".into()))?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.b[self.pos..].starts_with(b"\r\n") {
            return perr("literal marker not at end of line");
        }
        self.pos += 2;
        if self.b.len() - self.pos < n {
            return perr("literal shorter than announced");
        }
        let v = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(v)
    }

    /// A string: quoted or literal.
    fn string(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"') => Ok(Cow::Owned(self.quoted()?)),
            Some(b'{') => Ok(Cow::Borrowed(self.literal()?)),
            _ => perr(format!("expected a string at offset {}", self.pos)),
        }
    }

    /// An astring: atom (']' allowed), quoted or literal.
    fn astring(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(Cow::Borrowed(self.atom_with(true)?)),
        }
    }

    fn astring_utf8(&mut self) -> PResult<String> {
        let v = self.astring()?;
        String::from_utf8(v.into_owned()).or_else(|_| perr("string is not UTF-8"))
    }

    /// A list-mailbox pattern: atom with list-wildcards, or a string.
    fn list_mailbox(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"' | b'{') => self.astring_utf8(),
            _ => {
                let s = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| is_atom_char(c) || matches!(c, b'%' | b'*' | b']'))
                {
                    self.pos += 1;
                }
                if self.pos == s {
                    return perr("expected a mailbox pattern");
                }
                Ok(String::from_utf8_lossy(&self.b[s..self.pos]).into_owned())
            }
        }
    }

    fn number(&mut self) -> PResult<u32> {
        let s = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        std::str::from_utf8(&self.b[s..self.pos])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| ParseError(format!("expected a number at offset {s}")))
    }

    fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => perr("0 is not a valid message number"),
            n => Ok(n),
        }
    }

    /// A sequence set: `1`, `1:5`, `*`, `3:*`, comma-separated.
    pub fn seq_set(&mut self) -> PResult<SeqSet> {
        let mut ranges = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            ranges.push((a, b));
            if !self.eat(b',') {
                break;
            }
        }
        Ok(SeqSet(ranges))
    }

    fn seq_num(&mut self) -> PResult<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            self.nz_number()
                .map(SeqNum::Num)
                .map_err(|_| ParseError("invalid sequence set".into()))
        }
    }

    /// A date `d-Mon-yyyy`, optionally quoted.
    fn date(&mut self) -> PResult<NaiveDate> {
        let quoted = self.eat(b'"');
        let s = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-')
        {
            self.pos += 1;
        }
        let text = String::from_utf8_lossy(&self.b[s..self.pos]).into_owned();
        if quoted {
            self.expect(b'"')?;
        }
        parse_date(&text).ok_or_else(|| ParseError(format!("invalid date `{text}`")))
    }

    fn flag_list(&mut self) -> PResult<u8> {
        let mut bits = 0u8;
        if self.eat(b'(') {
            if self.eat(b')') {
                return Ok(0);
            }
            loop {
                bits |= self.flag()?;
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        } else {
            loop {
                bits |= self.flag()?;
                if !self.eat(b' ') {
                    break;
                }
            }
        }
        Ok(bits)
    }

    /// One flag as a bit; keywords are accepted and dropped (PERMANENTFLAGS has no `\*`).
    fn flag(&mut self) -> PResult<u8> {
        let backslash = self.eat(b'\\');
        let name = String::from_utf8_lossy(self.atom()?).into_owned();
        if !backslash {
            return Ok(0);
        }
        flag::from_name(&format!("\\{name}"))
            .ok_or_else(|| ParseError(format!("invalid system flag \\{name}")))
    }

    fn fetch_atts(&mut self) -> PResult<Vec<FetchAtt>> {
        if self.eat(b'(') {
            let mut v = Vec::new();
            loop {
                v.extend(self.fetch_att()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            Ok(v)
        } else {
            self.fetch_att()
        }
    }

    fn fetch_att(&mut self) -> PResult<Vec<FetchAtt>> {
        let s = self.pos;
        while self.peek().is_some_and(|c| is_atom_char(c) && c != b'[') {
            self.pos += 1;
        }
        let name = String::from_utf8_lossy(&self.b[s..self.pos]).to_ascii_uppercase();
        let one = |a| Ok(vec![a]);
        match name.as_str() {
            "UID" => one(FetchAtt::Uid),
            "FLAGS" => one(FetchAtt::Flags),
            "INTERNALDATE" => one(FetchAtt::InternalDate),
            "RFC822.SIZE" => one(FetchAtt::Size),
            "RFC822" => one(FetchAtt::Rfc822),
            "RFC822.HEADER" => one(FetchAtt::Rfc822Header),
            "RFC822.TEXT" => one(FetchAtt::Rfc822Text),
            "FAST" => Ok(vec![FetchAtt::Flags, FetchAtt::InternalDate, FetchAtt::Size]),
            "BODY" | "BODY.PEEK" if self.peek() == Some(b'[') => {
                let section = self.section()?;
                let partial = if self.eat(b'<') {
                    let origin = self.number()?;
                    self.expect(b'.')?;
                    let count = self.nz_number()?;
                    self.expect(b'>')?;
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

    fn section(&mut self) -> PResult<Section> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Ok(Section::Full);
        }
        let s = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.')
        {
            self.pos += 1;
        }
        let spec = String::from_utf8_lossy(&self.b[s..self.pos]).to_ascii_uppercase();
        let section = match spec.as_str() {
            "HEADER" => Section::Header,
            "TEXT" => Section::Text,
            "HEADER.FIELDS" | "HEADER.FIELDS.NOT" => {
                self.sp()?;
                self.expect(b'(')?;
                let mut names = Vec::new();
                loop {
                    let n = self.astring_utf8()?;
                    if n.is_empty() || n.contains(':') || n.chars().any(|c| c.is_control()) {
                        return perr(format!("invalid header field name `{n}`"));
                    }
                    names.push(n);
                    if self.eat(b')') {
                        break;
                    }
                    self.sp()?;
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
        self.expect(b']')?;
        Ok(section)
    }

    fn search_keys(&mut self) -> PResult<SearchKey> {
        let mut keys = Vec::new();
        loop {
            keys.push(self.search_key()?);
            if self.at_end() {
                break;
            }
            self.sp()?;
        }
        Ok(if keys.len() == 1 {
            keys.remove(0)
        } else {
            SearchKey::And(keys)
        })
    }

    fn search_key(&mut self) -> PResult<SearchKey> {
        if self.depth >= MAX_SEARCH_DEPTH {
            return perr(format!(
                "search keys nested deeper than {MAX_SEARCH_DEPTH} levels"
            ));
        }
        self.depth += 1;
        let key = self.search_key_inner();
        self.depth -= 1;
        key
    }

    fn search_key_inner(&mut self) -> PResult<SearchKey> {
        if self.eat(b'(') {
            let mut keys = Vec::new();
            loop {
                keys.push(self.search_key()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            return Ok(SearchKey::And(keys));
        }
        if self.peek().is_some_and(|c| c.is_ascii_digit() || c == b'*') {
            return Ok(SearchKey::Seq(self.seq_set()?));
        }
        let name = self.atom_upper()?;
        let text = |p: &mut Self| -> PResult<String> {
            p.sp()?;
            let v = p.astring()?;
            Ok(String::from_utf8_lossy(&v).into_owned())
        };
        use SearchKey as K;
        Ok(match name.as_str() {
            "ALL" => K::All,
            "HEADER" => {
                let f = text(self)?;
                let v = text(self)?;
                K::Header(f, v)
            }
            "SUBJECT" | "FROM" | "TO" | "CC" | "BCC" => K::Header(name.clone(), text(self)?),
            "BODY" => K::Body(text(self)?),
            "TEXT" => K::Text(text(self)?),
            "SINCE" | "BEFORE" | "ON" | "SENTSINCE" | "SENTBEFORE" | "SENTON" => {
                self.sp()?;
                let d = self.date()?;
                match name.as_str() {
                    "SINCE" => K::Since(d),
                    "BEFORE" => K::Before(d),
                    "ON" => K::On(d),
                    "SENTSINCE" => K::SentSince(d),
                    "SENTBEFORE" => K::SentBefore(d),
                    _ => K::SentOn(d),
                }
            }
            "UID" => {
                self.sp()?;
                K::Uid(self.seq_set()?)
            }
            "NOT" => {
                self.sp()?;
                K::Not(Box::new(self.search_key()?))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key()?;
                self.sp()?;
                let b = self.search_key()?;
                K::Or(Box::new(a), Box::new(b))
            }
            "SEEN" | "UNSEEN" => K::Flag(flag::SEEN, name == "SEEN"),
            "ANSWERED" | "UNANSWERED" => K::Flag(flag::ANSWERED, name == "ANSWERED"),
            "FLAGGED" | "UNFLAGGED" => K::Flag(flag::FLAGGED, name == "FLAGGED"),
            "DELETED" | "UNDELETED" => K::Flag(flag::DELETED, name == "DELETED"),
            "DRAFT" | "UNDRAFT" => K::Flag(flag::DRAFT, name == "DRAFT"),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                self.atom()?;
                K::Keyword(name == "KEYWORD")
            }
            "NEW" => K::New,
            "OLD" => K::Old,
            "RECENT" => K::Recent,
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = u64::from(self.number()?);
                if name == "LARGER" {
                    K::Larger(n)
                } else {
                    K::Smaller(n)
                }
            }
            other => return perr(format!("unknown search key {other}")),
        })
    }
}

/// Parses `d-Mon-yyyy` (RFC 3501 date; the day may have one or two digits).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let mut it = s.splitn(3, '-');
    let day: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let year: i32 = it.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let m = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as u32 + 1;
    NaiveDate::from_ymd_opt(year, m, day)
}

/// Parses one framed command into its tag and command (or a syntax error for a tagged `BAD`).
///
/// `None` means not even a tag could be read: the answer is an untagged `BAD`.
pub fn parse_command(line: &[u8]) -> Option<Parsed> {
    let mut p = Parser::new(line);
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

fn command_body(p: &mut Parser<'_>, name: &str, uid: bool) -> PResult<Command> {
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
        "ID" => {
            p.sp()?;
            if p.eat(b'(') {
                while !p.eat(b')') {
                    if p.at_end() {
                        return perr("unterminated ID list");
                    }
                    if p.peek() == Some(b' ') {
                        p.pos += 1;
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
            C::Id
        }
        "ENABLE" => {
            let mut caps = Vec::new();
            while p.eat(b' ') {
                caps.push(p.atom_upper()?);
            }
            if caps.is_empty() {
                return perr("ENABLE needs a capability");
            }
            C::Enable(caps)
        }
        "LOGIN" => {
            p.sp()?;
            let u = p.astring()?.into_owned();
            p.sp()?;
            let pw = p.astring()?.into_owned();
            C::Login(u, pw)
        }
        "AUTHENTICATE" => {
            p.sp()?;
            let mech = p.atom_upper()?;
            let initial = if p.eat(b' ') {
                let s = p.pos;
                while p
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
                {
                    p.pos += 1;
                }
                if p.pos == s {
                    return perr("invalid initial response");
                }
                Some(p.b[s..p.pos].to_vec())
            } else {
                None
            };
            C::Authenticate(mech, initial)
        }
        "SELECT" | "EXAMINE" => {
            p.sp()?;
            let m = p.astring_utf8()?;
            // CONDSTORE/QRESYNC parameters are not supported.
            C::Select(m, name == "EXAMINE")
        }
        "LIST" | "LSUB" => {
            p.sp()?;
            let mut special_only = false;
            if name == "LIST" && p.eat(b'(') {
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
            if name == "LIST" && p.eat(b'(') {
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
            if name == "LIST" && p.eat(b' ') {
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
            C::List {
                reference,
                patterns,
                special_only,
                lsub: name == "LSUB",
            }
        }
        "STATUS" => {
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
            C::Status(m, items)
        }
        "SUBSCRIBE" | "UNSUBSCRIBE" => {
            p.sp()?;
            C::Subscribe(p.astring_utf8()?)
        }
        "EXPUNGE" => {
            if uid {
                p.sp()?;
                C::Expunge(Some(p.seq_set()?))
            } else {
                C::Expunge(None)
            }
        }
        "SEARCH" => {
            p.sp()?;
            // CHARSET: US-ASCII and UTF-8 only (substring matching is byte-wise).
            let save = p.pos;
            if p.atom_upper().ok().as_deref() == Some("CHARSET") {
                p.sp()?;
                let cs = String::from_utf8_lossy(&p.astring()?).to_ascii_uppercase();
                if cs != "US-ASCII" && cs != "UTF-8" {
                    return perr(format!("[BADCHARSET (US-ASCII UTF-8)] charset {cs}"));
                }
                p.sp()?;
            } else {
                p.pos = save;
            }
            C::Search(uid, p.search_keys()?)
        }
        "FETCH" => {
            p.sp()?;
            let set = p.seq_set()?;
            p.sp()?;
            C::Fetch(uid, set, p.fetch_atts()?)
        }
        "STORE" => {
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
            let flags = p.flag_list()?;
            C::Store {
                uid,
                set,
                mode,
                silent,
                flags,
            }
        }
        "CREATE" | "DELETE" | "RENAME" | "APPEND" | "COPY" | "MOVE" | "GETQUOTAROOT" | "SETACL"
        | "GETACL" => {
            // Skip the arguments: the answer is NO whatever they are.
            p.pos = p.b.len();
            C::Unsupported(if uid {
                format!("UID {name}")
            } else {
                name.to_string()
            })
        }
        other => return perr(format!("unknown command {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn literal_markers() {
        assert_eq!(literal_suffix(b"a LOGIN {5}"), Some(Ok((5, true))));
        assert_eq!(literal_suffix(b"a LOGIN {5+}"), Some(Ok((5, false))));
        assert_eq!(literal_suffix(b"a LOGIN {99999999999}"), Some(Err(())));
        assert_eq!(literal_suffix(b"a LOGIN {x}"), None);
        assert_eq!(literal_suffix(b"a NOOP"), None);
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
