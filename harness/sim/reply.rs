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
        // Writing into a Vec cannot fail.
        let _ = std::io::Write::write_fmt(out, format_args!("{} ", self.code));
        if !self.enhanced.is_empty() {
            out.extend_from_slice(self.enhanced.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.text.as_bytes());
        out.extend_from_slice(b"\r\n");
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
