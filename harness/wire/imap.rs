//! The IMAP grammar (RFC 3501 §9, with LITERAL+ from RFC 7888 and literal8 from RFC 3516),
//! written once for both ends: the simulator's server parses commands with it and the observer's
//! client parses responses with it, so the two read strings, literals, atoms, lists and sequence
//! sets the same way. What each end does with the grammar (which commands the simulator serves,
//! which response data the observer needs) stays with that end.
//!
//! The rules are strict where the RFC is (a quoted string escapes only `"` and `\`, and holds no
//! CR, LF or NUL; an atom holds no atom-special) and lenient only where the RFC leaves room or
//! framing already decided: after a literal marker a bare LF is accepted like CRLF, because the
//! framer ends lines at LF.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate};

/// A syntax error, worded for a tagged `BAD` or a protocol error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parse result.
pub type PResult<T> = Result<T, ParseError>;

/// A [`ParseError`] with this message.
pub fn perr<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParseError(msg.into()))
}

/// ATOM-CHAR: any CHAR except atom-specials (`(` `)` `{` SP CTL `%` `*` `"` `\` `]`).
pub fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// ASTRING-CHAR: ATOM-CHAR or resp-specials (`]`).
pub fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

/// A tag character: ASTRING-CHAR except `+` (RFC 3501 `tag`).
pub fn is_tag_char(c: u8) -> bool {
    is_astring_char(c) && c != b'+'
}

/// list-char: ATOM-CHAR, list-wildcards (`%` `*`) or resp-specials.
pub fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || matches!(c, b'%' | b'*')
}

/// `b` as a whole `number` (digits only, at most 2^32-1).
pub fn number(b: &[u8]) -> Option<u32> {
    let mut c = Cursor::new(b);
    let n = c.number().ok()?;
    c.at_end().then_some(n)
}

/// A literal announced at the end of a line: `{n}`, or `{n+}` (LITERAL+, no continuation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    /// How many octets follow the line.
    pub len: u32,
    /// Synchronizing (`{n}`): a client waits for the server's `+` before sending the octets.
    pub sync: bool,
}

/// A literal marker whose size is no RFC 3501 `number` (more than 2^32-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLiteralSize;

/// The literal a line announces, if it ends in a marker (`~{n}`, literal8, ends in one too).
///
/// This is the framing decision both ends make before parsing: the octets after such a line
/// belong to the same command or response.
pub fn literal_marker(line: &[u8]) -> Option<Result<Literal, BadLiteralSize>> {
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
    let len = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u32>().ok());
    Some(len.map(|len| Literal { len, sync }).ok_or(BadLiteralSize))
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

/// A compact sequence set (`1:5,7,9:12`) of sorted, de-duplicated numbers.
pub fn sequence_set(sorted: &[u32]) -> String {
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

/// `s` as a quoted string, or `None` when it cannot be one (8-bit, CR, LF or NUL: send a literal).
pub fn quote(s: &[u8]) -> Option<Vec<u8>> {
    if !s
        .iter()
        .all(|&b| b.is_ascii() && !matches!(b, b'\r' | b'\n' | 0))
    {
        return None;
    }
    let mut q = Vec::with_capacity(s.len() + 2);
    q.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            q.push(b'\\');
        }
        q.push(b);
    }
    q.push(b'"');
    Some(q)
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

/// Parses a date-time such as `17-Jul-1996 02:44:25 -0700` (INTERNALDATE; the day may be
/// space-padded).
pub fn parse_date_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z").ok()
}

/// How a tagged command completed (or what an untagged status response says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`: the server refused the operation.
    No,
    /// `BAD`: the server did not understand the command.
    Bad,
}

/// `OK`, `NO` or `BAD` (any case) and the resp-text after it.
pub fn resp_cond(rest: &[u8]) -> Option<(Status, &[u8])> {
    let mut c = Cursor::new(rest);
    let word = c.atom().ok()?;
    let status = if word.eq_ignore_ascii_case(b"OK") {
        Status::Ok
    } else if word.eq_ignore_ascii_case(b"NO") {
        Status::No
    } else if word.eq_ignore_ascii_case(b"BAD") {
        Status::Bad
    } else {
        return None;
    };
    if !c.at_end() && !c.eat(b' ') {
        return None;
    }
    Some((status, c.rest()))
}

