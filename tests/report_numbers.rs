//! Every number the reports show agrees with the records: this test sums each figure from
//! `attempts.jsonl`, `observations.jsonl`, `plan.json` and `run.json` itself (as plain JSON, not
//! through the crate's types or analysis) and compares it with what `report.html`, `report.md` and
//! `summary.json` show: sent, accepted, throttled, TLS-required and delivered per cell, the replies'
//! counts and their split, each phase's histogram total and timeline dots, and the change step's
//! probes and their found copies. It runs on the golden run (which has probes) and on an
//! interrupted copy of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;
use serde_json::Value;

/// A cell's key: phase, sender, TLS mode.
type Key = (String, String, String);

/// What the records say, counted here.
#[derive(Default, Debug)]
struct Counts {
    /// Per planned cell: sent, accepted, throttled, tls-required, delivered.
    cells: BTreeMap<Key, [u64; 5]>,
    /// Per probe cell: the same.
    probes: BTreeMap<Key, [u64; 5]>,
    /// Per negative reply (code, enhanced, token): all attempts, planned first attempts, probes.
    replies: BTreeMap<(u64, String, String), [u64; 3]>,
    /// Per phase: delivered planned messages with a latency.
    histogram: BTreeMap<String, u64>,
    /// Found copies of planned messages and of probes.
    found: [u64; 2],
    /// Probe attempt records.
    probe_attempts: u64,
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// The planned cells (from the plan's bursts) and the probes' attempt ids (from the run record).
fn plan_and_probes(dir: &Path) -> (BTreeSet<Key>, BTreeSet<String>) {
    let plan = json(&dir.join("plan.json"));
    let mut planned = BTreeSet::new();
    for p in plan["phases"].as_array().unwrap() {
        for b in p["bursts"].as_array().unwrap() {
            planned.insert((s(&p["name"]), s(&b["sender"]), s(&b["tls"])));
        }
    }
    let run = json(&dir.join("run.json"));
    let probes = run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["change"]["probes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|id| s(&id))
        .collect();
    (planned, probes)
}

/// Counts every figure from the records.
fn count(dir: &Path) -> Counts {
    let (planned, probe_ids) = plan_and_probes(dir);
    let attempts = lines(&dir.join("attempts.jsonl"));
    let observations = lines(&dir.join("observations.jsonl"));
    let mut by_seq: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for a in &attempts {
        by_seq.entry(s(&a["seq"])).or_default().push(a);
    }
    let mut c = Counts::default();
    for msgs in by_seq.values_mut() {
        msgs.sort_by_key(|a| a["attempt"].as_u64());
        let first = msgs[0];
        let key = (
            s(&first["phase"]),
            s(&first["sender"]),
            s(&first["tls_mode"]),
        );
        let probe = probe_ids.contains(&s(&first["attempt_id"])) || key.0.ends_with("~probe");
        if probe {
            c.probe_attempts += msgs.len() as u64;
        }
        for (i, a) in msgs.iter().enumerate() {
            reply(&mut c, a, probe, i == 0 && planned.contains(&key));
        }
        let never_sent = s(&first["outcome"]) == "interrupted"
            && first["transcript"].as_array().is_none_or(|t| t.is_empty());
        let cell = if probe {
            c.probes.entry(key.clone()).or_default()
        } else if planned.contains(&key) {
            c.cells.entry(key.clone()).or_default()
        } else {
            continue;
        };
        if never_sent {
            continue;
        }
        cell[0] += 1;
        match s(&first["outcome"]).as_str() {
            "accepted" => cell[1] += 1,
            "throttled" => cell[2] += 1,
            "tls-required" => cell[3] += 1,
            _ => {}
        }
        let accepted = msgs.iter().find(|a| a["outcome"] == "accepted");
        if let Some(id) = accepted.map(|a| s(&a["attempt_id"])) {
            let copies: Vec<&Value> = observations
                .iter()
                .filter(|o| s(&o["attempt_id"]) == id)
                .collect();
            let delivered = copies.iter().any(|o| o["status"] == "found")
                && !copies.iter().any(|o| o["status"] == "missing");
            if delivered {
                cell[4] += 1;
                if !probe && copies.iter().any(|o| o["latency_ms"].is_number()) {
                    *c.histogram.entry(key.0.clone()).or_default() += 1;
                }
            }
            let found = copies.iter().filter(|o| o["status"] == "found").count() as u64;
            c.found[usize::from(probe)] += found;
        }
    }
    c
}

/// Counts one attempt's negative reply: in all, as a planned first attempt, as a probe.
fn reply(c: &mut Counts, a: &Value, probe: bool, planned_first: bool) {
    let code = a["reply"]["code"].as_u64().unwrap_or(0);
    if code == 0 || (200..300).contains(&code) {
        return;
    }
    let key = (code, s(&a["reply"]["enhanced"]), s(&a["token"]));
    let r = c.replies.entry(key).or_default();
    r[0] += 1;
    r[1] += u64::from(planned_first);
    r[2] += u64::from(probe);
}

/// The cells of each row of the HTML table with this id, tags stripped.
fn html_rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html.find(&format!("<table id=\"{id}\"")).unwrap();
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let td = Regex::new(r"(?s)<td[^>]*>(.*?)</td>").unwrap();
    let tag = Regex::new(r"<[^>]+>").unwrap();
    table
        .split("<tr")
        .skip(1)
        .map(|tr| {
            td.captures_iter(tr)
                .map(|c| tag.replace_all(&c[1], " ").trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// The leading number of a shown figure: `5 (42%)` gives 5.
fn n(shown: &str) -> u64 {
    shown.split_whitespace().next().unwrap().parse().unwrap()
}

/// A matrix row shown as `[phase, sender, tls]` and `[sent, accepted, throttled, tls-req, delivered]`,
/// from the HTML's columns (the sender cell holds the IP too).
fn html_cell(r: &[String]) -> (Key, [u64; 5]) {
    let sender = r[2].split_whitespace().next().unwrap().to_string();
    (
        (r[1].clone(), sender, r[3].clone()),
        [n(&r[4]), n(&r[5]), n(&r[6]), n(&r[7]), n(&r[10])],
    )
}

/// The same from a Markdown row (`| verdict | phase | sender | ip | tls | sent | … |`).
fn md_cell(line: &str) -> (Key, [u64; 5]) {
    let f: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
    (
        (f[1].into(), f[2].into(), f[4].into()),
        [n(f[5]), n(f[6]), n(f[7]), n(f[8]), n(f[11])],
    )
}

/// The Markdown table rows under the heading `## title`.
fn md_table<'a>(md: &'a str, title: &str) -> Vec<&'a str> {
    let at = md.find(&format!("## {title}\n")).unwrap();
    md[at..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect()
}

/// The matrix and the probe table agree with the records, in HTML, Markdown and summary.json.
fn cells_agree(c: &Counts, html: &str, md: &str, summary: &Value) {
    for (table, md_title, want, key) in [
        ("matrix-table", "Matrix", &c.cells, "cells"),
        (
            "probe-table",
            "Change-step probes",
            &c.probes,
            "probe_cells",
        ),
    ] {
        let shown: BTreeMap<Key, [u64; 5]> = html_rows(html, table)
            .iter()
            .map(|r| html_cell(r))
            .collect();
        assert_eq!(&shown, want, "{table} in report.html");
        let shown: BTreeMap<Key, [u64; 5]> =
            md_table(md, md_title).into_iter().map(md_cell).collect();
        assert_eq!(&shown, want, "{md_title} in report.md");
        let shown: BTreeMap<Key, [u64; 5]> = summary[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                let k = (s(&x["phase"]), s(&x["sender"]), s(&x["tls"]));
                let f = ["sent", "accepted", "throttled", "tls_required", "delivered"];
                (k, f.map(|f| x[f].as_u64().unwrap()))
            })
            .collect();
        assert_eq!(&shown, want, "{key} in summary.json");
    }
}

/// The replies' counts and their split agree with the records, and their planned first
/// attempts add up to the matrix.
fn replies_agree(c: &Counts, html: &str, md: &str, summary: &Value) {
    let groups = summary["replies"].as_array().unwrap();
    let from_summary: BTreeMap<(u64, String, String), [u64; 3]> = groups
        .iter()
        .map(|g| {
            let k = (
                g["code"].as_u64().unwrap(),
                s(&g["enhanced"]),
                s(&g["token"]),
            );
            (
                k,
                ["count", "first_attempts", "probes"].map(|f| g[f].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(from_summary, c.replies, "replies in summary.json");
    let rows = html_rows(html, "replies-table");
    assert_eq!(rows.len(), groups.len());
    let md_line = Regex::new(r"(?m)^- \*\*(\d+)×\*\* .*: (\d+) planned first attempts \(matrix\), (\d+) retries, (\d+) probes").unwrap();
    let md_rows: Vec<[u64; 3]> = md_line
        .captures_iter(md)
        .map(|m| {
            [
                m[1].parse().unwrap(),
                m[2].parse().unwrap(),
                m[4].parse().unwrap(),
            ]
        })
        .collect();
    for (i, g) in groups.iter().enumerate() {
        let want = ["count", "first_attempts", "probes"].map(|f| g[f].as_u64().unwrap());
        assert_eq!(
            [n(&rows[i][0]), n(&rows[i][1]), n(&rows[i][3])],
            want,
            "html reply row {i}"
        );
        assert_eq!(md_rows[i], want, "md reply {i}");
    }
    for (outcome, col) in [("throttled", 2), ("tls-required", 3)] {
        let matrix: u64 = c.cells.values().map(|v| v[col]).sum();
        let replies: u64 = groups
            .iter()
            .filter(|g| g["outcome"] == outcome)
            .map(|g| g["first_attempts"].as_u64().unwrap())
            .sum();
        assert_eq!(
            replies, matrix,
            "{outcome}: replies' planned column against the matrix"
        );
    }
}

/// Histogram totals, timeline dots, the probes' count and the found copies agree.
fn charts_and_totals_agree(c: &Counts, html: &str, md: &str) {
    let title = Regex::new(r"Phase ([^:<]+): delivery latency of (\d+) delivered planned messages")
        .unwrap();
    let shown: BTreeMap<String, u64> = title
        .captures_iter(html)
        .map(|m| (m[1].to_string(), m[2].parse().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(shown, c.histogram, "histogram totals");
    let sent: u64 = c.cells.values().map(|v| v[0]).sum();
    assert_eq!(
        html.matches("<circle").count() as u64,
        sent,
        "one timeline dot per planned message sent"
    );
    for page in [html, md] {
        if c.probe_attempts > 0 {
            assert!(
                page.contains(&format!(
                    "Change-step probes: {} probe messages",
                    c.probe_attempts
                )),
                "probes"
            );
        }
        let found = format!(
            "found: {} = {} of planned messages + {} of probes",
            c.found[0] + c.found[1],
            c.found[0],
            c.found[1]
        );
        assert!(page.contains(&found), "{found}");
    }
}

fn render(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .arg("report")
        .arg(dir)
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
}

fn check(dir: &Path) {
    render(dir);
    let c = count(dir);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let summary = json(&dir.join("summary.json"));
    cells_agree(&c, &html, &md, &summary);
    replies_agree(&c, &html, &md, &summary);
    charts_and_totals_agree(&c, &html, &md);
}

/// A copy of the golden run's records in a fresh directory.
fn golden_copy() -> tempfile::TempDir {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden/main-run");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "plan.json",
        "run.json",
        "attempts.jsonl",
        "observations.jsonl",
        "sim-trace.jsonl",
    ] {
        std::fs::copy(golden.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn the_golden_run_s_pages_agree_with_its_records() {
    let dir = golden_copy();
    check(dir.path());
    // The figures issue 13 found disagreeing, now each in its place.
    let c = count(dir.path());
    assert_eq!((c.cells.len(), c.probes.len()), (8, 4));
    assert_eq!(c.probe_attempts, 16);
    assert_eq!(c.found, [34, 2], "the run printed 36 found");
    assert_eq!(
        c.replies[&(451, "4.7.500".into(), "AS761".into())],
        [50, 38, 12]
    );
}

#[test]
fn an_interrupted_run_s_pages_agree_with_its_records() {
    let dir = golden_copy();
    // The run stopped during `after`: its last 20 planned messages were never sent.
    let path = dir.path().join("attempts.jsonl");
    let mut records = lines(&path);
    let after: Vec<usize> = (0..records.len())
        .filter(|&i| records[i]["phase"] == "after")
        .collect();
    let mut unsent = BTreeSet::new();
    for &i in &after[after.len() - 20..] {
        let a = &mut records[i];
        unsent.insert(s(&a["attempt_id"]));
        a["outcome"] = "interrupted".into();
        a["transcript"] = Value::Array(Vec::new());
        for k in ["reply", "tls", "queue_id", "token"] {
            a.as_object_mut().unwrap().remove(k);
        }
    }
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    // Messages never sent were never observed either.
    let obs = dir.path().join("observations.jsonl");
    let kept: String = lines(&obs)
        .iter()
        .filter(|o| !unsent.contains(&s(&o["attempt_id"])))
        .map(|o| format!("{o}\n"))
        .collect();
    std::fs::write(&obs, kept).unwrap();
    let run = dir.path().join("run.json");
    let mut r = json(&run);
    r["interrupted"] = true.into();
    std::fs::write(&run, r.to_string()).unwrap();
    check(dir.path());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("and 20 planned messages never sent are left out"),
        "{md}"
    );
}
