//! `explain`: a reply, a bounce, a DSN or pasted text, read in plain words from the knowledge
//! base. Every reply is read through [`read_status`], exactly as the send engine classifies an
//! attempt, so an attempt record and an explanation of the same reply always agree.

use std::fmt::Write as _;

use serde::Serialize;

use super::dsn::{self, DeliveryStatus, DsnError};
use super::read::{self, Finding};
use super::rfc3463::{class_name, detail_name, subject_name};
use super::{
    extract_token, read_status, Confidence, ConnectorAnswer, Context, EnhancedCode, Origin, Status,
};
use crate::text::printable;
use crate::vocab::OutcomeClass;

/// Version of `explain --json`'s document; bump on incompatible change.
pub const EXPLAIN_SCHEMA: u32 = 2;

/// A reply or status, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The reply as read (`451 4.7.500 …`), or the bare status code.
    pub reply: String,
    /// The reply's text after its codes.
    #[serde(skip)]
    pub text: String,
    /// The basic reply code, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The enhanced status code, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enhanced: Option<String>,
    /// Microsoft's AS/S/ATTR token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// success, intermediate, temporary failure or permanent failure (read from the code).
    pub class: &'static str,
    /// The RFC 3463 subject of the enhanced code, e.g. "security or policy status".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'static str>,
    /// RFC 3463's general meaning of the whole enhanced code; given only when no server-specific
    /// entry says what this server meant by it (5.1.10 is "null MX" in the RFC, "recipient not
    /// found" at Microsoft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rfc_meaning: Option<&'static str>,
    /// The outcome class the send engine records for this reply.
    pub outcome: OutcomeClass,
    /// Whether the knowledge base reads it (or it is a success).
    pub known: bool,
    /// The family id, e.g. `ip-throttling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The knowledge-base entry that read it, e.g. `eop-ip-throttling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The title, or "Unknown".
    pub title: String,
    /// Where in the SMTP dialogue it is seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// What it means.
    pub meaning: String,
    /// Who wrote the reply, as far as the evidence shows.
    pub origin: Origin,
    /// The server's name when recognised ("Postfix", "Microsoft 365").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_name: Option<&'static str>,
    /// Whether an inbound connector is the answer; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorAnswer>,
    /// The connector answer in words.
    pub connector_text: String,
    /// What Support tells the customer.
    pub support: String,
    /// What Ops does.
    pub ops: String,
    /// The public source the reading comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How sure the reading is.
    pub confidence: Confidence,
    /// Problems with the codes themselves (invalid class, classes that disagree).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn connector_words(answer: ConnectorAnswer, origin: Origin, origin_name: Option<&str>) -> String {
    match answer {
        ConnectorAnswer::Helps => "yes: an inbound connector (Partner organization to Office 365) for the platform's sending IPs fixes this".into(),
        ConnectorAnswer::FixExisting => "fix the existing connector: one is set up, but it does not match this sender (its IPs, certificate or domains); correcting it fixes this".into(),
        ConnectorAnswer::Cause => "the connector is the cause: its own restriction refused this, as designed; change how mail is sent or the connector".into(),
        ConnectorAnswer::NotATenant => "no: the recipient is on consumer Outlook.com (Hotmail, Live), which has no tenant and no connectors".into(),
        ConnectorAnswer::No if !origin.is_microsoft_365() && origin != Origin::Unknown => format!(
            "no: this reply comes from {}, not from Microsoft 365, so no Microsoft 365 connector applies",
            origin_name.unwrap_or("another mail server")
        ),
        ConnectorAnswer::No => "no: this is not a connector matter".into(),
    }
}

/// The parts of an explanation read from the codes alone.
struct Codes {
    class: &'static str,
    subject: Option<&'static str>,
    rfc: Option<&'static str>,
}

fn codes_of(status: &Status) -> Codes {
    let digit = status
        .enhanced
        .map(|e| u16::from(e.class))
        .or(status.code.map(|c| c / 100))
        .unwrap_or(0);
    Codes {
        class: class_name(digit),
        subject: status.enhanced.and_then(|e| subject_name(e.subject)),
        rfc: status
            .enhanced
            .and_then(|e| detail_name(e.subject, e.detail)),
    }
}

