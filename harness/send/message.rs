//! Test messages: unique Message-ID, run and sequence headers, a subject with the same token, and
//! a body of the configured size, built with a real message builder (mail-builder).

use chrono::{DateTime, Utc};
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

use super::SendError;

/// Header naming the run (design notes: observation searches by it).
pub const RUN_HEADER: &str = "X-Harness-Run";
/// Header naming the message within the run: `<phase>/<sender>/<tls>/<n>`.
pub const SEQ_HEADER: &str = "X-Harness-Seq";
/// Longest header value taken from scenario text; longer values are cut (headers stay readable).
const MAX_HEADER_TEXT: usize = 200;
/// Body line length: well under mail-builder's 76-octet wrap, so the body stays 7bit, unencoded.
const BODY_LINE: usize = 70;

/// What goes into one test message.
#[derive(Debug, Clone)]
pub struct MessageSpec<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// `<phase>/<sender>/<tls>/<n>`.
    pub seq: &'a str,
    /// Message-ID without angle brackets.
    pub message_id: &'a str,
    /// From address.
    pub from: &'a str,
    /// To addresses.
    pub to: &'a [String],
    /// Body size in bytes.
    pub body_size: u64,
    /// Date header.
    pub date: DateTime<Utc>,
    /// Words for a person to read instead of the generated subject and body (`confirm`).
    pub text: Option<&'a MessageText>,
}

/// A subject and body written for a person, e.g. the customer who receives `confirm`'s message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText {
    /// The subject (control characters become spaces; cut at 200 characters).
    pub subject: String,
    /// The body as plain text; any line ends (LF or CRLF) are sent as CRLF.
    pub body: String,
}

/// Makes scenario text safe for a header: control characters (CR, LF, NUL, …) become spaces, so
/// no value can end a header line and start another; long values are cut.
pub fn sanitize_header_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_HEADER_TEXT)
        .collect();
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

/// Keeps only characters allowed in an address or Message-ID token; anything else becomes `_`.
fn sanitize_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\' | '(' | ')' | ',' | ';')
            {
                c
            } else {
                '_'
            }
        })
        .take(MAX_HEADER_TEXT)
        .collect()
}

/// A Message-ID (without brackets) unique to this run, sequence and attempt.
pub fn message_id(run_id: &str, seq: &str, attempt: u32, helo: &str) -> String {
    let left = sanitize_token(&format!("{run_id}.{}.{attempt}", seq.replace('/', ".")));
    let domain = sanitize_token(helo);
    let domain = if domain.is_empty() {
        "mailharness.invalid".to_string()
    } else {
        domain
    };
    format!("{left}@{domain}")
}

/// Builds the message (CRLF line ends, not yet dot-stuffed).
pub fn build_message(spec: &MessageSpec<'_>) -> Result<Vec<u8>, SendError> {
    let run = sanitize_header_text(spec.run_id);
    let seq = sanitize_header_text(spec.seq);
    let to: Vec<String> = spec.to.iter().map(|a| sanitize_token(a)).collect();
    let (subject, body) = match spec.text {
        Some(t) => (sanitize_header_text(&t.subject), crlf(&t.body)),
        None => (
            format!("mailharness {seq} [{run}]"),
            body_of(spec.body_size, &seq),
        ),
    };
    MessageBuilder::new()
        .from(sanitize_token(spec.from))
        .to(to)
        .subject(subject)
        .message_id(sanitize_token(spec.message_id))
        .date(spec.date.timestamp())
        .header(RUN_HEADER, Raw::new(run))
        .header(SEQ_HEADER, Raw::new(seq))
        .text_body(body)
        .write_to_vec()
        .map_err(|e| SendError::io("building a test message", e))
}

