//! SMTP reply parsing, classification, and the Microsoft 365 knowledge base.
//!
//! One module for everyone: the send engine classifies attempts with it, `explain` reads replies
//! and bounces with it, and analysis groups replies with it, so they never disagree. Classification
//! keys on the enhanced status code (RFC 3463) and the AS/S token, never on wording, because
//! relays such as Postfix rewrite the text (reference: "Postfix-style receivers rewrite reply text").

use std::fmt;
use std::str::FromStr;

use crate::vocab::OutcomeClass;

mod compose;
pub mod dsn;
mod explain;
pub mod knowledge;
pub mod read;
mod rfc3463;

pub use explain::{
    explain, explain_input, explain_input_from, ExplainError, ExplainReport, ExplainedItem,
    Explanation, EXPLAIN_SCHEMA,
};
use knowledge::FamilyOutcome;
pub use knowledge::{Confidence, ConnectorAnswer, Entry, Family, Knowledge, Origin};

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// Subject (0–999).
    pub subject: u16,
    /// Detail (0–999).
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl FromStr for EnhancedCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.split('.');
        let parse = |p: Option<&str>, max: u16| -> Option<u16> {
            let p = p?;
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<u16>().ok().filter(|v| *v <= max)
        };
        let class = parse(it.next(), 9).filter(|c| matches!(c, 2 | 4 | 5));
        let subject = parse(it.next(), 999);
        let detail = parse(it.next(), 999);
        match (class, subject, detail, it.next()) {
            (Some(c), Some(s), Some(d), None) => Ok(EnhancedCode {
                class: c as u8,
                subject: s,
                detail: d,
            }),
            _ => Err(format!(
                "`{s}` is not an enhanced status code such as 4.7.500"
            )),
        }
    }
}

