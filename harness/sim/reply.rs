//! The simulator's SMTP replies in one table: code, enhanced code, text, and where each comes
//! from; replies whose text carries data (an IP, a token, a queue id) are the constructors after
//! the table. Modelled on mox's `smtp/codes.go`: one named place per reply, so the front end and
//! the policy say `replies::SENDER_OK` rather than repeating numbers and words.
//!
//! Sources: "reference" is `../shared/reference/m365-inbound.md` (facts about Microsoft 365's
//! replies), cited by section: "Reply codes seen from EOP" (refusals) and "Greeting and EHLO of
//! an EOP front end" (the positive replies). Where the reference has no sample, the wording is
//! Exchange's as far as public transcripts show, or the simulator's own choice, and the codes
//! follow RFC 5321 (reply codes), RFC 3463 (enhanced codes) and the extension's RFC.
//!
//! Newer EOP replies end with a trailer (reference, "Reply codes seen from EOP"):
//! `[<HOST>.<region>.prod.outlook.com <ISO-8601 timestamp> <16 hex digits>]`; see [`trailer`].

use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::config::ReplyTemplate;
use crate::reply::{EnhancedCode, Reply};

/// One reply with fixed text, and where its code and wording come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code; `None` where RFC 2034 has none (354).
    pub enhanced: Option<EnhancedCode>,
    /// The text after the codes.
    pub text: &'static str,
    /// The reference section or RFC the reply follows.
    pub source: &'static str,
}

impl Fixed {
    /// The reply, ready to send.
    pub fn reply(&self) -> Reply {
        Reply::new(self.code, self.enhanced, self.text)
    }
}

const fn fixed(
    code: u16,
    enhanced: (u8, u16, u16),
    text: &'static str,
    source: &'static str,
) -> Fixed {
    Fixed {
        code,
        enhanced: Some(EnhancedCode::new(enhanced.0, enhanced.1, enhanced.2)),
        text,
        source,
    }
}

/// Reference section of the positive replies.
const EOP_EHLO: &str = "reference, Greeting and EHLO of an EOP front end";
/// Reference section of the refusals.
const EOP_CODES: &str = "reference, Reply codes seen from EOP";

// ---- Positive replies (reference, "Greeting and EHLO of an EOP front end") ----------------------

/// `250 2.1.0 Sender OK`: MAIL FROM accepted.
pub const SENDER_OK: Fixed = fixed(250, (2, 1, 0), "Sender OK", EOP_EHLO);
/// `250 2.1.5 Recipient OK`: RCPT TO accepted.
pub const RECIPIENT_OK: Fixed = fixed(250, (2, 1, 5), "Recipient OK", EOP_EHLO);
/// `220 2.0.0 SMTP server ready`: go ahead with the TLS handshake.
pub const READY_FOR_TLS: Fixed = fixed(220, (2, 0, 0), "SMTP server ready", EOP_EHLO);
/// `354 Start mail input; end with <CRLF>.<CRLF>`: no enhanced code on 354 (RFC 2034 §3).
pub const START_MAIL_INPUT: Fixed = Fixed {
    code: 354,
    enhanced: None,
    text: "Start mail input; end with <CRLF>.<CRLF>",
    source: "Exchange's wording; RFC 5321 §4.2.2 (354)",
};
/// `250 2.0.0 Resetting`: RSET.
pub const RESETTING: Fixed = fixed(
    250,
    (2, 0, 0),
    "Resetting",
    "Exchange's wording; RFC 5321 §4.1.1.5",
);
/// `250 2.0.0 OK`: NOOP.
pub const NOOP_OK: Fixed = fixed(250, (2, 0, 0), "OK", "RFC 5321 §4.1.1.9");
/// `221 2.0.0 Service closing transmission channel`: QUIT.
pub const CLOSING: Fixed = fixed(
    221,
    (2, 0, 0),
    "Service closing transmission channel",
    "RFC 5321 §4.2.2 (221)",
);
/// `252 2.1.5 Cannot VRFY user, ...`: VRFY answered without verifying (RFC 5321 §3.5.3).
pub const CANNOT_VRFY: Fixed = fixed(
    252,
    (2, 1, 5),
    "Cannot VRFY user, but will accept message for delivery",
    "RFC 5321 §3.5.3 (252); Exchange's wording",
);

