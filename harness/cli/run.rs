//! `mailharness run` (a suite of scenarios) and `mailharness report` (one run, re-rendered).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mailharness::report::{self, ReportModel};
use mailharness::run::{RunError, RunOptions, RunOutcome};
use mailharness::scenario::{self, Diagnostics, LoadedScenario, LoadedTarget};
use mailharness::send::CancelToken;
use serde::Serialize;

use super::common::{runtime, write_atomic, JsonOpt, OutOpt, ProgressOpt, TargetOpt};
use super::error::{CliError, EXIT_INFRA, EXIT_OK};
use super::out;
use super::plan::checked_plan;
use super::story::{self, RunEntry};

/// Version of `run --json`'s and `report --json`'s documents.
const RUN_SCHEMA: u32 = 1;

/// Arguments of `mailharness run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, run in order as one suite.
    #[arg(required = true, value_name = "SCENARIO.TOML")]
    pub scenarios: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetOpt,
    /// Where run directories are created (`<DIR>/<run-id>/`, and `<DIR>/latest` links the newest).
    #[command(flatten)]
    pub out: OutOpt,
    /// Also write one JUnit XML file for the whole suite here (each run keeps its own junit.xml).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub json: JsonOpt,
    #[command(flatten)]
    pub progress: ProgressOpt,
}

/// `run --json`: every run, then the suite's total.
#[derive(Debug, Serialize)]
struct SuiteDoc {
    schema: u32,
    runs: Vec<RunEntry>,
    total: Total,
}

/// The suite's total.
#[derive(Debug, Default, Serialize)]
struct Total {
    runs: usize,
    passed: usize,
    failed: usize,
    not_completed: usize,
    expectations_held: usize,
    expectations_total: usize,
    exit_code: u8,
}

impl Total {
    /// Totals over the runs' entries.
    fn of(runs: &[RunEntry]) -> Total {
        let mut t = Total {
            runs: runs.len(),
            ..Default::default()
        };
        for r in runs {
            match r.verdict {
                "pass" => t.passed += 1,
                "fail" => t.failed += 1,
                _ => t.not_completed += 1,
            }
            t.expectations_held += r.expectations.held;
            t.expectations_total += r.expectations.total;
            t.exit_code = t.exit_code.max(r.exit_code);
        }
        t
    }

    /// The one total line of a suite.
    fn line(&self) -> String {
        format!(
            "SUITE {}: {} runs, {} passed, {} failed, {} did not complete; {} of {} expectations held",
            if self.exit_code == EXIT_OK { "PASS" } else { "FAIL" },
            self.runs,
            self.passed,
            self.failed,
            self.not_completed,
            self.expectations_held,
            self.expectations_total
        )
    }
}

/// Every scenario checked against the target (as `plan` checks it) before anything is sent.
fn load_suite(paths: &[PathBuf], tgt: &LoadedTarget) -> Result<Vec<LoadedScenario>, CliError> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match scenario::load_scenario(path).and_then(|s| checked_plan(&s, tgt).map(|_| s)) {
            Ok(s) => loaded.push(s),
            Err(d) => errors.extend(d.0),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(errors).into())
    }
}

/// Runs the scenarios in order until the end or a stop; a scenario not begun has no result.
async fn run_suite(
    loaded: &[LoadedScenario],
    tgt: &LoadedTarget,
    opts: &RunOptions,
) -> Vec<Result<RunOutcome, RunError>> {
    let cancel = CancelToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        mailharness::signal::stop_requested().await;
        out::note("interrupted: finishing in-flight messages, recording the rest as interrupted");
        c.cancel();
    });
    let mut results = Vec::new();
    for s in loaded {
        if cancel.is_cancelled() {
            break;
        }
        results.push(mailharness::run::run_scenario(s, tgt, opts, cancel.clone()).await);
    }
    results
}

/// `mailharness run`: every file is checked before anything is sent; then each scenario runs,
/// and each run's story is told as it ends.
pub fn run(a: RunArgs) -> Result<ExitCode, CliError> {
    let tgt = a.target.load()?;
    let loaded = load_suite(&a.scenarios, &tgt)?;
    let opts = RunOptions {
        reports_root: a.out.out.clone(),
        progress: !a.progress.no_progress,
    };
    let mut results = runtime()?
        .block_on(run_suite(&loaded, &tgt, &opts))
        .into_iter();
    let mut entries = Vec::new();
    let mut models = Vec::new();
    let mut not_run = Vec::new();
    for s in &loaded {
        let path = s.src.path.as_path();
        let name = s.file.name.get_ref().clone();
        let entry = match results.next() {
            Some(Ok(o)) => {
                told(&o.summary, &o.run_dir, a.json.json)?;
                models.push(ReportModel::from(&o.summary));
                RunEntry::of(&o.summary, &o.run_dir, Some(path))
            }
            Some(Err(e)) => {
                let text = e.to_string();
                let err = CliError::Run(e);
                out::note(&format!(
                    "could not run {}:\n{}",
                    path.display(),
                    err.report()
                ));
                not_run.push((name, text.clone()));
                RunEntry::unrun(path, err.exit_code(), Some(text))
            }
            None => {
                not_run.push((name, "not run: the suite was interrupted".into()));
                RunEntry::unrun(path, EXIT_INFRA, None)
            }
        };
        entries.push(entry);
    }
    let total = Total::of(&entries);
    let code = total.exit_code;
    if let Some(p) = &a.junit {
        write_atomic(p, &report::render_junit_suite(&models, &not_run))?;
    }
    if a.json.json {
        out::json(&SuiteDoc {
            schema: RUN_SCHEMA,
            runs: entries,
            total,
        })?;
    } else if loaded.len() > 1 {
        out::line(&total.line())?;
    }
    Ok(ExitCode::from(code))
}

/// Tells a finished run's story: the closing block on stdout (on stderr with `--json`, whose
/// document stdout carries), and an error that ended the run on stderr with its cause.
fn told(s: &mailharness::analysis::Summary, run_dir: &Path, json: bool) -> Result<(), CliError> {
    if let Some(e) = &s.error {
        out::note(&format!("error: run {} could not finish: {e}", s.run_id));
    }
    let block = story::verdict_block(s, run_dir);
    if json {
        out::note(block.trim_end());
        Ok(())
    } else {
        out::print(&block)
    }
}

/// Arguments of `mailharness report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory, e.g. reports/latest.
    #[arg(value_name = "RUN-DIR")]
    pub run_dir: PathBuf,
    #[command(flatten)]
    pub json: JsonOpt,
}

/// `report --json`: the run's entry, as in `run --json`.
#[derive(Debug, Serialize)]
struct ReportDoc {
    schema: u32,
    #[serde(flatten)]
    run: RunEntry,
}

/// `mailharness report`: analysis and reports from the run directory's records alone.
pub fn report(a: ReportArgs) -> Result<ExitCode, CliError> {
    let data = mailharness::analysis::load_run_dir(&a.run_dir)?;
    let summary = mailharness::analysis::analyse(&data);
    report::write_all(&summary, &a.run_dir).map_err(|source| CliError::Write {
        path: a.run_dir.clone(),
        source,
    })?;
    told(&summary, &a.run_dir, a.json.json)?;
    if a.json.json {
        out::json(&ReportDoc {
            schema: RUN_SCHEMA,
            run: RunEntry::of(&summary, &a.run_dir, None),
        })?;
    }
    // A re-rendered run that could not finish is a negative result here, not an infrastructure
    // failure of this command (which did its job).
    Ok(ExitCode::from(
        story::run_code(&summary).min(super::error::EXIT_FAIL),
    ))
}
