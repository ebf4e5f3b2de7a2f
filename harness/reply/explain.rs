//! `explain`: a reply line, a bounce or DSN, or free text, read in plain words from the knowledge
//! base. It classifies with [`classify`] and [`family_match`], exactly as the send engine does, so
//! an attempt record and an explanation of the same reply always agree.

use std::fmt::Write as _;

use serde::Serialize;

use super::dsn::{self, DeliveryStatus, DsnError};
use super::{classify, family_match, parse_reply_text, ConnectorRole, EnhancedCode, Family, Reply};
use crate::record::OutcomeClass;

/// A reply or status, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The reply as read (`451 4.7.500 …`), or the bare status code.
    pub reply: String,
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
    /// The RFC 3463 subject, e.g. "security or policy status".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'static str>,
    /// The RFC 3463 (or IANA registry) meaning of the whole enhanced code, when standard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    /// The outcome class the send engine would record.
    pub outcome: OutcomeClass,
    /// Whether the knowledge base knows the family.
    pub known: bool,
    /// The family id, e.g. `ip-throttling`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The family title, or "Unknown".
    pub title: String,
    /// Where in the SMTP dialogue it is seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// What it means.
    pub meaning: String,
    /// Whether an inbound connector helps; absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<ConnectorRole>,
    /// The connector answer in words.
    pub connector_text: String,
    /// What to do.
    pub action: String,
}

/// RFC 3463 §3 subjects.
fn subject_name(s: u16) -> Option<&'static str> {
    Some(match s {
        0 => "other or undefined status",
        1 => "addressing status",
        2 => "mailbox status",
        3 => "mail system status",
        4 => "network and routing status",
        5 => "mail delivery protocol status",
        6 => "message content or media status",
        7 => "security or policy status",
        _ => return None,
    })
}

/// RFC 3463 details (and a few later IANA registry entries), by subject and detail.
fn detail_name(s: u16, d: u16) -> Option<&'static str> {
    Some(match (s, d) {
        (0, 0) => "Other undefined status",
        (1, 0) => "Other address status",
        (1, 1) => "Bad destination mailbox address",
        (1, 2) => "Bad destination system address",
        (1, 3) => "Bad destination mailbox address syntax",
        (1, 4) => "Destination mailbox address ambiguous",
        (1, 6) => "Destination mailbox has moved",
        (1, 7) => "Bad sender's mailbox address syntax",
        (1, 8) => "Bad sender's system address",
        (1, 10) => "Recipient address has null MX",
        (2, 0) => "Other or undefined mailbox status",
        (2, 1) => "Mailbox disabled, not accepting messages",
        (2, 2) => "Mailbox full",
        (2, 3) => "Message length exceeds administrative limit",
        (2, 4) => "Mailing list expansion problem",
        (3, 0) => "Other or undefined mail system status",
        (3, 1) => "Mail system full",
        (3, 2) => "System not accepting network messages",
        (3, 3) => "System not capable of selected features",
        (3, 4) => "Message too big for system",
        (3, 5) => "System incorrectly configured",
        (4, 0) => "Other or undefined network or routing status",
        (4, 1) => "No answer from host",
        (4, 2) => "Bad connection",
        (4, 3) => "Directory server failure",
        (4, 4) => "Unable to route",
        (4, 5) => "Mail system congestion",
        (4, 6) => "Routing loop detected",
        (4, 7) => "Delivery time expired",
        (5, 0) => "Other or undefined protocol status",
        (5, 1) => "Invalid command",
        (5, 2) => "Syntax error",
        (5, 3) => "Too many recipients",
        (5, 4) => "Invalid command arguments",
        (5, 5) => "Wrong protocol version",
        (6, 0) => "Other or undefined media error",
        (6, 1) => "Media not supported",
        (6, 2) => "Conversion required and prohibited",
        (6, 3) => "Conversion required but not supported",
        (6, 4) => "Conversion with loss performed",
        (6, 5) => "Conversion failed",
        (7, 0) => "Other or undefined security status",
        (7, 1) => "Delivery not authorized, message refused",
        (7, 2) => "Mailing list expansion prohibited",
        (7, 3) => "Security conversion required but not possible",
        (7, 4) => "Security features not supported",
        (7, 5) => "Cryptographic failure",
        (7, 6) => "Cryptographic algorithm not supported",
        (7, 7) => "Message integrity failure",
        (7, 8) => "Authentication credentials invalid",
        (7, 9) => "Authentication mechanism is too weak",
        (7, 10) => "Encryption needed",
        (7, 11) => "Encryption required for requested authentication mechanism",
        (7, 13) => "User account disabled",
        (7, 14) => "Trust relationship required",
        (7, 20) => "No passing DKIM signature found",
        (7, 23) => "SPF validation failed",
        (7, 25) => "Reverse DNS validation failed",
        (7, 26) => "Multiple authentication checks failed",
        (7, 27) => "Sender address has null MX",
        _ => return None,
    })
}