// ---- Refusals of the policy (reference, "Reply codes seen from EOP") ---------------------------

/// `452 4.5.3 Too many recipients (AS780090)`: more than 200 recipients in one message.
pub const TOO_MANY_RECIPIENTS: Fixed =
    fixed(452, (4, 5, 3), "Too many recipients (AS780090)", EOP_CODES);
/// `550 5.7.64 TenantAttribution; Relay Access Denied`: a domain the tenant does not host.
pub const TENANT_ATTRIBUTION: Fixed = fixed(
    550,
    (5, 7, 64),
    "TenantAttribution; Relay Access Denied",
    EOP_CODES,
);
/// `550 5.7.51 TenantInboundAttribution; ...`: a restricting connector excludes this IP (verbatim).
pub const TENANT_INBOUND_ATTRIBUTION: Fixed = fixed(
    550,
    (5, 7, 51),
    "TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set",
    EOP_CODES,
);
/// `550 5.4.1 Recipient address rejected: Access denied. AS(201806281)`: Directory Based Edge
/// Blocking, the mailbox does not exist.
pub const RECIPIENT_NOT_FOUND: Fixed = fixed(
    550,
    (5, 4, 1),
    "Recipient address rejected: Access denied. AS(201806281)",
    EOP_CODES,
);
/// The AS token of the banned-IP refusal (reference).
pub const BANNED_IP_AS: &str = "AS16012609";

// ---- Session and protocol replies (RFC 5321, RFC 3463 and the extension RFCs) ------------------

