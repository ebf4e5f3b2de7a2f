//! SMTP replies as EOP words them, with the reply trailer.
//!
//! Reference ("Reply codes seen from EOP"): newer EOP replies end with
//! `[<HOST>.<region>.prod.outlook.com <ISO-8601 timestamp> <16 hex digits>]`.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One SMTP reply: code, enhanced status code and text (one line; multi-line replies are built elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code (`5.7.606`), empty when the reply has none (220, 354).
    pub enhanced: String,
    /// The text after the codes, including any trailer.
    pub text: String,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced: enhanced.to_string(),
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code.
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced: String::new(),
            text: text.into(),
        }
    }

    /// Whether this is a 2xx or 3xx reply.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the wire form (`code SP enhanced SP text CRLF`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::with_capacity(8 + self.enhanced.len() + self.text.len());
        self.write_line(&mut s, ' ');
        out.extend_from_slice(s.as_bytes());
    }

    fn write_line(&self, s: &mut String, sep: char) {
        let _ = write!(s, "{}{sep}", self.code);
        if !self.enhanced.is_empty() {
            s.push_str(&self.enhanced);
            s.push(' ');
        }
        s.push_str(&self.text);
        s.push_str("\r\n");
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, self.text)
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, self.text)
        }
    }
}

/// Writes a multi-line reply (`250-first`, ..., `250 last`) with one code for every line.
pub fn write_multiline(out: &mut Vec<u8>, code: u16, lines: &[String]) {
    let n = lines.len();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == n { ' ' } else { '-' };
        out.extend_from_slice(format!("{code}{sep}{l}\r\n").as_bytes());
    }
}

/// The EOP trailer: `[<trailer_host> <ISO-8601 ms UTC> <16 hex digits>]`.
pub fn trailer(trailer_host: &str, now: DateTime<Utc>, session_hex: &str) -> String {
    format!(
        "[{trailer_host} {} {session_hex}]",
        now.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

/// RFC 3339 with milliseconds and `Z`, the time format of trace records.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let mut out = Vec::new();
        Reply::new(451, "4.7.500", "Server busy.").write_to(&mut out);
        Reply::plain(354, "Start mail input").write_to(&mut out);
        write_multiline(&mut out, 250, &["a".into(), "b".into()]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "451 4.7.500 Server busy.\r\n354 Start mail input\r\n250-a\r\n250 b\r\n"
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
}