/// Explains one reply or status in its context.
pub fn explain(status: &Status, ctx: &Context) -> Explanation {
    let r = read_status(status, ctx);
    let c = codes_of(status);
    let origin_name = r.origin_name;
    let not_microsoft = !r.origin.is_microsoft_365() && r.origin != Origin::Unknown;
    let mut e = Explanation {
        reply: status.shown(),
        text: status.text.clone(),
        code: status.code,
        enhanced: status.enhanced.map(|e| e.to_string()),
        token: extract_token(&status.text),
        class: c.class,
        subject: c.subject,
        rfc_meaning: c.rfc,
        outcome: r.outcome,
        known: r.family.is_some(),
        family: r.family.map(|f| f.id.clone()),
        entry: r.entry.map(|x| x.id.clone()),
        title: String::new(),
        stage: r.entry.map(|x| x.stage.clone()),
        meaning: String::new(),
        origin: r.origin,
        origin_name,
        connector: r.connector,
        connector_text: r
            .connector
            .map(|a| connector_words(a, r.origin, origin_name))
            .unwrap_or_else(|| "unknown".into()),
        support: String::new(),
        ops: String::new(),
        source: r.entry.map(|x| x.source.clone()),
        confidence: r.confidence,
        warnings: Vec::new(),
    };
    let Some(family) = r.family else {
        unknown(&mut e, &c);
        return e;
    };
    let entry = r.entry;
    // Only an RFC reading may quote the RFC's words: any other entry says what this server meant
    // (5.1.10 is "null MX" in the RFC, "recipient not found" at Microsoft).
    if entry.is_some_and(|x| !x.rfc) {
        e.rfc_meaning = None;
    }
    e.title = entry
        .and_then(|x| x.title.clone())
        .unwrap_or_else(|| family.title.clone());
    let meaning = entry
        .and_then(|x| x.meaning.clone())
        .unwrap_or_else(|| family.meaning.clone());
    e.meaning = if not_microsoft {
        format!(
            "This reply comes from {}, not from Microsoft 365. {meaning}",
            origin_name.unwrap_or("another mail server")
        )
    } else {
        meaning
    };
    e.support = entry
        .and_then(|x| x.support.clone())
        .unwrap_or_else(|| family.support.clone());
    e.ops = entry
        .and_then(|x| x.ops.clone())
        .unwrap_or_else(|| family.ops.clone());
    e
}

/// Fills in an explanation the knowledge base has no entry for: honest about it, with what the
/// code alone says.
fn unknown(e: &mut Explanation, c: &Codes) {
    e.title = "Unknown".into();
    let mut meaning = format!(
        "Not in the knowledge base. Read from the code: a {}",
        c.class
    );
    if let Some(s) = c.subject {
        let _ = write!(meaning, ", {s}");
    }
    if let Some(d) = c.rfc {
        let _ = write!(meaning, " (RFC 3463: {d})");
    }
    meaning.push('.');
    e.meaning = meaning;
    let action = match c.class {
        "temporary failure" => "The sending server keeps retrying with backoff. If it persists for hours, escalate with the full bounce and the reference id.",
        "permanent failure" => "Retrying unchanged will not help. Read the reply text after the code: it usually names the rule or list that refused the message. If it does not, escalate with the full bounce.",
        _ => "Read the reply text after the code for the receiver's reason; if it gives none, escalate with the full bounce.",
    };
    e.support = action.into();
    e.ops = action.into();
}

/// One explained reply of an input, with its context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainedItem {
    /// The recipient (DSN `Final-Recipient`, or named next to the reply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// DSN `Action` (failed, delayed, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// DSN `Status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The host that sent the reply (DSN `Remote-MTA`, or named by the wrapper).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The SMTP stage the reply answered, when the wrapper says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_stage: Option<String>,
    /// This reply only carries the next item, which it quotes (the next item is the cause).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wrapper: bool,
    /// The explanation.
    pub explanation: Explanation,
}

/// Everything `explain` found in one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainReport {
    /// [`EXPLAIN_SCHEMA`].
    pub schema: u32,
    /// `reply` (one reply), `dsn` (an RFC 3464 report) or `text` (replies found in text).
    pub kind: &'static str,
    /// The DSN's Reporting-MTA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_mta: Option<String>,
    /// One per reply or recipient.
    pub items: Vec<ExplainedItem>,
}