/// `421 4.3.2 Service not available, closing transmission channel`: the simulator shuts down.
pub const SHUTTING_DOWN: Fixed = fixed(
    421,
    (4, 3, 2),
    "Service not available, closing transmission channel",
    "RFC 5321 §3.8 and §4.2.2 (421); RFC 3463 4.3.2",
);
/// `451 4.3.2 System not accepting network messages`: accepted data, but delivery has stopped.
pub const NOT_ACCEPTING: Fixed = fixed(
    451,
    (4, 3, 2),
    "System not accepting network messages",
    "RFC 3463 4.3.2",
);
/// `552 5.3.4 Message size exceeds fixed maximum message size`: over SIZE (RFC 1870 §6).
/// Exchange on-premises' text; EOP's is unconfirmed (reference, "Reply codes seen from EOP").
pub const MESSAGE_TOO_LARGE: Fixed = fixed(
    552,
    (5, 3, 4),
    "Message size exceeds fixed maximum message size",
    "RFC 1870 §6; Exchange's wording (EOP's unconfirmed, reference)",
);
/// `500 5.5.2 Line too long`: a command line over the limit (RFC 5321 §4.5.3.1.4).
pub const LINE_TOO_LONG: Fixed = fixed(500, (5, 5, 2), "Line too long", "RFC 5321 §4.5.3.1.4");
/// `500 5.3.3 Unrecognized command`: a verb the simulator does not know or offer.
pub const UNRECOGNIZED_COMMAND: Fixed = fixed(
    500,
    (5, 3, 3),
    "Unrecognized command",
    "RFC 5321 §4.2.4 (500); Exchange's wording",
);
/// `500 5.5.2 Syntax error, command unrecognized`: a line that is no command at all.
pub const SYNTAX_ERROR: Fixed = fixed(
    500,
    (5, 5, 2),
    "Syntax error, command unrecognized",
    "RFC 5321 §4.2.2 (500)",
);
/// `501 5.1.7 Invalid address`: a MAIL FROM address that does not parse.
pub const INVALID_SENDER: Fixed = fixed(501, (5, 1, 7), "Invalid address", "RFC 3463 5.1.7");
/// `501 5.1.3 Invalid address`: a RCPT TO address that does not parse or has no domain.
pub const INVALID_RECIPIENT: Fixed = fixed(501, (5, 1, 3), "Invalid address", "RFC 3463 5.1.3");
/// `502 5.3.3 Command not implemented`: EXPN.
pub const NOT_IMPLEMENTED: Fixed = fixed(
    502,
    (5, 3, 3),
    "Command not implemented",
    "RFC 5321 §4.2.4 (502); §3.5.2 EXPN is optional",
);
/// `503 5.5.1 BDAT not supported; CHUNKING was not offered` (RFC 3030).
pub const BDAT_NOT_OFFERED: Fixed = fixed(
    503,
    (5, 5, 1),
    "BDAT not supported; CHUNKING was not offered",
    "RFC 3030 §2 (BDAT needs CHUNKING); RFC 5321 §4.2.4 (503)",
);
/// `503 5.5.1 TLS already active`: a second STARTTLS (RFC 3207 §4).
pub const TLS_ALREADY_ACTIVE: Fixed = fixed(503, (5, 5, 1), "TLS already active", "RFC 3207 §4");
/// `454 4.7.0 TLS not available`: STARTTLS without a certificate (RFC 3207 §4).
pub const TLS_NOT_AVAILABLE: Fixed = fixed(454, (4, 7, 0), "TLS not available", "RFC 3207 §4");
/// `504 5.7.4 Unrecognized authentication type`: AUTH, which the simulator never offers.
pub const UNRECOGNIZED_AUTH: Fixed = fixed(
    504,
    (5, 7, 4),
    "Unrecognized authentication type",
    "RFC 4954 §6 (504 5.7.4)",
);
/// `503 5.5.2 Send hello first`: MAIL FROM before EHLO/HELO.
pub const SEND_HELLO_FIRST: Fixed = fixed(
    503,
    (5, 5, 2),
    "Send hello first",
    "RFC 5321 §4.1.4; Exchange's wording",
);
/// `503 5.5.2 Sender already specified`: a second MAIL FROM in one transaction.
pub const SENDER_ALREADY_SPECIFIED: Fixed = fixed(
    503,
    (5, 5, 2),
    "Sender already specified",
    "RFC 5321 §4.1.4; Exchange's wording",
);
/// `503 5.5.1 Need mail command`: RCPT TO or DATA before MAIL FROM.
pub const NEED_MAIL: Fixed = fixed(503, (5, 5, 1), "Need mail command", "RFC 5321 §4.1.4 (503)");
/// `503 5.5.1 Need rcpt command`: DATA before any RCPT TO.
pub const NEED_RCPT: Fixed = fixed(503, (5, 5, 1), "Need rcpt command", "RFC 5321 §4.1.4 (503)");
/// `554 5.5.1 No valid recipients`: DATA when every RCPT TO was refused (RFC 2920 §3.1).
pub const NO_VALID_RECIPIENTS: Fixed = fixed(
    554,
    (5, 5, 1),
    "No valid recipients",
    "RFC 2920 §3.1; RFC 5321 §3.3 (554)",
);

