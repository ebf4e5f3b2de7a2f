//! Reading replies out of whatever a person pastes: a bare reply, a reply without its three-digit
//! code, a line from a Postfix log, an Exim or Sendmail bounce body, Microsoft's NDR text, a
//! multi-line reply, or a whole bounce message.
//!
//! Framing is kept apart from meaning: this module only finds replies and the context around them
//! (the host that sent each one, the recipient, the SMTP stage); the knowledge base reads them.
//! Anything that contains a valid enhanced status code yields at least one finding.

use std::sync::OnceLock;

use regex::Regex;

use super::{EnhancedCode, Status};

/// One reply found in the input, with what its wrapper said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The reply as far as it is known.
    pub status: Status,
    /// The host that sent it (Postfix `host X said`, Exim `host X [ip]`, Sendmail `while talking
    /// to X`, an Exchange NDR's `X #<…>`, a DSN's Remote-MTA).
    pub host: Option<String>,
    /// The recipient it was about.
    pub recipient: Option<String>,
    /// The SMTP stage it answered (`RCPT TO`, `end of DATA`, …), when the wrapper says so.
    pub stage: Option<String>,
    /// Problems with the codes themselves (an invalid class, classes that disagree).
    pub warnings: Vec<String>,
    /// Whether this reply only carries the next one: a relay's own code around the reply it
    /// quotes (`450 4.4.101 Proxy session setup failed … with '451 5.7.3 …'`).
    pub wrapper: bool,
}

/// The most wrapper text between a basic code and its enhanced code that still reads as one reply.
const MAX_CODE_GAP: usize = 80;

/// The longest input read; a bounce with attachments is cut here (replies sit near the top).
pub const MAX_INPUT: usize = 4 << 20;

/// Compiled patterns, built once.
struct Patterns {
    /// A basic code followed by an enhanced one: `550 5.7.1`, `550-5.7.26`, `421: 4.3.2`,
    /// `550;5.7.711`, `452 #4.5.3`, `550-'5.1.1`.
    both: Regex,
    /// An enhanced code on its own, possibly `#`-prefixed (`#5.7.1`), not part of an IP address.
    enhanced: Regex,
    /// A basic code where a reply starts: line start or after a marker such as `said:`.
    basic: Regex,
    /// qmail's status after the text: `(#5.1.1)`.
    qmail_status: Regex,
    /// Hosts named before a reply.
    hosts: [Regex; 5],
    /// Recipients named before a reply.
    recipient: Regex,
    /// Postfix's `(in reply to X command)`.
    in_reply_to: Regex,
    /// Exim's `after X:` and Sendmail's `>>> X`.
    after: Regex,
    /// Wrapper text trailing a reply.
    trailer: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("static pattern");
        Patterns {
            both: re(r##"(?:^|[^\w.])([2-5]\d\d)[ \t]*[-:;,]?[ \t]*['"#]*[ \t]*(\d)\.(\d{1,3})\.(\d{1,3})(?:[^\w.]|\.(?:\s|$)|$)"##),
            enhanced: re(r"(?:^|[^\w.:/-])#?(\d)\.(\d{1,3})\.(\d{1,3})(?:[^\w.]|\.(?:\s|$)|$)"),
            basic: re(r##"(?i)(?:^[\s>'"(\[]*|(?:said|error|reply|response|code|server|statuscode):\s*['"(]?\s*|:\s+['"(]?\s*|;\s*['"]?\s*|<<<\s*|returned\s*'\s*|\(\s*)([2-5]\d\d)(?:[ \t\-),'"]|$)"##),
            qmail_status: re(r"\(#(\d)\.(\d{1,3})\.(\d{1,3})\)"),
            hosts: [
                re(r"(?i)\bRemote-MTA:\s*(?:dns;\s*)?\[?([a-z0-9][a-z0-9.-]*[a-z0-9])"),
                re(r"(?i)\bhost\s+([a-z0-9][a-z0-9.-]*[a-z0-9])\[[0-9a-f:.]+\]"),
                re(r"(?i)\bhost\s+([a-z0-9][a-z0-9.-]*[a-z0-9])\s+\[[0-9a-f:.]+\]"),
                re(r"(?i)while talking to\s+\[?([a-z0-9][a-z0-9.-]*[a-z0-9])\]?\.?:"),
                re(r"(?i)(?:^|\s)([a-z0-9-]+(?:\.[a-z0-9-]+)+)\s+#<"),
            ],
            recipient: re(r"<?([A-Za-z0-9._%+=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)>?"),
            in_reply_to: re(r"(?i)\(in reply to ([a-z ]+?) command\)"),
            after: re(r"(?i)(?:after|>>>)\s+(RCPT TO|MAIL FROM|end of data|DATA|RCPT To|MAIL From|initial connection|EHLO|HELO|STARTTLS|sending data block)"),
            trailer: re(r##"(?i)(;\s*from=<[^>]*>.*|\s*\(in reply to [a-z ]+ command\)\)?|\s*>?\s*#SMTP#|\s*##|\s*['"]+>?|\s+)*$"##),
        }
    })
}

/// Where a code was found in a logical line.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    /// Where the reply text begins (after the codes).
    text_from: usize,
    code: Option<u16>,
    enhanced: Option<(u8, u16, u16)>,
}

