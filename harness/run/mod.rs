//! `mailharness run`: phases before and after the connector change, then observation, analysis and
//! reports. The orchestrator only sequences the other stages; each stage owns its records.

mod change;
mod error;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::analysis::{self, files, Summary};
use crate::endpoint::{tenant_endpoint, Endpoint};
use crate::observe::{self, ObserveError};
use crate::record::{ChangeRecord, PhaseRecord, RunRecord, RECORD_SCHEMA};
use crate::report;
use crate::scenario::plan::{Plan, PlannedChange, PlannedPhase};
use crate::scenario::{LoadedScenario, LoadedTarget};
use crate::send::{self, AttemptSink, CancelToken, Progress, SendContext};
use crate::sim;
use crate::vocab::{HumanDuration, OutcomeClass, TargetKind};

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where run directories are created (`reports/`).
    pub reports_root: PathBuf,
    /// Show progress bars on a terminal.
    pub progress: bool,
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// `reports/<run-id>/`.
    pub run_dir: PathBuf,
    /// The analysis.
    pub summary: Summary,
}

use error::ObservationError;
pub use error::RunError;

/// A fresh run id: `<scenario>-<UTC time>-<4 hex>`.
pub fn new_run_id(scenario: &str) -> String {
    let now = Utc::now();
    let nonce = uuid::Uuid::new_v4().as_simple().to_string();
    format!(
        "{scenario}-{}-{}",
        now.format("%Y%m%dT%H%M%SZ"),
        &nonce[..4]
    )
}

/// Runs one scenario against one target and writes every record and report into a new run directory.
pub async fn run_scenario(
    scn: &LoadedScenario,
    tgt: &LoadedTarget,
    opts: &RunOptions,
    cancel: CancelToken,
) -> Result<RunOutcome, RunError> {
    let plan = crate::scenario::build_plan(scn, tgt)?;
    // The same check, and the same positioned error, as `plan`'s.
    crate::scenario::check_senders_here(tgt)?;
    let run_id = new_run_id(&plan.scenario);
    let run_dir = opts.reports_root.join(&run_id);
    create_dir(&run_dir)?;
    write_json(&run_dir.join(files::PLAN), &plan)?;
    let progress = if opts.progress {
        Progress::stderr()
    } else {
        Progress::hidden()
    };
    if let Err(e) = update_latest(&opts.reports_root, &run_id) {
        progress.println(&format!(
            "warning: cannot point {} at this run: {e}",
            opts.reports_root.join(LATEST).display()
        ));
    }

    // The embedded simulator lives for the run, in the run directory (its Maildirs and trace).
    let simulator = match tgt.file.kind {
        TargetKind::Simulator => Some(start_simulator(tgt, &run_dir).await?),
        TargetKind::Tenant => None,
    };
    let ctx = send_context(&plan, tgt, simulator.as_ref(), &run_id).await?;
    let started_at = ctx.clock.wall;
    let sink = AttemptSink::open(&run_dir).map_err(RunError::Sink)?;
    // `error` is set when a phase cannot go on; later phases are skipped, reports still written.
    let (phases, mut error) = PhaseRun {
        plan: &plan,
        ctx: &ctx,
        sink: &sink,
        simulator: simulator.as_ref(),
        progress: &progress,
        cancel: &cancel,
    }
    .run_all()
    .await;
    let sink_summary = sink.close().await.map_err(RunError::Sink)?;
    progress.println(&format!(
        "{} attempts recorded in {}",
        sink_summary.records,
        sink_summary.path.display()
    ));

    if error.is_none() && !cancel.is_cancelled() {
        if let Err(e) = observe_step(tgt, simulator.as_ref(), &run_dir, &progress, &cancel).await {
            error = Some(format!("observation: {e}"));
        }
    }
    if let Some(s) = simulator {
        stop_simulator(s, &run_dir, &progress).await?;
    }
    let interrupted = cancel.is_cancelled();
    let run = RunRecord {
        schema: RECORD_SCHEMA,
        run_id: run_id.clone(),
        scenario: plan.scenario.clone(),
        target: plan.target.clone(),
        target_kind: plan.target_kind,
        started_at,
        finished_at: Utc::now(),
        phases,
        interrupted,
        error,
    };
    write_json(&run_dir.join(files::RUN), &run)?;
    let summary = render(&run_dir)?;
    Ok(RunOutcome { run_dir, summary })
}