/// Every fixed reply, for tests and for reading the table as one list.
pub const TABLE: &[(&str, Fixed)] = &[
    ("SENDER_OK", SENDER_OK),
    ("RECIPIENT_OK", RECIPIENT_OK),
    ("READY_FOR_TLS", READY_FOR_TLS),
    ("START_MAIL_INPUT", START_MAIL_INPUT),
    ("RESETTING", RESETTING),
    ("NOOP_OK", NOOP_OK),
    ("CLOSING", CLOSING),
    ("CANNOT_VRFY", CANNOT_VRFY),
    ("TOO_MANY_RECIPIENTS", TOO_MANY_RECIPIENTS),
    ("TENANT_ATTRIBUTION", TENANT_ATTRIBUTION),
    ("TENANT_INBOUND_ATTRIBUTION", TENANT_INBOUND_ATTRIBUTION),
    ("RECIPIENT_NOT_FOUND", RECIPIENT_NOT_FOUND),
    ("SHUTTING_DOWN", SHUTTING_DOWN),
    ("NOT_ACCEPTING", NOT_ACCEPTING),
    ("MESSAGE_TOO_LARGE", MESSAGE_TOO_LARGE),
    ("LINE_TOO_LONG", LINE_TOO_LONG),
    ("UNRECOGNIZED_COMMAND", UNRECOGNIZED_COMMAND),
    ("SYNTAX_ERROR", SYNTAX_ERROR),
    ("INVALID_SENDER", INVALID_SENDER),
    ("INVALID_RECIPIENT", INVALID_RECIPIENT),
    ("NOT_IMPLEMENTED", NOT_IMPLEMENTED),
    ("BDAT_NOT_OFFERED", BDAT_NOT_OFFERED),
    ("TLS_ALREADY_ACTIVE", TLS_ALREADY_ACTIVE),
    ("TLS_NOT_AVAILABLE", TLS_NOT_AVAILABLE),
    ("UNRECOGNIZED_AUTH", UNRECOGNIZED_AUTH),
    ("SEND_HELLO_FIRST", SEND_HELLO_FIRST),
    ("SENDER_ALREADY_SPECIFIED", SENDER_ALREADY_SPECIFIED),
    ("NEED_MAIL", NEED_MAIL),
    ("NEED_RCPT", NEED_RCPT),
    ("NO_VALID_RECIPIENTS", NO_VALID_RECIPIENTS),
];

// ---- Replies built from data --------------------------------------------------------------------

/// `220 <fqdn> Microsoft ESMTP MAIL Service ready at <RFC 2822 date> [<session id>]` (reference,
/// "Greeting and EHLO of an EOP front end"; no enhanced code on a greeting, RFC 2034 §3).
pub fn greeting(fqdn: &str, now: DateTime<Utc>, session_id: &str) -> Reply {
    Reply::new(
        220,
        None,
        format!(
            "{fqdn} Microsoft ESMTP MAIL Service ready at {} [{session_id}]",
            now.to_rfc2822()
        ),
    )
}

/// The EHLO keywords in EOP's order (reference, "Greeting and EHLO of an EOP front end"), less
/// BINARYMIME and CHUNKING, which the simulator does not implement; STARTTLS only while plain.
pub fn ehlo(fqdn: &str, ip: IpAddr, max_size: usize, starttls: bool) -> Reply {
    let mut lines = vec![helo_text(fqdn, ip), format!("SIZE {max_size}")];
    lines.extend(["PIPELINING", "DSN", "ENHANCEDSTATUSCODES"].map(String::from));
    if starttls {
        lines.push("STARTTLS".into());
    }
    lines.extend(["8BITMIME", "SMTPUTF8"].map(String::from));
    Reply::multiline(250, lines)
}

/// `250 <fqdn> Hello [<ip>]`: HELO, the first line of EHLO without the keywords.
pub fn helo(fqdn: &str, ip: IpAddr) -> Reply {
    Reply::new(250, None, helo_text(fqdn, ip))
}

fn helo_text(fqdn: &str, ip: IpAddr) -> String {
    format!("{fqdn} Hello [{ip}]")
}

/// `214` HELP: the commands the simulator knows (Exchange's wording).
pub fn help() -> Reply {
    Reply::multiline(
        214,
        vec![
            "This server supports the following commands:".into(),
            "HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP NOOP VRFY".into(),
        ],
    )
}

/// `421 4.4.2 <fqdn> Connection timed out`: a client silent past the command or data timeout.
pub fn timed_out(fqdn: &str) -> Reply {
    Reply::new(
        421,
        Some(EnhancedCode::new(4, 4, 2)),
        format!("{fqdn} Connection timed out"),
    )
}

/// `501 5.5.4 Invalid arguments; syntax: <syntax>`: a command whose arguments do not parse.
pub fn invalid_arguments(syntax: &str) -> Reply {
    Reply::new(
        501,
        Some(EnhancedCode::new(5, 5, 4)),
        format!("Invalid arguments; syntax: {syntax}"),
    )
}

/// `501 5.5.4 Invalid parameter <param>`: a MAIL/RCPT parameter with a bad value.
pub fn invalid_parameter(param: &str) -> Reply {
    Reply::new(
        501,
        Some(EnhancedCode::new(5, 5, 4)),
        format!("Invalid parameter {param}"),
    )
}

