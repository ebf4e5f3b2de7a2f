//! The self-contained HTML report: no network, inline CSS, charts as inline SVG, printable.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{ms, next_steps, onset_text, other_outcomes, pct, xml_escape as esc};
use crate::analysis::Summary;
use crate::vocab::{OutcomeClass, TlsMode};

/// The chart colour of the failures (TLS, connect, timeout, protocol), which share one legend entry.
const FAILURE_COLOUR: &str = "#444444";

/// Chart colours per outcome class (colour-blind-friendly palette).
fn colour(outcome: OutcomeClass) -> &'static str {
    match outcome {
        OutcomeClass::Accepted => "#1b9e77",
        OutcomeClass::Throttled => "#d95f02",
        OutcomeClass::RateLimited => "#e6ab02",
        OutcomeClass::Deferred => "#a6761d",
        OutcomeClass::TlsRequired => "#7570b3",
        OutcomeClass::Rejected => "#e7298a",
        OutcomeClass::Interrupted => "#999999",
        OutcomeClass::TlsFailure
        | OutcomeClass::ConnectFailure
        | OutcomeClass::Timeout
        | OutcomeClass::ProtocolError => FAILURE_COLOUR,
    }
}

/// The legend's classes, in its order; the failures follow as one entry.
const LEGEND: [OutcomeClass; 7] = [
    OutcomeClass::Accepted,
    OutcomeClass::Throttled,
    OutcomeClass::TlsRequired,
    OutcomeClass::Rejected,
    OutcomeClass::Deferred,
    OutcomeClass::RateLimited,
    OutcomeClass::Interrupted,
];

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:72rem;color:#222;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:700}
.pass{background:#1b7e45}.fail{background:#c0392b}
table{border-collapse:collapse;width:100%;font-size:.8rem;margin:.5rem 0}
.wrap{overflow-x:auto}
th,td{border:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.failrow td{background:#fdecea}
.meta{color:#555;font-size:.9rem}.legend span{display:inline-block;margin-right:1rem;font-size:.8rem}
.legend i{display:inline-block;width:.7rem;height:.7rem;border-radius:50%;margin-right:.3rem;vertical-align:middle}
svg{max-width:100%;height:auto;font-family:inherit}
code{background:#f6f6f6;padding:0 .2rem;border-radius:.2rem}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}table,svg{page-break-inside:avoid}}
"#;

/// Renders the HTML report.
pub fn render_html(s: &Summary) -> String {
    let mut o = String::new();
    let passed = s.expectations.iter().filter(|v| v.passed).count();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>mailharness {} — {}</title><style>{CSS}</style></head><body>\n",
        esc(&s.scenario),
        esc(&s.run_id)
    );
    let _ = writeln!(
        o,
        "<h1>{} <span class=\"verdict {}\">{}</span></h1>",
        esc(&s.scenario),
        s.verdict,
        s.verdict.as_upper()
    );
    let senders: Vec<String> = s
        .senders
        .iter()
        .map(|(r, ip)| format!("{r} = {ip}"))
        .collect();
    let _ = writeln!(
        o,
        "<p class=\"meta\">Run <code>{}</code> against <b>{}</b> ({}) · {} → {}{} · senders {} · {passed} of {} expectations held</p>",
        esc(&s.run_id),
        esc(&s.target),
        s.target_kind,
        esc(&s.started_at),
        esc(&s.finished_at),
        if s.interrupted { " · <b>interrupted</b>" } else { "" },
        esc(&senders.join(", ")),
        s.expectations.len()
    );
    if !s.description.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(s.description.trim()));
    }
    if let Some(e) = &s.error {
        let _ = writeln!(o, "<p><b>Error:</b> {}</p>", esc(e));
    }
    for problem in &s.record_problems {
        let _ = writeln!(o, "<p><b>Record problem:</b> {}</p>", esc(problem));
    }

    let _ = writeln!(o, "<h2>Phases</h2><ul>");
    for p in &s.phases {
        let _ = write!(
            o,
            "<li><b>{}</b> ({:.1}s of sending)",
            esc(&p.name),
            p.duration_s
        );
        if let Some(c) = &p.change {
            let _ = write!(
                o,
                " after <code>{}</code> of connector “{}” via {}",
                c.action,
                esc(&c.connector),
                c.apply
            );
            match (c.effective_after_s, c.timed_out) {
                (Some(t), _) => {
                    let _ = write!(
                        o,
                        "; took effect after <b>{t:.1}s</b> ({} probes)",
                        c.probes
                    );
                }
                (None, true) => {
                    let _ = write!(o, "; <b>did not take effect</b> before the deadline");
                }
                _ => {}
            }
            if let Some(e) = &c.error {
                let _ = write!(o, "; <b>error:</b> {}", esc(e));
            }
        }
        let _ = writeln!(o, "</li>");
    }
    let _ = writeln!(o, "</ul>");

    let _ = writeln!(o, "<h2 id=\"matrix\">Matrix</h2>");
    let _ = writeln!(o, "<div class=\"wrap\"><table id=\"matrix-table\"><thead><tr><th>phase</th><th>sender</th><th>ip</th><th>tls</th><th>sent</th><th>accepted</th><th>throttled</th><th>tls-required</th><th>rejected</th><th>other</th><th>delivered</th><th>inbox</th><th>junk</th><th>missing</th><th>p50</th><th>p95</th><th>TLS</th><th>throttle onset</th></tr></thead><tbody>");
    for c in &s.cells {
        let other = other_outcomes(c);
        let onset = onset_text(c);
        let obs = |n: u64| {
            if c.observed {
                n.to_string()
            } else {
                "–".into()
            }
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{} ({})</td><td class=n>{} ({})</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.phase), esc(&c.sender), esc(&c.source_ip), c.tls, c.sent, c.accepted, pct(c.accepted, c.sent),
            c.throttled, pct(c.throttled, c.sent), c.tls_required, c.rejected, other, obs(c.delivered), obs(c.inbox),
            obs(c.junk), obs(c.missing), ms(c.latency_p50_ms), ms(c.latency_p95_ms),
            esc(c.min_tls_version.as_deref().unwrap_or("–")), esc(&onset)
        );
    }
    let _ = writeln!(o, "</tbody></table></div>");

    let _ = writeln!(o, "<h2 id=\"charts\">Charts</h2>");
    let _ = writeln!(o, "<div class=\"legend\">");
    let legend = LEGEND.iter().map(|&k| (k.as_str(), colour(k)));
    for (k, fill) in legend.chain([("failure", FAILURE_COLOUR)]) {
        let _ = write!(o, "<span><i style=\"background:{fill}\"></i>{k}</span>");
    }
    let _ = writeln!(o, "</div>");
    timeline_svg(&mut o, s);
    delta_svg(&mut o, s);
    latency_svg(&mut o, s);

    let _ = writeln!(o, "<h2 id=\"expectations\">Expectations</h2><table><thead><tr><th>result</th><th>cell</th><th>check</th><th>actual</th><th>numbers</th></tr></thead><tbody>");
    for v in &s.expectations {
        let _ = writeln!(
            o,
            "<tr class=\"{}\"><td>{}</td><td>{}/{}/{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            if v.passed { "passrow" } else { "failrow" },
            if v.passed { "PASS" } else { "<b>FAIL</b>" },
            esc(&v.phase), esc(&v.sender), v.tls, esc(&v.check), esc(&v.actual), esc(&v.detail)
        );
    }
    let _ = writeln!(o, "</tbody></table>");

    if !s.replies.is_empty() {
        let _ = writeln!(o, "<h2>Replies seen</h2><table><thead><tr><th>count</th><th>reply</th><th>from</th><th>meaning</th><th>what to do</th></tr></thead><tbody>");
        for g in &s.replies {
            let _ = writeln!(
                o,
                "<tr><td class=n>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g.count,
                esc(&g.sample),
                esc(&g.source_ips.join(", ")),
                esc(g.meaning.as_deref().unwrap_or("unknown code family")),
                esc(g.action.as_deref().unwrap_or("–"))
            );
        }
        let _ = writeln!(o, "</tbody></table>");
    }
    if let Some(t) = &s.trace_check {
        let _ = writeln!(
            o,
            "<h2>Simulator trace cross-check</h2><p>{}: {} accepted messages matched by Message-ID, {} refused transactions compared.</p>",
            if t.agreed { "Agreed" } else { "<b>Disagreed</b>" },
            t.accepted_matched,
            t.refused_compared
        );
        if !t.mismatches.is_empty() {
            let _ = writeln!(o, "<ul>");
            for m in &t.mismatches {
                let _ = writeln!(o, "<li>{}</li>", esc(m));
            }
            let _ = writeln!(o, "</ul>");
        }
    }
    if s.anomalies > 0 {
        let _ = writeln!(
            o,
            "<p><b>{} message(s)</b> of this run were found that no attempt says was accepted (anomalies).</p>",
            s.anomalies
        );
    }
    let _ = writeln!(o, "<h2>Next steps</h2><ul>");
    for step in next_steps(s) {
        let _ = writeln!(o, "<li>{}</li>", esc(&step));
    }
    let _ = writeln!(o, "</ul>\n<p class=\"meta\">Generated by mailharness from summary.json (schema {}).</p>\n</body></html>", s.schema);
    o
}

/// Timeline of outcomes per sender × TLS row, one chart per phase.
fn timeline_svg(o: &mut String, s: &Summary) {
    for phase in &s.phases {
        let pts: Vec<_> = s
            .timeline
            .iter()
            .filter(|p| p.phase == phase.name)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let mut rows: Vec<(&str, TlsMode)> =
            pts.iter().map(|p| (p.sender.as_str(), p.tls)).collect();
        // Alphabetical by the mode's name, as the rows have always been, not in TlsMode's order.
        rows.sort_by_key(|&(sender, tls)| (sender, tls.as_str()));
        rows.dedup();
        let max_t = pts.iter().map(|p| p.t_ms).fold(1.0_f64, f64::max);
        let (w, left, top, row_h) = (900.0, 190.0, 30.0, 26.0);
        let h = top + row_h * rows.len() as f64 + 40.0;
        let plot_w = w - left - 20.0;
        let _ = writeln!(
            o,
            "<figure><svg class=\"chart timeline\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Timeline of outcomes in phase {}\" xmlns=\"http://www.w3.org/2000/svg\">",
            esc(&phase.name)
        );
        let _ = writeln!(o, "<text x=\"{left}\" y=\"18\" font-size=\"13\" font-weight=\"600\">Phase {}: outcome of each message over time</text>", esc(&phase.name));
        for (i, (sender, tls)) in rows.iter().enumerate() {
            let y = top + row_h * i as f64 + row_h / 2.0;
            let _ = writeln!(
                o,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{} / {}</text>",
                left - 8.0,
                y + 4.0,
                esc(sender),
                tls
            );
            let _ = writeln!(
                o,
                "<line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#eee\"/>",
                left + plot_w
            );
        }
        for p in &pts {
            let Some(i) = rows.iter().position(|r| r.0 == p.sender && r.1 == p.tls) else {
                continue;
            };
            let x = left + plot_w * (p.t_ms / max_t);
            let y = top + row_h * i as f64 + row_h / 2.0;
            let _ = writeln!(
                o,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"{}\" fill-opacity=\"0.85\"><title>{} at {:.2}s</title></circle>",
                colour(p.outcome),
                p.outcome,
                p.t_ms / 1000.0
            );
        }
        let axis_y = top + row_h * rows.len() as f64 + 6.0;
        let _ = writeln!(
            o,
            "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#888\"/>",
            left + plot_w
        );
        for k in 0..=4 {
            let t = max_t * f64::from(k) / 4.0;
            let x = left + plot_w * f64::from(k) / 4.0;
            let _ = writeln!(
                o,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{:.1}s</text>",
                axis_y + 14.0,
                t / 1000.0
            );
        }
        let _ = writeln!(o, "</svg></figure>");
    }
}

/// Before/after throttle rate per sender × TLS.
fn delta_svg(o: &mut String, s: &Summary) {
    if s.deltas.is_empty() {
        return;
    }
    let (w, left, top, group_h) = (900.0, 190.0, 30.0, 44.0);
    let h = top + group_h * s.deltas.len() as f64 + 30.0;
    let plot_w = w - left - 60.0;
    let _ = writeln!(o, "<figure><svg class=\"chart deltas\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Throttle rate before and after the change\" xmlns=\"http://www.w3.org/2000/svg\">");
    let _ = writeln!(o, "<text x=\"{left}\" y=\"18\" font-size=\"13\" font-weight=\"600\">Throttle rate before (upper bar) and after (lower bar) the change</text>");
    for (i, d) in s.deltas.iter().enumerate() {
        let y = top + group_h * i as f64;
        let _ = writeln!(
            o,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{} / {}</text>",
            left - 8.0,
            y + 22.0,
            esc(&d.sender),
            d.tls
        );
        for (j, (rate, label, fill)) in [
            (d.throttle_rate_before, &d.before, "#d95f02"),
            (d.throttle_rate_after, &d.after, "#1b9e77"),
        ]
        .into_iter()
        .enumerate()
        {
            let by = y + 4.0 + 17.0 * j as f64;
            let bw = (plot_w * rate).max(1.0);
            let _ = writeln!(
                o,
                "<rect x=\"{left}\" y=\"{by}\" width=\"{bw:.1}\" height=\"14\" fill=\"{fill}\"><title>{}: {:.0}%</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"10\">{}: {:.0}%</text>",
                esc(label), rate * 100.0, left + bw + 4.0, by + 11.0, esc(label), rate * 100.0
            );
        }
    }
    let _ = writeln!(o, "</svg></figure>");
}

/// Histogram of delivery latencies.
fn latency_svg(o: &mut String, s: &Summary) {
    let l = &s.latencies_ms;
    let (w, h, left, bottom) = (900.0, 220.0, 60.0, 30.0);
    let _ = writeln!(o, "<figure><svg class=\"chart latency\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Delivery latency distribution\" xmlns=\"http://www.w3.org/2000/svg\">");
    let _ = writeln!(o, "<text x=\"{left}\" y=\"18\" font-size=\"13\" font-weight=\"600\">Delivery latency distribution ({} delivered messages)</text>", l.len());
    if l.is_empty() {
        let _ = writeln!(o, "<text x=\"{left}\" y=\"60\" font-size=\"12\">No delivered message was observed.</text></svg></figure>");
        return;
    }
    let max = l.iter().copied().fold(1.0_f64, f64::max);
    let bins = 20usize;
    let mut counts: BTreeMap<usize, u64> = BTreeMap::new();
    for v in l {
        let b = ((v / max) * bins as f64).floor() as usize;
        *counts.entry(b.min(bins - 1)).or_default() += 1;
    }
    let peak = counts.values().copied().max().unwrap_or(1) as f64;
    let plot_w = w - left - 20.0;
    let plot_h = h - 40.0 - bottom;
    let bw = plot_w / bins as f64;
    for (b, n) in &counts {
        let bh = plot_h * (*n as f64 / peak);
        let x = left + bw * *b as f64;
        let y = 30.0 + plot_h - bh;
        let lo = max * *b as f64 / bins as f64;
        let hi = max * (*b + 1) as f64 / bins as f64;
        let _ = writeln!(o, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#377eb8\"><title>{lo:.0}–{hi:.0}ms: {n}</title></rect>", bw - 2.0);
    }
    let axis_y = 30.0 + plot_h;
    let _ = writeln!(
        o,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#888\"/>",
        left + plot_w
    );
    for k in 0..=4 {
        let x = left + plot_w * f64::from(k) / 4.0;
        let _ = writeln!(
            o,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{:.0}ms</text>",
            axis_y + 14.0,
            max * f64::from(k) / 4.0
        );
    }
    let _ = writeln!(o, "</svg></figure>");
}