/// The logical lines of a text (see [`logical_lines`]), each without wrapper trailers: what a
/// reading by wording alone looks at when the text carries no code at all.
/// Each comes with the first address it names (the recipient a bounce line is about).
pub fn wording_lines(text: &str) -> Vec<(String, Option<String>)> {
    logical_lines(text)
        .iter()
        .map(|l| {
            let rcpt = patterns()
                .recipient
                .captures(&l.text)
                .map(|c| c[1].to_string());
            (reply_text(&l.text, 0, l.text.len()), rcpt)
        })
        .filter(|(l, _)| l.chars().any(|c| c.is_ascii_alphabetic()))
        .collect()
}

/// Splits text into logical lines: a line indented deeper than the first line of the current
/// logical line continues it (bounce bodies wrap long replies that way); a blank line ends it.
fn logical_lines(text: &str) -> Vec<Line> {
    let mut out: Vec<(usize, Line)> = Vec::new();
    let mut open = false;
    let mut after_blank = true;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            open = false;
            after_blank = true;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        match out.last_mut() {
            Some((first_indent, cur)) if open && indent > *first_indent => {
                cur.text.push(' ');
                cur.text.push_str(line.trim());
            }
            _ => {
                out.push((
                    indent,
                    Line {
                        text: line.trim().to_string(),
                        starts_paragraph: after_blank,
                    },
                ));
                open = true;
            }
        }
        after_blank = false;
    }
    out.into_iter().map(|(_, l)| l).collect()
}

/// A logical line, and whether a blank line came before it.
struct Line {
    text: String,
    starts_paragraph: bool,
}

fn digits(s: &str) -> u16 {
    s.parse().unwrap_or(u16::MAX)
}

/// Every code position in a line, best form first where two overlap.
fn hits(line: &str) -> Vec<Hit> {
    let mut out = both_hits(line);
    enhanced_hits(line, &mut out);
    basic_hits(line, &mut out);
    out.sort_by_key(|h| h.start);
    // A code-only hit right before a fuller one is its wrapper (`#5.7.1 smtp;550 5.7.1 …`,
    // `< #5.0.0 smtp; 5.1.0 - Unknown address error 550-'5.1.1 …`): keep the reply itself.
    if out.iter().any(|h| h.code.is_some() && h.enhanced.is_some()) {
        out.retain(|h| h.code.is_some());
    }
    join_split_codes(&mut out);
    qmail_statuses(line, &mut out);
    out
}

fn enhanced_of(c: &regex::Captures, first: usize) -> (u8, u16, u16) {
    (
        digits(&c[first]) as u8,
        digits(&c[first + 1]),
        digits(&c[first + 2]),
    )
}

/// `550 5.7.1`, `550-5.7.26`, `421: 4.3.2`, `550;5.7.711` …
fn both_hits(line: &str) -> Vec<Hit> {
    patterns()
        .both
        .captures_iter(line)
        .map(|c| Hit {
            start: c.get(1).expect("group").start(),
            text_from: c.get(4).expect("group").end(),
            code: Some(digits(&c[1])),
            enhanced: Some(enhanced_of(&c, 2)),
        })
        .collect()
}

fn covered(out: &[Hit], at: usize) -> bool {
    out.iter().any(|h| at >= h.start && at < h.text_from)
}

