//! Delivery status notifications (RFC 3464): a `multipart/report; report-type=delivery-status`
//! message whose `message/delivery-status` part holds one per-message field group and one group
//! per recipient (Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, …).
//!
//! MIME is parsed with mail-parser (transfer encodings, nesting, forwarded bounces); the
//! delivery-status fields themselves are RFC 822-style header groups, read here.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Serialize;

/// How deep forwarded bounces (message/rfc822 inside message/rfc822) are searched.
const MAX_NESTING: usize = 8;

/// The per-message fields of a delivery-status part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryStatus {
    /// `Reporting-MTA` (type stripped), the MTA that wrote the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_mta: Option<String>,
    /// `Original-Envelope-Id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_envelope_id: Option<String>,
    /// `Arrival-Date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival_date: Option<String>,
    /// One entry per recipient group.
    pub recipients: Vec<RecipientStatus>,
}

/// One per-recipient field group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipientStatus {
    /// `Final-Recipient` address (the `rfc822;` type stripped).
    pub final_recipient: String,
    /// `Original-Recipient` address, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_recipient: Option<String>,
    /// `Action`: failed, delayed, delivered, relayed or expanded.
    pub action: String,
    /// `Status`: the RFC 3463 code, e.g. `4.7.500`.
    pub status: String,
    /// `Remote-MTA` (type stripped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_mta: Option<String>,
    /// `Diagnostic-Code` as written, type included (`smtp; 451 4.7.500 …`), unfolded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostic_code: Option<String>,
    /// `Last-Attempt-Date`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_date: Option<String>,
    /// `Will-Retry-Until`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub will_retry_until: Option<String>,
}

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    /// The input is not a MIME message at all.
    #[error("not a MIME message (no header block could be parsed)")]
    NotAMessage,
    /// A message, but without a message/delivery-status part.
    #[error(
        "no message/delivery-status part: this is not an RFC 3464 delivery status notification"
    )]
    NoDeliveryStatus,
    /// The delivery-status part is malformed.
    #[error("malformed delivery-status part: {0}")]
    Malformed(String),
}

/// Finds and parses the delivery-status part of a bounce message (searching forwarded copies too).
pub fn parse_dsn(raw: &[u8]) -> Result<DeliveryStatus, DsnError> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or(DsnError::NotAMessage)?;
    let body = find_status_part(&msg, 0).ok_or(DsnError::NoDeliveryStatus)?;
    parse_delivery_status(&String::from_utf8_lossy(&body))
}

/// The decoded body of the first message/delivery-status (or RFC 6533 global) part.
fn find_status_part(msg: &mail_parser::Message<'_>, depth: usize) -> Option<Vec<u8>> {
    if depth > MAX_NESTING {
        return None;
    }
    for part in &msg.parts {
        let is_status = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        });
        if is_status {
            return Some(part.contents().to_vec());
        }
        if let PartType::Message(inner) = &part.body {
            if let Some(b) = find_status_part(inner, depth + 1) {
                return Some(b);
            }
        }
    }
    None
}

/// One field group: (lower-case name, unfolded value) in order.
type Group = Vec<(String, String)>;

/// Splits delivery-status text into field groups, unfolding continuation lines.
fn groups(text: &str) -> Result<Vec<Group>, DsnError> {
    let mut out: Vec<Group> = Vec::new();
    let mut cur: Group = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match cur.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => {
                    return Err(DsnError::Malformed(format!(
                        "line {}: a continuation line with no field before it",
                        n + 1
                    )))
                }
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(DsnError::Malformed(format!(
                "line {}: `{}` is not a `Field: value` line",
                n + 1,
                line.chars().take(60).collect::<String>()
            )));
        };
        cur.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// The first value of `name` in a group.
fn field<'a>(g: &'a Group, name: &str) -> Option<&'a str> {
    g.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Strips an RFC 3464 type prefix (`rfc822;`, `dns;`) from an address or MTA field.
fn typed_value(v: &str) -> String {
    match v.split_once(';') {
        Some((_, rest)) => rest.trim().to_string(),
        None => v.trim().to_string(),
    }
}