/// Why an input could not be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// Nothing that looks like an SMTP reply or status code.
    #[error("no SMTP reply (such as `451 4.7.500 …`) or enhanced status code (such as `5.7.1`) found in {0}; paste the reply line, the bounce's diagnostic text, or the whole bounce message")]
    NothingFound(String),
    /// A DSN whose delivery-status part is malformed.
    #[error("{source_name}: {error}")]
    BadDsn {
        /// Where the input came from.
        source_name: String,
        /// What is wrong with it.
        error: DsnError,
    },
}

/// Explains one finding: its reply read in the context its wrapper gave.
fn explain_finding(f: &Finding) -> ExplainedItem {
    let ctx = Context {
        session_tls: false,
        host: f.host.as_deref(),
        recipient: f.recipient.as_deref(),
        assume: None,
        at_mx: false,
    };
    let mut explanation = explain(&f.status, &ctx);
    explanation.warnings.clone_from(&f.warnings);
    if let (Some(stage), None) = (&f.stage, &explanation.stage) {
        explanation.stage = Some(stage.clone());
    }
    ExplainedItem {
        recipient: f.recipient.clone(),
        action: None,
        status: None,
        host: f.host.clone(),
        smtp_stage: f.stage.clone(),
        wrapper: f.wrapper,
        explanation,
    }
}

/// The reply of one DSN recipient group: its Diagnostic-Code read tolerantly, its Status filling
/// in a missing enhanced code; or the Status alone.
fn dsn_finding(r: &dsn::RecipientStatus, body: &[Finding]) -> Finding {
    let status = r
        .status
        .split_whitespace()
        .next()
        .unwrap_or("")
        .parse::<EnhancedCode>()
        .ok();
    let from_diag = r
        .diagnostic_code
        .as_deref()
        .map(|d| read::find_in_text(d.split_once(';').map_or(d, |(_, rest)| rest)))
        .and_then(|v| v.into_iter().next());
    let mut f = from_diag
        .or_else(|| {
            // A status-only group: the bounce's text may quote the full reply.
            body.iter()
                .find(|b| {
                    b.status.enhanced.is_some()
                        && b.status.enhanced == status
                        && b.recipient
                            .as_deref()
                            .is_none_or(|x| x == r.final_recipient)
                })
                .cloned()
        })
        .unwrap_or_else(|| Finding {
            status: Status {
                code: None,
                enhanced: status,
                text: r.diagnostic_code.clone().unwrap_or_default(),
            },
            host: None,
            recipient: None,
            stage: None,
            warnings: Vec::new(),
            wrapper: false,
        });
    if f.status.enhanced.is_none() {
        f.status.enhanced =
            status.filter(|s| f.status.code.is_none_or(|c| u16::from(s.class) == c / 100));
    }
    f.host = r.remote_mta.clone().or(f.host);
    f.recipient = Some(r.final_recipient.clone());
    f
}

fn explain_dsn(ds: DeliveryStatus, body: &[Finding]) -> ExplainReport {
    let items = ds
        .recipients
        .iter()
        .map(|r| {
            let f = dsn_finding(r, body);
            ExplainedItem {
                action: Some(r.action.clone()),
                status: Some(r.status.clone()),
                ..explain_finding(&f)
            }
        })
        .collect();
    ExplainReport {
        schema: EXPLAIN_SCHEMA,
        kind: "dsn",
        reporting_mta: ds.reporting_mta,
        items,
    }
}

/// A message's text parts, HTML parts turned into text.
fn body_texts(raw: &[u8]) -> Vec<String> {
    let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    let text = (0..msg.text_body.len()).filter_map(|i| msg.body_text(i).map(|t| t.into_owned()));
    let html =
        (0..msg.html_body.len()).filter_map(|i| msg.body_html(i).map(|h| read::html_to_text(&h)));
    text.chain(html).collect()
}

/// The replies in a message's text parts.
fn body_findings(raw: &[u8]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for t in body_texts(raw) {
        for f in read::find_in_text(&t) {
            if !out.iter().any(|o| o.status == f.status) {
                out.push(f);
            }
        }
    }
    out
}

fn text_report(found: Vec<Finding>, kind: &'static str) -> ExplainReport {
    ExplainReport {
        schema: EXPLAIN_SCHEMA,
        kind,
        reporting_mta: None,
        items: found.iter().map(explain_finding).collect(),
    }
}