/// Enhanced codes on their own: `5.7.708 Access denied…`, `#5.7.1`.
fn enhanced_hits(line: &str, out: &mut Vec<Hit>) {
    let p = patterns();
    let qmail: Vec<usize> = p
        .qmail_status
        .find_iter(line)
        .map(|m| m.start() + 2)
        .collect();
    for c in p.enhanced.captures_iter(line) {
        let cls = c.get(1).expect("group");
        if covered(out, cls.start()) || qmail.contains(&cls.start()) {
            continue;
        }
        // A number such as "section 3.6.2" is no status code; an invalid class only counts where
        // a reply starts.
        let at_start = line[..cls.start()]
            .trim_end_matches(['#', ' ', '\''])
            .trim_end()
            .is_empty();
        if !matches!(digits(cls.as_str()), 2 | 4 | 5) && !at_start {
            continue;
        }
        // Postfix's log `dsn=4.0.0` is its own summary, not the receiver's reply.
        if line[..cls.start()].ends_with("dsn=") {
            continue;
        }
        out.push(Hit {
            start: cls.start(),
            text_from: c.get(3).expect("group").end(),
            code: None,
            enhanced: Some(enhanced_of(&c, 1)),
        });
    }
}

/// Basic codes where a reply starts: line start, `said:`, `smtp;`, `<<<`, `(451)` …
fn basic_hits(line: &str, out: &mut Vec<Hit>) {
    for c in patterns().basic.captures_iter(line) {
        let code = c.get(1).expect("group");
        if !covered(out, code.start()) {
            out.push(Hit {
                start: code.start(),
                text_from: code.end(),
                code: Some(digits(code.as_str())),
                enhanced: None,
            });
        }
    }
}

/// A basic code and, a little later, the enhanced code of the same reply with a wrapper's words
/// between: `(code: 550, response: 5.7.1 Unable to relay`, `451 ErrorInProcessing.
/// System.Exception: 4.7.500 Access denied`.
fn join_split_codes(out: &mut Vec<Hit>) {
    let mut i = 0;
    while i + 1 < out.len() {
        let (a, b) = (out[i], out[i + 1]);
        if let (Some(code), None, None, Some(e)) = (a.code, a.enhanced, b.code, b.enhanced) {
            if b.start - a.text_from <= MAX_CODE_GAP && u16::from(e.0) == code / 100 {
                out[i].enhanced = Some(e);
                out[i].text_from = b.text_from;
                out.remove(i + 1);
            }
        }
        i += 1;
    }
}

/// qmail puts the enhanced code after the text: `552 sorry, … over quota (#5.2.2)`.
fn qmail_statuses(line: &str, out: &mut [Hit]) {
    for c in patterns().qmail_status.captures_iter(line) {
        let at = c.get(0).expect("group").start();
        if let Some(h) = out
            .iter_mut()
            .rev()
            .find(|h| h.start < at && h.enhanced.is_none())
        {
            h.enhanced = Some(enhanced_of(&c, 1));
        }
    }
}

/// The reply text after the codes, up to the next reply, without wrapper trailers.
fn reply_text(line: &str, from: usize, to: usize) -> String {
    let raw = line[from..to].trim();
    // A documented range rather than one code: `4.7.500-699 Access denied…`.
    let raw = match raw.strip_prefix('-') {
        Some(r) if r.bytes().take_while(u8::is_ascii_digit).count() > 0 => {
            r.trim_start_matches(|c: char| c.is_ascii_digit())
        }
        _ => raw,
    };
    let raw = raw.trim_start_matches(['-', ':', ';', '\'', '"', ' ', ',', ')', '(']);
    let cut = patterns()
        .trailer
        .find(raw)
        .map_or(raw.len(), |m| m.start());
    let mut text = raw[..cut].trim();
    // A closing bracket of the wrapper (`status=deferred (… said: 451 …)`), not of the reply.
    for (open, close) in [('(', ')'), ('<', '>')] {
        while text.ends_with(close) && text.matches(open).count() < text.matches(close).count() {
            text = text[..text.len() - 1].trim_end();
        }
    }
    text.to_string()
}