/// Parses the text of a message/delivery-status body (also usable on a pasted field block).
pub fn parse_delivery_status(text: &str) -> Result<DeliveryStatus, DsnError> {
    let gs = groups(text)?;
    let is_recipient = |g: &Group| field(g, "final-recipient").is_some();
    let mut ds = DeliveryStatus::default();
    for g in &gs {
        if !is_recipient(g) {
            // The per-message group (RFC 3464 §2.2); extra non-recipient groups are tolerated.
            ds.reporting_mta = ds
                .reporting_mta
                .take()
                .or_else(|| field(g, "reporting-mta").map(typed_value));
            ds.original_envelope_id = ds
                .original_envelope_id
                .take()
                .or_else(|| field(g, "original-envelope-id").map(str::to_string));
            ds.arrival_date = ds
                .arrival_date
                .take()
                .or_else(|| field(g, "arrival-date").map(str::to_string));
            continue;
        }
        let status = field(g, "status").map(str::to_string).ok_or_else(|| {
            DsnError::Malformed(format!(
                "the recipient group for {} has no Status field (RFC 3464 requires one)",
                field(g, "final-recipient")
                    .map(typed_value)
                    .unwrap_or_default()
            ))
        })?;
        ds.recipients.push(RecipientStatus {
            final_recipient: field(g, "final-recipient")
                .map(typed_value)
                .unwrap_or_default(),
            original_recipient: field(g, "original-recipient").map(typed_value),
            action: field(g, "action")
                .map(|a| a.to_ascii_lowercase())
                .unwrap_or_default(),
            status,
            remote_mta: field(g, "remote-mta").map(typed_value),
            diagnostic_code: field(g, "diagnostic-code").map(str::to_string),
            last_attempt_date: field(g, "last-attempt-date").map(str::to_string),
            will_retry_until: field(g, "will-retry-until").map(str::to_string),
        });
    }
    if ds.recipients.is_empty() {
        return Err(DsnError::Malformed(
            "no per-recipient group (no Final-Recipient field)".into(),
        ));
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@mta1.platform.example\r\n\
Subject: Delayed Mail (still being retried)\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\
\r\n\
--B1\r\n\
Content-Type: text/plain\r\n\
\r\n\
This is the mail system.\r\n\
--B1\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mta1.platform.example\r\n\
Arrival-Date: Sun, 22 Jun 2025 05:57:58 +0000 (UTC)\r\n\
\r\n\
Final-Recipient: rfc822; alice@contoso.com\r\n\
Original-Recipient: rfc822;alice@contoso.com\r\n\
Action: delayed\r\n\
Status: 4.7.500\r\n\
Remote-MTA: dns; contoso-com.mail.protection.outlook.com\r\n\
Diagnostic-Code: smtp; 451 4.7.500 Server busy. Please try again later from\r\n\
\x20   [192.0.2.2]. (AS761)\r\n\
\r\n\
Final-Recipient: rfc822; bob@contoso.com\r\n\
Action: failed\r\n\
Status: 5.4.1\r\n\
Diagnostic-Code: smtp; 550 5.4.1 Recipient address rejected: Access denied. AS(201806281)\r\n\
\r\n\
--B1--\r\n";

    #[test]
    fn per_recipient_groups_are_read_and_unfolded() {
        let ds = parse_dsn(DSN.as_bytes()).unwrap();
        assert_eq!(ds.reporting_mta.as_deref(), Some("mta1.platform.example"));
        assert_eq!(ds.recipients.len(), 2);
        let a = &ds.recipients[0];
        assert_eq!(a.final_recipient, "alice@contoso.com");
        assert_eq!(a.action, "delayed");
        assert_eq!(a.status, "4.7.500");
        assert_eq!(
            a.remote_mta.as_deref(),
            Some("contoso-com.mail.protection.outlook.com")
        );
        assert!(a
            .diagnostic_code
            .as_deref()
            .unwrap()
            .ends_with("from [192.0.2.2]. (AS761)"));
        assert_eq!(ds.recipients[1].status, "5.4.1");
    }

    #[test]
    fn a_message_without_a_status_part_is_not_a_dsn() {
        let m = "From: a@b.example\r\nSubject: hi\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
        assert_eq!(parse_dsn(m.as_bytes()), Err(DsnError::NoDeliveryStatus));
    }

    #[test]
    fn malformed_status_groups_say_what_is_wrong() {
        let e = parse_delivery_status("Final-Recipient: rfc822; a@b.example\nAction: failed\n")
            .unwrap_err();
        assert!(e.to_string().contains("no Status field"), "{e}");
        let e = parse_delivery_status("  folded first\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = parse_delivery_status("Reporting-MTA: dns; x\n").unwrap_err();
        assert!(e.to_string().contains("no per-recipient group"), "{e}");
    }
}
