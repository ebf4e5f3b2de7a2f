//! Reports rendered from a [`Summary`]: `summary.json`, `report.md`, `report.html` (self-contained,
//! inline SVG charts, printable) and `junit.xml`. Every report renders from the summary alone.

mod html;

use std::fmt::Write as _;
use std::path::Path;

use crate::analysis::{files, CellStats, Summary};
use crate::reply::ConnectorAnswer;

pub use html::render_html;

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
    write_atomic(&dir.join(files::REPORT_MD), &render_markdown(s))?;
    write_atomic(&dir.join(files::REPORT_HTML), &render_html(s))?;
    write_atomic(&dir.join(files::JUNIT), &render_junit(s))
}

fn pct(n: u64, d: u64) -> String {
    if d == 0 {
        "–".into()
    } else {
        format!("{:.0}%", 100.0 * n as f64 / d as f64)
    }
}

/// The matrix's "other" column: outcomes that are neither accepted, throttled, TLS-required nor rejected.
fn other_outcomes(c: &CellStats) -> u64 {
    c.deferred + c.rate_limited + c.failed + c.interrupted
}

/// Where throttling began in a cell, for the matrix; a dash when it never did.
fn onset_text(c: &CellStats) -> String {
    c.throttle_onset
        .as_ref()
        .map(|x| format!("#{} at {:.1}s", x.index, x.after_s))
        .unwrap_or_else(|| "–".into())
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 10_000.0 => format!("{:.1}s", x / 1000.0),
        Some(x) => format!("{x:.0}ms"),
        None => "–".into(),
    }
}

/// One line per next step, derived from what the run saw.
pub fn next_steps(s: &Summary) -> Vec<String> {
    let mut steps = Vec::new();
    let failed: Vec<_> = s.expectations.iter().filter(|v| !v.passed).collect();
    for g in &s.replies {
        if let (Some(action), Some(fam)) = (&g.action, &g.family) {
            let line = format!(
                "{} ({}): {}",
                g.token
                    .as_deref()
                    .map(|t| format!("{fam}, {t}"))
                    .unwrap_or_else(|| fam.clone()),
                g.source_ips.join(", "),
                action
            );
            if !steps.contains(&line) {
                steps.push(line);
            }
        }
    }
    if let Some(t) = &s.trace_check {
        if !t.agreed {
            steps.push("The attempt records and the simulator's message trace disagree: see the trace check; this is a harness or simulator bug worth filing.".into());
        }
    }
    if !s.record_problems.is_empty() {
        steps.push(format!(
            "The run's records are incomplete ({}); its numbers cannot be trusted: re-run it.",
            s.record_problems.join("; ")
        ));
    }
    if s.interrupted {
        let unsent = s.unsent();
        steps.push(if unsent > 0 {
            format!("The run was interrupted: {unsent} planned messages were never sent and are left out of every count; re-run it to get complete numbers.")
        } else {
            "The run was interrupted: re-run it to get complete numbers.".into()
        });
    }
    if failed.is_empty() && steps.is_empty() {
        steps.push("Nothing to do: every expectation held.".into());
    } else if !failed.is_empty() {
        steps.insert(
            0,
            format!(
                "{} expectation(s) failed; the table above quotes the numbers behind each.",
                failed.len()
            ),
        );
    }
    steps
}

