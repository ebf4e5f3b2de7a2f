//! The reply knowledge base against real published replies and bounces (tests/data/replies/, each
//! case with its source): every case is parsed, at least 95 % are read as the family the source
//! describes, no connector answer is wrong, and the send engine's classifier agrees with
//! `explain` on every reply that came with a code.

use std::path::PathBuf;

use mailharness::reply::{
    classify, explain_input, parse_reply_lines, ConnectorAnswer, Context, ExplainReport,
    ExplainedItem,
};
use serde::Deserialize;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/replies")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    input: String,
    source: String,
    licence: String,
    #[serde(default)]
    host: Option<String>,
    origin: String,
    family: String,
    connector: ConnectorAnswer,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
struct CaseFile {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    recipient: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    host: Option<String>,
    origin: String,
    family: String,
    connector: ConnectorAnswer,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounce {
    file: String,
    source: String,
    licence: String,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
struct BounceFile {
    bounce: Vec<Bounce>,
}

const CASE_FILES: [&str; 4] = [
    "microsoft-docs.toml",
    "microsoft-field.toml",
    "servers.toml",
    "sisimai.toml",
];

fn cases() -> Vec<(String, Case)> {
    let mut out = Vec::new();
    for f in CASE_FILES {
        let text = std::fs::read_to_string(dir().join(f)).unwrap();
        let file: CaseFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        for (i, c) in file.case.into_iter().enumerate() {
            out.push((format!("{f} case {}", i + 1), c));
        }
    }
    out
}

fn bounces() -> Vec<Bounce> {
    let text = std::fs::read_to_string(dir().join("bounces.toml")).unwrap();
    toml::from_str::<BounceFile>(&text).unwrap().bounce
}

/// Explains a case with the host its source names: that is what a support engineer knows too
/// (the bounce or log line it came from names it).
fn explain_case(c: &Case) -> Result<ExplainReport, String> {
    let input = match &c.host {
        Some(h) if !c.input.contains(h.as_str()) => {
            format!("host {h}[192.0.2.1] said: {}", c.input)
        }
        _ => c.input.clone(),
    };
    explain_input(input.as_bytes(), "case").map_err(|e| e.to_string())
}

/// The send engine's reading of an item that carries a reply code, as it would come off the wire.
fn engine_agrees(it: &ExplainedItem) -> Result<(), String> {
    let e = &it.explanation;
    let Some(code) = e.code else { return Ok(()) };
    let mut line = code.to_string();
    if let Some(en) = &e.enhanced {
        line.push(' ');
        line.push_str(en);
    }
    let text = e
        .reply
        .splitn(if e.enhanced.is_some() { 3 } else { 2 }, ' ')
        .last()
        .unwrap_or("");
    if !text.is_empty() && text != line {
        line.push(' ');
        line.push_str(text);
    }
    let reply = parse_reply_lines(&[line.as_str()]).map_err(|x| format!("{line}: {x}"))?;
    let c = classify(
        &reply,
        &Context {
            session_tls: false,
            host: it.host.as_deref(),
            recipient: it.recipient.as_deref(),
            assume: None,
            at_mx: false,
        },
    );
    let fam = e.family.as_deref().filter(|f| *f != "success");
    if c.outcome != e.outcome || c.family != fam {
        return Err(format!(
            "engine {:?}/{:?} vs explain {:?}/{:?} for `{line}`",
            c.outcome, c.family, e.outcome, fam
        ));
    }
    Ok(())
}

#[test]
fn the_corpus_is_large_and_sourced() {
    let cs = cases();
    assert!(cs.len() >= 200, "{} cases", cs.len());
    let bs = bounces();
    assert!(bs.len() >= 10, "{} bounces", bs.len());
    for (id, c) in &cs {
        assert!(
            c.source.starts_with("https://")
                || c.source.starts_with("http://")
                || c.source.starts_with("github:"),
            "{id}: source `{}`",
            c.source
        );
        assert!(!c.licence.is_empty() && !c.origin.is_empty(), "{id}");
        let _ = &c.note;
    }
    for b in &bs {
        assert!(dir().join("bounces").join(&b.file).is_file(), "{}", b.file);
        assert!(
            b.source.starts_with("github:") && !b.licence.is_empty(),
            "{}",
            b.file
        );
    }
}

#[test]
fn every_case_is_parsed_explained_and_answered_rightly() {
    let cs = cases();
    let mut unparsed = Vec::new();
    let mut wrong_family = Vec::new();
    let mut wrong_connector = Vec::new();
    let mut disagree = Vec::new();
    for (id, c) in &cs {
        let r = match explain_case(c) {
            Ok(r) => r,
            Err(e) => {
                unparsed.push(format!("{id}: {e}: {}", c.input));
                continue;
            }
        };
        for it in &r.items {
            if let Err(e) = engine_agrees(it) {
                disagree.push(format!("{id}: {e}"));
            }
        }
        let p = r.primary().expect("an item");
        let e = &p.explanation;
        if e.family.as_deref() != Some(c.family.as_str()) {
            wrong_family.push(format!(
                "{id}: expected {} got {:?} ({:?}): {}",
                c.family,
                e.family,
                e.entry,
                c.input.chars().take(140).collect::<String>()
            ));
        }
        if e.connector.is_some_and(|a| a != c.connector) {
            wrong_connector.push(format!(
                "{id}: expected {:?} got {:?} (origin {:?} vs {}): {}",
                c.connector,
                e.connector,
                e.origin,
                c.origin,
                c.input.chars().take(140).collect::<String>()
            ));
        }
    }
    let n = cs.len();
    let right = n - unparsed.len() - wrong_family.len();
    let report = format!(
        "{n} cases; {} unparsed; {} other family ({:.1} % right); {} wrong connector answers; {} engine disagreements\n\nUNPARSED\n{}\n\nFAMILY\n{}\n\nCONNECTOR\n{}\n\nENGINE\n{}",
        unparsed.len(),
        wrong_family.len(),
        100.0 * right as f64 / n as f64,
        wrong_connector.len(),
        disagree.len(),
        unparsed.join("\n"),
        wrong_family.join("\n"),
        wrong_connector.join("\n"),
        disagree.join("\n"),
    );
    println!("{}", report.lines().next().unwrap_or(""));
    assert!(unparsed.is_empty(), "{report}");
    assert!(right * 100 >= n * 95, "{report}");
    assert!(wrong_connector.is_empty(), "{report}");
    assert!(disagree.is_empty(), "{report}");
}

#[test]
fn every_bounce_is_read_per_recipient() {
    let mut problems = Vec::new();
    for b in bounces() {
        let raw = std::fs::read(dir().join("bounces").join(&b.file)).unwrap();
        let r = match explain_input(&raw, &b.file) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{}: {e}", b.file));
                continue;
            }
        };
        let items: Vec<&ExplainedItem> = r.items.iter().filter(|i| !i.wrapper).collect();
        for (i, x) in b.expect.iter().enumerate() {
            let Some(it) = items.get(i) else {
                problems.push(format!(
                    "{}: no item {} (expected {})",
                    b.file,
                    i + 1,
                    x.family
                ));
                continue;
            };
            let e = &it.explanation;
            if e.family.as_deref() != Some(x.family.as_str()) {
                problems.push(format!(
                    "{} #{}: family {:?} ({:?}), expected {}",
                    b.file,
                    i + 1,
                    e.family,
                    e.entry,
                    x.family
                ));
            }
            if e.connector.is_some_and(|a| a != x.connector) {
                problems.push(format!(
                    "{} #{}: connector {:?}, expected {:?} (origin {:?} vs {})",
                    b.file,
                    i + 1,
                    e.connector,
                    x.connector,
                    e.origin,
                    x.origin
                ));
            }
            // The bounce's own Status where it gives one (a DSN may report 4.4.7 for a 4.7.1 reply).
            let reported = it
                .status
                .as_deref()
                .and_then(|s| s.split_whitespace().next())
                .or(e.enhanced.as_deref());
            if let (Some(code), Some(en)) = (&x.code, reported) {
                if code != en {
                    problems.push(format!("{} #{}: code {en}, expected {code}", b.file, i + 1));
                }
            }
            if let (Some(want), Some(got)) = (&x.recipient, &it.recipient) {
                if !got.eq_ignore_ascii_case(want) {
                    problems.push(format!(
                        "{} #{}: recipient {got}, expected {want}",
                        b.file,
                        i + 1
                    ));
                }
            }
            let _ = (&x.reply, &x.host);
            if let Err(err) = engine_agrees(it) {
                problems.push(format!("{} #{}: {err}", b.file, i + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