/// Starts the embedded simulator with its state in the run directory and the generated IMAP
/// password (held in memory only) for its mailboxes.
async fn start_simulator(tgt: &LoadedTarget, run_dir: &Path) -> Result<sim::SimHandle, RunError> {
    let mut tenant = tgt.file.tenant();
    observe::sim::provision_sim_password(&mut tenant);
    sim::start(tenant, &sim_dir(run_dir))
        .await
        .map_err(RunError::Simulator)
}

/// Stops the simulator and copies its trace into the run directory.
async fn stop_simulator(
    s: sim::SimHandle,
    run_dir: &Path,
    progress: &Progress,
) -> Result<(), RunError> {
    // Shut the simulator down before copying its trace: shutting down flushes the trace, and a
    // copy taken before it misses the last records (the cross-check then fails falsely).
    let trace = s.trace_path().to_path_buf();
    if let Err(e) = s.shutdown().await {
        progress.println(&format!(
            "warning: the simulator did not shut down cleanly: {e}"
        ));
    }
    copy_trace(&trace, &run_dir.join(files::SIM_TRACE))
}

/// The send context for the run: where mail goes, and the port implicit-TLS bursts use (the
/// simulator's SMTPS port, or the target's `implicit_tls_port`).
async fn send_context(
    plan: &Plan,
    tgt: &LoadedTarget,
    simulator: Option<&sim::SimHandle>,
    run_id: &str,
) -> Result<SendContext, RunError> {
    // One resolution of "where mail goes" for run, verify and confirm: the simulator's loopback
    // port and CA, or the tenant's MX (given, or from DNS) on the target's port.
    let domain = plan.destination.domain.clone();
    let endpoint = match simulator {
        Some(s) => Endpoint::simulator(s, &domain),
        None => tenant_endpoint(tgt, None).await,
    }?;
    let mut ctx = endpoint.context(run_id).map_err(RunError::SendContext)?;
    if let Some(p) = simulator.and_then(|s| s.smtps_addr()).map(|a| a.port()) {
        ctx.implicit_tls_port = p;
    } else if let Some(p) = tgt
        .file
        .smtp
        .as_ref()
        .and_then(|s| s.get_ref().implicit_tls_port)
    {
        ctx.implicit_tls_port = p;
    }
    Ok(ctx)
}

/// What the phases of one run share.
struct PhaseRun<'a> {
    plan: &'a Plan,
    ctx: &'a SendContext,
    sink: &'a AttemptSink,
    simulator: Option<&'a sim::SimHandle>,
    progress: &'a Progress,
    cancel: &'a CancelToken,
}

impl PhaseRun<'_> {
    /// Runs the phases in order: each one's change step, then its bursts. Returns a record per
    /// phase begun, and the error that stopped them, if any.
    async fn run_all(&self) -> (Vec<PhaseRecord>, Option<String>) {
        let mut phases = Vec::new();
        let mut throttled_before = BTreeSet::new();
        for phase in &self.plan.phases {
            // After a stop, later phases still run their bursts: with the token cancelled, each
            // planned message is recorded `interrupted` at once, so every planned message has one
            // record. Their change steps are skipped.
            let change = match &phase.change {
                Some(c) if !self.cancel.is_cancelled() => {
                    let rec = self.change_step(c, phase, &throttled_before).await;
                    if let Some(e) = rec.error.clone() {
                        phases.push(PhaseRecord {
                            name: phase.name.clone(),
                            change: Some(rec),
                            started_ms: self.now_ms(),
                            finished_ms: self.now_ms(),
                        });
                        let error =
                            format!("phase `{}`: the connector change failed: {e}", phase.name);
                        return (phases, Some(error));
                    }
                    Some(rec)
                }
                _ => None,
            };
            let started_ms = self.now_ms();
            let result =
                run_phase_bursts(self.ctx, phase, self.sink, self.cancel, self.progress).await;
            // Which IPs this phase saw throttled: the next change step's probes look for it stopping.
            throttled_before = match &result {
                Ok(summaries) => throttled_ips(phase, summaries),
                Err(_) => Default::default(),
            };
            phases.push(PhaseRecord {
                name: phase.name.clone(),
                change,
                started_ms,
                finished_ms: self.now_ms(),
            });
            if let Err(e) = result {
                return (phases, Some(format!("phase `{}`: {e}", phase.name)));
            }
        }
        (phases, None)
    }

    /// Applies a phase's change step and waits for it to take effect.
    async fn change_step(
        &self,
        c: &PlannedChange,
        phase: &PlannedPhase,
        throttled_before: &BTreeSet<Ipv4Addr>,
    ) -> ChangeRecord {
        change::apply_and_wait(
            c,
            &phase.name,
            self.plan,
            self.ctx,
            self.sink,
            self.simulator,
            throttled_before,
            self.progress,
            self.cancel,
        )
        .await
    }

    /// Milliseconds since the run's clock started.
    fn now_ms(&self) -> f64 {
        self.ctx.clock.ms(std::time::Instant::now())
    }
}

