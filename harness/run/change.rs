//! The change step between phases: apply the connector change, then wait for it to take effect.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::sleep_or_cancel;
use crate::connector;
use crate::record::ChangeRecord;
use crate::scenario::plan::{Plan, PlannedChange};
use crate::send::{self, AttemptSink, CancelToken, OneShot, Progress, SendContext, SendError};
use crate::sim::{ConnectorPatch, ConnectorSpec, SimError, SimHandle};
use crate::vocab::{
    ApplyMethod, ConnectorAction, ConnectorCidr, HumanDuration, OutcomeClass, TlsMode, WaitMethod,
};

/// How often the signal file is looked for.
const SIGNAL_POLL: Duration = Duration::from_millis(250);

/// Why a change could not be applied or followed; the change record keeps its text.
#[derive(Debug, thiserror::Error)]
enum ChangeError {
    /// `apply = "simulator"` against a real tenant.
    #[error("`apply = \"simulator\"` needs the embedded simulator")]
    NoSimulator,
    /// The operator prompt without a terminal to answer on.
    #[error("the operator prompt needs an interactive terminal; for unattended runs use apply = \"hook\" or \"signal-file\"")]
    NotATerminal,
    /// Reading the operator's Enter failed.
    #[error("could not read the operator's answer")]
    OperatorUnreadable,
    /// The operator did not answer in time.
    #[error("no answer from the operator within {0}")]
    OperatorTimeout(HumanDuration),
    /// The run was stopped while waiting for the operator.
    #[error("interrupted while waiting for the operator")]
    OperatorInterrupted,
    /// `command = []`.
    #[error("the hook command is empty")]
    EmptyHook,
    /// The run was stopped while the hook ran.
    #[error("interrupted while the hook ran")]
    HookInterrupted,
    /// The hook did not finish in time.
    #[error("hook `{command}` did not finish within {timeout}")]
    HookTimeout {
        /// The command line.
        command: String,
        /// How long it had.
        timeout: HumanDuration,
    },
    /// The hook could not be started.
    #[error("cannot run hook `{command}`: {source}")]
    HookSpawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The hook exited unsuccessfully.
    #[error("hook `{command}` failed ({status}): {stderr}")]
    HookFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote on stderr, trimmed.
        stderr: String,
    },
    /// The signal file did not appear in time.
    #[error("the signal file {path} did not appear within {timeout}")]
    SignalTimeout {
        /// The file waited for.
        path: String,
        /// How long it had.
        timeout: HumanDuration,
    },
    /// The run was stopped while waiting for the signal file.
    #[error("interrupted while waiting for the signal file")]
    SignalInterrupted,
    /// A sender IP of the change is not a connector range.
    #[error("{0}")]
    SenderIp(String),
    /// The simulator refused the change.
    #[error("{0}")]
    Simulator(#[source] SimError),
    /// A probe was sent but its record could not be written.
    #[error("cannot record a probe: {0}")]
    Probe(#[source] SendError),
}

/// Applies a change and waits as the scenario says; every outcome, failures included, is a record.
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_and_wait(
    c: &PlannedChange,
    phase: &str,
    plan: &Plan,
    ctx: &SendContext,
    sink: &AttemptSink,
    sim: Option<&SimHandle>,
    throttled_before: &BTreeSet<Ipv4Addr>,
    progress: &Progress,
    cancel: &CancelToken,
) -> ChangeRecord {
    let mut rec = ChangeRecord {
        action: c.action,
        connector: c.connector_name.clone(),
        apply: c.apply,
        applied_ms: 0.0,
        wait: c.wait,
        effective_after_ms: None,
        probes: Vec::new(),
        timed_out: false,
        error: None,
    };
    progress.println(&format!(
        "phase `{phase}`: {} connector \"{}\" for {} via {}",
        rec.action,
        c.connector_name,
        c.sender_ips.join(", "),
        rec.apply
    ));
    if let Err(e) = apply(c, plan, sim, progress, cancel).await {
        rec.error = Some(e.to_string());
        return rec;
    }
    let applied = Instant::now();
    rec.applied_ms = ctx.clock.ms(applied);
    match c.wait {
        WaitMethod::Settle => {
            sleep_or_cancel(Duration::from_secs_f64(c.settle_secs), cancel).await;
        }
        WaitMethod::Poll => {
            let deadline = applied + Duration::from_secs_f64(c.deadline_secs);
            let mut round = 0u32;
            loop {
                let outcomes =
                    match probe_round(c, phase, plan, ctx, sink, round, &mut rec, cancel).await {
                        Ok(o) => o,
                        Err(e) => {
                            rec.error = Some(e.to_string());
                            break;
                        }
                    };
                round += 1;
                if cancel.is_cancelled() {
                    break;
                }
                if effective(c, &outcomes, throttled_before) {
                    rec.effective_after_ms = Some(ctx.clock.ms(Instant::now()) - rec.applied_ms);
                    progress.println(&format!(
                        "phase `{phase}`: the change took effect after {:.1}s ({} probes)",
                        rec.effective_after_ms.unwrap_or(0.0) / 1000.0,
                        rec.probes.len()
                    ));
                    break;
                }
                if Instant::now() >= deadline {
                    rec.timed_out = true;
                    progress.println(&format!(
                        "phase `{phase}`: the change did not take effect within {:.0}s; the phase runs anyway and its numbers will show it",
                        c.deadline_secs
                    ));
                    break;
                }
                if !sleep_or_cancel(Duration::from_secs_f64(c.poll_interval_secs), cancel).await {
                    break;
                }
            }
        }
    }
    rec
}

/// What one probe round saw for one sender IP.
struct ProbeResult {
    ip: Ipv4Addr,
    /// The STARTTLS probe (create/enable/update) or the plain one (delete/disable).
    main: OutcomeClass,
    /// The plain-text probe sent beside it when the connector requires TLS.
    plain: Option<OutcomeClass>,
}

/// One round of probes: per sender IP a STARTTLS probe, plus a plain-text one when the connector
/// requires TLS (only a connector in force refuses plain text for lack of TLS). Delete/disable
/// rounds send plain text only.
/// A probe record that cannot be written is an error: it would be a message sent without a record.
#[allow(clippy::too_many_arguments)]
async fn probe_round(
    c: &PlannedChange,
    phase: &str,
    plan: &Plan,
    ctx: &SendContext,
    sink: &AttemptSink,
    round: u32,
    rec: &mut ChangeRecord,
    cancel: &CancelToken,
) -> Result<Vec<ProbeResult>, ChangeError> {
    let removing = matches!(c.action, ConnectorAction::Delete | ConnectorAction::Disable);
    let recipient = plan
        .phases
        .iter()
        .flat_map(|p| p.bursts.iter())
        .find_map(|b| b.recipients.first().cloned())
        .unwrap_or_default();
    let mut results = Vec::new();
    for (role, ip) in &plan.senders {
        if cancel.is_cancelled() {
            break;
        }
        let send = |tls: TlsMode, n: u32| {
            let shot = OneShot {
                source_ip: *ip,
                sender: role.clone(),
                tls_mode: tls,
                recipients: vec![recipient.clone()],
                phase: format!("{phase}~probe"),
                burst: format!("{phase}~probe"),
                index: round * 2 + n,
                body_size: 512,
                text: None,
            };
            async move { send::send_one_until(ctx, &shot, cancel).await }
        };
        let main = send(
            if removing {
                TlsMode::None
            } else {
                TlsMode::Starttls
            },
            0,
        )
        .await;
        let plain = if !removing && c.require_tls && !cancel.is_cancelled() {
            Some(send(TlsMode::None, 1).await)
        } else {
            None
        };
        let result = ProbeResult {
            ip: *ip,
            main: main.outcome,
            plain: plain.as_ref().map(|p| p.outcome),
        };
        // Probes are real messages: recorded like any other attempt.
        for r in std::iter::once(main).chain(plain) {
            rec.probes.push(r.attempt_id.clone());
            sink.write(r).await.map_err(ChangeError::Probe)?;
        }
        results.push(result);
    }
    Ok(results)
}

/// Whether a probe round shows the change in force.
///
/// Creating (or enabling, updating) the connector is in force when every IP's TLS probe is
/// accepted and either throttling stopped for an IP that was throttled before the change, or
/// every plain-text probe is refused for lack of TLS. A TLS probe accepted from an IP that was
/// never throttled proves nothing by itself: its throttle bucket may just have tokens left. A
/// connector without the TLS requirement whose IPs were never throttled has no visible effect,
/// so polling then runs to its deadline and says so.
fn effective(
    c: &PlannedChange,
    results: &[ProbeResult],
    throttled_before: &BTreeSet<Ipv4Addr>,
) -> bool {
    if results.is_empty() {
        return false;
    }
    match c.action {
        // With the connector gone, plain text is no longer refused for lack of TLS.
        ConnectorAction::Delete | ConnectorAction::Disable => {
            results.iter().all(|r| r.main != OutcomeClass::TlsRequired)
        }
        _ => {
            let tls_through = results.iter().all(|r| r.main == OutcomeClass::Accepted);
            let throttling_stopped = results.iter().any(|r| throttled_before.contains(&r.ip));
            let tls_enforced = c.require_tls
                && results
                    .iter()
                    .all(|r| r.plain == Some(OutcomeClass::TlsRequired));
            tls_through
                && (throttling_stopped
                    || tls_enforced
                    || !c.require_tls && !throttled_before.is_empty())
        }
    }
}

async fn apply(
    c: &PlannedChange,
    plan: &Plan,
    sim: Option<&SimHandle>,
    progress: &Progress,
    cancel: &CancelToken,
) -> Result<(), ChangeError> {
    let timeout = HumanDuration(Duration::from_secs_f64(c.apply_timeout_secs));
    match c.apply {
        ApplyMethod::Simulator => apply_to_simulator(c, sim.ok_or(ChangeError::NoSimulator)?),
        ApplyMethod::Prompt => {
            progress.println(&connector::operator_text(c));
            ask_operator(progress, timeout, cancel).await
        }
        ApplyMethod::Hook => run_hook(c, plan, timeout, cancel).await,
        ApplyMethod::SignalFile => {
            let path = c.signal_file.clone().unwrap_or_default();
            progress.println(&connector::operator_text(c));
            progress.println(&format!("Waiting for the signal file {path} to appear."));
            wait_for_file(path, timeout, cancel).await
        }
    }
}

/// Waits for the operator to press Enter on the terminal.
async fn ask_operator(
    progress: &Progress,
    timeout: HumanDuration,
    cancel: &CancelToken,
) -> Result<(), ChangeError> {
    if !std::io::stdin().is_terminal() {
        return Err(ChangeError::NotATerminal);
    }
    progress.println("Press Enter once the connector is saved (Ctrl-C stops the run).");
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| ())
    });
    tokio::select! {
        r = tokio::time::timeout(timeout.0, read) => match r {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(_) => Err(ChangeError::OperatorUnreadable),
            Err(_) => Err(ChangeError::OperatorTimeout(timeout)),
        },
        _ = cancel.cancelled() => Err(ChangeError::OperatorInterrupted),
    }
}

