//! Reports rendered from a [`Summary`]: `summary.json`, `report.md`, `report.html` (self-contained,
//! inline SVG charts, printable) and `junit.xml`. Every report renders from the summary alone:
//! `summary.json` is the summary itself; the other three format one [`ReportModel`] built from it.

pub mod charts;
mod html;
mod junit;
mod markdown;
pub mod model;

use std::path::Path;

use crate::analysis::{files, Summary};

pub use html::render_html;
pub use junit::{junit_testsuite, render_junit, render_junit_suite, render_testsuites, JunitSuite};
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

#[cfg(test)]
mod tests {
    use super::model::tests::golden;
    use super::*;

    #[test]
    fn markdown_and_html_show_the_same_figures() {
        let mut s = golden();
        s.cells[1].observed = false;
        s.expectations[2].passed = false;
        let m = ReportModel::from(&s);
        let (md, html) = (render_markdown(&m), render_html(&m));
        for r in &m.matrix {
            for shown in [
                format!("{} ({})", r.accepted.0, r.accepted.1),
                format!("{} ({})", r.throttled.0, r.throttled.1),
                r.p50.clone(),
                r.onset.clone(),
            ] {
                assert!(
                    md.contains(&shown) && html.contains(&xml_escape(&shown)),
                    "{shown}"
                );
            }
        }
        assert!(md.contains("| before | secondary | 127.0.0.3 | none | 12 | 5 (42%) | 7 (58%) | 0 | 0 | 0 | – | – | – | – |"), "{md}");
        for step in &m.next_steps {
            assert!(
                md.contains(&format!("- {step}\n"))
                    && html.contains(&format!("<li>{}</li>", xml_escape(step))),
                "{step}"
            );
        }
        assert!(m.next_steps[0].starts_with("1 expectation(s) failed"));
        assert!(md.contains("**FAIL**") && html.contains("<b>FAIL</b>"));
        assert!(md.starts_with(
            "# mailharness run `connector-before-after-20261202T184834Z-1983`: PASS\n"
        ));
    }

    #[test]
    fn outside_text_cannot_become_markup() {
        let mut s = golden();
        s.error = Some("<script>alert(1)</script> & \u{7}".into());
        s.replies[0].sample = "451 `tick` <b>".into();
        let m = ReportModel::from(&s);
        let md = render_markdown(&m);
        assert!(
            md.contains("- Error: &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\x07\n"),
            "{md}"
        );
        assert!(md.contains("`451 'tick' <b>`"), "{md}");
        let html = render_html(&m);
        assert!(
            html.contains("<p><b>Error:</b> &lt;script&gt;alert(1)&lt;/script&gt; &amp; </p>"),
            "{html}"
        );
        assert!(html.contains("<code>451 `tick` &lt;b&gt;</code>"));
    }
}