/// An SMTP reply: code, optional enhanced code, and every text line. The send engine parses it
/// ([`parse_reply_lines`]); the simulator builds and writes it (`Reply::new`, `write_to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code from the first line, if present.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line, without the code and without the enhanced code.
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply's text, lines joined with a space.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// Whether the code is 2xx, a positive completion (RFC 5321 §4.2.1). A 3xx intermediate
    /// reply (354) is not: the one meaning of "positive" for parsed and written replies alike.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// The AS/S/ATTR token, e.g. `AS761`.
    pub fn token(&self) -> Option<String> {
        extract_token(&self.text())
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let t = self.text();
        if !t.is_empty() {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

/// Parses the raw lines of one reply (`"451-…"`, `"451 …"`), as read from the wire.
pub fn parse_reply_lines<S: AsRef<str>>(raw: &[S]) -> Result<Reply, String> {
    let first = raw.first().ok_or("empty reply")?.as_ref();
    let code =
        reply_code(first).ok_or_else(|| format!("`{first}` does not start with a reply code"))?;
    let mut lines = Vec::with_capacity(raw.len());
    let mut enhanced = None;
    for (i, l) in raw.iter().enumerate() {
        let l = l.as_ref().trim_end_matches(['\r', '\n']);
        if reply_code(l) != Some(code) {
            return Err(format!("reply line `{l}` does not carry code {code}"));
        }
        let rest = l.get(4..).unwrap_or("");
        let (e, text) = split_enhanced(rest, code);
        if i == 0 {
            enhanced = e;
        }
        lines.push(text.to_string());
    }
    Ok(Reply {
        code,
        enhanced,
        lines,
    })
}

/// The reply code at the start of `l` when followed by space, `-` or the end.
fn reply_code(l: &str) -> Option<u16> {
    let b = l.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return None;
    }
    if b.len() > 3 && !matches!(b[3], b' ' | b'-') {
        return None;
    }
    l[..3].parse().ok()
}

/// Splits a leading enhanced code off a reply line's text when its class matches the reply code.
fn split_enhanced(rest: &str, code: u16) -> (Option<EnhancedCode>, &str) {
    let word_end = rest.find(' ').unwrap_or(rest.len());
    match rest[..word_end].parse::<EnhancedCode>() {
        // RFC 3463 wants the classes to agree, but Exchange really sends `451 5.7.3`: accept any
        // negative enhanced code on a negative reply.
        Ok(e) if u16::from(e.class) == code / 100 || (code >= 400 && e.class >= 4) => {
            (Some(e), rest[word_end..].trim_start())
        }
        _ => (None, rest),
    }
}

/// Extracts Microsoft's diagnostic token: `(AS761)`, `AS(201806281)`, `(S77714)`, `ATTR35`.
pub fn extract_token(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits_at = |i: usize| -> usize {
        b[i.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if boundary {
            for prefix in ["ATTR", "AS", "S"] {
                let p = prefix.as_bytes();
                if b[i..].starts_with(p) {
                    let after = i + p.len();
                    // AS(201806281)
                    if prefix == "AS" && b.get(after) == Some(&b'(') {
                        let n = digits_at(after + 1);
                        if n > 0 && b.get(after + 1 + n) == Some(&b')') {
                            return Some(format!("AS{}", &text[after + 1..after + 1 + n]));
                        }
                    }
                    let n = digits_at(after);
                    let end_ok = b.get(after + n).is_none_or(|c| !c.is_ascii_alphanumeric());
                    // A bare `S123` only counts inside parentheses, where EOP puts it.
                    let in_parens = i > 0 && b[i - 1] == b'(';
                    if n > 0 && end_ok && (prefix != "S" || in_parens) {
                        return Some(format!("{prefix}{}", &text[after..after + n]));
                    }
                }
            }
        }
        i += 1;
    }
    None
}

/// A reply or a bare status as far as it is known: what the knowledge base reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// The three-digit reply code, when there was one (a pasted `5.7.708 …` has none).
    pub code: Option<u16>,
    /// The enhanced status code, when there was one.
    pub enhanced: Option<EnhancedCode>,
    /// The reply text after the codes, lines joined with a space.
    pub text: String,
}

impl Status {
    /// Whether the reply (or status) is a temporary failure.
    pub fn is_temporary(&self) -> bool {
        match (self.code, self.enhanced) {
            (Some(c), _) => (400..500).contains(&c),
            (None, Some(e)) => e.class == 4,
            // Words alone: a log's `status=deferred`, "try again later".
            (None, None) => {
                let t = self.text.to_ascii_lowercase();
                ["defer", "temporar", "try again later", "try later"]
                    .iter()
                    .any(|w| t.contains(w))
            }
        }
    }

    /// Whether it reports success (2xx or 3xx, or a class-2 status).
    pub fn is_success(&self) -> bool {
        match (self.code, self.enhanced) {
            (Some(c), _) => c < 400,
            (None, Some(e)) => e.class == 2,
            (None, None) => false,
        }
    }

    /// The reply as shown to a person: `451 4.7.500 Server busy…`.
    pub fn shown(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = self.code {
            parts.push(c.to_string());
        }
        if let Some(e) = self.enhanced {
            parts.push(e.to_string());
        }
        if !self.text.is_empty() {
            parts.push(self.text.clone());
        }
        parts.join(" ")
    }
}

impl From<&Reply> for Status {
    fn from(r: &Reply) -> Self {
        Status {
            code: Some(r.code),
            enhanced: r.enhanced,
            text: r.text(),
        }
    }
}

impl From<&crate::record::DecidingReply> for Status {
    fn from(r: &crate::record::DecidingReply) -> Self {
        Status {
            code: Some(r.code),
            enhanced: r.enhanced.as_deref().and_then(|e| e.parse().ok()),
            text: r.text.clone(),
        }
    }
}

/// What is known around a reply besides its own words.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Whether the session was encrypted: a "TLS required" reply to an encrypted session is about
    /// something else, so it is not read as one.
    pub session_tls: bool,
    /// The host that sent the reply (the MX connected to, a DSN's Remote-MTA, …).
    pub host: Option<&'a str>,
    /// The recipient the reply was about.
    pub recipient: Option<&'a str>,
    /// Who the caller knows it was talking to (a run against a Microsoft 365 target), used when
    /// the reply itself shows nothing about its writer.
    pub assume: Option<Origin>,
    /// Whether the caller knows the reply came from the receiver's inbound MX on port 25, where
    /// a tenant's inbound connectors act (a run always talks to it; a pasted reply says so when
    /// its host is a tenant's MX name).
    pub at_mx: bool,
}

