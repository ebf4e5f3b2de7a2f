//! Diagnostics for configuration files: every error names `file:line:col` (or a field path)
//! and says what would be right.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::text::{floor_char_boundary, line_col};

/// A configuration file's text, kept so that byte spans can be turned into lines and columns.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or a pseudo path for built-in files).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// Reads a file, mapping I/O errors to a diagnostic that names the path.
    pub fn read(path: &Path) -> Result<SourceFile, Diagnostic> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(SourceFile {
                path: path.to_path_buf(),
                text,
            }),
            Err(e) => Err(Diagnostic::file(path, format!("cannot read file: {e}"))),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }

    /// A diagnostic pointing at `span` in this file.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        let line_text = self
            .text
            .lines()
            .nth(line - 1)
            .unwrap_or("")
            .trim_end_matches('\r')
            .to_string();
        let line_len = line_text.chars().count();
        let span_chars = self.text[floor_char_boundary(&self.text, span.start)
            ..floor_char_boundary(&self.text, span.end.max(span.start))]
            .lines()
            .next()
            .map(|s| s.chars().count())
            .unwrap_or(0);
        let width = span_chars.clamp(1, (line_len + 1).saturating_sub(col).max(1));
        Diagnostic {
            path: Some(self.path.clone()),
            location: Some(Location { line, col }),
            field: None,
            message: message.into(),
            snippet: Some(Box::new(Snippet {
                line_text,
                col,
                width,
            })),
        }
    }

    /// A diagnostic pointing at a secret's value: the excerpt shows a mask in its place, so the
    /// error that refuses a secret in a file does not print it.
    pub fn error_redacted(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let mut d = self.error(span, message);
        if let Some(sn) = d.snippet.as_mut() {
            let chars: Vec<char> = sn.line_text.chars().collect();
            let start = (sn.col - 1).min(chars.len());
            let end = (start + sn.width).min(chars.len());
            let mut text: String = chars[..start].iter().collect();
            text.push_str(REDACTED);
            text.extend(&chars[end..]);
            sn.line_text = text;
            sn.width = REDACTED.chars().count();
        }
        d
    }

    /// A diagnostic pointing at a character offset inside a string value at `span`.
    ///
    /// Falls back to the whole value when the literal has escapes, since offsets then differ.
    pub fn error_in_string(
        &self,
        span: Range<usize>,
        value: &str,
        inner: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let raw = self.text.get(span.clone()).unwrap_or("");
        let plain = raw.len() == value.len() + 2
            && (raw.starts_with('"') || raw.starts_with('\''))
            && &raw[1..raw.len() - 1] == value;
        if plain {
            let start = span.start + 1 + inner.start;
            let end = span.start + 1 + inner.end.max(inner.start + 1).min(value.len());
            self.error(start..end, message)
        } else {
            self.error(span, message)
        }
    }
}

/// What an excerpt shows instead of a secret.
const REDACTED: &str = "\"<redacted>\"";

/// Line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub col: usize,
}

#[derive(Debug, Clone)]
struct Snippet {
    line_text: String,
    col: usize,
    width: usize,
}

/// One configuration error: where it is and what would be right.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// The file the error is in, if any.
    pub path: Option<PathBuf>,
    /// Where in the file.
    pub location: Option<Location>,
    /// The field path (`phases[1].bursts[0].rate`) when there is no location.
    pub field: Option<String>,
    /// What is wrong and what is expected.
    pub message: String,
    snippet: Option<Box<Snippet>>,
}

impl Diagnostic {
    /// An error about a whole file (unreadable, missing).
    pub fn file(path: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: Some(path.to_path_buf()),
            location: None,
            field: None,
            message: message.into(),
            snippet: None,
        }
    }

    /// An error about a named field, for values that have no position (defaults, built-ins).
    pub fn field(
        path: Option<&Path>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            path: path.map(Path::to_path_buf),
            location: None,
            field: Some(field.into()),
            message: message.into(),
            snippet: None,
        }
    }

    /// `file:line:col` (or `file` / `file: field`) for the first line of the report.
    pub fn origin(&self) -> String {
        let mut s = match &self.path {
            Some(p) => p.display().to_string(),
            None => String::from("<input>"),
        };
        if let Some(l) = self.location {
            s.push_str(&format!(":{}:{}", l.line, l.col));
        }
        if let Some(f) = &self.field {
            s.push_str(&format!(": field `{f}`"));
        }
        s
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: error: {}", self.origin(), self.message)?;
        if let (Some(sn), Some(loc)) = (&self.snippet, self.location) {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            write!(
                f,
                "\n{pad} |\n{num} | {}\n{pad} | {}{}",
                sn.line_text,
                " ".repeat(sn.col - 1),
                "^".repeat(sn.width)
            )?;
        }
        Ok(())
    }
}

/// One or more diagnostics, reported together.
#[derive(Debug, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Parses TOML text into `T`, turning parser and type errors into a positioned diagnostic.
pub fn parse_toml<T: serde::de::DeserializeOwned>(src: &SourceFile) -> Result<T, Diagnostic> {
    toml::from_str(&src.text).map_err(|e| {
        let msg = tidy_toml_message(e.message());
        match e.span() {
            Some(span) => src.error(span, msg),
            None => Diagnostic::file(&src.path, msg),
        }
    })
}

/// toml's messages end with a newline and sometimes name serde internals; keep them readable.
fn tidy_toml_message(m: &str) -> String {
    let m = m.trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        return format!("unknown field {rest}");
    }
    if m.starts_with("missing field") {
        return format!("{m} (required here)");
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> SourceFile {
        SourceFile {
            path: "x.toml".into(),
            text: text.into(),
        }
    }

    #[test]
    fn line_col_counts_characters() {
        let s = src("a = 1\nbé = \"x\"\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(12), (2, 6));
    }

    #[test]
    fn errors_render_with_caret() {
        let s = src("name = \"x\"\nrate = \"3 per min\"\n");
        let d = s.error(18..29, "invalid rate");
        let text = d.to_string();
        assert!(
            text.starts_with("x.toml:2:8: error: invalid rate"),
            "{text}"
        );
        assert!(text.contains("^^^^^^^^^^^"), "{text}");
    }

    #[test]
    fn error_in_string_points_inside_the_literal() {
        let s = src("checks = [\"throttle_rate <= x\"]\n");
        let start = s.text.find('"').unwrap();
        let end = s.text.rfind('"').unwrap() + 1;
        let d = s.error_in_string(start..end, "throttle_rate <= x", 17..18, "bad value");
        assert_eq!(d.location.unwrap(), Location { line: 1, col: 29 });
    }
}
