//! Expansion of a scenario against a target into the exact plan: who sends what, when, to whom.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::{parse_check, Check, Metric};
use super::diag::{Diagnostic, Diagnostics};
use super::model::{PhaseMode, RetryPolicy};
use super::validate::{domain_of, ALL};
use super::{LoadedScenario, LoadedTarget};
use crate::vocab::{
    ApplyMethod, ByteSize, ConnectorAction, ConnectorCidr, TargetKind, TlsMode, WaitMethod,
};

/// Version of the plan's JSON form.
pub const PLAN_SCHEMA: u32 = 1;
/// The connector name used by the support article.
pub const DEFAULT_CONNECTOR_NAME: &str = "Trusted Mail Connector";
/// Default body size of a test message.
pub const DEFAULT_BODY_SIZE: u64 = 2048;
/// Guard rails applied to the simulator when its target sets none.
const SIM_DEFAULT_MAX_MESSAGES: u32 = 100_000;
const SIM_DEFAULT_MAX_RATE_PER_MIN: f64 = 600_000.0;
const DEFAULT_SETTLE: Duration = Duration::from_secs(5);
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_POLL_DEADLINE: Duration = Duration::from_secs(600);
const DEFAULT_APPLY_TIMEOUT: Duration = Duration::from_secs(3600);

/// The expanded, checked plan of one scenario against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Version of this JSON form.
    pub schema: u32,
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Scenario file path.
    pub scenario_file: String,
    /// Target name.
    pub target: String,
    /// Target file path.
    pub target_file: String,
    /// Simulator or real tenant.
    pub target_kind: TargetKind,
    /// Where mail goes.
    pub destination: Destination,
    /// Sender roles and their source IPs.
    pub senders: BTreeMap<String, Ipv4Addr>,
    /// The phases in order.
    pub phases: Vec<PlannedPhase>,
    /// First attempts in the whole run.
    pub total_messages: u64,
    /// Attempts including every possible retry and change-step probe.
    pub max_attempts: u64,
    /// Sending time plus change-step waits, excluding observation.
    pub expected_duration_secs: f64,
    /// The guard-rail check.
    pub guard: GuardReport,
}

/// Where mail is delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Destination {
    /// The recipient domain.
    pub domain: String,
    /// The MX host, or how it will be found.
    pub mx: String,
    /// SMTP port.
    pub port: u16,
}

/// One phase of the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedPhase {
    /// Phase name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Sequential or parallel bursts.
    pub mode: PhaseMode,
    /// The change step before the phase.
    pub change: Option<PlannedChange>,
    /// The expanded bursts (one per sender role).
    pub bursts: Vec<PlannedBurst>,
    /// The expanded checks (one per cell and check).
    pub expectations: Vec<PlannedExpectation>,
    /// Sending time of the phase.
    pub expected_duration_secs: f64,
}

/// A connector change and how to wait for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedChange {
    /// What happens to the connector.
    pub action: ConnectorAction,
    /// Connector name.
    pub connector_name: String,
    /// IPs the connector lists.
    pub sender_ips: Vec<String>,
    /// `-RequireTls`.
    pub require_tls: bool,
    /// `-RestrictDomainsToIPAddresses`.
    pub restrict_domains_to_ips: bool,
    /// How it is applied.
    pub apply: ApplyMethod,
    /// Hook command, if any.
    pub command: Option<Vec<String>>,
    /// Signal file, if any.
    pub signal_file: Option<String>,
    /// How long to wait for the operator, hook or signal.
    pub apply_timeout_secs: f64,
    /// How the harness waits for the change to take effect.
    pub wait: WaitMethod,
    /// Settle time (for `settle`).
    pub settle_secs: f64,
    /// Probe gap (for `poll`).
    pub poll_interval_secs: f64,
    /// Poll deadline (for `poll`).
    pub deadline_secs: f64,
}