/// `555 5.5.4 Unsupported parameter <param>`: a MAIL/RCPT parameter not offered (RFC 5321 §4.1.1.11).
pub fn unsupported_parameter(param: &str) -> Reply {
    Reply::new(
        555,
        Some(EnhancedCode::new(5, 5, 4)),
        format!("Unsupported parameter {param}"),
    )
}

/// `250 2.6.0 <message-id> [InternalId=<n>, Hostname=<host>] Queued mail for delivery`
/// (reference, "Greeting and EHLO of an EOP front end").
pub fn queued(message_id: &str, internal_id: u64, hostname: &str) -> Reply {
    Reply::new(
        250,
        Some(EnhancedCode::new(2, 6, 0)),
        format!(
            "{message_id} [InternalId={internal_id}, Hostname={hostname}] Queued mail for delivery"
        ),
    )
}

/// `550 5.7.606 Access denied, banned sending IP [<ip>]. ... (AS16012609)` (reference, "Reply
/// codes seen from EOP").
pub fn banned_ip(ip: &str) -> Reply {
    Reply::new(
        550,
        Some(EnhancedCode::new(5, 7, 606)),
        format!("Access denied, banned sending IP [{ip}]. To request removal from this list please visit https://sender.office.com/ and follow the directions. ({BANNED_IP_AS})"),
    )
}

/// `451 4.7.650 The mail server [<ip>] has been temporarily rate limited due to IP reputation.
/// ... (<S code>)`, without the sample's MxId (reference, "Reply codes seen from EOP").
pub fn reputation_limited(ip: &str, s_code: &str) -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode::new(4, 7, 650)),
        format!("The mail server [{ip}] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com ({s_code}) [Name=Protocol Filter Agent][AGT=PFA]"),
    )
}

/// `451 4.7.500 Server busy. Please try again later from [<ip>]. (<AS code>)`: IP throttling
/// (reference, "Reply codes seen from EOP").
pub fn throttled(ip: &str, as_code: &str) -> Reply {
    Reply::new(
        451,
        Some(EnhancedCode::new(4, 7, 500)),
        format!("Server busy. Please try again later from [{ip}]. ({as_code})"),
    )
}

/// The configured reply when a connector requires TLS and the session is plain; EOP's own is
/// unconfirmed (reference, "Reply codes seen from EOP": on-premises Exchange's is `451 5.7.3`).
pub fn tls_required(t: &ReplyTemplate) -> Reply {
    match t.enhanced.parse::<EnhancedCode>() {
        Ok(e) if e.to_string() == t.enhanced => Reply::new(t.code, Some(e), t.text.clone()),
        // The template check allows leading zeros (`5.07.3`), which the numeric code would
        // drop: keep the configured spelling on the wire by leaving it in the text.
        _ => Reply::new(t.code, None, format!("{} {}", t.enhanced, t.text)),
    }
}

/// The EOP trailer: `[<trailer_host> <ISO-8601 ms UTC> <16 hex digits>]`.
pub fn trailer(trailer_host: &str, now: DateTime<Utc>, session_hex: &str) -> String {
    let mut s = String::with_capacity(trailer_host.len() + session_hex.len() + 28);
    s.push('[');
    s.push_str(trailer_host);
    s.push(' ');
    push_rfc3339_ms(&mut s, now);
    s.push(' ');
    s.push_str(session_hex);
    s.push(']');
    s
}

/// RFC 3339 with milliseconds and `Z`, the time format of trace records.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(24);
    push_rfc3339_ms(&mut s, t);
    s
}