/// Whether the input starts like a message (a header block), not like a pasted reply.
fn looks_like_message(text: &str) -> bool {
    // An mbox export starts with its `From sender date` line.
    let text = match text.strip_prefix("From ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, r)| r),
        None => text,
    };
    let first = text.lines().next().unwrap_or("");
    let name = first.split_once(':').map_or("", |(n, _)| n);
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && text.contains("\n\n") | text.contains("\r\n\r\n")
        && [
            "from:",
            "received:",
            "return-path:",
            "subject:",
            "content-type:",
            "mime-version:",
            "date:",
            "delivered-to:",
            "x-",
        ]
        .iter()
        .any(|h| first.to_ascii_lowercase().starts_with(h))
}

/// Explains any input: one reply, a whole bounce or DSN (RFC 3464), a pasted delivery-status
/// block, an NDR copied from a browser, a log line, or free text with replies in it.
/// `source_name` names the input in errors.
pub fn explain_input(input: &[u8], source_name: &str) -> Result<ExplainReport, ExplainError> {
    explain_input_from(input, source_name, None)
}

/// [`explain_input`], with the host that sent the replies when the text does not name it (what
/// Support knows from the ticket: the recipient's MX).
pub fn explain_input_from(
    input: &[u8],
    source_name: &str,
    host: Option<&str>,
) -> Result<ExplainReport, ExplainError> {
    let mut r = read_input(input, source_name)?;
    if let Some(h) = host {
        for it in r.items.iter_mut().filter(|i| i.host.is_none()) {
            let f = Finding {
                status: status_of(&it.explanation),
                host: Some(h.to_string()),
                recipient: it.recipient.clone(),
                stage: it.smtp_stage.clone(),
                warnings: it.explanation.warnings.clone(),
                wrapper: it.wrapper,
            };
            let again = explain_finding(&f);
            it.host = again.host;
            it.explanation = again.explanation;
        }
    }
    Ok(r)
}

/// The status an explanation was made from.
fn status_of(e: &Explanation) -> Status {
    Status {
        code: e.code,
        enhanced: e.enhanced.as_deref().and_then(|x| x.parse().ok()),
        text: e.text.clone(),
    }
}

fn read_input(input: &[u8], source_name: &str) -> Result<ExplainReport, ExplainError> {
    let input = &input[..input.len().min(read::MAX_INPUT)];
    let text = String::from_utf8_lossy(input);
    let trimmed = text.trim();
    if looks_like_message(trimmed) {
        let body = body_findings(input);
        match dsn::parse_dsn(input) {
            Ok(ds) => return Ok(explain_dsn(ds, &body)),
            Err(e @ DsnError::Malformed(_)) => {
                return Err(ExplainError::BadDsn {
                    source_name: source_name.to_string(),
                    error: e,
                })
            }
            Err(_) => {}
        }
        let mut found = if body.is_empty() {
            read::find_in_text(trimmed)
        } else {
            body
        };
        if found.is_empty() {
            found = by_wording(&body_texts(input).join("\n\n"));
        }
        return nonempty(text_report(found, "text"), source_name);
    }
    let lower = trimmed.to_ascii_lowercase();
    if lower.contains("final-recipient:") && lower.contains("status:") {
        if let Ok(ds) = dsn::parse_delivery_status(trimmed) {
            return Ok(explain_dsn(ds, &read::find_in_text(trimmed)));
        }
    }
    let plain = if read::looks_like_html(trimmed) {
        read::html_to_text(trimmed)
    } else {
        trimmed.to_string()
    };
    let mut found = read::find_in_text(&plain);
    if found.is_empty() {
        found = by_wording(&plain);
    }
    let kind = if found.len() == 1 && !plain.contains('\n') {
        "reply"
    } else {
        "text"
    };
    nonempty(text_report(found, kind), source_name)
}

/// The longest text read by wording alone, in lines.
const MAX_WORDING_LINES: usize = 40;