/// One burst from one sender role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedBurst {
    /// `<phase>/<sender>/<tls>/<index in phase>`: stable id used in records.
    pub id: String,
    /// Label from the file, if any.
    pub label: Option<String>,
    /// Sender role.
    pub sender: String,
    /// Source IP bound for the connections.
    pub source_ip: Ipv4Addr,
    /// TLS mode.
    pub tls: TlsMode,
    /// Messages.
    pub count: u32,
    /// Scheduled gap between sends.
    pub interval_secs: f64,
    /// The same pace as messages per minute.
    pub rate_per_min: f64,
    /// Connections open at once (limited by the number of connections).
    pub concurrency: u32,
    /// Messages per connection.
    pub per_connection: u32,
    /// Connections in all.
    pub connections: u32,
    /// Recipients per message.
    pub recipients_per_message: u32,
    /// The distinct recipient addresses, in round-robin order.
    pub recipients: Vec<String>,
    /// Body size in bytes.
    pub body_size: u64,
    /// Time from the first send to the last scheduled send.
    pub expected_duration_secs: f64,
    /// Retry policy, if any.
    pub retry: Option<RetryPolicy>,
}

/// One check of one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedExpectation {
    /// Phase name.
    pub phase: String,
    /// Sender role.
    pub sender: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// The check.
    pub check: Check,
}

/// The guard-rail check of a plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardReport {
    /// Recipient domains allowed.
    pub allowed_domains: Vec<String>,
    /// Limit on attempts per run.
    pub max_messages_per_run: u32,
    /// Planned attempts, retries and probes included.
    pub planned_attempts: u64,
    /// Limit on each source IP's rate, per minute.
    pub max_rate_per_ip_per_min: f64,
    /// The highest planned rate of each source IP, per minute.
    pub peak_rate_per_ip_per_min: BTreeMap<Ipv4Addr, f64>,
    /// Whether every limit holds (a plan that fails is refused before it is shown).
    pub ok: bool,
}

