//! SMTP reply parsing, classification, and the Microsoft 365 knowledge base.
//!
//! One module for everyone: the send engine classifies attempts with it, `explain` reads replies
//! and bounces with it, and analysis groups replies with it, so they never disagree. Classification
//! keys on the enhanced status code (RFC 3463) and the AS/S token, never on wording, because
//! relays such as Postfix rewrite the text (reference: "Postfix-style receivers rewrite reply text").

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::record::OutcomeClass;

pub mod dsn;
mod explain;

pub use explain::{
    explain, explain_input, explain_status, ExplainError, ExplainReport, ExplainedItem, Explanation,
};

/// The knowledge base, as shipped.
const KNOWLEDGE_TOML: &str = include_str!("knowledge.toml");

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

/// A parsed SMTP reply: code, optional enhanced code, and every text line.
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

    /// Whether the code is 2xx.
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

/// Finds and parses a reply in free text, e.g. a bounce's `Diagnostic-Code: smtp; 451 4.7.500 …`
/// or a pasted line. Returns `None` when no reply code is found.
pub fn parse_reply_text(text: &str) -> Option<Reply> {
    let t = text.trim();
    let t = t
        .strip_prefix("Diagnostic-Code:")
        .or_else(|| t.strip_prefix("diagnostic-code:"))
        .map(str::trim)
        .unwrap_or(t);
    let t = match t.split_once(';') {
        Some((kind, rest)) if kind.trim().eq_ignore_ascii_case("smtp") => rest.trim(),
        _ => t,
    };
    // The code may follow other text ("Remote server returned '550 5.7.1 …'").
    let start = (0..t.len()).find(|&i| {
        t.is_char_boundary(i)
            && (i == 0 || !t.as_bytes()[i - 1].is_ascii_alphanumeric())
            && reply_code(&t[i..]).is_some()
    })?;
    let body = &t[start..];
    let code = reply_code(body)?;
    let rest = body.get(4..).unwrap_or("");
    let (enhanced, text) = split_enhanced(rest, code);
    Some(Reply {
        code,
        enhanced,
        lines: vec![text.trim_end_matches(['\'', '"']).trim().to_string()],
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

/// Whether an inbound connector is the remedy, the cause, or beside the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorRole {
    /// A connector for the sending IPs fixes it.
    Helps,
    /// A connector's own restriction produced it.
    Cause,
    /// Not a connector matter.
    No,
}

/// One code family of the knowledge base.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// Stable id, e.g. `ip-throttling`.
    pub id: String,
    /// Short title.
    pub title: String,
    /// Enhanced-code ranges it covers.
    #[serde(rename = "match")]
    pub ranges: Vec<String>,
    /// Basic reply codes it is limited to (empty: any).
    #[serde(default)]
    pub codes: Vec<u16>,
    /// Token prefixes it is limited to (empty: any).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// The outcome class of an attempt refused this way.
    pub outcome: OutcomeClass,
    /// Where in the SMTP dialogue it is seen.
    pub stage: String,
    /// A real sample reply.
    pub sample: String,
    /// What it means, in plain words.
    pub meaning: String,
    /// Whether a connector helps.
    pub connector: ConnectorRole,
    /// What to do.
    pub action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Knowledge {
    family: Vec<Family>,
}

/// Every family of the knowledge base, in match order.
pub fn families() -> &'static [Family] {
    static KB: OnceLock<Vec<Family>> = OnceLock::new();
    KB.get_or_init(|| match toml::from_str::<Knowledge>(KNOWLEDGE_TOML) {
        Ok(k) => k.family,
        // The file is compiled in and covered by tests; an empty base degrades to code classes.
        Err(_) => Vec::new(),
    })
}

fn range_contains(range: &str, e: EnhancedCode) -> bool {
    let (lo, hi) = match range.split_once('-') {
        Some((a, b)) => (a.parse::<EnhancedCode>(), b.parse::<EnhancedCode>()),
        None => (range.parse(), range.parse()),
    };
    match (lo, hi) {
        (Ok(lo), Ok(hi)) => {
            lo.class == e.class
                && lo.subject == e.subject
                && (lo.detail..=hi.detail).contains(&e.detail)
        }
        _ => false,
    }
}

/// The knowledge-base family of a reply, if any.
pub fn family_of(reply: &Reply) -> Option<&'static Family> {
    family_match(Some(reply.code), reply.enhanced?, reply.token().as_deref())
}

/// The family for an enhanced code, an optional basic code and token. A family limited to some
/// basic codes matches no code-less status (a DSN's `Status:` alone), since it cannot be checked.
pub(crate) fn family_match(
    code: Option<u16>,
    e: EnhancedCode,
    token: Option<&str>,
) -> Option<&'static Family> {
    families().iter().find(|f| {
        f.ranges.iter().any(|r| range_contains(r, e))
            && (f.codes.is_empty() || code.is_some_and(|c| f.codes.contains(&c)))
            && (f.tokens.is_empty() || token.is_some_and(|t| f.tokens.iter().any(|p| t == p)))
    })
}

/// A reply's classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The outcome class.
    pub outcome: OutcomeClass,
    /// The knowledge-base family, when known.
    pub family: Option<&'static str>,
    /// The AS/S token, when present.
    pub token: Option<String>,
}