/// The completion of the command tagged `tag`, if `resp` is one: its status and resp-text.
pub fn tagged<'a>(resp: &'a [u8], tag: &str) -> Option<(Status, &'a [u8])> {
    let rest = resp.strip_prefix(tag.as_bytes())?.strip_prefix(b" ")?;
    resp_cond(rest)
}

/// An untagged response, after its `* `.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Untagged<'a> {
    /// The leading number of message data (`* 5 EXISTS`, `* 5 FETCH (…)`).
    pub number: Option<u32>,
    /// The response's name: `OK`, `CAPABILITY`, `LIST`, `SEARCH`, `EXISTS`, `FETCH`, ….
    pub name: &'a [u8],
    /// What follows the name and its space.
    pub rest: &'a [u8],
}

impl Untagged<'_> {
    /// Whether the response has this name (case-insensitive, as IMAP keywords are).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// Splits an untagged response (the part after `* `) into its number, name and the rest.
pub fn untagged(data: &[u8]) -> Option<Untagged<'_>> {
    let mut c = Cursor::new(data);
    let number = if c.peek().is_some_and(|d| d.is_ascii_digit()) {
        let n = c.number().ok()?;
        c.sp().ok()?;
        Some(n)
    } else {
        None
    };
    let name = c.atom().ok()?;
    if !c.at_end() && !c.eat(b' ') {
        return None;
    }
    Some(Untagged {
        number,
        name,
        rest: c.rest(),
    })
}

/// The response code that opens a resp-text (`[UIDVALIDITY 3] …`): its name and arguments.
pub fn resp_text_code(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut c = Cursor::new(text);
    c.expect(b'[').ok()?;
    let name = c.atom().ok()?;
    let args = if c.eat(b' ') {
        c.take_while(|b| b != b']' && b != b'\r' && b != b'\n')
    } else {
        &[]
    };
    c.expect(b']').ok()?;
    Some((name, args))
}

/// Capability names (upper-cased) from a CAPABILITY response or `[CAPABILITY …]` code.
pub fn capability_list(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .split_ascii_whitespace()
        .map(str::to_ascii_uppercase)
        .collect()
}