/// What the knowledge base says about one reply.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// The outcome class an attempt refused this way is recorded with.
    pub outcome: OutcomeClass,
    /// The family, when the reply is known (or a success).
    pub family: Option<&'static Family>,
    /// The entry that read it.
    pub entry: Option<&'static Entry>,
    /// Who wrote the reply, as far as the evidence shows.
    pub origin: Origin,
    /// The name of the server that wrote it ("Postfix"), when recognised.
    pub origin_name: Option<&'static str>,
    /// Whether an inbound connector is the answer; `None` when the reply is unknown.
    pub connector: Option<ConnectorAnswer>,
    /// How sure the reading is.
    pub confidence: Confidence,
}

/// Reads one reply or status with the knowledge base. The send engine's classifier and `explain`
/// both come through here.
pub fn read_status(status: &Status, ctx: &Context) -> Reading {
    let kb = Knowledge::get();
    let token = extract_token(&status.text);
    let (origin, origin_name) = match knowledge::detect_origin(
        kb,
        ctx.host,
        ctx.recipient,
        &status.text,
        status.enhanced,
    ) {
        (Origin::Unknown, _) if ctx.assume.is_some() => {
            (ctx.assume.unwrap_or(Origin::Unknown), None)
        }
        found => found,
    };
    let mut reading = Reading {
        outcome: if status.is_temporary() {
            OutcomeClass::Deferred
        } else {
            OutcomeClass::Rejected
        },
        family: None,
        entry: None,
        origin,
        origin_name,
        connector: None,
        confidence: Confidence::Unknown,
    };
    if status.is_success() {
        reading.outcome = OutcomeClass::Accepted;
        reading.family = kb.family("success");
        reading.connector = Some(ConnectorAnswer::No);
        reading.confidence = Confidence::Documented;
        return reading;
    }
    let q = knowledge::Query {
        code: status.code,
        enhanced: status.enhanced,
        token: token.as_deref(),
        text: &status.text,
        origin,
        session_tls: ctx.session_tls,
    };
    let Some(rule) = knowledge::lookup(kb, &q) else {
        return reading;
    };
    let family = &kb.families[rule.family];
    reading.outcome = match family.outcome {
        FamilyOutcome::ByClass => reading.outcome,
        FamilyOutcome::Throttled => OutcomeClass::Throttled,
        FamilyOutcome::RateLimited => OutcomeClass::RateLimited,
        FamilyOutcome::TlsRequired => OutcomeClass::TlsRequired,
    };
    let at_mx = ctx.at_mx || ctx.host.is_some_and(|h| knowledge::is_tenant_mx(kb, h));
    reading.connector = Some(connector_answer(&rule.entry, family, origin, at_mx));
    reading.family = Some(family);
    reading.entry = Some(&rule.entry);
    // A reading by words alone (no code at all) is never more than an inference.
    reading.confidence =
        if rule.entry.generic || (status.code.is_none() && status.enhanced.is_none()) {
            Confidence::Inferred
        } else {
            Confidence::Documented
        };
    reading
}

/// The connector answer for an entry's reading of a reply from `origin`. Connector advice is only
/// ever Microsoft 365's: another server's reply gets "no", consumer Outlook.com "not a tenant";
/// with no evidence either way, the entry's own answer stands.
fn connector_answer(
    entry: &Entry,
    family: &Family,
    origin: Origin,
    at_mx: bool,
) -> ConnectorAnswer {
    let answer = entry
        .connector_at_mx
        .filter(|_| at_mx)
        .or(entry.connector)
        .unwrap_or(family.connector);
    match origin {
        // Exchange Server's replies (a receive connector requiring TLS) mean the same thing in
        // Exchange Online, which runs Exchange.
        Origin::Microsoft | Origin::Exchange | Origin::Unknown => answer,
        Origin::MicrosoftConsumer => ConnectorAnswer::NotATenant,
        _ => ConnectorAnswer::No,
    }
}