/// Context named in `before` (the line up to a reply): the last host and recipient mentioned.
fn context_before(before: &str) -> (Option<String>, Option<String>) {
    let p = patterns();
    let host = p
        .hosts
        .iter()
        .filter_map(|re| re.captures_iter(before).last())
        .max_by_key(|c| c.get(0).map_or(0, |m| m.start()))
        .map(|c| c[1].to_ascii_lowercase());
    let recipient = p
        .recipient
        .captures_iter(before)
        .last()
        .map(|c| c[1].to_string());
    (host, recipient)
}

fn stage_of(before: &str, after: &str) -> Option<String> {
    let p = patterns();
    if let Some(c) = p.in_reply_to.captures(after) {
        return Some(c[1].to_string());
    }
    p.after
        .captures_iter(before)
        .last()
        .map(|c| c[1].to_ascii_uppercase())
}

/// Drops the `550-` / `550 ` line prefixes of a multi-line reply that a log or bounce ran
/// together into one line (`… is not permitted to 550 relay through …`).
fn strip_inner_codes(text: &str, code: u16) -> String {
    let (dash, space) = (format!(" {code}-"), format!(" {code} "));
    if !text.contains(&dash) && !text.contains(&space) {
        return text.to_string();
    }
    let padded = format!(" {text}");
    padded
        .replace(&dash, " ")
        .replace(&space, " ")
        .trim()
        .to_string()
}

/// Checks a found code pair and says what is wrong with it.
fn check_codes(
    code: Option<u16>,
    e: Option<(u8, u16, u16)>,
) -> (Option<EnhancedCode>, Vec<String>) {
    let mut warnings = Vec::new();
    let Some((class, subject, detail)) = e else {
        return (None, warnings);
    };
    let shown = format!("{class}.{subject}.{detail}");
    if !matches!(class, 2 | 4 | 5) {
        warnings.push(format!(
            "`{shown}` is not a valid enhanced status code: RFC 3463 allows only classes 2, 4 and 5"
        ));
        return (None, warnings);
    }
    if let Some(c) = code {
        let basic = c / 100;
        if basic != u16::from(class) {
            warnings.push(format!(
                "the reply code {c} and the enhanced code {shown} disagree (RFC 3463 §2: the classes must match); Exchange's `451 5.7.3` does this, so it is read as sent"
            ));
        }
    }
    (
        Some(EnhancedCode {
            class,
            subject,
            detail,
        }),
        warnings,
    )
}

/// Finds the replies in one logical line. Each comes with whether its last line was a `NNN-`
/// line, so that a multi-line reply pasted line by line can be joined up again.
fn line_findings(line: &str) -> Vec<(Finding, bool)> {
    let hs = hits(line);
    let mut out: Vec<(Finding, bool)> = Vec::new();
    for (i, h) in hs.iter().enumerate() {
        let end = hs.get(i + 1).map_or(line.len(), |n| n.start);
        let mut text = reply_text(line, h.text_from, end);
        if let Some(c) = h.code {
            text = strip_inner_codes(&text, c);
        }
        let (enhanced, warnings) = check_codes(h.code, h.enhanced);
        if h.code.is_none() && enhanced.is_none() && warnings.is_empty() {
            continue;
        }
        let before = &line[..h.start];
        let (host, recipient) = context_before(before);
        let stage = stage_of(before, &line[h.text_from..]);
        let dash = h.code.is_some() && line.as_bytes().get(h.start + 3) == Some(&b'-');
        let finding = Finding {
            status: Status {
                code: h.code,
                enhanced,
                text,
            },
            host,
            recipient,
            stage,
            warnings,
            wrapper: false,
        };
        match out.last_mut() {
            // `550-5.7.26 … 550-5.7.26 … 550 5.7.26 …` unfolded into one line.
            Some((prev, open)) if *open && continues(prev, &finding) => {
                join(prev, &finding);
                *open = dash;
            }
            Some((prev, _)) if quotes(prev, &finding) => {
                prev.wrapper = true;
                out.push((finding, dash));
            }
            _ => out.push((finding, dash)),
        }
    }
    out
}

/// Whether `next`, later on the same logical line, is quoted by `prev` rather than a reply of
/// its own: nothing new (recipient or host) was named between them.
fn quotes(prev: &Finding, next: &Finding) -> bool {
    next.status.code.is_some()
        && next.status.enhanced.is_some()
        && prev.status.enhanced.is_some()
        && next.recipient == prev.recipient
        && next
            .host
            .as_deref()
            .is_none_or(|h| prev.host.as_deref() == Some(h))
}

