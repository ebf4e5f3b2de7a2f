//! The Markdown report: paste into a ticket or PR.

use std::fmt::Write as _;

use super::model::{CellVerdict, ChangeEffect, CheckStatus, MatrixRow, ReportModel};

/// Renders the Markdown report, section by section.
pub fn render_markdown(m: &ReportModel) -> String {
    let mut o = String::new();
    headline(&mut o, m);
    failures(&mut o, m);
    phases(&mut o, m);
    matrix(&mut o, m);
    probes(&mut o, m);
    expectations(&mut o, m);
    counting(&mut o, m);
    deltas(&mut o, m);
    replies(&mut o, m);
    trace_and_anomalies(&mut o, m);
    let _ = writeln!(o, "\n## Next steps\n");
    for step in &m.next_steps {
        let _ = writeln!(o, "- {step}");
    }
    o
}

fn headline(o: &mut String, m: &ReportModel) {
    let h = &m.headline;
    let _ = writeln!(
        o,
        "# mailharness run `{}`: {}",
        h.run_id,
        h.verdict.as_upper()
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "- Scenario: **{}** against target **{}** ({})",
        h.scenario, h.target, h.target_kind
    );
    let interrupted = if h.interrupted { " (interrupted)" } else { "" };
    let _ = writeln!(
        o,
        "- Run: {} → {} ({}){interrupted}",
        h.started_at, h.finished_at, h.duration
    );
    let _ = writeln!(o, "- Senders: {}", h.senders);
    let _ = writeln!(o, "- Expectations: {} of {} held", h.held, h.expectations);
    if let Some(e) = &h.error {
        let _ = writeln!(o, "- Error: {}", md_text(e));
    }
    for problem in &h.record_problems {
        let _ = writeln!(o, "- Record problem: {}", md_text(problem));
    }
    if let Some(d) = &h.description {
        // Line by line: a line break in a description is text, not a control character to show.
        let lines: Vec<String> = d.lines().map(md_text).collect();
        let _ = writeln!(o, "\n{}", lines.join("\n"));
    }
}

fn phases(o: &mut String, m: &ReportModel) {
    let _ = writeln!(o, "\n## Phases\n");
    for p in &m.phases {
        let _ = write!(o, "- **{}** ({} of sending)", p.name, p.duration);
        if let Some(c) = &p.change {
            let _ = write!(
                o,
                ": after `{}` of connector \"{}\" via {}",
                c.action, c.connector, c.apply
            );
            let _ = match &c.effect {
                ChangeEffect::TookEffect(t) => {
                    write!(o, "; took effect after {t} ({} probes)", c.probes)
                }
                ChangeEffect::TimedOut => write!(
                    o,
                    "; did NOT take effect before the deadline ({} probes)",
                    c.probes
                ),
                ChangeEffect::Waited(wait) => write!(o, "; waited ({wait})"),
            };
            if let Some(e) = &c.error {
                let _ = write!(o, "; error: {}", md_text(e));
            }
        }
        let _ = writeln!(o);
    }
}

/// What failed, before anything else.
fn failures(o: &mut String, m: &ReportModel) {
    let f = &m.failures;
    let _ = writeln!(o, "\n## Failures\n\n**{}**", md_text(&f.headline));
    for (title, lines) in [("Failed", &f.failed), ("Skipped", &f.skipped)] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n{title}:\n");
        for line in lines {
            let _ = writeln!(o, "- {}", md_text(line));
        }
    }
}

/// The matrix's (and the probe table's) header.
const MATRIX_HEAD: &str = "| verdict | phase | sender | ip | tls | sent | accepted | throttled | tls-req | rejected | other | delivered | inbox | junk | missing | p50 | p95 | TLS | onset |\n|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|";

fn matrix_rows(o: &mut String, rows: &[MatrixRow]) {
    let _ = writeln!(o, "{MATRIX_HEAD}");
    for r in rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            verdict_cell(r), r.phase, r.sender, r.source_ip, r.tls, r.sent, r.accepted.0,
            r.accepted.1, r.throttled.0, r.throttled.1, r.tls_required, r.rejected, r.other, r.delivered,
            r.inbox, r.junk, r.missing, r.p50, r.p95, r.min_tls, r.onset
        );
    }
}

