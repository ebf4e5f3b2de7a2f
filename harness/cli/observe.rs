//! `mailharness observe`: reads a finished run's mailboxes again, for mail that arrived late.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mailharness::observe::{self, sim::SimMailboxes, ImapTarget, ObserveOptions, ObserveSummary};
use mailharness::scenario::LoadedTarget;
use mailharness::vocab::TargetKind;
use serde::Serialize;

use super::common::{runtime, JsonOpt, TargetOpt};
use super::error::{CliError, EXIT_FAIL, EXIT_OK};
use super::out;

/// Version of `observe --json`'s document.
const OBSERVE_SCHEMA: u32 = 1;

/// Arguments of `mailharness observe`.
#[derive(Debug, Args)]
pub struct ObserveArgs {
    /// The run directory holding attempts.jsonl, e.g. reports/latest.
    #[arg(value_name = "RUN-DIR")]
    pub run_dir: PathBuf,
    /// The target the run used (default: the embedded simulator, whose mailboxes the run kept).
    #[command(flatten)]
    pub target: TargetOpt,
    /// How long to keep polling for missing mail (default: one pass).
    #[arg(long, value_parser = mailharness::vocab::parse_duration_arg)]
    pub deadline: Option<Duration>,
    /// Pause between polls (default: the target's [observe] poll_interval).
    #[arg(long, value_parser = mailharness::vocab::parse_duration_arg)]
    pub poll_interval: Option<Duration>,
    /// Delete this run's messages afterwards (only this run's; nothing else is touched).
    #[arg(long)]
    pub cleanup: bool,
    /// auto (SEARCH HEADER, falling back to SINCE), header, or since.
    #[arg(long, default_value = "auto")]
    pub search: observe::SearchMode,
    #[command(flatten)]
    pub json: JsonOpt,
}

/// `observe --json`: the schema version, the run directory and the observation's counts.
#[derive(Debug, Serialize)]
struct ObserveDoc<'a> {
    schema: u32,
    run_dir: &'a std::path::Path,
    #[serde(flatten)]
    summary: &'a ObserveSummary,
}

/// Re-observes a finished run and prints what was found where.
pub fn observe(a: ObserveArgs) -> Result<ExitCode, CliError> {
    let tgt = a.target.load()?;
    let mut opts = ObserveOptions::from_target(&tgt.file);
    // Re-observation looks once unless told to wait: the run already waited its deadline.
    opts.deadline = a.deadline.unwrap_or_default();
    if let Some(p) = a.poll_interval {
        opts.poll_interval = p;
    }
    opts.cleanup = a.cleanup;
    opts.search = a.search;
    let summary = runtime()?.block_on(reobserve(&tgt, &a.run_dir, &opts))?;
    let doc = ObserveDoc {
        schema: OBSERVE_SCHEMA,
        run_dir: &a.run_dir,
        summary: &summary,
    };
    out::emit(a.json.json, &doc, || summary.render_text())?;
    Ok(ExitCode::from(if summary.all_found() {
        EXIT_OK
    } else {
        EXIT_FAIL
    }))
}

/// Reads the run's mailboxes: a real tenant's over its `[imap]` settings; the simulator's from
/// the Maildirs the run kept, served again for the occasion.
async fn reobserve(
    tgt: &LoadedTarget,
    run_dir: &std::path::Path,
    opts: &ObserveOptions,
) -> Result<ObserveSummary, CliError> {
    if tgt.file.kind == TargetKind::Tenant {
        let imap = ImapTarget::from_target(&tgt.file)?;
        return Ok(observe::reobserve_run(&imap, run_dir, opts).await?);
    }
    let sim_dir = mailharness::run::sim_dir(run_dir);
    let served = SimMailboxes::open(tgt.file.tenant(), &sim_dir).await?;
    let r = observe::reobserve_run(&served.target, run_dir, opts).await;
    served.close().await;
    Ok(r?)
}