/// Replies read by their words alone, for text that carries no code at all (an Exim log's
/// `rejected RCPT <x>: relay not permitted`, Postfix's `TLS is required, but was not offered`,
/// an old Exchange NDR): each line the knowledge base knows a wording of, one per recipient.
fn by_wording(text: &str) -> Vec<Finding> {
    let mut out: Vec<(Finding, &'static str)> = Vec::new();
    for (line, recipient) in read::wording_lines(text)
        .into_iter()
        .take(MAX_WORDING_LINES)
    {
        let status = Status {
            code: None,
            enhanced: None,
            text: line,
        };
        let Some(entry) = read_status(&status, &Context::default()).entry else {
            continue;
        };
        let seen = out.iter().any(|(f, id)| {
            *id == entry.id.as_str() && (recipient.is_none() || f.recipient == recipient)
        });
        if !seen {
            let finding = Finding {
                status,
                host: None,
                recipient,
                stage: None,
                warnings: vec!["no reply code found: read by its wording alone".into()],
                wrapper: false,
            };
            out.push((finding, entry.id.as_str()));
        }
    }
    out.into_iter().map(|(f, _)| f).collect()
}

fn nonempty(r: ExplainReport, source_name: &str) -> Result<ExplainReport, ExplainError> {
    if r.items.is_empty() {
        Err(ExplainError::NothingFound(source_name.to_string()))
    } else {
        Ok(r)
    }
}

impl Explanation {
    /// The explanation as labelled lines for a person; outside text is escaped.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Reply:       {}", printable(&self.reply));
        let fam = match &self.family {
            Some(id) => format!("{} [{id}]", self.title),
            None => self.title.clone(),
        };
        let _ = writeln!(o, "Family:      {fam}");
        let mut class = self.class.to_string();
        if let Some(e) = &self.enhanced {
            let _ = write!(class, " ({e}");
            if let Some(s) = self.subject {
                let _ = write!(class, ": {s}");
            }
            if let Some(d) = self.rfc_meaning {
                let _ = write!(class, "; RFC 3463: {d}");
            }
            class.push(')');
        }
        let _ = writeln!(o, "Class:       {class}");
        let _ = writeln!(o, "Outcome:     {}", self.outcome);
        if let Some(t) = &self.token {
            let _ = writeln!(o, "Token:       {}", printable(t));
        }
        let from = match (self.origin_name, self.origin) {
            (Some(n), _) => n.to_string(),
            (None, Origin::Unknown) => "unknown (no host or wording identifies the server)".into(),
            (None, o) => o.as_str().to_string(),
        };
        let _ = writeln!(o, "From:        {from}");
        if let Some(s) = &self.stage {
            let _ = writeln!(o, "Seen at:     {}", printable(s));
        }
        let _ = writeln!(o, "Meaning:     {}", self.meaning);
        let _ = writeln!(o, "Connector:   {}", self.connector_text);
        let _ = writeln!(o, "Support:     {}", self.support);
        let _ = writeln!(o, "Ops:         {}", self.ops);
        let conf = match self.confidence {
            Confidence::Documented => "documented",
            Confidence::Inferred => "inferred from the code's general meaning",
            Confidence::Unknown => "unknown",
        };
        match &self.source {
            Some(s) => {
                let _ = writeln!(o, "Source:      {s} ({conf})");
            }
            None => {
                let _ = writeln!(o, "Confidence:  {conf}");
            }
        }
        for w in &self.warnings {
            let _ = writeln!(o, "Warning:     {}", printable(w));
        }
        o
    }
}

impl ExplainReport {
    /// The item that states the cause: the first that is not only a wrapper around another.
    /// A failure comes before a success that only set the scene (a greeting in a pasted log).
    pub fn primary(&self) -> Option<&ExplainedItem> {
        let cause = |i: &&ExplainedItem| !i.wrapper;
        let failed = |i: &&ExplainedItem| i.explanation.outcome != OutcomeClass::Accepted;
        self.items
            .iter()
            .find(|i| cause(i) && failed(i))
            .or_else(|| self.items.iter().find(cause))
            .or(self.items.first())
    }