/// Runs the hook command with the change in its environment; exit status 0 means applied.
async fn run_hook(
    c: &PlannedChange,
    plan: &Plan,
    timeout: HumanDuration,
    cancel: &CancelToken,
) -> Result<(), ChangeError> {
    let cmd = c.command.clone().unwrap_or_default();
    let (prog, args) = cmd.split_first().ok_or(ChangeError::EmptyHook)?;
    let mut command = tokio::process::Command::new(prog);
    command
        .args(args)
        .env("MH_CONNECTOR_ACTION", c.action.as_str())
        .env("MH_CONNECTOR_NAME", &c.connector_name)
        .env("MH_SENDER_IPS", c.sender_ips.join(","))
        .env("MH_REQUIRE_TLS", c.require_tls.to_string())
        .env("MH_SCENARIO", &plan.scenario)
        // The simulated mailboxes' generated password is no business of a hook's.
        .env_remove(crate::observe::sim::SIM_PASSWORD_ENV)
        .kill_on_drop(true);
    let out = tokio::select! {
        r = tokio::time::timeout(timeout.0, command.output()) => r,
        _ = cancel.cancelled() => return Err(ChangeError::HookInterrupted),
    };
    let command = cmd.join(" ");
    match out {
        Err(_) => Err(ChangeError::HookTimeout { command, timeout }),
        Ok(Err(source)) => Err(ChangeError::HookSpawn { command, source }),
        Ok(Ok(o)) if o.status.success() => Ok(()),
        Ok(Ok(o)) => Err(ChangeError::HookFailed {
            command,
            status: o.status,
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        }),
    }
}