/// `text` with every line ending in CRLF (a bare CR or LF would be rewritten on the wire anyway).
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.replace("\r\n", "\n").replace('\r', "\n").lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// A plain ASCII body of exactly `size` bytes (CRLF line ends), first line naming the message.
fn body_of(size: u64, seq: &str) -> String {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let mut b = String::with_capacity(size);
    let first = format!("mailharness test message {seq}\r\n");
    // Only when it fits one short line: a longer one would make the builder pick quoted-printable.
    if first.len() <= size && first.len() <= BODY_LINE + 2 {
        b.push_str(&first);
    }
    const PATTERN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut i = 0usize;
    while b.len() < size {
        let left = size - b.len();
        if left <= 2 {
            b.push_str(&"\r\n"[2 - left..]);
            // A lone LF would be turned into CRLF by the wire; keep the size honest with a space.
            if b.ends_with('\n') && !b.ends_with("\r\n") {
                b.pop();
                b.push(' ');
            }
            break;
        }
        let line = (left - 2).min(BODY_LINE);
        for _ in 0..line {
            b.push(PATTERN[i % PATTERN.len()] as char);
            i += 1;
        }
        b.push_str("\r\n");
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(run: &str, seq: &str, size: u64) -> String {
        let to = vec!["qa1@testbed.example".to_string()];
        let id = message_id(run, seq, 1, "mta.example");
        let m = build_message(&MessageSpec {
            run_id: run,
            seq,
            message_id: &id,
            from: "sender@mta.example",
            to: &to,
            body_size: size,
            date: Utc::now(),
            text: None,
        })
        .unwrap();
        String::from_utf8(m).unwrap()
    }

    fn headers(m: &str) -> Vec<&str> {
        m.split("\r\n\r\n").next().unwrap().split("\r\n").collect()
    }

    #[test]
    fn carries_run_seq_subject_and_message_id() {
        let m = build("run-1", "before/primary/starttls/0.7", 2048);
        let h = headers(&m);
        assert!(h.contains(&"X-Harness-Run: run-1"), "{h:?}");
        assert!(h.contains(&"X-Harness-Seq: before/primary/starttls/0.7"));
        assert!(h
            .iter()
            .any(|l| l.starts_with("Subject: ") && l.contains("before/primary/starttls/0.7")));
        assert!(h.contains(&"Message-ID: <run-1.before.primary.starttls.0.7.1@mta.example>"));
        let body = m.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(body.len(), 2048, "{}", &m[..m.len().min(900)]);
        assert!(m.split("\r\n").all(|l| l.len() <= 998));
    }

    #[test]
    fn cr_lf_in_scenario_text_cannot_inject_headers() {
        let m = build(
            "run\r\nBcc: victim@example.com",
            "p/s\nX-Evil: 1/none/0",
            100,
        );
        for line in headers(&m) {
            let name = line.split(':').next().unwrap_or("");
            assert!(
                !name.eq_ignore_ascii_case("bcc") && !name.eq_ignore_ascii_case("x-evil"),
                "injected header line `{line}` in\n{m}"
            );
        }
        assert!(m.contains("X-Harness-Run: run  Bcc: victim@example.com"));
        assert!(!m.contains('\0'));
        // Every LF in the message belongs to a CRLF.
        assert_eq!(m.matches('\n').count(), m.matches("\r\n").count());
    }

    #[test]
    fn words_for_a_person_replace_the_generated_subject_and_body() {
        let text = MessageText {
            subject: "Connector check from Acme\r\nBcc: victim@example.com".into(),
            body: "Hello Zoë,\nthis is a test.\r\nBye\n".into(),
        };
        let to = vec!["customer@contoso.example".to_string()];
        let m = build_message(&MessageSpec {
            run_id: "MH-1",
            seq: "connector-test/platform/starttls-opportunistic/0",
            message_id: "MH-1.x@mta.example",
            from: "sender@mta.example",
            to: &to,
            body_size: 512,
            date: Utc::now(),
            text: Some(&text),
        })
        .unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&m).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Connector check from Acme  Bcc: victim@example.com")
        );
        assert!(parsed.header("Bcc").is_none());
        assert_eq!(
            parsed.body_text(0).as_deref(),
            Some("Hello Zoë,\r\nthis is a test.\r\nBye\r\n")
        );
        // Observation still finds it by its run and sequence headers.
        let raw = String::from_utf8(m).unwrap();
        assert!(raw.contains("X-Harness-Run: MH-1\r\n"));
        assert!(raw.contains("X-Harness-Seq: connector-test/platform/starttls-opportunistic/0\r\n"));
    }

    #[test]
    fn body_sizes_are_exact() {
        for size in [0u64, 1, 2, 3, 40, 77, 78, 79, 1000, 65536] {
            assert_eq!(
                body_of(size, "x/y/none/0").len() as u64,
                size,
                "size {size}"
            );
        }
    }

    #[test]
    fn message_ids_are_unique_per_attempt() {
        let a = message_id("r", "p/s/none/0.1", 1, "h");
        let b = message_id("r", "p/s/none/0.1", 2, "h");
        let c = message_id("r", "p/s/none/0.2", 1, "h");
        assert!(a != b && a != c && b != c);
        assert!(!message_id("r>\r\n", "s", 1, "h<").contains(['<', '>', '\r', '\n']));
    }
}