/// Appends `%Y-%m-%dT%H:%M:%S%.3fZ` without chrono's format-string interpreter, which cost
/// more than the rest of a trace record (it runs several times per accepted message).
fn push_rfc3339_ms(s: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let _ = write!(s, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        return;
    }
    let nanos = t.nanosecond();
    // chrono represents a leap second as nanosecond >= 1e9 and prints it as second 60.
    let (sec, nanos) = if nanos >= 1_000_000_000 {
        (60, nanos - 1_000_000_000)
    } else {
        (t.second(), nanos)
    };
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, sec);
    put(20, 3, nanos / 1_000_000);
    // Every byte written is an ASCII digit or one of the template's ASCII separators.
    s.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono_formatting() {
        use chrono::TimeZone;
        let fmt = "%Y-%m-%dT%H:%M:%S%.3fZ";
        let mut cases = vec![
            Utc.with_ymd_and_hms(2026, 11, 27, 7, 5, 9).unwrap(),
            Utc.with_ymd_and_hms(1999, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(7),
            Utc.with_ymd_and_hms(2030, 12, 31, 23, 59, 59).unwrap()
                + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
        ];
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 1_500)
            .unwrap()
            .and_utc();
        cases.push(leap);
        for t in cases {
            assert_eq!(rfc3339_ms(t), t.format(fmt).to_string(), "{t:?}");
        }
        assert_eq!(
            trailer(
                "H.prod.outlook.com",
                Utc.with_ymd_and_hms(2026, 11, 27, 7, 5, 9).unwrap(),
                "0123456789ABCDEF"
            ),
            "[H.prod.outlook.com 2026-11-27T07:05:09.000Z 0123456789ABCDEF]"
        );
    }

    #[test]
    fn trailer_shape() {
        let t = DateTime::parse_from_rfc3339("2025-06-22T05:58:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            trailer("H.namprd03.prod.outlook.com", t, "08DDB07650EC6878"),
            "[H.namprd03.prod.outlook.com 2025-06-22T05:58:00.500Z 08DDB07650EC6878]"
        );
    }

    /// Every reply's exact bytes, as the front end and the policy wrote them inline before the
    /// table existed: the table changed where replies live, not what goes on the wire.
    #[test]
    fn wire_forms_are_the_inline_ones() {
        let want = [
            ("SENDER_OK", "250 2.1.0 Sender OK"),
            ("RECIPIENT_OK", "250 2.1.5 Recipient OK"),
            ("READY_FOR_TLS", "220 2.0.0 SMTP server ready"),
            ("START_MAIL_INPUT", "354 Start mail input; end with <CRLF>.<CRLF>"),
            ("RESETTING", "250 2.0.0 Resetting"),
            ("NOOP_OK", "250 2.0.0 OK"),
            ("CLOSING", "221 2.0.0 Service closing transmission channel"),
            ("CANNOT_VRFY", "252 2.1.5 Cannot VRFY user, but will accept message for delivery"),
            ("TOO_MANY_RECIPIENTS", "452 4.5.3 Too many recipients (AS780090)"),
            ("TENANT_ATTRIBUTION", "550 5.7.64 TenantAttribution; Relay Access Denied"),
            ("TENANT_INBOUND_ATTRIBUTION", "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set"),
            ("RECIPIENT_NOT_FOUND", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"),
            ("SHUTTING_DOWN", "421 4.3.2 Service not available, closing transmission channel"),
            ("NOT_ACCEPTING", "451 4.3.2 System not accepting network messages"),
            ("MESSAGE_TOO_LARGE", "552 5.3.4 Message size exceeds fixed maximum message size"),
            ("LINE_TOO_LONG", "500 5.5.2 Line too long"),
            ("UNRECOGNIZED_COMMAND", "500 5.3.3 Unrecognized command"),
            ("SYNTAX_ERROR", "500 5.5.2 Syntax error, command unrecognized"),
            ("INVALID_SENDER", "501 5.1.7 Invalid address"),
            ("INVALID_RECIPIENT", "501 5.1.3 Invalid address"),
            ("NOT_IMPLEMENTED", "502 5.3.3 Command not implemented"),
            ("BDAT_NOT_OFFERED", "503 5.5.1 BDAT not supported; CHUNKING was not offered"),
            ("TLS_ALREADY_ACTIVE", "503 5.5.1 TLS already active"),
            ("TLS_NOT_AVAILABLE", "454 4.7.0 TLS not available"),
            ("UNRECOGNIZED_AUTH", "504 5.7.4 Unrecognized authentication type"),
            ("SEND_HELLO_FIRST", "503 5.5.2 Send hello first"),
            ("SENDER_ALREADY_SPECIFIED", "503 5.5.2 Sender already specified"),
            ("NEED_MAIL", "503 5.5.1 Need mail command"),
            ("NEED_RCPT", "503 5.5.1 Need rcpt command"),
            ("NO_VALID_RECIPIENTS", "554 5.5.1 No valid recipients"),
        ];
        assert_eq!(want.len(), TABLE.len());
        for ((name, fixed), (want_name, want_line)) in TABLE.iter().zip(want) {
            assert_eq!(*name, want_name);
            assert_eq!(
                fixed.reply().to_wire(),
                format!("{want_line}\r\n"),
                "{name}"
            );
            assert!(!fixed.source.is_empty(), "{name} names no source");
            // RFC 3463: the enhanced class agrees with the reply class.
            if let Some(e) = fixed.enhanced {
                assert_eq!(u16::from(e.class), fixed.code / 100, "{name}");
            }
        }
    }

    #[test]
    fn built_replies_are_the_inline_ones() {
        use chrono::TimeZone;
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let t = Utc.with_ymd_and_hms(2025, 6, 22, 5, 58, 0).unwrap();
        let fqdn = "contoso-example.mail.protection.outlook.com";
        let cases = [
            (
                greeting(fqdn, t, "08DDB07650EC6878"),
                format!("220 {fqdn} Microsoft ESMTP MAIL Service ready at Sun, 22 Jun 2025 05:58:00 +0000 [08DDB07650EC6878]\r\n"),
            ),
            (
                ehlo(fqdn, ip, 49283072, true),
                format!("250-{fqdn} Hello [127.0.0.2]\r\n250-SIZE 49283072\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
            ),
            (
                ehlo(fqdn, ip, 10, false),
                format!("250-{fqdn} Hello [127.0.0.2]\r\n250-SIZE 10\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
            ),
            (helo(fqdn, ip), format!("250 {fqdn} Hello [127.0.0.2]\r\n")),
            (
                help(),
                "214-This server supports the following commands:\r\n214 HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP NOOP VRFY\r\n".into(),
            ),
            (timed_out(fqdn), format!("421 4.4.2 {fqdn} Connection timed out\r\n")),
            (invalid_arguments("MAIL FROM:<addr>"), "501 5.5.4 Invalid arguments; syntax: MAIL FROM:<addr>\r\n".into()),
            (invalid_parameter("SIZE"), "501 5.5.4 Invalid parameter SIZE\r\n".into()),
            (unsupported_parameter("X=1"), "555 5.5.4 Unsupported parameter X=1\r\n".into()),
            (
                queued("<a@b>", 37314000000001, "H.prod.outlook.com"),
                "250 2.6.0 <a@b> [InternalId=37314000000001, Hostname=H.prod.outlook.com] Queued mail for delivery\r\n".into(),
            ),
            (
                banned_ip("127.0.0.9"),
                "550 5.7.606 Access denied, banned sending IP [127.0.0.9]. To request removal from this list please visit https://sender.office.com/ and follow the directions. (AS16012609)\r\n".into(),
            ),
            (
                reputation_limited("127.0.0.7", "S775"),
                "451 4.7.650 The mail server [127.0.0.7] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [Name=Protocol Filter Agent][AGT=PFA]\r\n".into(),
            ),
            (
                throttled("127.0.0.3", "AS761"),
                "451 4.7.500 Server busy. Please try again later from [127.0.0.3]. (AS761)\r\n".into(),
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(reply.to_wire(), want);
        }
        for (template, want) in [
            (
                "451 5.7.3 STARTTLS is required to send mail",
                "451 5.7.3 STARTTLS is required to send mail\r\n",
            ),
            (
                "530 5.07.0 Must issue a STARTTLS command first",
                "530 5.07.0 Must issue a STARTTLS command first\r\n",
            ),
        ] {
            let t: ReplyTemplate = template.parse().unwrap();
            assert_eq!(tls_required(&t).to_wire(), want);
        }
    }
}