/// A cursor over one command or response (literals in place).
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    /// The offset of the next octet.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Moves back (or forward) to an offset from [`Cursor::pos`], to try another reading.
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos.min(self.b.len());
    }

    /// Everything after the cursor.
    pub fn rest(&self) -> &'a [u8] {
        &self.b[self.pos..]
    }

    /// Moves to the end, leaving the rest unread.
    pub fn skip_to_end(&mut self) {
        self.pos = self.b.len();
    }

    /// The next octet, not consumed.
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// Whether everything has been read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// Consumes `c` if it is next.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `c`, or fails saying it was expected.
    pub fn expect(&mut self, c: u8) -> PResult<()> {
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

    /// One space.
    pub fn sp(&mut self) -> PResult<()> {
        self.expect(b' ')
    }

    /// Any number of spaces (responses from real servers sometimes double them).
    pub fn skip_spaces(&mut self) {
        while self.eat(b' ') {}
    }

    /// Requires the end of the input.
    pub fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            perr(format!("unexpected characters at offset {}", self.pos))
        }
    }

    /// The longest run of octets that satisfy `f` (possibly empty).
    pub fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let s = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.b[s..self.pos]
    }

    /// A command tag.
    pub fn tag(&mut self) -> PResult<&'a str> {
        let t = self.take_while(is_tag_char);
        if t.is_empty() {
            return perr("missing or invalid tag");
        }
        // Tag characters are ASCII.
        std::str::from_utf8(t).or_else(|_| perr("invalid tag"))
    }

    fn run(&mut self, f: impl Fn(u8) -> bool) -> PResult<&'a [u8]> {
        let s = self.pos;
        let a = self.take_while(f);
        if a.is_empty() {
            return perr(format!("expected an atom at offset {s}"));
        }
        Ok(a)
    }

    /// An atom.
    pub fn atom(&mut self) -> PResult<&'a [u8]> {
        self.run(is_atom_char)
    }

    /// An atom, upper-cased (command names, keywords).
    pub fn atom_upper(&mut self) -> PResult<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// A quoted string, unescaped. Only `\"` and `\\` are escapes; CR, LF and NUL are refused.
    pub fn quoted(&mut self) -> PResult<Vec<u8>> {
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

    /// A literal: `{n}` or `{n+}`, the line end, and `n` octets (borrowed, not copied).
    pub fn literal(&mut self) -> PResult<&'a [u8]> {
        self.expect(b'{')?;
        let digits = self.take_while(|c| c.is_ascii_digit());
        let n: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| ParseError("invalid literal size".into()))?
            as usize;
        self.eat(b'+');
        self.expect(b'}')?;
        if self.rest().starts_with(b"\r\n") {
            self.pos += 2;
        } else if self.rest().starts_with(b"\n") {
            self.pos += 1;
        } else {
            return perr("literal marker not at end of line");
        }
        if self.b.len() - self.pos < n {
            return perr("literal shorter than announced");
        }
        let v = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(v)
    }

    /// A string: quoted or literal.
    pub fn string(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"') => Ok(Cow::Owned(self.quoted()?)),
            Some(b'{') => Ok(Cow::Borrowed(self.literal()?)),
            _ => perr(format!("expected a string at offset {}", self.pos)),
        }
    }

    /// An astring: an atom (`]` allowed), a quoted string or a literal.
    pub fn astring(&mut self) -> PResult<Cow<'a, [u8]>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => Ok(Cow::Borrowed(self.run(is_astring_char)?)),
        }
    }

    /// An astring that must be UTF-8 (mailbox names, header field names).
    pub fn astring_utf8(&mut self) -> PResult<String> {
        let v = self.astring()?;
        String::from_utf8(v.into_owned()).or_else(|_| perr("string is not UTF-8"))
    }

    /// An nstring: `NIL` (`None`), a string, or a literal8 (`~{n}`, RFC 3516).
    pub fn nstring(&mut self) -> PResult<Option<Cow<'a, [u8]>>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string().map(Some),
            Some(b'~') => {
                self.pos += 1;
                self.literal().map(|l| Some(Cow::Borrowed(l)))
            }
            _ => {
                let s = self.pos;
                if self.atom()?.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    perr(format!("expected a string or NIL at offset {s}"))
                }
            }
        }
    }

    /// A list-mailbox pattern: an atom with wildcards, or a string.
    pub fn list_mailbox(&mut self) -> PResult<String> {
        match self.peek() {
            Some(b'"' | b'{') => self.astring_utf8(),
            _ => {
                let p = self.take_while(is_list_char);
                if p.is_empty() {
                    return perr("expected a mailbox pattern");
                }
                Ok(String::from_utf8_lossy(p).into_owned())
            }
        }
    }

    /// A number (at most 2^32-1).
    pub fn number(&mut self) -> PResult<u32> {
        let s = self.pos;
        let digits = self.take_while(|c| c.is_ascii_digit());
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| ParseError(format!("expected a number at offset {s}")))
    }

    /// A non-zero number.
    pub fn nz_number(&mut self) -> PResult<u32> {
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
    pub fn date(&mut self) -> PResult<NaiveDate> {
        let quoted = self.eat(b'"');
        let text = self.take_while(|c| c.is_ascii_alphanumeric() || c == b'-');
        let text = String::from_utf8_lossy(text).into_owned();
        if quoted {
            self.expect(b'"')?;
        }
        parse_date(&text).ok_or_else(|| ParseError(format!("invalid date `{text}`")))
    }

    /// A flag: `\Name` (system or extension), `\*`, or a keyword atom; as written.
    pub fn flag(&mut self) -> PResult<&'a [u8]> {
        let s = self.pos;
        let system = self.eat(b'\\');
        if !(system && self.eat(b'*')) {
            self.atom()?;
        }
        Ok(&self.b[s..self.pos])
    }

    /// A parenthesized list of flags, possibly empty.
    pub fn flag_list(&mut self) -> PResult<Vec<&'a [u8]>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        if self.eat(b')') {
            return Ok(flags);
        }
        loop {
            flags.push(self.flag()?);
            if self.eat(b')') {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// The name of a fetch data item, with its section and origin: `UID`,
    /// `BODY[HEADER.FIELDS (A B)]`, `BODY[]<0>`.
    pub fn msg_att_name(&mut self) -> PResult<&'a [u8]> {
        let s = self.pos;
        self.take_while(|c| is_atom_char(c) && c != b'[');
        if self.eat(b'[') {
            loop {
                match self.peek() {
                    None => return perr("unterminated section"),
                    Some(b']') => break,
                    // A quoted field name may hold a `]`.
                    Some(b'"') => {
                        self.quoted()?;
                    }
                    Some(_) => self.pos += 1,
                }
            }
            self.pos += 1;
            if self.eat(b'<') {
                self.number()?;
                self.expect(b'>')?;
            }
        }
        if self.pos == s {
            return perr(format!("expected a fetch item at offset {s}"));
        }
        Ok(&self.b[s..self.pos])
    }

    /// Skips one value of any kind: an atom, number, flag, NIL, string, literal, or a list of
    /// them nested to any depth.
    ///
    /// Iterative, not recursive: a peer could nest lists deeply enough to overflow the stack.
    pub fn skip_value(&mut self) -> PResult<()> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Some(b'(') => {
                    self.pos += 1;
                    depth += 1;
                }
                Some(b')') if depth > 0 => {
                    self.pos += 1;
                    depth -= 1;
                }
                Some(b'"' | b'{' | b'~') => {
                    self.nstring()?;
                }
                Some(_) => {
                    let s = self.pos;
                    let word = self.take_while(|c| {
                        c > 0x20 && c != 0x7f && !matches!(c, b'(' | b')' | b'"' | b'{')
                    });
                    if word.is_empty() {
                        return perr(format!("expected a value at offset {s}"));
                    }
                }
                None if depth > 0 => return perr("unclosed list"),
                None => return perr(format!("expected a value at offset {}", self.pos)),
            }
            if depth == 0 {
                return Ok(());
            }
            self.skip_spaces();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(b: &[u8]) -> Cursor<'_> {
        Cursor::new(b)
    }

    #[test]
    fn quoted_strings_escape_only_quote_and_backslash() {
        assert_eq!(c(br#""a\\b\"c""#).quoted().unwrap(), b"a\\b\"c");
        assert_eq!(c(br#""""#).quoted().unwrap(), b"");
        assert_eq!(
            c("\"pässword\"".as_bytes()).quoted().unwrap(),
            "pässword".as_bytes()
        );
        for bad in [
            &br#""a\x""#[..],
            br#""a\""#,
            b"\"a\rb\"",
            b"\"a\nb\"",
            b"\"a\0b\"",
        ] {
            assert!(c(bad).quoted().is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(c(br#""a\x""#)
            .quoted()
            .unwrap_err()
            .0
            .contains("invalid escape"));
        assert!(c(b"\"open")
            .quoted()
            .unwrap_err()
            .0
            .contains("unterminated"));
        // What `quote` writes, `quoted` reads back.
        let s = br#"C:\dir "x""#;
        assert_eq!(c(&quote(s).unwrap()).quoted().unwrap(), s);
        assert_eq!(quote("ä".as_bytes()), None);
        assert_eq!(quote(b"a\r\nb"), None);
    }

    #[test]
    fn literals_synchronizing_non_synchronizing_and_literal8() {
        let mut p = c(b"{3}\r\nabc {2+}\r\nde ~{1}\r\nf {0}\nx");
        assert_eq!(p.literal().unwrap(), b"abc");
        p.sp().unwrap();
        assert_eq!(p.literal().unwrap(), b"de");
        p.sp().unwrap();
        assert_eq!(p.nstring().unwrap().unwrap().as_ref(), b"f");
        p.sp().unwrap();
        // After the marker, a bare LF ends the line as the framer does.
        assert_eq!(p.literal().unwrap(), b"");
        assert_eq!(p.rest(), b"x");
        assert!(c(b"{5}\r\nab").literal().unwrap_err().0.contains("shorter"));
        assert!(c(b"{5} ab")
            .literal()
            .unwrap_err()
            .0
            .contains("end of line"));
        assert!(c(b"{99999999999}\r\n")
            .literal()
            .unwrap_err()
            .0
            .contains("size"));
        assert!(c(b"{x}\r\n").literal().is_err());
    }

    #[test]
    fn literal_markers_decide_framing() {
        let lit = |len, sync| Some(Ok(Literal { len, sync }));
        assert_eq!(literal_marker(b"a LOGIN {5}"), lit(5, true));
        assert_eq!(literal_marker(b"a LOGIN {5+}"), lit(5, false));
        assert_eq!(literal_marker(b"* 1 FETCH (BINARY[] ~{12}"), lit(12, true));
        assert_eq!(literal_marker(b"x {0}"), lit(0, true));
        assert_eq!(
            literal_marker(b"a LOGIN {99999999999}"),
            Some(Err(BadLiteralSize))
        );
        for none in [
            &b"a LOGIN {x}"[..],
            b"x {}",
            b"x {+}",
            b"x {a}",
            b"x",
            b"a NOOP",
            b"}",
        ] {
            assert_eq!(literal_marker(none), None);
        }
        assert_eq!(literal_marker(b"* 1 FETCH (BODY[] {12}"), lit(12, true));
        assert_eq!(literal_marker(b"x {3+}"), lit(3, false));
    }

    #[test]
    fn atoms_stop_at_specials_and_astrings_take_resp_specials() {
        let mut p = c(b"BODY[HEADER] x");
        assert_eq!(p.atom().unwrap(), b"BODY[HEADER");
        assert_eq!(p.rest(), b"] x");
        assert_eq!(c(b"Junk]Mail x").astring().unwrap().as_ref(), b"Junk]Mail");
        for stop in [
            &b"a(b"[..],
            b"a)b",
            b"a{b",
            b"a%b",
            b"a*b",
            b"a\"b",
            b"a\\b",
            b"a b",
        ] {
            assert_eq!(c(stop).atom().unwrap(), b"a");
        }
        assert!(c(b"(x").atom().unwrap_err().0.contains("atom"));
        assert!(c(b"\x01").atom().is_err());
        // A tag is an astring without `+`.
        assert_eq!(c(b"a]1 NOOP").tag().unwrap(), "a]1");
        assert_eq!(c(b"a+1 NOOP").tag().unwrap(), "a");
        assert!(c(b"+ go").tag().is_err());
        assert_eq!(c(b"INBOX/%* x").list_mailbox().unwrap(), "INBOX/%*");
    }

    #[test]
    fn nstrings_and_nil() {
        assert_eq!(c(b"NIL").nstring().unwrap(), None);
        assert_eq!(c(b"nil").nstring().unwrap(), None);
        assert_eq!(c(b"\"/\"").nstring().unwrap().unwrap().as_ref(), b"/");
        assert!(c(b"NILS").nstring().is_err());
        assert!(c(b"INBOX").nstring().is_err());
    }

    #[test]
    fn nested_lists_are_skipped_whole_without_recursion() {
        let mut p = c(b"(a (b (\"c d\" NIL {1}\r\nx)) \\Seen) next");
        p.skip_value().unwrap();
        assert_eq!(p.rest(), b" next");
        let n = 200_000;
        let mut deep = "(".repeat(n).into_bytes();
        deep.extend(")".repeat(n).bytes());
        let mut p = c(&deep);
        p.skip_value().unwrap();
        assert!(p.at_end());
        assert!(c(&deep[..n])
            .skip_value()
            .unwrap_err()
            .0
            .contains("unclosed"));
        assert!(c(b"(\"bad\\q\")").skip_value().is_err());
    }

    #[test]
    fn flags_and_flag_lists() {
        let mut p = c(b"(\\Seen \\* $Junk \\HasNoChildren)");
        assert_eq!(
            p.flag_list().unwrap(),
            vec![&b"\\Seen"[..], b"\\*", b"$Junk", b"\\HasNoChildren"]
        );
        assert_eq!(c(b"()").flag_list().unwrap(), Vec::<&[u8]>::new());
        assert!(c(b"(\\Seen").flag_list().is_err());
        assert!(c(b"(\\)").flag_list().is_err());
    }

    #[test]
    fn sequence_sets_read_what_is_written() {
        let set = c(b"1:3,7,9:*").seq_set().unwrap();
        assert_eq!(set.resolve(12), vec![(1, 3), (7, 7), (9, 12)]);
        assert_eq!(set.max_explicit(), 9);
        assert_eq!(sequence_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(sequence_set(&[4]), "4");
        assert_eq!(sequence_set(&[]), "");
        let uids = [2, 3, 4, 10, 11, 40, u32::MAX - 1, u32::MAX];
        let back = c(sequence_set(&uids).as_bytes()).seq_set().unwrap();
        let mut expanded = Vec::new();
        for (a, b) in back.resolve(0) {
            expanded.extend(a..=b);
        }
        assert_eq!(expanded, uids);
        for bad in [&b"0"[..], b"1:", b"x", b",1", b"99999999999"] {
            assert!(
                c(bad).seq_set().is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"4294967295"), Some(u32::MAX));
        assert_eq!(number(b"4294967296"), None);
        assert_eq!(number(b"12 "), None);
        assert_eq!(number(b""), None);
        assert_eq!(number(b"+1"), None);
    }

    #[test]
    fn dates() {
        assert_eq!(
            c(b"1-Feb-2024").date().unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 1).unwrap()
        );
        assert_eq!(
            c(b"\"01-jan-2025\"").date().unwrap(),
            NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
        );
        assert!(c(b"31-Feb-2024")
            .date()
            .unwrap_err()
            .0
            .contains("invalid date"));
        assert_eq!(
            parse_date_time(" 2-Jan-2019 17:40:34 +0000")
                .unwrap()
                .to_rfc3339(),
            "2019-01-02T17:40:34+00:00"
        );
    }

    #[test]
    fn responses_tagged_untagged_and_codes() {
        assert_eq!(
            tagged(b"H7 OK [READ-ONLY] EXAMINE completed.", "H7"),
            Some((Status::Ok, &b"[READ-ONLY] EXAMINE completed."[..]))
        );
        assert_eq!(tagged(b"H7 no", "H7"), Some((Status::No, &b""[..])));
        assert_eq!(tagged(b"H7 BAD x", "H7").map(|t| t.0), Some(Status::Bad));
        assert_eq!(tagged(b"H70 OK x", "H7"), None);
        assert_eq!(tagged(b"H7 OKAY", "H7"), None);
        let u = untagged(b"12 FETCH (UID 3)").unwrap();
        assert_eq!(
            (u.number, u.is("fetch"), u.rest),
            (Some(12), true, &b"(UID 3)"[..])
        );
        let u = untagged(b"3 EXISTS").unwrap();
        assert_eq!(
            (u.number, u.is("EXISTS"), u.rest),
            (Some(3), true, &b""[..])
        );
        let u = untagged(b"SEARCH").unwrap();
        assert!(u.is("SEARCH") && u.rest.is_empty());
        let u = untagged(b"OK [UIDVALIDITY 42] UIDs valid").unwrap();
        assert_eq!(
            resp_text_code(u.rest),
            Some((&b"UIDVALIDITY"[..], &b"42"[..]))
        );
        assert_eq!(
            resp_text_code(b"[READ-ONLY] done"),
            Some((&b"READ-ONLY"[..], &b""[..]))
        );
        assert_eq!(resp_text_code(b"done [READ-ONLY]"), None);
        let (_, args) = resp_text_code(b"[CAPABILITY IMAP4rev1 literal+] ok").unwrap();
        assert_eq!(capability_list(args), ["IMAP4REV1", "LITERAL+"]);
        assert_eq!(untagged(b"(x"), None);
    }

    #[test]
    fn fetch_item_names_keep_their_sections() {
        let mut p = c(b"BODY[HEADER.FIELDS (MESSAGE-ID \"X]Y\")]<0> {2}");
        assert_eq!(
            p.msg_att_name().unwrap(),
            b"BODY[HEADER.FIELDS (MESSAGE-ID \"X]Y\")]<0>"
        );
        assert_eq!(c(b"UID 5").msg_att_name().unwrap(), b"UID");
        assert!(c(b"BODY[HEADER").msg_att_name().is_err());
        assert!(c(b"(x").msg_att_name().is_err());
    }
}