/// Whether `next` can be the next line of the multi-line reply `prev`.
fn continues(prev: &Finding, next: &Finding) -> bool {
    prev.status.code.is_some()
        && prev.status.code == next.status.code
        && (next.status.enhanced.is_none()
            || prev.status.enhanced.is_none()
            || prev.status.enhanced == next.status.enhanced)
        && next
            .host
            .as_deref()
            .is_none_or(|h| prev.host.as_deref() == Some(h))
}

fn join(prev: &mut Finding, next: &Finding) {
    if prev.status.enhanced.is_none() {
        prev.status.enhanced = next.status.enhanced;
    }
    if !next.status.text.is_empty() {
        if !prev.status.text.is_empty() {
            prev.status.text.push(' ');
        }
        prev.status.text.push_str(&next.status.text);
    }
    if prev.stage.is_none() {
        prev.stage.clone_from(&next.stage);
    }
}

/// Whether a basic-code-only finding is believable: prose like "250 bytes" is not a reply.
fn plausible(f: &Finding) -> bool {
    f.status.enhanced.is_some()
        || !f.warnings.is_empty()
        || f.status.text.chars().any(|c| c.is_ascii_alphabetic())
}

/// Finds every reply in free text, in order, duplicates dropped.
pub fn find_in_text(text: &str) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    // Whether the last finding's last line was a `NNN-` line (more lines of it may follow).
    let mut open = false;
    // A host or recipient named on a line of its own applies to the replies after it
    // (`status=deferred (host X said:` with the reply on the next line, a DSN's Remote-MTA).
    let (mut host, mut recipient): (Option<String>, Option<String>) = (None, None);
    let lines = logical_lines(text);
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i].text;
        i += 1;
        let found = line_findings(line);
        if found.is_empty() {
            let (h, r) = context_before(line);
            host = h.or(host);
            recipient = r.or(recipient);
            continue;
        }
        let last = found.len() - 1;
        for (n, (mut f, dash)) in found.into_iter().enumerate() {
            if n == last {
                i += continue_text(&mut f.status.text, &lines[i..]);
            }
            if f.host.is_none() {
                f.host.clone_from(&host);
            }
            if f.recipient.is_none() {
                f.recipient.clone_from(&recipient);
            }
            if !plausible(&f) {
                continue;
            }
            if let Some(prev) = out.last_mut().filter(|p| open && continues(p, &f)) {
                join(prev, &f);
                open = dash;
            } else if out.iter().any(|o| same_reply(o, &f)) {
                open = false;
            } else {
                out.push(f);
                open = dash;
            }
        }
        host = None;
        recipient = None;
    }
    out
}

/// A reply wrapped by hand continues on the next lines of its paragraph (`said: 554` with the
/// words below it, `Please contact your` / `Internet service provider …`). Appends them while
/// the text reads as unfinished; returns how many lines were taken.
fn continue_text(text: &mut String, rest: &[Line]) -> usize {
    let mut taken = 0;
    for l in rest {
        let unfinished =
            text.is_empty() || !text.ends_with(['.', '!', '?', ')', ']', '>', '"', '\'']);
        let field = l.text.split_once(':').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.len() < 30
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !unfinished || l.starts_paragraph || field || !line_findings(&l.text).is_empty() {
            break;
        }
        let more = reply_text(&l.text, 0, l.text.len());
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&more);
        taken += 1;
    }
    taken
}

fn same_reply(a: &Finding, b: &Finding) -> bool {
    a.status.code == b.status.code
        && a.status.enhanced == b.status.enhanced
        && a.recipient == b.recipient
        && (a.status.text == b.status.text || a.host == b.host)
}

/// Turns pasted HTML (an NDR copied from a browser) into text.
pub fn html_to_text(s: &str) -> String {
    mail_parser::decoders::html::html_to_text(s)
}

