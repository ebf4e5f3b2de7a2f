//! Scenario and target files: loading with precise errors, and expansion into a plan.
//!
//! Loading happens in two passes. The TOML parser checks syntax, field names and value types
//! (each value type in [`crate::vocab`] validates itself, so errors carry spans). Then [`validate`]
//! checks the rules that span fields and files: roles, cells, recipients, guard rails.

pub mod check;
pub mod diag;
mod local;
pub mod model;
pub mod plan;
pub mod target;
mod validate;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics, SourceFile};
pub use local::{check_senders_here, is_local};
pub use model::Scenario;
pub use plan::Plan;
pub use target::TargetFile;

/// A parsed scenario with its source text, for positioned errors.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The file's text and path.
    pub src: SourceFile,
    /// The parsed scenario.
    pub file: Scenario,
}

/// A parsed target with its source text, for positioned errors.
#[derive(Debug, Clone)]
pub struct LoadedTarget {
    /// The file's text and path.
    pub src: SourceFile,
    /// The parsed target.
    pub file: TargetFile,
}

/// Reads and checks a scenario file on its own (roles and recipients are checked by [`build_plan`]).
pub fn load_scenario(path: &Path) -> Result<LoadedScenario, Diagnostics> {
    let src = SourceFile::read(path)?;
    load_scenario_text(src)
}

/// Parses and checks scenario text already in memory.
pub fn load_scenario_text(src: SourceFile) -> Result<LoadedScenario, Diagnostics> {
    let file: Scenario = diag::parse_toml(&src)?;
    let loaded = LoadedScenario { src, file };
    let errs = validate::scenario(&loaded);
    if errs.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(errs))
    }
}

/// Reads and checks a target file; `None` gives the built-in simulator target.
pub fn load_target(path: Option<&Path>) -> Result<LoadedTarget, Diagnostics> {
    let src = match path {
        Some(p) => SourceFile::read(p)?,
        None => SourceFile {
            path: target::DEFAULT_TARGET_PATH.into(),
            text: target::DEFAULT_TARGET_TOML.to_string(),
        },
    };
    load_target_text(src)
}

/// Parses and checks target text already in memory.
pub fn load_target_text(src: SourceFile) -> Result<LoadedTarget, Diagnostics> {
    let file: TargetFile = diag::parse_toml(&src)?;
    let loaded = LoadedTarget { src, file };
    let errs = validate::target(&loaded);
    if errs.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(errs))
    }
}

/// Expands a scenario against a target into the exact plan, checking roles, cells, recipients
/// and guard rails.
pub fn build_plan(scenario: &LoadedScenario, target: &LoadedTarget) -> Result<Plan, Diagnostics> {
    plan::build(scenario, target)
}