/// The class word for a leading digit (basic or enhanced: both use 2/4/5 the same way).
fn class_name(digit: u16) -> &'static str {
    match digit {
        2 => "success",
        3 => "intermediate",
        4 => "temporary failure",
        5 => "permanent failure",
        _ => "unknown",
    }
}

fn connector_words(role: ConnectorRole) -> &'static str {
    match role {
        ConnectorRole::Helps => {
            "yes: an inbound connector (Partner organization to Office 365) listing the sending IPs fixes this"
        }
        ConnectorRole::Cause => {
            "the connector is the cause: one of its restrictions produced this reply; change the connector or how mail is sent"
        }
        ConnectorRole::No => "no: this is not a connector matter",
    }
}

/// Builds the explanation from its parts; `outcome` is what the engine's classifier said.
fn build(
    shown: String,
    code: Option<u16>,
    enhanced: Option<EnhancedCode>,
    token: Option<String>,
    family: Option<&'static Family>,
    outcome: OutcomeClass,
) -> Explanation {
    let digit = enhanced
        .map(|e| u16::from(e.class))
        .or(code.map(|c| c / 100))
        .unwrap_or(0);
    let class = class_name(digit);
    let subject = enhanced.and_then(|e| subject_name(e.subject));
    let detail = enhanced.and_then(|e| detail_name(e.subject, e.detail));
    let common = Explanation {
        reply: shown,
        code,
        enhanced: enhanced.map(|e| e.to_string()),
        token,
        class,
        subject,
        detail,
        outcome,
        known: false,
        family: None,
        title: String::new(),
        stage: None,
        meaning: String::new(),
        connector: None,
        connector_text: String::new(),
        action: String::new(),
    };
    match family {
        Some(f) => Explanation {
            known: true,
            family: Some(f.id.clone()),
            title: f.title.clone(),
            stage: Some(f.stage.clone()),
            meaning: f.meaning.clone(),
            connector: Some(f.connector),
            connector_text: connector_words(f.connector).to_string(),
            action: f.action.clone(),
            ..common
        },
        None if digit == 2 || digit == 3 => Explanation {
            known: true,
            title: "Success".into(),
            meaning: "The receiver accepted this step; nothing failed.".into(),
            connector_text: "not needed for this reply".into(),
            action: "Nothing to do.".into(),
            ..common
        },
        None => {
            let mut meaning = format!(
                "Unknown: this code is not in the Microsoft 365 knowledge base. Read from the code: a {class}"
            );
            if let Some(s) = subject {
                let _ = write!(meaning, ", {s}");
            }
            if let Some(d) = detail {
                let _ = write!(meaning, " (RFC 3463: {d})");
            }
            meaning.push('.');
            let action = match digit {
                4 => "The sending server should keep retrying with backoff. If it persists for hours, escalate with the full bounce and the reference id.",
                5 => "Retrying unchanged will not help. Read the reply text after the code: Microsoft 365 usually names the rule or list that refused the message there. If it does not, escalate with the full bounce and the reference id.",
                _ => "Read the reply text after the code for the receiver's reason; if it gives none, escalate with the full bounce and the reference id.",
            };
            Explanation {
                title: "Unknown".into(),
                meaning,
                connector_text: "unknown".into(),
                action: action.into(),
                ..common
            }
        }
    }
}

/// Explains one parsed reply, classified exactly as the send engine classifies a plain-text session.
pub fn explain(reply: &Reply) -> Explanation {
    let c = classify(reply, false);
    let fam = c
        .family
        .and_then(|id| super::families().iter().find(|f| f.id == id));
    build(
        reply.to_string(),
        Some(reply.code),
        reply.enhanced,
        c.token,
        fam,
        c.outcome,
    )
}

/// Explains a bare RFC 3463 status (a DSN `Status:` field without a usable Diagnostic-Code).
pub fn explain_status(status: EnhancedCode, text: Option<&str>) -> Explanation {
    let token = text.and_then(super::extract_token);
    let fam = family_match(None, status, token.as_deref());
    let outcome = match (fam, status.class) {
        (Some(f), _) => f.outcome,
        (None, 2) => OutcomeClass::Accepted,
        (None, 4) => OutcomeClass::Deferred,
        (None, _) => OutcomeClass::Rejected,
    };
    build(status.to_string(), None, Some(status), token, fam, outcome)
}