/// Whether pasted text looks like HTML rather than text.
pub fn looks_like_html(s: &str) -> bool {
    let head = s.get(..s.len().min(4096)).unwrap_or(s).to_ascii_lowercase();
    ["<html", "<body", "<table", "<td", "<div", "<p>", "<br"]
        .iter()
        .any(|t| head.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Finding {
        let f = find_in_text(s);
        assert_eq!(f.len(), 1, "{s}: {f:?}");
        f.into_iter().next().unwrap()
    }

    fn codes(f: &Finding) -> (Option<u16>, Option<String>) {
        (f.status.code, f.status.enhanced.map(|e| e.to_string()))
    }

    #[test]
    fn prefixes_and_wrappers_around_a_reply() {
        for (input, code, enh) in [
            ("421: 4.3.2 Service not active", Some(421), "4.3.2"),
            ("Remote Server returned '550;5.7.711 Access denied, bad inbound connector. AS(2204).'", Some(550), "5.7.711"),
            ("transient: 4.5.3 Too many recipients", None, "4.5.3"),
            ("452 #4.5.3 Too many recipients.", Some(452), "4.5.3"),
            ("5.7.708 Service unavailable. Access denied, traffic not accepted from this IP", None, "5.7.708"),
            ("smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected", Some(550), "5.1.1"),
            ("mail.contoso.com #<exchange.contoso.com #5.7.1 smtp;530 5.7.1 Client was not authenticated> #SMTP#", Some(530), "5.7.1"),
        ] {
            let f = one(input);
            assert_eq!(codes(&f), (code, Some(enh.to_string())), "{input}");
        }
    }

    #[test]
    fn a_postfix_log_line_gives_host_stage_and_text() {
        let f = one("Jun 22 05:58:01 mta1 postfix/smtp[812]: 4bQ7Xk2Lz8z9t: to=<alice@contoso.com>, relay=contoso-com.mail.protection.outlook.com[192.0.2.25]:25, delay=2, status=deferred (host contoso-com.mail.protection.outlook.com[192.0.2.25] said: 451 4.7.500 Server busy. Please try again later from [203.0.113.7]. (AS761) (in reply to RCPT TO command))");
        assert_eq!(
            f.host.as_deref(),
            Some("contoso-com.mail.protection.outlook.com")
        );
        assert_eq!(f.stage.as_deref(), Some("RCPT TO"));
        assert_eq!(f.recipient.as_deref(), Some("alice@contoso.com"));
        assert!(f.status.text.ends_with("(AS761)"), "{}", f.status.text);
    }

    #[test]
    fn multi_line_replies_are_one_reply() {
        let f = one("550-5.7.26 This mail has been blocked because the sender is\n550-5.7.26 unauthenticated. Gmail requires all senders to authenticate.\n550 5.7.26  - gsmtp");
        assert!(
            f.status.text.contains("sender is unauthenticated"),
            "{}",
            f.status.text
        );
        let f = one("host gmail-smtp-in.l.google.com[192.0.2.1] said: 550-5.7.26 This mail is 550-5.7.26 unauthenticated. 550 5.7.26 - gsmtp (in reply to end of DATA command)");
        assert_eq!(f.host.as_deref(), Some("gmail-smtp-in.l.google.com"));
        assert!(
            f.status.text.contains("This mail is unauthenticated."),
            "{}",
            f.status.text
        );
    }

    #[test]
    fn an_exim_bounce_body_is_unfolded() {
        let body = "A message that you sent could not be delivered.\n\n  bob@example.org\n    host mx.example.org [192.0.2.1]\n    SMTP error from remote mail server after RCPT TO:<bob@example.org>:\n    550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown\n  carol@example.org\n    host mx.example.org [192.0.2.1]\n    SMTP error from remote mail server after RCPT TO:<carol@example.org>:\n    552 5.2.2 Mailbox full\n";
        let f = find_in_text(body);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].host.as_deref(), Some("mx.example.org"));
        assert_eq!(f[0].stage.as_deref(), Some("RCPT TO"));
        assert_eq!(f[1].recipient.as_deref(), Some("carol@example.org"));
    }

    #[test]
    fn invalid_codes_are_flagged_not_refused() {
        let f = one("550 9.1.1 nonsense");
        assert!(
            f.warnings[0].contains("classes 2, 4 and 5"),
            "{:?}",
            f.warnings
        );
        let f = one("550 4.7.500 mixed classes");
        assert!(f.warnings[0].contains("disagree"), "{:?}", f.warnings);
    }

    #[test]
    fn prose_numbers_and_addresses_are_not_replies() {
        assert!(find_in_text("The message was 250 bytes long.").is_empty());
        assert!(find_in_text("from [192.0.2.25] at 10.0.0.1").is_empty());
    }
}
