//! Text that came from outside (server replies, pasted bounces, file contents) on its way to a
//! terminal or a Markdown file: control characters are shown, never obeyed. Also where in a
//! file's text a byte offset is, for errors that name `line:col`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether a character must not reach a terminal raw: C0 and C1 controls, DEL, and the Unicode
/// bidirectional overrides that reorder what a reader sees.
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    (c.is_control() && !(keep_newlines && (c == '\n' || c == '\t')))
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c, keep_newlines) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// One line of outside text made safe to print: every control character (line breaks included)
/// becomes a visible escape such as `\x1b`.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Multi-line outside text made safe to print: line breaks and tabs stay, every other control
/// character becomes a visible escape.
pub fn printable_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// 1-based line and column (in characters) of a byte offset into `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The largest char boundary at or before `i` (clamped to the text's length).
pub fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// At most `max` characters of `s`, with `…` marking a cut: a peer can send a lot, and an error
/// message that quotes it should stay readable. Cuts between characters, never inside one.
pub fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => Cow::Owned(format!("{}…", &s[..cut])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_obeyed() {
        assert_eq!(printable("\x1b]0;pwned\x07ok"), "\\x1b]0;pwned\\x07ok");
        assert_eq!(printable("a\nb"), "a\\x0ab");
        assert_eq!(printable_lines("a\nb\x1b[2J"), "a\nb\\x1b[2J");
        assert_eq!(printable("\u{9b}31m"), "\\x9b31m");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        assert!(matches!(printable("plain text"), Cow::Borrowed(_)));
    }

    #[test]
    fn clip_counts_characters_and_marks_the_cut() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert!(matches!(clip("abcdef", 6), Cow::Borrowed(_)));
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("x", 0), "…");
        // Multi-byte characters count once and are never split.
        assert_eq!(clip("äöü€x", 4), "äöü€…");
    }
}