/// One explained reply of an input, with its DSN context when it came from one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainedItem {
    /// The recipient (DSN `Final-Recipient`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// DSN `Action` (failed, delayed, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// DSN `Status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// DSN `Remote-MTA`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    /// The explanation.
    pub explanation: Explanation,
}

/// Everything `explain` found in one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplainReport {
    /// `reply` (one line), `dsn` (RFC 3464 report) or `text` (replies found in free text).
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
    #[error("no SMTP reply (e.g. `451 4.7.500 …`) or RFC 3463 status code found in {0}")]
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

fn item(explanation: Explanation) -> ExplainedItem {
    ExplainedItem {
        recipient: None,
        action: None,
        status: None,
        remote_mta: None,
        explanation,
    }
}

/// Explains one DSN's recipients: the Diagnostic-Code's SMTP reply when it has one, else the Status.
fn explain_dsn(ds: DeliveryStatus) -> ExplainReport {
    let items = ds
        .recipients
        .into_iter()
        .map(|r| {
            let status = r
                .status
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse::<EnhancedCode>()
                .ok();
            let smtp_reply = r.diagnostic_code.as_deref().and_then(|d| {
                // Only an `smtp;` diagnostic is an SMTP reply; `X-Postfix;` and others are text.
                let (kind, _) = d.split_once(';')?;
                if kind.trim().eq_ignore_ascii_case("smtp") {
                    parse_reply_text(d)
                } else {
                    None
                }
            });
            let explanation = match (smtp_reply, status) {
                (Some(mut rep), st) => {
                    if rep.enhanced.is_none() {
                        // The reply had no enhanced code: the Status field supplies it.
                        rep.enhanced = st.filter(|s| u16::from(s.class) == rep.code / 100);
                    }
                    explain(&rep)
                }
                (None, Some(st)) => explain_status(st, r.diagnostic_code.as_deref()),
                (None, None) => build(
                    r.status.clone(),
                    None,
                    None,
                    None,
                    None,
                    OutcomeClass::ProtocolError,
                ),
            };
            ExplainedItem {
                recipient: Some(r.final_recipient),
                action: Some(r.action),
                status: Some(r.status),
                remote_mta: r.remote_mta,
                explanation,
            }
        })
        .collect();
    ExplainReport {
        kind: "dsn",
        reporting_mta: ds.reporting_mta,
        items,
    }
}

/// Whether a free-text line's reply is believable: it starts the line (after a `Diagnostic-Code:`
/// or `smtp;` prefix), or carries an enhanced code. A bare number in prose ("250 bytes") is not.
fn plausible(line: &str, r: &Reply) -> bool {
    if r.enhanced.is_some() {
        return true;
    }
    let t = line.trim_start();
    let t = t
        .strip_prefix("Diagnostic-Code:")
        .or_else(|| t.strip_prefix("diagnostic-code:"))
        .map(str::trim_start)
        .unwrap_or(t);
    let t = t.strip_prefix("smtp;").map(str::trim_start).unwrap_or(t);
    t.starts_with(&r.code.to_string())
}

/// Finds replies in free text, one per (unfolded) line, duplicates dropped.
fn scan_text(text: &str) -> Vec<Reply> {
    // Unfold: bounce texts wrap long replies onto indented continuation lines.
    let mut lines: Vec<String> = Vec::new();
    for l in text.lines() {
        let l = l.trim_end_matches('\r');
        match lines.last_mut() {
            Some(prev) if l.starts_with([' ', '\t']) && !l.trim().is_empty() => {
                prev.push(' ');
                prev.push_str(l.trim());
            }
            _ => lines.push(l.to_string()),
        }
    }
    let mut out: Vec<Reply> = Vec::new();
    for l in &lines {
        if let Some(r) = parse_reply_text(l) {
            if plausible(l, &r) && !out.iter().any(|o| o == &r) {
                out.push(r);
            }
        }
    }
    out
}