/// Builds the plan, or every reason it cannot be built.
pub fn build(s: &LoadedScenario, t: &LoadedTarget) -> Result<Plan, Diagnostics> {
    let mut errs: Vec<Diagnostic> = Vec::new();
    let ssrc = &s.src;
    let tsrc = &t.src;
    let tf = &t.file;
    let senders: BTreeMap<String, Ipv4Addr> = tf
        .senders
        .get_ref()
        .iter()
        .map(|(r, ip)| (r.clone(), ip.get_ref().0))
        .collect();
    let role_list = senders.keys().cloned().collect::<Vec<_>>().join(", ");

    // Test mailboxes with their position in the target file; a simulator target without
    // [[mailboxes]] uses the simulated tenant's own mailboxes.
    let mut mailboxes: Vec<(String, Option<std::ops::Range<usize>>)> = tf
        .mailboxes
        .iter()
        .map(|m| {
            (
                m.get_ref().address.get_ref().clone(),
                Some(m.get_ref().address.span()),
            )
        })
        .collect();
    if mailboxes.is_empty() && tf.kind == TargetKind::Simulator {
        mailboxes = tf
            .tenant()
            .mailbox_addresses()
            .into_iter()
            .map(|a| (a, None))
            .collect();
    }
    let domain = tf
        .smtp
        .as_ref()
        .and_then(|s| s.get_ref().domain.as_ref().map(|d| d.get_ref().clone()))
        .or_else(|| mailboxes.first().map(|(a, _)| domain_of(a)))
        .unwrap_or_default();

    let (allowed, max_messages, max_rate, guard_span, max_msg_span, max_rate_span) = match &tf.guard
    {
        Some(g) => {
            let gv = g.get_ref();
            let allowed: Vec<String> = if gv.allowed_domains.is_empty() {
                vec![domain.to_ascii_lowercase()]
            } else {
                gv.allowed_domains
                    .iter()
                    .map(|d| d.get_ref().to_ascii_lowercase())
                    .collect()
            };
            (
                allowed,
                gv.max_messages_per_run
                    .as_ref()
                    .map(|m| *m.get_ref())
                    .unwrap_or(SIM_DEFAULT_MAX_MESSAGES),
                gv.max_rate_per_ip
                    .as_ref()
                    .map(|r| r.get_ref().per_second() * 60.0)
                    .unwrap_or(SIM_DEFAULT_MAX_RATE_PER_MIN),
                Some(g.span()),
                gv.max_messages_per_run.as_ref().map(|m| m.span()),
                gv.max_rate_per_ip.as_ref().map(|m| m.span()),
            )
        }
        None => (
            vec![domain.to_ascii_lowercase()],
            SIM_DEFAULT_MAX_MESSAGES,
            SIM_DEFAULT_MAX_RATE_PER_MIN,
            None,
            None,
            None,
        ),
    };

    for (addr, span) in &mailboxes {
        if !allowed.contains(&domain_of(addr)) {
            let msg = format!(
                "mailbox `{addr}` is outside the guard's allowed recipient domains ({}); add its domain to [guard] allowed_domains or use another mailbox",
                allowed.join(", ")
            );
            errs.push(match span {
                Some(span) => tsrc.error(span.clone(), msg),
                None => Diagnostic::field(Some(&tsrc.path), "simulator.mailboxes", msg),
            });
        }
    }
    let has_imap = tf.kind == TargetKind::Simulator || tf.imap.is_some();

    let mut phases = Vec::new();
    let mut peak: BTreeMap<Ipv4Addr, (f64, String)> = BTreeMap::new();
    let mut total_messages: u64 = 0;
    let mut max_attempts: u64 = 0;
    let mut total_secs = 0.0;

    for phase in s.file.phases.get_ref() {
        let p = phase.get_ref();
        let pname = p.name.get_ref().clone();
        let change = p.change.as_ref().map(|c| {
            let cv = c.get_ref();
            // The scenario's own way wins; then the target's [connector]; then the kind's default.
            let target_way = tf.connector.as_ref().map(|c| c.get_ref());
            let apply = cv
                .apply
                .as_ref()
                .map(|a| *a.get_ref())
                .or(target_way.map(|t| *t.apply.get_ref()))
                .unwrap_or(match tf.kind {
                    TargetKind::Simulator => ApplyMethod::Simulator,
                    TargetKind::Tenant => ApplyMethod::Prompt,
                });
            let from_target = cv.apply.is_none() && target_way.is_some();
            if apply == ApplyMethod::Simulator && tf.kind == TargetKind::Tenant {
                let span = cv.apply.as_ref().map(|a| a.span()).unwrap_or(c.span());
                errs.push(ssrc.error(
                    span,
                    format!(
                        "`apply = \"simulator\"` only works against the embedded simulator, and target `{}` is a real tenant: use \"prompt\", \"hook\" or \"signal-file\"",
                        tf.name.get_ref()
                    ),
                ));
            }
            let sender_ips: Vec<String> = match &cv.sender_ips {
                Some(ips) => ips.iter().map(|i| i.get_ref().to_string()).collect(),
                None => {
                    let set: BTreeSet<Ipv4Addr> = senders.values().copied().collect();
                    set.into_iter()
                        .map(|ip| ConnectorCidr { addr: ip, prefix: 32 }.to_string())
                        .collect()
                }
            };
            let wait = cv.wait.as_ref().map(|w| *w.get_ref()).unwrap_or(WaitMethod::Settle);
            PlannedChange {
                action: cv.connector,
                connector_name: cv.name.clone().unwrap_or_else(|| DEFAULT_CONNECTOR_NAME.into()),
                sender_ips,
                require_tls: cv.require_tls.unwrap_or(true),
                restrict_domains_to_ips: cv.restrict_domains_to_ips.unwrap_or(false),
                apply,
                command: if from_target {
                    target_way.and_then(|t| t.command.as_ref().map(|c| c.get_ref().clone()))
                } else {
                    cv.command.as_ref().map(|c| c.get_ref().clone())
                },
                signal_file: if from_target {
                    target_way.and_then(|t| t.signal_file.as_ref().map(|f| f.get_ref().clone()))
                } else {
                    cv.signal_file.as_ref().map(|f| f.get_ref().clone())
                },
                apply_timeout_secs: cv.apply_timeout.map(|d| d.0).unwrap_or(DEFAULT_APPLY_TIMEOUT).as_secs_f64(),
                wait,
                settle_secs: cv.settle.map(|d| d.0).unwrap_or(DEFAULT_SETTLE).as_secs_f64(),
                poll_interval_secs: cv.poll_interval.map(|d| d.0).unwrap_or(DEFAULT_POLL_INTERVAL).as_secs_f64(),
                deadline_secs: cv.deadline.map(|d| d.0).unwrap_or(DEFAULT_POLL_DEADLINE).as_secs_f64(),
            }
        });
        if let Some(c) = &change {
            total_secs += match c.wait {
                WaitMethod::Settle => c.settle_secs,
                WaitMethod::Poll => c.poll_interval_secs,
            };
            // Probes are real messages: the guard rails count the most a poll can send.
            if c.wait == WaitMethod::Poll {
                max_attempts += max_probes(c, senders.len());
            }
        }

        let mut bursts = Vec::new();
        let mut ip_rates: BTreeMap<Ipv4Addr, f64> = BTreeMap::new();
        let mut phase_secs: f64 = 0.0;
        for (bi, b) in p.bursts.get_ref().iter().enumerate() {
            let bv = b.get_ref();
            let sender = bv.sender.get_ref();
            let roles: Vec<String> = if sender == ALL {
                senders.keys().cloned().collect()
            } else if senders.contains_key(sender) {
                vec![sender.clone()]
            } else {
                errs.push(ssrc.error(
                    bv.sender.span(),
                    format!(
                        "sender role `{sender}` is not defined by target `{}` ({}); its roles are: {role_list} (or `all`)",
                        tf.name.get_ref(),
                        tsrc.path.display()
                    ),
                ));
                continue;
            };
            let recipients: Vec<String> = if bv.to.is_empty() {
                mailboxes.iter().map(|(a, _)| a.clone()).collect()
            } else {
                let mut out = Vec::new();
                for to in &bv.to {
                    let a = to.get_ref();
                    if !allowed.contains(&domain_of(a)) {
                        errs.push(ssrc.error(
                            to.span(),
                            format!(
                                "recipient `{a}` is outside target `{}`'s allowed recipient domains ({}): the guard rails refuse to send there",
                                tf.name.get_ref(),
                                allowed.join(", ")
                            ),
                        ));
                    }
                    out.push(a.clone());
                }
                out
            };
            if recipients.is_empty() {
                errs.push(ssrc.error(
                    bv.sender.span(),
                    format!("burst has no recipients: target `{}` lists no [[mailboxes]] and the burst has no `to`", tf.name.get_ref()),
                ));
            }
            let interval = match (&bv.rate, &bv.interval) {
                (Some(r), _) => r.get_ref().interval(),
                (None, Some(i)) => i.get_ref().0,
                (None, None) => Duration::from_secs(1),
            };
            let count = *bv.count.get_ref();
            let per_connection = bv
                .per_connection
                .as_ref()
                .map(|v| *v.get_ref())
                .unwrap_or(1)
                .max(1);
            let connections = count.div_ceil(per_connection);
            let concurrency = bv
                .concurrency
                .as_ref()
                .map(|v| *v.get_ref())
                .unwrap_or(1)
                .clamp(1, connections.max(1));
            let rate_per_min = 60.0 / interval.as_secs_f64().max(1e-9);
            let duration = interval.as_secs_f64() * f64::from(count.saturating_sub(1));
            let attempts = bv.retry.as_ref().map(|r| r.get_ref().attempts).unwrap_or(1);
            for role in roles {
                let ip = senders[&role];
                *ip_rates.entry(ip).or_default() += rate_per_min;
                let e = peak.entry(ip).or_insert((0.0, String::new()));
                let cur = match p.mode {
                    PhaseMode::Parallel => ip_rates[&ip],
                    PhaseMode::Sequential => rate_per_min,
                };
                if cur > e.0 {
                    *e = (cur, pname.clone());
                }
                total_messages += u64::from(count);
                max_attempts += u64::from(count) * u64::from(attempts);
                phase_secs = match p.mode {
                    PhaseMode::Parallel => phase_secs.max(duration),
                    PhaseMode::Sequential => phase_secs + duration,
                };
                bursts.push(PlannedBurst {
                    id: format!("{pname}/{role}/{}/{bi}", bv.tls),
                    label: bv.name.clone(),
                    sender: role,
                    source_ip: ip,
                    tls: bv.tls,
                    count,
                    interval_secs: interval.as_secs_f64(),
                    rate_per_min,
                    concurrency,
                    per_connection,
                    connections,
                    recipients_per_message: bv
                        .recipients
                        .as_ref()
                        .map(|v| *v.get_ref())
                        .unwrap_or(1),
                    recipients: recipients.clone(),
                    body_size: bv.body_size.map(|b| b.0).unwrap_or(DEFAULT_BODY_SIZE),
                    expected_duration_secs: duration,
                    retry: bv.retry.as_ref().map(|r| r.get_ref().clone()),
                });
            }
        }
        total_secs += phase_secs;

        let cells: BTreeSet<(String, TlsMode)> =
            bursts.iter().map(|b| (b.sender.clone(), b.tls)).collect();
        let describe_cells = || {
            cells
                .iter()
                .map(|(r, t)| format!("{r}/{t}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut expectations = Vec::new();
        for e in &p.expect {
            let ev = e.get_ref();
            let sender = ev.sender.get_ref();
            let tls_text = ev.tls.get_ref();
            let tls: Option<TlsMode> = if tls_text == ALL {
                None
            } else {
                match TlsMode::ALL.into_iter().find(|m| m.as_str() == tls_text) {
                    Some(m) => Some(m),
                    None => {
                        errs.push(ssrc.error(
                            ev.tls.span(),
                            format!("unknown TLS mode `{tls_text}`: expected one of none, starttls, starttls-opportunistic, implicit, or all"),
                        ));
                        continue;
                    }
                }
            };
            if sender != ALL && !senders.contains_key(sender) {
                errs.push(ssrc.error(
                    ev.sender.span(),
                    format!("sender role `{sender}` is not defined by target `{}`; its roles are: {role_list} (or `all`)", tf.name.get_ref()),
                ));
                continue;
            }
            let matched: Vec<(String, TlsMode)> = cells
                .iter()
                .filter(|(r, t)| (sender == ALL || r == sender) && tls.is_none_or(|m| m == *t))
                .cloned()
                .collect();
            if sender != ALL && tls.is_some() && matched.is_empty() {
                let role_sends = cells.iter().any(|(r, _)| r == sender);
                let (span, what) = if role_sends {
                    (ev.tls.span(), format!("no burst in phase `{pname}` sends from `{sender}` with tls `{tls_text}`"))
                } else {
                    (
                        ev.sender.span(),
                        format!("no burst in phase `{pname}` sends from `{sender}`"),
                    )
                };
                errs.push(ssrc.error(span, format!("{what}, so this expectation names a cell that does not exist; the phase's cells are: {}", describe_cells())));
                continue;
            }
            if matched.is_empty() {
                errs.push(ssrc.error(
                    e.span(),
                    format!("this expectation matches no cell of phase `{pname}`; the phase's cells are: {}", describe_cells()),
                ));
                continue;
            }
            for c in ev.checks.get_ref() {
                let Ok(check) = parse_check(c.get_ref()) else {
                    continue;
                };
                if check.metric.needs_observation() && !has_imap {
                    errs.push(ssrc.error(
                        c.span(),
                        format!(
                            "`{}` needs IMAP observation, but target `{}` has no [imap] settings",
                            check.metric.name(),
                            tf.name.get_ref()
                        ),
                    ));
                    continue;
                }
                if check.metric == Metric::TlsVersion {
                    for (_, t) in &matched {
                        if *t == TlsMode::None {
                            errs.push(ssrc.error(c.span(), "`tls_version` cannot hold for a `tls = \"none\"` cell: it never negotiates TLS"));
                        }
                    }
                }
                for (role, t) in &matched {
                    expectations.push(PlannedExpectation {
                        phase: pname.clone(),
                        sender: role.clone(),
                        tls: *t,
                        check: check.clone(),
                    });
                }
            }
        }
        phases.push(PlannedPhase {
            name: pname,
            description: p.description.clone(),
            mode: p.mode,
            change,
            bursts,
            expectations,
            expected_duration_secs: phase_secs,
        });
    }

    let mut ok = true;
    if max_attempts > u64::from(max_messages) {
        ok = false;
        let msg = format!(
            "the plan sends up to {max_attempts} messages (retries included) but target `{}` allows at most {max_messages} per run (guard.max_messages_per_run); lower the counts or raise the limit deliberately",
            tf.name.get_ref()
        );
        errs.push(match max_msg_span.or(guard_span.clone()) {
            Some(span) => tsrc.error(span, msg),
            None => Diagnostic::field(Some(&tsrc.path), "guard.max_messages_per_run", msg),
        });
    }
    for (ip, (rate, phase)) in &peak {
        if *rate > max_rate + 1e-9 {
            ok = false;
            let msg = format!(
                "phase `{phase}` sends from {ip} at {rate:.1}/min but target `{}` allows at most {max_rate:.1}/min per IP (guard.max_rate_per_ip)",
                tf.name.get_ref()
            );
            errs.push(match max_rate_span.clone().or(guard_span.clone()) {
                Some(span) => tsrc.error(span, msg),
                None => Diagnostic::field(Some(&tsrc.path), "guard.max_rate_per_ip", msg),
            });
        }
    }
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    let dest_port = tf
        .smtp
        .as_ref()
        .and_then(|s| s.get_ref().port)
        .unwrap_or(25);
    let mx = match tf.kind {
        TargetKind::Simulator => "embedded simulator (loopback, ephemeral port)".to_string(),
        TargetKind::Tenant => match tf.smtp.as_ref().and_then(|s| s.get_ref().mx.as_ref()) {
            Some(m) => m.get_ref().clone(),
            None => format!("MX of {domain}, resolved from DNS"),
        },
    };
    Ok(Plan {
        schema: PLAN_SCHEMA,
        scenario: s.file.name.get_ref().clone(),
        description: s.file.description.clone(),
        scenario_file: ssrc.path.display().to_string(),
        target: tf.name.get_ref().clone(),
        target_file: tsrc.path.display().to_string(),
        target_kind: tf.kind,
        destination: Destination {
            domain,
            mx,
            port: if tf.kind == TargetKind::Simulator {
                0
            } else {
                dest_port
            },
        },
        senders,
        phases,
        total_messages,
        max_attempts,
        expected_duration_secs: total_secs,
        guard: GuardReport {
            allowed_domains: allowed,
            max_messages_per_run: max_messages,
            planned_attempts: max_attempts,
            max_rate_per_ip_per_min: max_rate,
            peak_rate_per_ip_per_min: peak.into_iter().map(|(ip, (r, _))| (ip, r)).collect(),
            ok,
        },
    })
}

/// The most probe messages a poll-until-effective change step can send: one round per
/// `poll_interval` until the deadline (plus the first), per sender IP, with a plain-text probe
/// beside the TLS one when the connector requires TLS (see `run::change`).
pub fn max_probes(c: &PlannedChange, senders: usize) -> u64 {
    let rounds = (c.deadline_secs / c.poll_interval_secs.max(0.001)).ceil() as u64 + 1;
    let per_ip = match c.action {
        ConnectorAction::Create | ConnectorAction::Update | ConnectorAction::Enable
            if c.require_tls =>
        {
            2
        }
        _ => 1,
    };
    rounds * per_ip * senders as u64
}

fn secs(s: f64) -> String {
    if s == 0.0 {
        return "0s".into();
    }
    let d = Duration::from_millis((s * 1000.0).round() as u64);
    humantime::format_duration(d).to_string()
}

fn pace(b: &PlannedBurst) -> String {
    if b.rate_per_min >= 1.0 && (b.rate_per_min - b.rate_per_min.round()).abs() < 1e-6 {
        format!(
            "{}/min (every {})",
            b.rate_per_min.round(),
            secs(b.interval_secs)
        )
    } else {
        format!("every {}", secs(b.interval_secs))
    }
}

impl Plan {
    /// The plan as text for a person deciding whether to run it.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Plan: scenario `{}` against target `{}` ({:?})",
            self.scenario, self.target, self.target_kind
        );
        if !self.description.is_empty() {
            let _ = writeln!(o, "  {}", self.description.trim());
        }
        let _ = writeln!(o, "  files: {} + {}", self.scenario_file, self.target_file);
        let _ = writeln!(
            o,
            "  destination: {} via {}{}",
            self.destination.domain,
            self.destination.mx,
            if self.destination.port != 0 {
                format!(", port {}", self.destination.port)
            } else {
                String::new()
            }
        );
        let senders: Vec<String> = self
            .senders
            .iter()
            .map(|(r, ip)| format!("{r} = {ip}"))
            .collect();
        let _ = writeln!(o, "  senders: {}", senders.join(", "));
        for p in &self.phases {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "Phase `{}` ({:?}, about {} of sending)",
                p.name,
                p.mode,
                secs(p.expected_duration_secs)
            );
            if !p.description.is_empty() {
                let _ = writeln!(o, "  {}", p.description.trim());
            }
            if let Some(c) = &p.change {
                let _ = writeln!(
                    o,
                    "  before it: {:?} connector \"{}\" for {} (require TLS: {}, restrict to IPs: {}), applied by {:?}{}",
                    c.action,
                    c.connector_name,
                    c.sender_ips.join(", "),
                    c.require_tls,
                    c.restrict_domains_to_ips,
                    c.apply,
                    c.command.as_ref().map(|c| format!(" `{}`", c.join(" "))).unwrap_or_default()
                );
                let _ = match c.wait {
                    WaitMethod::Settle => {
                        writeln!(o, "  then wait {} to settle", secs(c.settle_secs))
                    }
                    WaitMethod::Poll => writeln!(
                        o,
                        "  then probe every {} until throttling stops (deadline {})",
                        secs(c.poll_interval_secs),
                        secs(c.deadline_secs)
                    ),
                };
            }
            let _ = writeln!(
                o,
                "  {:<28} {:<16} {:<24} {:>5} {:<22} {:>5} {:>6} {:>5} {:>9} {:>8}",
                "burst",
                "source ip",
                "tls",
                "msgs",
                "pace",
                "conc",
                "conns",
                "rcpts",
                "body",
                "duration"
            );
            for b in &p.bursts {
                let _ = writeln!(
                    o,
                    "  {:<28} {:<16} {:<24} {:>5} {:<22} {:>5} {:>6} {:>5} {:>9} {:>8}",
                    b.id,
                    b.source_ip.to_string(),
                    b.tls.as_str(),
                    b.count,
                    pace(b),
                    b.concurrency,
                    b.connections,
                    b.recipients_per_message,
                    ByteSize(b.body_size).to_string(),
                    secs(b.expected_duration_secs)
                );
                let _ = writeln!(
                    o,
                    "      to: {}{}",
                    b.recipients.join(", "),
                    b.retry
                        .as_ref()
                        .map(|r| format!(
                            "; retry up to {} attempts, backoff {}",
                            r.attempts, r.backoff
                        ))
                        .unwrap_or_default()
                );
            }
            if !p.expectations.is_empty() {
                let _ = writeln!(o, "  expectations:");
                for e in &p.expectations {
                    let _ = writeln!(o, "    {}/{}/{}: {}", e.phase, e.sender, e.tls, e.check);
                }
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Total: {} messages ({} attempts at most with retries and change-step probes), about {} of sending and waiting",
            self.total_messages,
            self.max_attempts,
            secs(self.expected_duration_secs)
        );
        let g = &self.guard;
        let peaks: Vec<String> = g
            .peak_rate_per_ip_per_min
            .iter()
            .map(|(ip, r)| format!("{ip} peaks at {r:.1}/min"))
            .collect();
        let _ = writeln!(
            o,
            "Guard rails: {} — {} of {} messages allowed; {} (limit {:.1}/min per IP); recipients only in {}",
            if g.ok { "OK" } else { "EXCEEDED" },
            g.planned_attempts,
            g.max_messages_per_run,
            peaks.join(", "),
            g.max_rate_per_ip_per_min,
            g.allowed_domains.join(", ")
        );
        let _ = writeln!(o, "Nothing was sent: this is a dry run.");
        o
    }
}
