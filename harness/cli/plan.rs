//! `mailharness plan`: the dry run. It checks everything `run` checks before sending.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mailharness::scenario::{self, Diagnostics};

use super::common::{JsonOpt, TargetOpt};
use super::error::CliError;
use super::out;

/// Arguments of `mailharness plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO.TOML")]
    pub scenario: PathBuf,
    #[command(flatten)]
    pub target: TargetOpt,
    #[command(flatten)]
    pub json: JsonOpt,
}

/// Loads both files, expands the plan, checks the sender IPs are here, and prints the plan.
pub fn plan(a: PlanArgs) -> Result<ExitCode, CliError> {
    let loaded = match (
        scenario::load_scenario(&a.scenario),
        scenario::load_target(a.target.target.as_deref()),
    ) {
        (Ok(s), Ok(t)) => Ok((s, t)),
        (Err(x), Err(y)) => Err(Diagnostics(x.0.into_iter().chain(y.0).collect())),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let (s, t) = loaded?;
    let plan = checked_plan(&s, &t)?;
    out::emit(a.json.json, &plan, || plan.render_text())?;
    Ok(ExitCode::SUCCESS)
}

/// The plan, checked as `run` will check it: the expansion and the sender IPs, every error of
/// both together.
pub fn checked_plan(
    s: &scenario::LoadedScenario,
    t: &scenario::LoadedTarget,
) -> Result<scenario::Plan, Diagnostics> {
    match (scenario::build_plan(s, t), scenario::check_senders_here(t)) {
        (Ok(p), Ok(())) => Ok(p),
        (Err(a), Err(b)) => Err(Diagnostics(a.0.into_iter().chain(b.0).collect())),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}
