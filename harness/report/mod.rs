//! Reports rendered from a [`Summary`]: `summary.json`, `report.md`, `report.html` (self-contained,
//! inline SVG charts, printable) and `junit.xml`. Every report renders from the summary alone:
//! `summary.json` is the summary itself; the other three format one [`ReportModel`] built from it.

mod html;
mod junit;
mod markdown;
pub mod model;

use std::path::Path;

use crate::analysis::{files, Summary};

pub use html::render_html;
pub use junit::render_junit;
pub use markdown::render_markdown;
pub use model::ReportModel;

/// Writes a file atomically (temporary file, then rename) so a reader never sees half a report.
fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)
}

/// The summary as its canonical JSON text (pretty, trailing newline): byte-stable for equal summaries.
pub fn summary_json(s: &Summary) -> String {
    let mut t =
        serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    t.push('\n');
    t
}

/// Writes all four reports into `dir`.
pub fn write_all(s: &Summary, dir: &Path) -> std::io::Result<()> {
    write_atomic(&dir.join(files::SUMMARY), &summary_json(s))?;
    let m = ReportModel::from(s);
    write_atomic(&dir.join(files::REPORT_MD), &render_markdown(&m))?;
    write_atomic(&dir.join(files::REPORT_HTML), &render_html(&m))?;
    write_atomic(&dir.join(files::JUNIT), &render_junit(&m))
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t') => {}
            c => o.push(c),
        }
    }
    o
}