/// The verdict column: the cell's verdict and its count, e.g. `pass (3 of 3 held)`.
fn verdict_cell(r: &MatrixRow) -> String {
    match r.verdict {
        CellVerdict::NoChecks => "no checks".into(),
        CellVerdict::Fail => format!("**FAIL** ({})", r.checks),
        v => format!("{} ({})", v.as_str(), r.checks),
    }
}

fn matrix(o: &mut String, m: &ReportModel) {
    let _ = writeln!(
        o,
        "\n## Matrix\n\nPlanned messages only, each by its first attempt; the verdict is the cell's expectations'.\n"
    );
    matrix_rows(o, &m.matrix);
}

fn probes(o: &mut String, m: &ReportModel) {
    if m.probes.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Change-step probes\n\nProbe messages sent while waiting for a change step to take effect (`<phase>~probe`: before that phase); not in the matrix, the expectations or the charts.\n");
    matrix_rows(o, &m.probes);
}

fn counting(o: &mut String, m: &ReportModel) {
    let _ = writeln!(o, "\n## What is counted where\n");
    for line in &m.counting {
        let _ = writeln!(o, "- {line}");
    }
}

fn deltas(o: &mut String, m: &ReportModel) {
    if m.deltas.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Before vs after\n");
    let _ = writeln!(o, "| sender | tls | throttle rate | accepted rate |");
    let _ = writeln!(o, "|---|---|---|---|");
    for d in &m.deltas {
        let _ = writeln!(
            o,
            "| {} | {} | {} → {} ({}) | {} → {} ({}) |",
            d.sender,
            d.tls,
            d.throttle.0.shown,
            d.throttle.1.shown,
            d.phases,
            d.accepted.0.shown,
            d.accepted.1.shown,
            d.phases
        );
    }
}

fn expectations(o: &mut String, m: &ReportModel) {
    let _ = writeln!(o, "\n## Expectations\n");
    let _ = writeln!(o, "| result | cell | check | actual | numbers |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    for v in &m.expectations {
        let _ = writeln!(
            o,
            "| {} | {} | `{}` | {} | {} |",
            match v.status {
                CheckStatus::Pass => "PASS",
                CheckStatus::Fail => "**FAIL**",
                CheckStatus::Skipped => "SKIPPED",
            },
            v.cell,
            v.check,
            v.actual,
            v.detail
        );
    }
}

fn replies(o: &mut String, m: &ReportModel) {
    if m.replies.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n## Replies seen\n");
    for g in &m.replies {
        let unplanned = if g.unplanned > 0 {
            format!(", {} unplanned", g.unplanned)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "- **{}×** `{}` from {}: {} planned first attempts (matrix), {} retries, {} probes{unplanned}",
            g.count,
            md_code(&g.sample),
            g.from,
            g.first_attempts,
            g.retries,
            g.probes
        );
        if let Some(meaning) = &g.meaning {
            let _ = writeln!(o, "  - Meaning: {}", md_text(meaning));
        }
        if let Some(c) = g.connector {
            let _ = writeln!(o, "  - Connector: {c}");
        }
        if let Some(a) = &g.action {
            let _ = writeln!(o, "  - What to do: {a}");
        }
    }
}

fn trace_and_anomalies(o: &mut String, m: &ReportModel) {
    if let Some(t) = &m.trace {
        let _ = writeln!(o, "\n## Simulator trace cross-check\n");
        let _ = writeln!(
            o,
            "{}: {} accepted messages matched by Message-ID, {} refused transactions compared.",
            if t.agreed { "Agreed" } else { "DISAGREED" },
            t.accepted_matched,
            t.refused_compared
        );
        for mismatch in &t.mismatches {
            let _ = writeln!(o, "- {mismatch}");
        }
    }
    if m.anomalies > 0 {
        let _ = writeln!(
            o,
            "\n{} message(s) of this run were found that no attempt says was accepted (anomalies).",
            m.anomalies
        );
    }
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