/// The source IPs of a phase's bursts that saw any message throttled.
fn throttled_ips(phase: &PlannedPhase, summaries: &[send::BurstSummary]) -> BTreeSet<Ipv4Addr> {
    summaries
        .iter()
        .filter(|s| s.count(OutcomeClass::Throttled) > 0)
        .filter_map(|s| {
            phase
                .bursts
                .iter()
                .find(|b| b.id == s.burst)
                .map(|b| b.source_ip)
        })
        .collect()
}

/// Reads the test mailboxes back over IMAP and appends `observations.jsonl`.
///
/// A target without IMAP access is not observed: its delivery metrics then read "not observed".
async fn observe_step(
    tgt: &LoadedTarget,
    simulator: Option<&sim::SimHandle>,
    run_dir: &Path,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<(), ObservationError> {
    let imap = match simulator {
        Some(s) => match sim_imap_target(s, run_dir)? {
            Some(t) => t,
            None => return Ok(()),
        },
        None if tgt.file.imap.is_some() => observe::ImapTarget::from_target(&tgt.file)?,
        None => {
            progress.println("the target has no [imap] settings: delivery is not observed");
            return Ok(());
        }
    };
    let attempts = observe::read_attempts(&run_dir.join(send::ATTEMPTS_FILE))?;
    let opts = observe::ObserveOptions::from_target(&tgt.file);
    progress.println(&format!(
        "observing {} mailbox(es) over IMAP (deadline {})",
        imap.mailboxes.len(),
        HumanDuration(opts.deadline)
    ));
    let summary = tokio::select! {
        r = observe::observe_run(&imap, run_dir, &attempts, &opts) => r?,
        _ = cancel.cancelled() => return Err(ObservationError::Interrupted),
    };
    progress.println(&format!(
        "observed: {} of {} found, {} missing, {} anomalies",
        summary.found, summary.expected, summary.missing, summary.anomalies
    ));
    Ok(())
}

/// The simulator's IMAP side for the harness itself: STARTTLS on its loopback port, trusting its
/// CA, logging in with each mailbox's own password source (the generated one, unless the tenant
/// file gave it one).
fn sim_imap_target(
    s: &sim::SimHandle,
    run_dir: &Path,
) -> Result<Option<observe::ImapTarget>, ObserveError> {
    let Some(addr) = s.imap_addr() else {
        return Ok(None);
    };
    let ca = sim_dir(run_dir).join("tls").join("ca.pem");
    let ca = s.ca_cert_pem().is_some().then_some(ca.as_path());
    observe::sim::sim_imap_target(addr, ca, s.config()).map(Some)
}

/// The simulator's state directory inside a run directory (its Maildirs stay there, so
/// `mailharness observe` can read them again).
pub fn sim_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("sim")
}

/// The name of the link to the newest run directory in the reports root.
pub const LATEST: &str = "latest";