    /// The whole report for a person: one block per reply or recipient.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        if self.kind == "dsn" {
            let _ = writeln!(
                o,
                "Delivery status notification (RFC 3464){}, {} recipient(s):",
                self.reporting_mta
                    .as_deref()
                    .map(|m| format!(" from {}", printable(m)))
                    .unwrap_or_default(),
                self.items.len()
            );
        } else if self.kind == "text" {
            let _ = writeln!(o, "{} reply(ies) found:", self.items.len());
        }
        for (i, it) in self.items.iter().enumerate() {
            if i > 0 || self.kind != "reply" {
                o.push('\n');
            }
            if let Some(r) = &it.recipient {
                let _ = write!(o, "Recipient:   {}", printable(r));
                if let (Some(a), Some(s)) = (&it.action, &it.status) {
                    let _ = write!(o, " (action {}, status {})", printable(a), printable(s));
                }
                o.push('\n');
            }
            if let Some(h) = &it.host {
                let _ = writeln!(o, "Host:        {}", printable(h));
            }
            if it.wrapper {
                let _ = writeln!(
                    o,
                    "Note:        this reply only wraps the next one, which is the cause"
                );
            }
            o.push_str(&it.explanation.render_text());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(input: &str) -> Explanation {
        explain_input(input.as_bytes(), "arg").unwrap().items[0]
            .explanation
            .clone()
    }

    #[test]
    fn a_known_reply_names_family_origin_connector_and_actions() {
        let r = explain_input(
            b"451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)",
            "arg",
        )
        .unwrap();
        assert_eq!((r.kind, r.schema), ("reply", EXPLAIN_SCHEMA));
        let e = &r.items[0].explanation;
        assert_eq!(e.family.as_deref(), Some("ip-throttling"));
        assert_eq!(e.connector, Some(ConnectorAnswer::Helps));
        assert_eq!(e.origin, Origin::Microsoft);
        assert_eq!(e.confidence, Confidence::Documented);
        assert_eq!(e.outcome, OutcomeClass::Throttled);
        assert!(e
            .source
            .as_deref()
            .unwrap()
            .starts_with("https://learn.microsoft.com/"));
        assert!(e.render_text().contains("inbound connector"));
    }

    #[test]
    fn unknown_codes_are_honestly_unknown_with_the_class_from_the_code() {
        let e = first("554 5.7.999 Nobody has seen this");
        assert!(!e.known);
        assert_eq!(
            (e.title.as_str(), e.class),
            ("Unknown", "permanent failure")
        );
        assert!(
            e.meaning.contains("security or policy status"),
            "{}",
            e.meaning
        );
        assert_eq!((e.connector, e.confidence), (None, Confidence::Unknown));
    }

    #[test]
    fn a_vendor_meaning_is_not_contradicted_by_the_rfc_line() {
        let e = first(
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        );
        assert_eq!(e.rfc_meaning, None);
        assert!(!e.render_text().contains("null MX"));
        let e = first("550 5.4.1 Relay Access Denied");
        assert_eq!(e.family.as_deref(), Some("relay-denied"));
        assert!(!e.render_text().contains("No answer from host"));
    }

    #[test]
    fn another_servers_reply_gets_no_microsoft_advice() {
        let e = first("451 4.7.1 Session encryption is required");
        assert_eq!(e.family.as_deref(), Some("tls-required"));
        assert_eq!(e.origin, Origin::Postfix);
        assert_eq!(e.connector, Some(ConnectorAnswer::No));
        assert!(e
            .meaning
            .starts_with("This reply comes from Postfix, not from Microsoft 365."));
        assert!(!e.support.contains("connector"), "{}", e.support);
    }

    #[test]
    fn consumer_outlook_gets_no_connector_advice() {
        let r = explain_input(b"<bob@hotmail.com>: host hotmail-com.olc.protection.outlook.com[192.0.2.1] said: 451 4.7.500 Server busy. Please try again later from [192.0.2.8]. (S77719) (in reply to RCPT TO command)", "arg").unwrap();
        let e = &r.items[0].explanation;
        assert_eq!(e.family.as_deref(), Some("ip-throttling"));
        assert_eq!(e.connector, Some(ConnectorAnswer::NotATenant));
        assert!(
            !e.support.contains("create an inbound connector"),
            "{}",
            e.support
        );
    }

    #[test]
    fn control_characters_are_escaped_in_text_output() {
        let e = first("550 5.7.1 \x1b]0;pwned\x07 blocked using Spamhaus (AS3130)");
        let t = e.render_text();
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(t.contains("\\x1b]0;pwned\\x07"), "{t}");
    }

    #[test]
    fn prose_numbers_are_not_replies() {
        assert!(matches!(
            explain_input(b"The message was 250 bytes long.\nNothing else.", "x"),
            Err(ExplainError::NothingFound(_))
        ));
    }
}
