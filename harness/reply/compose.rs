//! Replies as a server writes them: the simulator builds the same [`Reply`] the send engine
//! parses, so a reply means one thing on both sides of the wire (one `is_positive`).

use super::{EnhancedCode, Reply};

impl EnhancedCode {
    /// An enhanced status code from its three numbers, usable in constant tables.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }
}

impl Reply {
    /// A one-line reply; `enhanced` is `None` where RFC 2034 has none (220 greeting, 354).
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply without an enhanced code (EHLO keywords, HELP).
    pub fn multiline(code: u16, lines: Vec<String>) -> Self {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// Whether the code is 4xx or 5xx (RFC 5321 §4.2.1: transient or permanent negative
    /// completion). A 3xx intermediate reply is neither positive nor negative.
    pub fn is_negative(&self) -> bool {
        (400..600).contains(&self.code)
    }

    /// Appends ` text` to the last line (EOP's trailer goes there).
    pub fn append_text(&mut self, text: &str) {
        match self.lines.last_mut() {
            Some(l) => {
                l.push(' ');
                l.push_str(text);
            }
            None => self.lines.push(text.to_string()),
        }
    }

    /// Appends the wire form: `code-[enhanced ]line CRLF` for every line but the last, which
    /// has a space after the code. The enhanced code goes on every line (RFC 2034 §3), which is
    /// how [`super::parse_reply_lines`] reads it back.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        let empty = [String::new()];
        let lines = if self.lines.is_empty() {
            &empty[..]
        } else {
            &self.lines[..]
        };
        for (i, line) in lines.iter().enumerate() {
            push_number(out, self.code);
            out.push(if i == last { b' ' } else { b'-' });
            if let Some(e) = self.enhanced {
                push_enhanced(out, e);
                out.push(b' ');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form as a string (tests, logs).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Writes a number without a formatter: replies are written per command under load.
fn push_number(out: &mut Vec<u8>, v: u16) {
    let mut digits = [0u8; 5];
    let mut n = v;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_enhanced(out: &mut Vec<u8>, e: EnhancedCode) {
    push_number(out, u16::from(e.class));
    out.push(b'.');
    push_number(out, e.subject);
    out.push(b'.');
    push_number(out, e.detail);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::parse_reply_lines;

    #[test]
    fn wire_forms_read_back_as_written() {
        let busy = Reply::new(
            451,
            Some(EnhancedCode::new(4, 7, 500)),
            "Server busy. (AS761)",
        );
        let start = Reply::new(354, None, "Start mail input");
        let ehlo = Reply::multiline(250, vec!["a".into(), "b".into()]);
        let mut out = Vec::new();
        for r in [&busy, &start, &ehlo] {
            r.write_to(&mut out);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "451 4.7.500 Server busy. (AS761)\r\n354 Start mail input\r\n250-a\r\n250 b\r\n"
        );
        for r in [busy, start, ehlo] {
            let wire = r.to_wire();
            let raw: Vec<&str> = wire.split_terminator("\r\n").collect();
            assert_eq!(parse_reply_lines(&raw).unwrap(), r, "{wire}");
        }
    }

    #[test]
    fn one_meaning_of_positive() {
        let r = |code| Reply::new(code, None, "x");
        assert!(r(250).is_positive() && !r(250).is_negative());
        assert!(!r(354).is_positive() && !r(354).is_negative());
        assert!(!r(451).is_positive() && r(451).is_negative());
        assert!(r(550).is_negative());
    }

    #[test]
    fn trailer_goes_on_the_last_line() {
        let mut r = Reply::new(550, Some(EnhancedCode::new(5, 7, 64)), "Relay denied");
        r.append_text("[H 2025]");
        assert_eq!(r.to_wire(), "550 5.7.64 Relay denied [H 2025]\r\n");
        assert_eq!(r.to_string(), "550 5.7.64 Relay denied [H 2025]");
    }
}
