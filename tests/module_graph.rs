//! The crate's top-level modules (harness/<name>.rs or harness/<name>/) depend on each other
//! without cycles, so each can be read and changed knowing only the modules below it
//! (ARCHITECTURE.md draws the graph). An edge is any `crate::<name>` path in code, including
//! `use crate::{a, b::c}` groups; comments are ignored.
//!
//! `cargo test --test module_graph -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness")
}

/// The top-level modules: every `.rs` file and directory under harness/, but the crate roots.
fn modules() -> BTreeSet<String> {
    std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            let is_module = p.is_dir() || p.extension().is_some_and(|x| x == "rs");
            (is_module && name != "lib" && name != "main").then_some(name)
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module names a file's code refers to with `crate::`.
fn referenced(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        // `crate::{a, b::c}` names several modules; `crate::a` one.
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .map(|part| part.trim().split("::").next().unwrap_or(""))
                .collect(),
            None => vec![rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("")],
        };
        out.extend(
            names
                .into_iter()
                .filter(|n| modules.contains(*n))
                .map(String::from),
        );
    }
    out
}

/// Top-level module → the top-level modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut g: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    for f in files {
        let rel = f.strip_prefix(root()).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let from = first.trim_end_matches(".rs");
        let Some(edges) = g.get_mut(from) else {
            continue; // lib.rs, main.rs
        };
        let code = std::fs::read_to_string(&f).unwrap();
        edges.extend(
            referenced(&code, &modules)
                .into_iter()
                .filter(|m| m != from),
        );
    }
    g
}

/// A cycle through `node`, if the graph has one reachable from it.
fn cycle_from(
    g: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == node) {
        let mut c = path[i..].to_vec();
        c.push(node.to_string());
        return Some(c);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_string());
    for next in &g[node] {
        if let Some(c) = cycle_from(g, next, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_string());
    None
}

#[test]
fn top_level_modules_form_no_cycle() {
    let g = graph();
    for (m, deps) in &g {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("{m} -> {}", deps.join(" "));
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(c) = cycle_from(&g, m, &mut Vec::new(), &mut done) {
            panic!("module cycle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn vocab_depends_on_nothing_in_the_crate() {
    assert_eq!(graph()["vocab"], BTreeSet::new());
}

#[test]
fn the_scanner_sees_groups_and_paths() {
    let m: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let code = "use crate::{a::X, b};\n// crate::c in a comment\nfn f() { crate::a::g(); }";
    assert_eq!(referenced(code, &m), ["a", "b"].map(String::from).into());
}
