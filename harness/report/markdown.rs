//! The Markdown report: paste into a ticket or PR.

use std::fmt::Write as _;

use super::model::{ChangeEffect, ReportModel};

/// Renders the Markdown report, section by section.
pub fn render_markdown(m: &ReportModel) -> String {
    let mut o = String::new();
    headline(&mut o, m);
    phases(&mut o, m);
    matrix(&mut o, m);
    deltas(&mut o, m);
    expectations(&mut o, m);
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
        "- Run: {} → {}{interrupted}",
        h.started_at, h.finished_at
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
        let _ = writeln!(o, "\n{}", md_text(d));
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

fn matrix(o: &mut String, m: &ReportModel) {
    let _ = writeln!(o, "\n## Matrix\n");
    let _ = writeln!(o, "| phase | sender | ip | tls | sent | accepted | throttled | tls-req | rejected | other | delivered | inbox | junk | missing | p50 | p95 | TLS | onset |");
    let _ = writeln!(
        o,
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
    );
    for r in &m.matrix {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.phase, r.sender, r.source_ip, r.tls, r.sent, r.accepted.0, r.accepted.1, r.throttled.0,
            r.throttled.1, r.tls_required, r.rejected, r.other, r.delivered, r.inbox, r.junk, r.missing,
            r.p50, r.p95, r.min_tls, r.onset
        );
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
            if v.passed { "PASS" } else { "**FAIL**" },
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
        let _ = writeln!(
            o,
            "- **{}×** `{}` from {}",
            g.count,
            md_code(&g.sample),
            g.from
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
