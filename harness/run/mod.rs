//! `mailharness run`: phases before and after the connector change, then observation, analysis and
//! reports. The orchestrator only sequences the other stages; each stage owns its records.

mod change;
mod error;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::analysis::{self, files, Summary};
use crate::endpoint::{tenant_endpoint, Endpoint};
use crate::observe::{self, ObserveError};
use crate::record::{PhaseRecord, RunRecord, RECORD_SCHEMA};
use crate::report;
use crate::scenario::plan::Plan;
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
    for ip in plan.senders.values() {
        send::check_source_ip(*ip).map_err(RunError::SourceIp)?;
    }
    let run_id = new_run_id(&plan.scenario);
    let run_dir = opts.reports_root.join(&run_id);
    create_dir(&run_dir)?;
    write_json(&run_dir.join(files::PLAN), &plan)?;

    // The embedded simulator lives for the run, in the run directory (its Maildirs and trace).
    let simulator = match tgt.file.kind {
        TargetKind::Simulator => Some(
            sim::start(
                {
                    let mut tenant = tgt.file.tenant();
                    provision_sim_password(&mut tenant, &run_dir)?;
                    tenant
                },
                &sim_dir(&run_dir),
            )
            .await
            .map_err(RunError::Simulator)?,
        ),
        TargetKind::Tenant => None,
    };
    // One resolution of "where mail goes" for run, verify and confirm: the simulator's loopback
    // port and CA, or the tenant's MX (given, or from DNS) on the target's port.
    let domain = plan.destination.domain.clone();
    let endpoint = match &simulator {
        Some(s) => Endpoint::simulator(s, &domain),
        None => tenant_endpoint(tgt, None).await,
    }?;
    let mut ctx = endpoint.context(&run_id).map_err(RunError::SendContext)?;
    if let Some(p) = simulator
        .as_ref()
        .and_then(|s| s.smtps_addr())
        .map(|a| a.port())
    {
        ctx.implicit_tls_port = p;
    } else if let Some(p) = tgt
        .file
        .smtp
        .as_ref()
        .and_then(|s| s.get_ref().implicit_tls_port)
    {
        ctx.implicit_tls_port = p;
    }
    let started_at = ctx.clock.wall;
    // `error` is set when a phase cannot go on; later phases are skipped, reports still written.
    let sink = AttemptSink::open(&run_dir).map_err(RunError::Sink)?;
    let progress = if opts.progress {
        Progress::stderr()
    } else {
        Progress::hidden()
    };

    let mut phases = Vec::new();
    let mut error = None;
    let mut throttled_before = std::collections::BTreeSet::new();
    for phase in &plan.phases {
        // After a stop, later phases still run their bursts: with the token cancelled, each
        // planned message is recorded `interrupted` at once, so every planned message has one
        // record. Their change steps are skipped.
        let change = match &phase.change {
            Some(c) if !cancel.is_cancelled() => {
                let rec = change::apply_and_wait(
                    c,
                    &phase.name,
                    &plan,
                    &ctx,
                    &sink,
                    simulator.as_ref(),
                    &throttled_before,
                    &progress,
                    &cancel,
                )
                .await;
                let failed = rec.error.clone();
                if let Some(e) = failed {
                    error = Some(format!(
                        "phase `{}`: the connector change failed: {e}",
                        phase.name
                    ));
                    phases.push(PhaseRecord {
                        name: phase.name.clone(),
                        change: Some(rec),
                        started_ms: ctx.clock.ms(std::time::Instant::now()),
                        finished_ms: ctx.clock.ms(std::time::Instant::now()),
                    });
                    break;
                }
                Some(rec)
            }
            _ => None,
        };
        let started_ms = ctx.clock.ms(std::time::Instant::now());
        let result = run_phase_bursts(&ctx, phase, &sink, &cancel, &progress).await;
        // Which IPs this phase saw throttled: the next change step's probes look for it stopping.
        throttled_before = match &result {
            Ok(summaries) => summaries
                .iter()
                .filter(|s| s.count(OutcomeClass::Throttled) > 0)
                .filter_map(|s| {
                    phase
                        .bursts
                        .iter()
                        .find(|b| b.id == s.burst)
                        .map(|b| b.source_ip)
                })
                .collect(),
            Err(_) => Default::default(),
        };
        let finished_ms = ctx.clock.ms(std::time::Instant::now());
        phases.push(PhaseRecord {
            name: phase.name.clone(),
            change,
            started_ms,
            finished_ms,
        });
        if let Err(e) = result {
            error = Some(format!("phase `{}`: {e}", phase.name));
            break;
        }
    }
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
    // Shut the simulator down before copying its trace: shutting down flushes the trace, and a
    // copy taken before it misses the last records (the cross-check then fails falsely).
    if let Some(s) = simulator {
        let trace = s.trace_path().to_path_buf();
        if let Err(e) = s.shutdown().await {
            progress.println(&format!(
                "warning: the simulator did not shut down cleanly: {e}"
            ));
        }
        // The generated IMAP password dies with the simulator: keep no secret in the run directory.
        let _ = std::fs::remove_file(sim_password_file(&run_dir));
        copy_trace(&trace, &run_dir.join(files::SIM_TRACE))?;
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
/// CA, logging in with each mailbox's own password source (the run's generated file, unless the
/// tenant file gave it one: see `provision_sim_password`).
fn sim_imap_target(
    s: &sim::SimHandle,
    run_dir: &Path,
) -> Result<Option<observe::ImapTarget>, ObserveError> {
    let Some(addr) = s.imap_addr() else {
        return Ok(None);
    };
    let ca = sim_dir(run_dir).join("tls").join("ca.pem");
    let tls = observe::tls_config(Some(&ca))?;
    Ok(Some(observe::ImapTarget {
        connect: observe::ConnectOptions {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: crate::scenario::target::ImapTls::Starttls,
            tls_config: Some(tls),
            timeout: observe::DEFAULT_COMMAND_TIMEOUT,
        },
        auth: observe::AuthMethod::Login,
        mailboxes: s
            .config()
            .mailboxes
            .iter()
            .map(|m| {
                let address = m.address.to_ascii_lowercase();
                let source = match &m.password_env {
                    Some(var) => observe::SecretSource::Env(var.clone()),
                    None => observe::SecretSource::File(
                        m.password_file
                            .clone()
                            .unwrap_or_else(|| sim_password_file(run_dir)),
                    ),
                };
                observe::MailboxAccess {
                    login: address.clone(),
                    address,
                    password: Some(source),
                }
            })
            .collect(),
    }))
}

/// The simulator's state directory inside a run directory.
fn sim_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("sim")
}

/// Where a run keeps the simulator mailboxes' generated IMAP password (mode 0600).
fn sim_password_file(run_dir: &Path) -> PathBuf {
    sim_dir(run_dir).join("imap-password")
}

/// Gives every simulated mailbox without its own credentials the run's generated password, held
/// in a 0600 file: never on a command line, in a log or in a report.
fn provision_sim_password(
    tenant: &mut crate::sim::TenantConfig,
    run_dir: &Path,
) -> Result<(), RunError> {
    let path = sim_password_file(run_dir);
    create_dir(&sim_dir(run_dir))?;
    write_secret(&path, &uuid::Uuid::new_v4().as_simple().to_string())?;
    for m in &mut tenant.mailboxes {
        if m.password_env.is_none() && m.password_file.is_none() {
            m.password_file = Some(path.clone());
        }
    }
    Ok(())
}

/// Writes a new file readable by its owner only (mode 0600); an existing file is an error.
fn write_secret(path: &Path, secret: &str) -> Result<(), RunError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| RunError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    f.write_all(secret.as_bytes())
        .map_err(|source| RunError::Write {
            path: path.to_path_buf(),
            source,
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
    phase: &crate::scenario::plan::PlannedPhase,
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