/// Points `<reports_root>/latest` at `run_id`'s directory: a new link beside it, renamed over the
/// old one, so a reader always finds a whole link.
pub fn update_latest(reports_root: &Path, run_id: &str) -> std::io::Result<()> {
    let link = reports_root.join(LATEST);
    let tmp = reports_root.join(format!(".{LATEST}.{}", uuid::Uuid::new_v4().as_simple()));
    #[cfg(unix)]
    std::os::unix::fs::symlink(run_id, &tmp)?;
    #[cfg(not(unix))]
    std::fs::write(&tmp, run_id)?;
    std::fs::rename(&tmp, &link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Creates a directory and its parents.
fn create_dir(dir: &Path) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|source| RunError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

/// Runs a phase's bursts, one after another or all at once.
async fn run_phase_bursts(
    ctx: &SendContext,
    phase: &PlannedPhase,
    sink: &AttemptSink,
    cancel: &CancelToken,
    progress: &Progress,
) -> Result<Vec<send::BurstSummary>, send::SendError> {
    match phase.mode {
        crate::scenario::model::PhaseMode::Sequential => {
            let mut out = Vec::new();
            for b in &phase.bursts {
                out.push(send::run_burst(ctx, b, &phase.name, sink, cancel, progress).await?);
            }
            Ok(out)
        }
        crate::scenario::model::PhaseMode::Parallel => {
            let all = phase
                .bursts
                .iter()
                .map(|b| send::run_burst(ctx, b, &phase.name, sink, cancel, progress));
            futures_join_all(all).await.into_iter().collect()
        }
    }
}

/// Joins futures concurrently on the current task (no extra dependency for one call site).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Copies the simulator's message trace into the run directory.
fn copy_trace(from: &Path, to: &Path) -> Result<(), RunError> {
    let write_err = |source| RunError::Write {
        path: to.to_path_buf(),
        source,
    };
    match std::fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(to, b"").map_err(write_err)
        }
        Err(source) => Err(RunError::CopyTrace {
            path: to.to_path_buf(),
            source,
        }),
    }
}

/// Writes `v` as pretty JSON with a final newline.
fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(v).map_err(|source| RunError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|source| RunError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Analyses a run directory and writes its four reports.
pub fn render(run_dir: &Path) -> Result<Summary, RunError> {
    let data = analysis::load_run_dir(run_dir)?;
    let summary = analysis::analyse(&data);
    report::write_all(&summary, run_dir).map_err(|source| RunError::Reports {
        dir: run_dir.to_path_buf(),
        source,
    })?;
    Ok(summary)
}

/// The sender IPs a plan uses.
pub fn plan_ips(plan: &Plan) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = plan.senders.values().copied().collect();
    v.sort();
    v.dedup();
    v
}

/// Sleeps, waking early on cancel; returns false when cancelled.
pub(crate) async fn sleep_or_cancel(d: Duration, cancel: &CancelToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{load_scenario_text, load_target, SourceFile};

    fn summary(burst: &str, throttled: u64) -> send::BurstSummary {
        send::BurstSummary {
            burst: burst.into(),
            planned: 2,
            records: 2,
            started: 2,
            retries: 0,
            by_outcome: [(OutcomeClass::Throttled, throttled)].into_iter().collect(),
            connections: 2,
            duration_secs: 1.0,
            send_rate_per_sec: None,
            lateness_p50_ms: None,
            lateness_p99_ms: None,
            lateness_max_ms: None,
            interrupted: false,
        }
    }

    #[test]
    fn throttled_ips_are_the_source_ips_of_bursts_that_saw_throttling() {
        let text = "name = \"x\"\n[[phases]]\nname = \"p\"\n[[phases.bursts]]\nsender = \"all\"\ntls = \"none\"\ncount = 2\nrate = \"1/s\"\n";
        let scn = load_scenario_text(SourceFile {
            path: "s.toml".into(),
            text: text.into(),
        })
        .expect("scenario");
        let plan =
            crate::scenario::build_plan(&scn, &load_target(None).expect("target")).expect("plan");
        let phase = &plan.phases[0];
        let got = throttled_ips(
            phase,
            &[
                summary("p/primary/none/0", 0),
                summary("p/secondary/none/0", 1),
                summary("not/in/the/plan", 5),
            ],
        );
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["127.0.0.3".parse::<Ipv4Addr>().unwrap()]
        );
    }
}