/// A reply's classification, as the send engine records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The outcome class.
    pub outcome: OutcomeClass,
    /// The knowledge-base family id, when known.
    pub family: Option<&'static str>,
    /// The AS/S token, when present.
    pub token: Option<String>,
}

/// Classifies one reply read off the wire.
pub fn classify(reply: &Reply, ctx: &Context) -> Classification {
    let status = Status::from(reply);
    let r = read_status(&status, ctx);
    Classification {
        outcome: r.outcome,
        family: r
            .family
            .filter(|f| f.id != "success")
            .map(|f| f.id.as_str()),
        token: extract_token(&status.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Reply {
        parse_reply_lines(&[line]).unwrap()
    }

    fn plain() -> Context<'static> {
        Context::default()
    }

    /// Every real sample in the reference, and Postfix's rewritten form, with its class and token.
    #[test]
    fn reference_samples_classify() {
        let table: &[(&str, OutcomeClass, Option<&str>, Option<&str>)] = &[
            ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)", OutcomeClass::Throttled, Some("ip-throttling"), Some("AS761")),
            ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (S77714)", OutcomeClass::Throttled, Some("ip-throttling"), Some("S77714")),
            ("451 4.7.500 <unknown[127.0.0.3]>: Client host rejected: Server busy. Please try again later from [127.0.0.3]. (AS761)", OutcomeClass::Throttled, Some("ip-throttling"), Some("AS761")),
            ("451 4.7.650 The mail server [198.51.100.7] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [Name=Protocol Filter Agent][AGT=PFA][MxId=11BB...]", OutcomeClass::RateLimited, Some("reputation-rate-limit"), Some("S775")),
            ("451 4.7.700 PFA agent busy, please try again.", OutcomeClass::Deferred, Some("server-busy"), None),
            ("550 5.7.606 Access denied, banned sending IP [192.0.2.9]. To request removal from this list please visit https://sender.office.com/ and follow the directions. (AS16012609)", OutcomeClass::Rejected, Some("banned-ip"), Some("AS16012609")),
            ("550 5.7.1 Service unavailable, Client host [192.0.2.9] blocked using Spamhaus. (AS3130)", OutcomeClass::Rejected, Some("blocklist"), Some("AS3130")),
            ("550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set", OutcomeClass::Rejected, Some("connector-restriction"), None),
            ("550 5.7.64 TenantAttribution; Relay Access Denied", OutcomeClass::Rejected, Some("tenant-attribution"), None),
            ("451 4.4.62 Mail sent to the wrong Office 365 region. ATTR35.", OutcomeClass::Deferred, Some("wrong-region"), Some("ATTR35")),
            ("452 4.5.3 Too many recipients (AS780090)", OutcomeClass::Deferred, Some("too-many-recipients"), Some("AS780090")),
            ("452 4.5.3 Recipients belong to multiple regions ATTR38", OutcomeClass::Deferred, Some("mixed-regions"), Some("ATTR38")),
            ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", OutcomeClass::Rejected, Some("recipient-unknown"), Some("AS201806281")),
            ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", OutcomeClass::Rejected, Some("recipient-unknown"), None),
            ("432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded", OutcomeClass::Deferred, Some("mailbox-limit"), None),
            ("451 5.7.3 STARTTLS is required to send mail", OutcomeClass::TlsRequired, Some("tls-required"), None),
            ("530 5.7.0 Must issue a STARTTLS command first", OutcomeClass::TlsRequired, Some("tls-required"), None),
            // Postfix's reject_plaintext_session (plaintext_reject_code 451 in the test bed).
            ("451 4.7.1 Session encryption is required", OutcomeClass::TlsRequired, Some("tls-required"), None),
            // Any other 5.7.0 is a policy refusal, not a TLS requirement.
            ("550 5.7.0 Local Policy Violation", OutcomeClass::Rejected, Some("content-rejected"), None),
            ("421 4.3.2 Service not available", OutcomeClass::Deferred, Some("server-busy"), None),
            ("554 5.6.0 Something nobody documented", OutcomeClass::Rejected, None, None),
            ("450 Mailbox busy", OutcomeClass::Deferred, None, None),
        ];
        for (line, outcome, family, token) in table {
            let c = classify(&one(line), &plain());
            assert_eq!(c.outcome, *outcome, "{line}");
            assert_eq!(c.family, *family, "{line}");
            assert_eq!(c.token.as_deref(), *token, "{line}");
        }
    }

    #[test]
    fn the_451_5_7_3_quirk_parses_its_enhanced_code() {
        // 451 with a 5.x.x enhanced code: a class mismatch per RFC 3463, but Exchange's real text.
        let r = one("451 5.7.3 STARTTLS is required to send mail");
        assert_eq!(r.enhanced.map(|e| e.to_string()).as_deref(), Some("5.7.3"));
        assert_eq!(r.text(), "STARTTLS is required to send mail");
        // A 2xx reply never carries a negative enhanced code.
        let r = one("250 4.7.500 odd");
        assert_eq!(r.enhanced, None);
    }

    #[test]
    fn multiline_replies_keep_every_line() {
        let r =
            parse_reply_lines(&["250-mx.example Hello", "250-PIPELINING", "250 STARTTLS"]).unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines, vec!["mx.example Hello", "PIPELINING", "STARTTLS"]);
        assert!(parse_reply_lines(&["250-a", "251 b"]).is_err());
        assert!(parse_reply_lines::<&str>(&[]).is_err());
        assert!(parse_reply_lines(&["hello"]).is_err());
    }

    #[test]
    fn tls_required_needs_a_plain_session() {
        let tls = Context {
            session_tls: true,
            ..Context::default()
        };
        for line in [
            "530 5.7.0 Must issue a STARTTLS command first",
            "451 4.7.1 Session encryption is required",
        ] {
            assert_ne!(
                classify(&one(line), &tls).outcome,
                OutcomeClass::TlsRequired,
                "{line}"
            );
        }
    }

    #[test]
    fn the_receiver_host_decides_tenant_or_consumer() {
        let r = one("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (S77719)");
        for (host, answer) in [
            (
                "contoso-com.mail.protection.outlook.com",
                ConnectorAnswer::Helps,
            ),
            (
                "hotmail-com.olc.protection.outlook.com",
                ConnectorAnswer::NotATenant,
            ),
        ] {
            let ctx = Context {
                host: Some(host),
                ..Context::default()
            };
            let reading = read_status(&Status::from(&r), &ctx);
            assert_eq!(reading.outcome, OutcomeClass::Throttled, "{host}");
            assert_eq!(reading.connector, Some(answer), "{host}");
        }
    }

    #[test]
    fn tokens_are_not_found_in_ordinary_words() {
        assert_eq!(extract_token("Sender OK"), None);
        assert_eq!(extract_token("S3 bucket (S3150)").as_deref(), Some("S3150"));
        assert_eq!(extract_token("ASAP please"), None);
    }

    /// Each entry reads its own sample: no earlier entry shadows it.
    #[test]
    fn every_entry_reads_its_own_sample() {
        let kb = Knowledge::get();
        let mut wrong = Vec::new();
        for e in kb.entries() {
            let found = read::find_in_text(&e.sample);
            // An entry for a wording without any code reads its sample by the words alone.
            let by_words = read::Finding {
                status: Status {
                    code: None,
                    enhanced: None,
                    text: e.sample.clone(),
                },
                host: None,
                recipient: None,
                stage: None,
                warnings: Vec::new(),
                wrapper: false,
            };
            let f = found.first().unwrap_or(&by_words);
            let ctx = Context {
                session_tls: false,
                host: f.host.as_deref(),
                recipient: f.recipient.as_deref(),
                assume: e.origin,
                at_mx: false,
            };
            let got = read_status(&f.status, &ctx).entry.map(|x| x.id.as_str());
            if got != Some(e.id.as_str()) {
                wrong.push(format!("{}: sample read by {got:?}: {}", e.id, e.sample));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