/// Waits until the file at `path` exists.
async fn wait_for_file(
    path: String,
    timeout: HumanDuration,
    cancel: &CancelToken,
) -> Result<(), ChangeError> {
    let deadline = Instant::now() + timeout.0;
    loop {
        if std::path::Path::new(&path).exists() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ChangeError::SignalTimeout { path, timeout });
        }
        if !sleep_or_cancel(SIGNAL_POLL, cancel).await {
            return Err(ChangeError::SignalInterrupted);
        }
    }
}

/// The change's sender IPs as connector ranges.
fn cidrs(c: &PlannedChange) -> Result<Vec<ConnectorCidr>, ChangeError> {
    c.sender_ips
        .iter()
        .map(|s| s.parse::<ConnectorCidr>().map_err(ChangeError::SenderIp))
        .collect()
}

/// Applies the change through the embedded simulator's connector API.
fn apply_to_simulator(c: &PlannedChange, sim: &SimHandle) -> Result<(), ChangeError> {
    let r = match c.action {
        ConnectorAction::Create => sim.create_connector(ConnectorSpec {
            name: c.connector_name.clone(),
            enabled: true,
            sender_ips: cidrs(c)?,
            sender_domains: vec!["*".into()],
            require_tls: Some(c.require_tls),
            restrict_domains_to_ips: c.restrict_domains_to_ips,
            activation_delay: None,
        }),
        ConnectorAction::Update => sim.update_connector(
            &c.connector_name,
            &ConnectorPatch {
                sender_ips: Some(cidrs(c)?),
                require_tls: Some(c.require_tls),
                restrict_domains_to_ips: Some(c.restrict_domains_to_ips),
                ..Default::default()
            },
        ),
        ConnectorAction::Enable | ConnectorAction::Disable => sim.update_connector(
            &c.connector_name,
            &ConnectorPatch {
                enabled: Some(c.action == ConnectorAction::Enable),
                ..Default::default()
            },
        ),
        ConnectorAction::Delete => sim.delete_connector(&c.connector_name),
    };
    r.map(|_| ()).map_err(ChangeError::Simulator)
}