/// Explains any input: one reply line, a whole bounce or DSN (RFC 3464), a pasted delivery-status
/// block, or free text with replies in it. `source_name` names the input in errors.
pub fn explain_input(input: &[u8], source_name: &str) -> Result<ExplainReport, ExplainError> {
    let text = String::from_utf8_lossy(input);
    let trimmed = text.trim();
    // One reply line (or a multi-line wire reply) is the common case: no MIME guessing.
    if let Some(r) = parse_reply_text(trimmed) {
        if !trimmed.contains('\n') && plausible(trimmed, &r) {
            return Ok(ExplainReport {
                kind: "reply",
                reporting_mta: None,
                items: vec![item(explain(&r))],
            });
        }
    }
    match dsn::parse_dsn(input) {
        Ok(ds) => return Ok(explain_dsn(ds)),
        Err(e @ DsnError::Malformed(_)) => {
            return Err(ExplainError::BadDsn {
                source_name: source_name.to_string(),
                error: e,
            })
        }
        Err(_) => {}
    }
    // A delivery-status block pasted on its own (no MIME around it).
    let lower = trimmed.to_ascii_lowercase();
    if lower.contains("final-recipient:") && lower.contains("status:") {
        if let Ok(ds) = dsn::parse_delivery_status(trimmed) {
            return Ok(explain_dsn(ds));
        }
    }
    // A bounce that is a message but not a DSN: scan its decoded text parts, then the raw text.
    let mut found = Vec::new();
    if let Some(msg) = mail_parser::MessageParser::default().parse(input) {
        for i in 0..msg.text_body.len() {
            if let Some(t) = msg.body_text(i) {
                found.extend(scan_text(&t));
            }
        }
    }
    for r in scan_text(&text) {
        if !found.contains(&r) {
            found.push(r);
        }
    }
    if found.is_empty() {
        return Err(ExplainError::NothingFound(source_name.to_string()));
    }
    Ok(ExplainReport {
        kind: "text",
        reporting_mta: None,
        items: found.iter().map(|r| item(explain(r))).collect(),
    })
}

impl Explanation {
    /// The explanation as labelled lines for a person.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Reply:       {}", self.reply);
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
            if let Some(d) = self.detail {
                let _ = write!(class, "; {d}");
            }
            class.push(')');
        }
        let _ = writeln!(o, "Class:       {class}");
        let _ = writeln!(o, "Outcome:     {}", self.outcome);
        if let Some(t) = &self.token {
            let _ = writeln!(o, "Token:       {t}");
        }
        if let Some(s) = &self.stage {
            let _ = writeln!(o, "Seen at:     {s}");
        }
        let _ = writeln!(o, "Meaning:     {}", self.meaning);
        let _ = writeln!(o, "Connector:   {}", self.connector_text);
        let _ = writeln!(o, "What to do:  {}", self.action);
        o
    }
}

impl ExplainReport {
    /// The whole report for a person: one block per reply or recipient.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        if self.kind == "dsn" {
            let _ = writeln!(
                o,
                "Delivery status notification (RFC 3464){}, {} recipient(s):",
                self.reporting_mta
                    .as_deref()
                    .map(|m| format!(" from {m}"))
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
                let _ = writeln!(
                    o,
                    "Recipient:   {r} (action {}, status {})",
                    it.action.as_deref().unwrap_or("?"),
                    it.status.as_deref().unwrap_or("?")
                );
            }
            if let Some(m) = &it.remote_mta {
                let _ = writeln!(o, "Remote MTA:  {m}");
            }
            o.push_str(&it.explanation.render_text());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_reply_names_family_meaning_connector_and_action() {
        let r = explain_input(
            b"451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)",
            "arg",
        )
        .unwrap();
        assert_eq!(r.kind, "reply");
        let e = &r.items[0].explanation;
        assert_eq!(e.family.as_deref(), Some("ip-throttling"));
        assert_eq!(e.connector, Some(ConnectorRole::Helps));
        assert_eq!(e.class, "temporary failure");
        assert_eq!(e.subject, Some("security or policy status"));
        assert_eq!(e.outcome, OutcomeClass::Throttled);
        assert!(e.render_text().contains("inbound connector"));
    }

    #[test]
    fn unknown_codes_are_honestly_unknown_with_the_class_from_the_code() {
        let e = &explain_input(b"554 5.7.999 Nobody has seen this", "arg")
            .unwrap()
            .items[0]
            .explanation;
        assert!(!e.known);
        assert_eq!(e.title, "Unknown");
        assert_eq!(e.class, "permanent failure");
        assert!(
            e.meaning.contains("security or policy status"),
            "{}",
            e.meaning
        );
        assert_eq!(e.connector, None);
        let e = &explain_input(b"421 4.4.2 Connection dropped", "arg")
            .unwrap()
            .items[0]
            .explanation;
        assert_eq!(e.class, "temporary failure");
        assert_eq!(e.detail, Some("Bad connection"));
        assert!(e.meaning.contains("network and routing status"));
    }

    #[test]
    fn prose_numbers_are_not_replies() {
        assert!(matches!(
            explain_input(b"The message was 250 bytes long.\nNothing else.", "x"),
            Err(ExplainError::NothingFound(_))
        ));
    }

    #[test]
    fn status_only_dsn_groups_use_the_status() {
        let e = explain_status("5.2.121".parse().unwrap(), None);
        assert_eq!(e.family.as_deref(), Some("receive-limit"));
        let e = explain_status("4.7.3".parse().unwrap(), None);
        assert!(!e.known);
        assert_eq!(
            e.detail,
            Some("Security conversion required but not possible")
        );
    }
}