/// The Markdown report: paste into a ticket or PR.
pub fn render_markdown(s: &Summary) -> String {
    let mut o = String::new();
    let passed = s.expectations.iter().filter(|v| v.passed).count();
    let _ = writeln!(
        o,
        "# mailharness run `{}`: {}",
        s.run_id,
        s.verdict.as_upper()
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "- Scenario: **{}** against target **{}** ({})",
        s.scenario, s.target, s.target_kind
    );
    let _ = writeln!(
        o,
        "- Run: {} → {}{}",
        s.started_at,
        s.finished_at,
        if s.interrupted { " (interrupted)" } else { "" }
    );
    let senders: Vec<String> = s
        .senders
        .iter()
        .map(|(r, ip)| format!("{r} = {ip}"))
        .collect();
    let _ = writeln!(o, "- Senders: {}", senders.join(", "));
    let _ = writeln!(
        o,
        "- Expectations: {passed} of {} held",
        s.expectations.len()
    );
    if let Some(e) = &s.error {
        let _ = writeln!(o, "- Error: {}", md_text(e));
    }
    for problem in &s.record_problems {
        let _ = writeln!(o, "- Record problem: {}", md_text(problem));
    }
    if !s.description.is_empty() {
        let _ = writeln!(o, "\n{}", md_text(s.description.trim()));
    }
    let _ = writeln!(o, "\n## Phases\n");
    for p in &s.phases {
        let _ = write!(o, "- **{}** ({:.1}s of sending)", p.name, p.duration_s);
        if let Some(c) = &p.change {
            let _ = write!(
                o,
                ": after `{}` of connector \"{}\" via {}",
                c.action, c.connector, c.apply
            );
            match (c.effective_after_s, c.timed_out) {
                (Some(t), _) => {
                    let _ = write!(o, "; took effect after {t:.1}s ({} probes)", c.probes);
                }
                (None, true) => {
                    let _ = write!(
                        o,
                        "; did NOT take effect before the deadline ({} probes)",
                        c.probes
                    );
                }
                _ => {
                    let _ = write!(o, "; waited ({})", c.wait);
                }
            }
            if let Some(e) = &c.error {
                let _ = write!(o, "; error: {}", md_text(e));
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "\n## Matrix\n");
    let _ = writeln!(o, "| phase | sender | ip | tls | sent | accepted | throttled | tls-req | rejected | other | delivered | inbox | junk | missing | p50 | p95 | TLS | onset |");
    let _ = writeln!(
        o,
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
    );
    for c in &s.cells {
        let other = other_outcomes(c);
        let onset = onset_text(c);
        let (del, inbox, junk, missing) = if c.observed {
            (
                c.delivered.to_string(),
                c.inbox.to_string(),
                c.junk.to_string(),
                c.missing.to_string(),
            )
        } else {
            ("–".into(), "–".into(), "–".into(), "–".into())
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.phase, c.sender, c.source_ip, c.tls, c.sent, c.accepted, pct(c.accepted, c.sent), c.throttled, pct(c.throttled, c.sent),
            c.tls_required, c.rejected, other, del, inbox, junk, missing, ms(c.latency_p50_ms), ms(c.latency_p95_ms),
            c.min_tls_version.as_deref().unwrap_or("–"), onset
        );
    }
    if !s.deltas.is_empty() {
        let _ = writeln!(o, "\n## Before vs after\n");
        let _ = writeln!(o, "| sender | tls | throttle rate | accepted rate |");
        let _ = writeln!(o, "|---|---|---|---|");
        for d in &s.deltas {
            let _ = writeln!(
                o,
                "| {} | {} | {:.0}% → {:.0}% ({}) | {:.0}% → {:.0}% ({}) |",
                d.sender,
                d.tls,
                d.throttle_rate_before * 100.0,
                d.throttle_rate_after * 100.0,
                d.before.clone() + "→" + &d.after,
                d.accepted_rate_before * 100.0,
                d.accepted_rate_after * 100.0,
                d.before.clone() + "→" + &d.after
            );
        }
    }
    let _ = writeln!(o, "\n## Expectations\n");
    let _ = writeln!(o, "| result | cell | check | actual | numbers |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for v in &s.expectations {
        let _ = writeln!(
            o,
            "| {} | {}/{}/{} | `{}` | {} | {} |",
            if v.passed { "PASS" } else { "**FAIL**" },
            v.phase,
            v.sender,
            v.tls,
            v.check,
            v.actual,
            v.detail
        );
    }
    if !s.replies.is_empty() {
        let _ = writeln!(o, "\n## Replies seen\n");
        for g in &s.replies {
            let _ = writeln!(
                o,
                "- **{}×** `{}` from {}",
                g.count,
                md_code(&g.sample),
                g.source_ips.join(", ")
            );
            if let Some(m) = &g.meaning {
                let _ = writeln!(o, "  - Meaning: {}", md_text(m));
            }
            if let Some(c) = g.connector {
                let what = match c {
                    ConnectorAnswer::Helps => "an inbound connector for the sending IPs fixes this",
                    ConnectorAnswer::FixExisting => {
                        "the existing connector does not match this sender; fix it"
                    }
                    ConnectorAnswer::Cause => "a connector's own setting produced this",
                    ConnectorAnswer::NotATenant => "consumer Outlook.com: no tenant, no connector",
                    ConnectorAnswer::No => "not a connector matter",
                };
                let _ = writeln!(o, "  - Connector: {what}");
            }
            if let Some(a) = &g.action {
                let _ = writeln!(o, "  - What to do: {a}");
            }
        }
    }
    if let Some(t) = &s.trace_check {
        let _ = writeln!(o, "\n## Simulator trace cross-check\n");
        let _ = writeln!(
            o,
            "{}: {} accepted messages matched by Message-ID, {} refused transactions compared.",
            if t.agreed { "Agreed" } else { "DISAGREED" },
            t.accepted_matched,
            t.refused_compared
        );
        for m in &t.mismatches {
            let _ = writeln!(o, "- {m}");
        }
    }
    if s.anomalies > 0 {
        let _ = writeln!(
            o,
            "\n{} message(s) of this run were found that no attempt says was accepted (anomalies).",
            s.anomalies
        );
    }
    let _ = writeln!(o, "\n## Next steps\n");
    for step in next_steps(s) {
        let _ = writeln!(o, "- {step}");
    }
    o
}

/// Free text (a description, an error) for Markdown: angle brackets escaped, so that text from a
/// file or a server cannot become HTML where the Markdown is rendered, and control characters
/// shown rather than sent to whatever terminal displays the file.
fn md_text(s: &str) -> String {
    crate::text::printable(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Outside text inside a Markdown code span: control characters shown, and no backtick that
/// could end the span early.
fn md_code(s: &str) -> String {
    crate::text::printable(s).replace('`', "'")
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

/// JUnit XML: one test case per expectation, failures quoting the numbers.
pub fn render_junit(s: &Summary) -> String {
    // The run itself is a test case: an interrupted run, one that could not finish, or one with
    // damaged records must not look green in CI because its expectations happened to hold.
    let mut run_faults = Vec::new();
    if s.interrupted {
        run_faults.push("the run was interrupted".to_string());
    }
    if let Some(e) = &s.error {
        run_faults.push(format!("the run could not finish: {e}"));
    }
    run_faults.extend(s.record_problems.iter().cloned());
    let failures =
        s.expectations.iter().filter(|v| !v.passed).count() + usize::from(!run_faults.is_empty());
    let trace_fail = s.trace_check.as_ref().is_some_and(|t| !t.agreed);
    let tests = s.expectations.len() + usize::from(s.trace_check.is_some()) + 1;
    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        o,
        "<testsuites name=\"mailharness\" tests=\"{tests}\" failures=\"{}\">",
        failures + usize::from(trace_fail)
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{}\" timestamp=\"{}\">",
        xml_escape(&s.scenario),
        failures + usize::from(trace_fail),
        xml_escape(&s.started_at)
    );
    let _ = writeln!(o, "    <properties>");
    for (k, v) in [
        ("run_id", s.run_id.as_str()),
        ("target", s.target.as_str()),
        ("target_kind", s.target_kind.as_str()),
    ] {
        let _ = writeln!(
            o,
            "      <property name=\"{k}\" value=\"{}\"/>",
            xml_escape(v)
        );
    }
    let _ = writeln!(o, "    </properties>");
    let _ = write!(
        o,
        "    <testcase classname=\"{}.run\" name=\"the run completed with intact records\"",
        xml_escape(&s.scenario)
    );
    if run_faults.is_empty() {
        let _ = writeln!(o, "/>");
    } else {
        let _ = writeln!(o, ">");
        let _ = writeln!(
            o,
            "      <failure message=\"{}\">{}</failure>",
            xml_escape(&run_faults[0]),
            xml_escape(&run_faults.join("\n"))
        );
        let _ = writeln!(o, "    </testcase>");
    }
    for v in &s.expectations {
        let class = format!("{}.{}.{}.{}", s.scenario, v.phase, v.sender, v.tls);
        let _ = write!(
            o,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml_escape(&class),
            xml_escape(&v.check)
        );
        if v.passed {
            let _ = writeln!(o, "/>");
        } else {
            let _ = writeln!(o, ">");
            let _ = writeln!(
                o,
                "      <failure message=\"{}\">{}</failure>",
                xml_escape(&format!("{} failed: actual {}", v.check, v.actual)),
                xml_escape(&format!(
                    "{}/{}/{}: {} — {}",
                    v.phase, v.sender, v.tls, v.check, v.detail
                ))
            );
            let _ = writeln!(o, "    </testcase>");
        }
    }
    if let Some(t) = &s.trace_check {
        let _ = write!(o, "    <testcase classname=\"{}.trace\" name=\"attempts agree with the simulator's message trace\"", xml_escape(&s.scenario));
        if t.agreed {
            let _ = writeln!(o, "/>");
        } else {
            let _ = writeln!(o, ">");
            let _ = writeln!(
                o,
                "      <failure message=\"{} mismatches\">{}</failure>",
                t.mismatches.len(),
                xml_escape(&t.mismatches.join("\n"))
            );
            let _ = writeln!(o, "    </testcase>");
        }
    }
    let _ = writeln!(o, "  </testsuite>");
    let _ = writeln!(o, "</testsuites>");
    o
}