/// Classifies one reply. `session_tls` says whether the session was encrypted: a "TLS required"
/// reply to an encrypted session is not about TLS, so it falls back to its code class.
pub fn classify(reply: &Reply, session_tls: bool) -> Classification {
    let token = reply.token();
    if reply.is_positive() || (300..400).contains(&reply.code) {
        return Classification {
            outcome: OutcomeClass::Accepted,
            family: None,
            token,
        };
    }
    let fam = family_of(reply).filter(|f| !(session_tls && f.outcome == OutcomeClass::TlsRequired));
    let outcome = match fam {
        Some(f) => f.outcome,
        None if reply.code >= 500 => OutcomeClass::Rejected,
        None => OutcomeClass::Deferred,
    };
    Classification {
        outcome,
        family: fam.map(|f| f.id.as_str()),
        token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Reply {
        parse_reply_lines(&[line]).unwrap()
    }

    /// Every real sample in the reference, and Postfix's rewritten form, with its class and token.
    #[test]
    fn reference_samples_classify() {
        let table: &[(&str, OutcomeClass, Option<&str>, Option<&str>)] = &[
            ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)", OutcomeClass::Throttled, Some("ip-throttling"), Some("AS761")),
            ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS843)", OutcomeClass::Throttled, Some("ip-throttling"), Some("AS843")),
            ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS77712344)", OutcomeClass::Throttled, Some("ip-throttling"), Some("AS77712344")),
            ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (S77714)", OutcomeClass::Throttled, Some("ip-throttling"), Some("S77714")),
            ("451 4.7.500 <unknown[127.0.0.3]>: Client host rejected: Server busy. Please try again later from [127.0.0.3]. (AS761)", OutcomeClass::Throttled, Some("ip-throttling"), Some("AS761")),
            ("451 4.7.650 The mail server [198.51.100.7] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [Name=Protocol Filter Agent][AGT=PFA][MxId=11BB...]", OutcomeClass::RateLimited, Some("reputation-rate-limit"), Some("S775")),
            ("451 4.7.700 PFA agent busy, please try again.", OutcomeClass::Deferred, Some("pfa-busy"), None),
            ("550 5.7.606 Access denied, banned sending IP [192.0.2.9]. To request removal from this list please visit https://sender.office.com/ and follow the directions. (AS16012609)", OutcomeClass::Rejected, Some("banned-ip"), Some("AS16012609")),
            ("550 5.7.1 Service unavailable, Client host [192.0.2.9] blocked using Spamhaus. (AS3130)", OutcomeClass::Rejected, Some("blocklist"), Some("AS3130")),
            ("550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set", OutcomeClass::Rejected, Some("connector-restriction"), None),
            ("550 5.7.64 TenantAttribution; Relay Access Denied", OutcomeClass::Rejected, Some("tenant-attribution"), None),
            ("451 4.4.62 Mail sent to the wrong Office 365 region. ATTR35.", OutcomeClass::Deferred, Some("wrong-region"), Some("ATTR35")),
            ("452 4.5.3 Too many recipients (AS780090)", OutcomeClass::Deferred, Some("too-many-recipients"), Some("AS780090")),
            ("452 4.5.3 Recipients belong to multiple regions ATTR38", OutcomeClass::Deferred, Some("mixed-regions"), Some("ATTR38")),
            ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", OutcomeClass::Rejected, Some("dbeb"), Some("AS201806281")),
            ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", OutcomeClass::Rejected, Some("recipient-not-found"), None),
            ("432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded", OutcomeClass::Deferred, Some("mailbox-thread-limit"), None),
            ("451 5.7.3 STARTTLS is required to send mail", OutcomeClass::TlsRequired, Some("tls-required"), None),
            ("530 5.7.0 Must issue a STARTTLS command first", OutcomeClass::TlsRequired, Some("starttls-first"), None),
            // Any other 5.7.0 is a policy refusal, not a TLS requirement.
            ("550 5.7.0 Local Policy Violation", OutcomeClass::Rejected, None, None),
            ("421 4.3.2 Service not available", OutcomeClass::Deferred, None, None),
            ("554 5.6.0 Something nobody documented", OutcomeClass::Rejected, None, None),
            ("450 Mailbox busy", OutcomeClass::Deferred, None, None),
        ];
        for (line, outcome, family, token) in table {
            let r = one(line);
            let c = classify(&r, false);
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
    fn replies_are_found_in_bounce_text() {
        let r = parse_reply_text("Diagnostic-Code: smtp; 451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)").unwrap();
        assert_eq!(
            (r.code, r.enhanced.unwrap().to_string()),
            (451, "4.7.500".into())
        );
        assert_eq!(r.token().as_deref(), Some("AS761"));
        let r = parse_reply_text("Remote server returned '550 5.7.51 TenantInboundAttribution; …'")
            .unwrap();
        assert_eq!(r.code, 550);
        assert!(parse_reply_text("no code here").is_none());
    }

    #[test]
    fn tls_required_needs_a_plain_session() {
        let r = one("530 5.7.0 Must issue a STARTTLS command first");
        assert_eq!(classify(&r, true).outcome, OutcomeClass::Rejected);
    }

    #[test]
    fn tokens_are_not_found_in_ordinary_words() {
        assert_eq!(extract_token("Sender OK"), None);
        assert_eq!(extract_token("S3 bucket (S3150)").as_deref(), Some("S3150"));
        assert_eq!(extract_token("ASAP please"), None);
    }

    #[test]
    fn the_knowledge_base_loads_and_every_sample_maps_to_its_family() {
        assert!(families().len() >= 15);
        for f in families() {
            if let Some(r) = parse_reply_text(&f.sample) {
                if r.enhanced.is_some() {
                    assert_eq!(
                        family_of(&r).map(|x| x.id.as_str()),
                        Some(f.id.as_str()),
                        "{}",
                        f.sample
                    );
                }
            }
        }
    }
}
