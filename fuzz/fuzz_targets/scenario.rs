//! Scenario and target files: loading with diagnostics, and the plan when both load. The input
//! is split at the first NUL byte into a scenario and a target; without one, the scenario runs
//! against the built-in simulator target.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use mailharness::scenario::{self, diag::SourceFile};

fuzz_target!(|data: &[u8]| {
    let (s, t) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let src = |name: &str, b: &[u8]| SourceFile {
        path: PathBuf::from(name),
        text: String::from_utf8_lossy(b).into_owned(),
    };
    let scn = scenario::load_scenario_text(src("fuzz.scenario.toml", s));
    let tgt = match t {
        Some(t) => scenario::load_target_text(src("fuzz.target.toml", t)),
        None => scenario::load_target(None),
    };
    if let Err(d) = &scn {
        let _ = d.to_string();
    }
    if let (Ok(s), Ok(t)) = (&scn, &tgt) {
        if let Ok(plan) = scenario::build_plan(s, t) {
            let _ = plan.render_text();
        }
    }
});
