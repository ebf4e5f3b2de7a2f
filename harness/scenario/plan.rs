//! Expansion of a scenario against a target into the exact plan: who sends what, when, to whom.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::check::{parse_check, Check, Metric};
use super::diag::{Diagnostic, Diagnostics};
use super::model::{Burst, ChangeStep, Expect, Phase, PhaseMode, RetryPolicy};
use super::target::TargetFile;
use super::validate::{domain_of, ALL};
use super::{LoadedScenario, LoadedTarget};
use crate::vocab::{
    ApplyMethod, ByteSize, ConnectorAction, ConnectorCidr, HumanDuration, TargetKind, TlsMode,
    WaitMethod,
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
    let mut x = Expansion::new(s, t);
    x.check_mailboxes();
    let phases: Vec<PlannedPhase> = s
        .file
        .phases
        .get_ref()
        .iter()
        .map(|p| x.phase(p.get_ref()))
        .collect();
    let ok = x.check_guard();
    if !x.errs.is_empty() {
        return Err(Diagnostics(x.errs));
    }
    let tf = &t.file;
    let Tally {
        peak,
        total_messages,
        max_attempts,
        total_secs,
    } = x.tally;
    Ok(Plan {
        schema: PLAN_SCHEMA,
        scenario: s.file.name.get_ref().clone(),
        description: s.file.description.clone(),
        scenario_file: s.src.path.display().to_string(),
        target: tf.name.get_ref().clone(),
        target_file: t.src.path.display().to_string(),
        target_kind: tf.kind,
        destination: destination(tf, x.domain),
        senders: x.senders,
        phases,
        total_messages,
        max_attempts,
        expected_duration_secs: total_secs,
        guard: GuardReport {
            allowed_domains: x.limits.allowed,
            max_messages_per_run: x.limits.max_messages,
            planned_attempts: max_attempts,
            max_rate_per_ip_per_min: x.limits.max_rate,
            peak_rate_per_ip_per_min: peak.into_iter().map(|(ip, (r, _))| (ip, r)).collect(),
            ok,
        },
    })
}

/// A test mailbox's address, and where the target file names it (`None` for the simulated
/// tenant's own mailboxes).
type TestMailbox = (String, Option<Range<usize>>);

/// The target's guard rails, defaults filled in, with where each is written for errors.
#[derive(Debug)]
struct GuardLimits {
    /// Recipient domains allowed, lower case.
    allowed: Vec<String>,
    /// Attempts allowed per run.
    max_messages: u32,
    /// Messages per minute allowed per source IP.
    max_rate: f64,
    /// The `[guard]` table.
    guard_span: Option<Range<usize>>,
    /// `max_messages_per_run`.
    max_msg_span: Option<Range<usize>>,
    /// `max_rate_per_ip`.
    max_rate_span: Option<Range<usize>>,
}

/// What the phases add up to, for the plan's totals and the guard check.
#[derive(Debug, Default)]
struct Tally {
    /// Each source IP's highest rate per minute, and the first phase that reaches it.
    peak: BTreeMap<Ipv4Addr, (f64, String)>,
    /// First attempts.
    total_messages: u64,
    /// Attempts with every retry and change-step probe.
    max_attempts: u64,
    /// Sending time plus change-step waits.
    total_secs: f64,
}

impl Tally {
    /// Records that `ip` sends at `rate` per minute during `phase`.
    fn note_rate(&mut self, ip: Ipv4Addr, rate: f64, phase: &str) {
        let e = self.peak.entry(ip).or_insert((0.0, String::new()));
        if rate > e.0 {
            *e = (rate, phase.to_string());
        }
    }
}

/// One scenario being expanded against one target: what the target offers, the running totals,
/// and every error found so far (all are reported together, in file order).
struct Expansion<'a> {
    s: &'a LoadedScenario,
    t: &'a LoadedTarget,
    /// Sender roles and their source IPs.
    senders: BTreeMap<String, Ipv4Addr>,
    mailboxes: Vec<TestMailbox>,
    /// The recipient domain.
    domain: String,
    limits: GuardLimits,
    /// Whether the target can be observed over IMAP.
    has_imap: bool,
    tally: Tally,
    errs: Vec<Diagnostic>,
}

impl<'a> Expansion<'a> {
    /// Resolves what the target offers: roles, mailboxes, domain and guard limits.
    fn new(s: &'a LoadedScenario, t: &'a LoadedTarget) -> Self {
        let tf = &t.file;
        let senders = tf
            .senders
            .get_ref()
            .iter()
            .map(|(r, ip)| (r.clone(), ip.get_ref().0))
            .collect();
        let mailboxes = test_mailboxes(tf);
        let domain = tf
            .smtp
            .as_ref()
            .and_then(|s| s.get_ref().domain.as_ref().map(|d| d.get_ref().clone()))
            .or_else(|| mailboxes.first().map(|(a, _)| domain_of(a)))
            .unwrap_or_default();
        Expansion {
            s,
            t,
            senders,
            mailboxes,
            limits: guard_limits(tf, &domain),
            domain,
            has_imap: tf.kind == TargetKind::Simulator || tf.imap.is_some(),
            tally: Tally::default(),
            errs: Vec::new(),
        }
    }

    /// The target's name, for messages.
    fn target_name(&self) -> &str {
        self.t.file.name.get_ref()
    }

    /// The roles as a list for messages.
    fn role_list(&self) -> String {
        self.senders.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Every test mailbox must be in an allowed domain.
    fn check_mailboxes(&mut self) {
        let tsrc = &self.t.src;
        for (addr, span) in &self.mailboxes {
            if !self.limits.allowed.contains(&domain_of(addr)) {
                let msg = format!(
                    "mailbox `{addr}` is outside the guard's allowed recipient domains ({}); add its domain to [guard] allowed_domains or use another mailbox",
                    self.limits.allowed.join(", ")
                );
                self.errs.push(match span {
                    Some(span) => tsrc.error(span.clone(), msg),
                    None => Diagnostic::field(Some(&tsrc.path), "simulator.mailboxes", msg),
                });
            }
        }
    }

    /// One phase: its change step, its bursts, then its expectations about them.
    fn phase(&mut self, p: &Phase) -> PlannedPhase {
        let pname = p.name.get_ref().clone();
        let change = p.change.as_ref().map(|c| self.change(c));
        if let Some(c) = &change {
            self.tally.total_secs += match c.wait {
                WaitMethod::Settle => c.settle_secs,
                WaitMethod::Poll => c.poll_interval_secs,
            };
            // Probes are real messages: the guard rails count the most a poll can send.
            if c.wait == WaitMethod::Poll {
                self.tally.max_attempts += max_probes(c, self.senders.len());
            }
        }
        let (bursts, phase_secs) = self.bursts(p, &pname);
        self.tally.total_secs += phase_secs;
        let expectations = self.expectations(p, &pname, &bursts);
        PlannedPhase {
            name: pname,
            description: p.description.clone(),
            mode: p.mode,
            change,
            bursts,
            expectations,
            expected_duration_secs: phase_secs,
        }
    }

    /// The change step with every default filled in.
    fn change(&mut self, c: &Spanned<ChangeStep>) -> PlannedChange {
        let cv = c.get_ref();
        let tf = &self.t.file;
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
            self.errs.push(self.s.src.error(
                span,
                format!(
                    "`apply = \"simulator\"` only works against the embedded simulator, and target `{}` is a real tenant: use \"prompt\", \"hook\" or \"signal-file\"",
                    self.target_name()
                ),
            ));
        }
        let sender_ips: Vec<String> = match &cv.sender_ips {
            Some(ips) => ips.iter().map(|i| i.get_ref().to_string()).collect(),
            None => {
                let set: BTreeSet<Ipv4Addr> = self.senders.values().copied().collect();
                set.into_iter()
                    .map(|ip| {
                        ConnectorCidr {
                            addr: ip,
                            prefix: 32,
                        }
                        .to_string()
                    })
                    .collect()
            }
        };
        let (command, signal_file) = if from_target {
            (
                target_way.and_then(|t| t.command.as_ref().map(|c| c.get_ref().clone())),
                target_way.and_then(|t| t.signal_file.as_ref().map(|f| f.get_ref().clone())),
            )
        } else {
            (
                cv.command.as_ref().map(|c| c.get_ref().clone()),
                cv.signal_file.as_ref().map(|f| f.get_ref().clone()),
            )
        };
        let or = |d: Option<HumanDuration>, default: Duration| d.map(|d| d.0).unwrap_or(default);
        PlannedChange {
            action: cv.connector,
            connector_name: cv
                .name
                .clone()
                .unwrap_or_else(|| DEFAULT_CONNECTOR_NAME.into()),
            sender_ips,
            require_tls: cv.require_tls.unwrap_or(true),
            restrict_domains_to_ips: cv.restrict_domains_to_ips.unwrap_or(false),
            apply,
            command,
            signal_file,
            apply_timeout_secs: or(cv.apply_timeout, DEFAULT_APPLY_TIMEOUT).as_secs_f64(),
            wait: cv
                .wait
                .as_ref()
                .map(|w| *w.get_ref())
                .unwrap_or(WaitMethod::Settle),
            settle_secs: or(cv.settle, DEFAULT_SETTLE).as_secs_f64(),
            poll_interval_secs: or(cv.poll_interval, DEFAULT_POLL_INTERVAL).as_secs_f64(),
            deadline_secs: or(cv.deadline, DEFAULT_POLL_DEADLINE).as_secs_f64(),
        }
    }

    /// A phase's bursts, one per sender role, and the phase's sending time.
    fn bursts(&mut self, p: &Phase, pname: &str) -> (Vec<PlannedBurst>, f64) {
        let mut bursts = Vec::new();
        let mut ip_rates: BTreeMap<Ipv4Addr, f64> = BTreeMap::new();
        let mut phase_secs: f64 = 0.0;
        for (bi, b) in p.bursts.get_ref().iter().enumerate() {
            let bv = b.get_ref();
            // An unknown role leaves nothing to check the recipients for.
            let Some(roles) = self.burst_roles(bv) else {
                continue;
            };
            let recipients = self.burst_recipients(bv);
            let shape = BurstShape::of(bv);
            for role in roles {
                let ip = self.senders[&role];
                *ip_rates.entry(ip).or_default() += shape.rate_per_min;
                let rate = match p.mode {
                    PhaseMode::Parallel => ip_rates[&ip],
                    PhaseMode::Sequential => shape.rate_per_min,
                };
                self.tally.note_rate(ip, rate, pname);
                self.tally.total_messages += u64::from(shape.count);
                self.tally.max_attempts += u64::from(shape.count) * u64::from(shape.attempts);
                phase_secs = match p.mode {
                    PhaseMode::Parallel => phase_secs.max(shape.duration_secs),
                    PhaseMode::Sequential => phase_secs + shape.duration_secs,
                };
                bursts.push(PlannedBurst {
                    id: format!("{pname}/{role}/{}/{bi}", bv.tls),
                    label: bv.name.clone(),
                    sender: role,
                    source_ip: ip,
                    tls: bv.tls,
                    count: shape.count,
                    interval_secs: shape.interval.as_secs_f64(),
                    rate_per_min: shape.rate_per_min,
                    concurrency: shape.concurrency,
                    per_connection: shape.per_connection,
                    connections: shape.connections,
                    recipients_per_message: shape.recipients_per_message,
                    recipients: recipients.clone(),
                    body_size: bv.body_size.map(|b| b.0).unwrap_or(DEFAULT_BODY_SIZE),
                    expected_duration_secs: shape.duration_secs,
                    retry: bv.retry.as_ref().map(|r| r.get_ref().clone()),
                });
            }
        }
        (bursts, phase_secs)
    }

    /// The roles a burst sends from (`all` is every role), or `None` after an error.
    fn burst_roles(&mut self, bv: &Burst) -> Option<Vec<String>> {
        let sender = bv.sender.get_ref();
        if sender == ALL {
            Some(self.senders.keys().cloned().collect())
        } else if self.senders.contains_key(sender) {
            Some(vec![sender.clone()])
        } else {
            self.errs.push(self.s.src.error(
                bv.sender.span(),
                format!(
                    "sender role `{sender}` is not defined by target `{}` ({}); its roles are: {} (or `all`)",
                    self.target_name(),
                    self.t.src.path.display(),
                    self.role_list()
                ),
            ));
            None
        }
    }

    /// A burst's recipients: its `to`, each in an allowed domain, or else every test mailbox.
    fn burst_recipients(&mut self, bv: &Burst) -> Vec<String> {
        let recipients: Vec<String> = if bv.to.is_empty() {
            self.mailboxes.iter().map(|(a, _)| a.clone()).collect()
        } else {
            let mut out = Vec::new();
            for to in &bv.to {
                let a = to.get_ref();
                if !self.limits.allowed.contains(&domain_of(a)) {
                    self.errs.push(self.s.src.error(
                        to.span(),
                        format!(
                            "recipient `{a}` is outside target `{}`'s allowed recipient domains ({}): the guard rails refuse to send there",
                            self.target_name(),
                            self.limits.allowed.join(", ")
                        ),
                    ));
                }
                out.push(a.clone());
            }
            out
        };
        if recipients.is_empty() {
            self.errs.push(self.s.src.error(
                bv.sender.span(),
                format!(
                    "burst has no recipients: target `{}` lists no [[mailboxes]] and the burst has no `to`",
                    self.target_name()
                ),
            ));
        }
        recipients
    }

    /// A phase's expectations, one per matching cell and check.
    fn expectations(
        &mut self,
        p: &Phase,
        pname: &str,
        bursts: &[PlannedBurst],
    ) -> Vec<PlannedExpectation> {
        let cells: BTreeSet<(String, TlsMode)> =
            bursts.iter().map(|b| (b.sender.clone(), b.tls)).collect();
        let mut expectations = Vec::new();
        for e in &p.expect {
            let Some(matched) = self.expectation_cells(e, pname, &cells) else {
                continue;
            };
            for c in e.get_ref().checks.get_ref() {
                // A check that does not parse was reported when the scenario was loaded.
                let Ok(check) = parse_check(c.get_ref()) else {
                    continue;
                };
                if !self.check_fits_cells(c, &check, &matched) {
                    continue;
                }
                for (role, t) in &matched {
                    expectations.push(PlannedExpectation {
                        phase: pname.to_string(),
                        sender: role.clone(),
                        tls: *t,
                        check: check.clone(),
                    });
                }
            }
        }
        expectations
    }

    /// The phase's cells an expectation names, or `None` after an error: an unknown TLS mode or
    /// role, or a cell no burst sends.
    fn expectation_cells(
        &mut self,
        e: &Spanned<Expect>,
        pname: &str,
        cells: &BTreeSet<(String, TlsMode)>,
    ) -> Option<Vec<(String, TlsMode)>> {
        let ev = e.get_ref();
        let sender = ev.sender.get_ref();
        let tls_text = ev.tls.get_ref();
        let tls: Option<TlsMode> = if tls_text == ALL {
            None
        } else {
            let Some(m) = TlsMode::ALL.into_iter().find(|m| m.as_str() == tls_text) else {
                self.errs.push(self.s.src.error(
                    ev.tls.span(),
                    format!("unknown TLS mode `{tls_text}`: expected one of none, starttls, starttls-opportunistic, implicit, or all"),
                ));
                return None;
            };
            Some(m)
        };
        if sender != ALL && !self.senders.contains_key(sender) {
            self.errs.push(self.s.src.error(
                ev.sender.span(),
                format!(
                    "sender role `{sender}` is not defined by target `{}`; its roles are: {} (or `all`)",
                    self.target_name(),
                    self.role_list()
                ),
            ));
            return None;
        }
        let matched: Vec<(String, TlsMode)> = cells
            .iter()
            .filter(|(r, t)| (sender == ALL || r == sender) && tls.is_none_or(|m| m == *t))
            .cloned()
            .collect();
        if !matched.is_empty() {
            return Some(matched);
        }
        let describe_cells = cells
            .iter()
            .map(|(r, t)| format!("{r}/{t}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (span, msg) = if sender != ALL && tls.is_some() {
            let (span, what) = if cells.iter().any(|(r, _)| r == sender) {
                (
                    ev.tls.span(),
                    format!(
                        "no burst in phase `{pname}` sends from `{sender}` with tls `{tls_text}`"
                    ),
                )
            } else {
                (
                    ev.sender.span(),
                    format!("no burst in phase `{pname}` sends from `{sender}`"),
                )
            };
            (
                span,
                format!("{what}, so this expectation names a cell that does not exist; the phase's cells are: {describe_cells}"),
            )
        } else {
            (
                e.span(),
                format!("this expectation matches no cell of phase `{pname}`; the phase's cells are: {describe_cells}"),
            )
        };
        self.errs.push(self.s.src.error(span, msg));
        None
    }

    /// Whether a check can hold for the cells it applies to; reports why not.
    fn check_fits_cells(
        &mut self,
        c: &Spanned<String>,
        check: &Check,
        matched: &[(String, TlsMode)],
    ) -> bool {
        if check.metric.needs_observation() && !self.has_imap {
            self.errs.push(self.s.src.error(
                c.span(),
                format!(
                    "`{}` needs IMAP observation, but target `{}` has no [imap] settings",
                    check.metric.name(),
                    self.target_name()
                ),
            ));
            return false;
        }
        if check.metric == Metric::TlsVersion {
            for (_, t) in matched {
                if *t == TlsMode::None {
                    self.errs.push(self.s.src.error(
                        c.span(),
                        "`tls_version` cannot hold for a `tls = \"none\"` cell: it never negotiates TLS",
                    ));
                }
            }
        }
        true
    }

    /// Checks the totals against the guard limits; whether they hold.
    fn check_guard(&mut self) -> bool {
        let tsrc = &self.t.src;
        let name = self.t.file.name.get_ref();
        let lim = &self.limits;
        let mut ok = true;
        let max_attempts = self.tally.max_attempts;
        if max_attempts > u64::from(lim.max_messages) {
            ok = false;
            let msg = format!(
                "the plan sends up to {max_attempts} messages (retries included) but target `{name}` allows at most {} per run (guard.max_messages_per_run); lower the counts or raise the limit deliberately",
                lim.max_messages
            );
            self.errs
                .push(match lim.max_msg_span.clone().or(lim.guard_span.clone()) {
                    Some(span) => tsrc.error(span, msg),
                    None => Diagnostic::field(Some(&tsrc.path), "guard.max_messages_per_run", msg),
                });
        }
        for (ip, (rate, phase)) in &self.tally.peak {
            // Rates are sums of floats; a plan exactly at the limit must pass.
            if *rate > lim.max_rate + 1e-9 {
                ok = false;
                let msg = format!(
                    "phase `{phase}` sends from {ip} at {rate:.1}/min but target `{name}` allows at most {:.1}/min per IP (guard.max_rate_per_ip)",
                    lim.max_rate
                );
                self.errs
                    .push(match lim.max_rate_span.clone().or(lim.guard_span.clone()) {
                        Some(span) => tsrc.error(span, msg),
                        None => Diagnostic::field(Some(&tsrc.path), "guard.max_rate_per_ip", msg),
                    });
            }
        }
        ok
    }
}

/// The target's test mailboxes; a simulator target without [[mailboxes]] uses the simulated
/// tenant's own.
fn test_mailboxes(tf: &TargetFile) -> Vec<TestMailbox> {
    let listed: Vec<TestMailbox> = tf
        .mailboxes
        .iter()
        .map(|m| {
            let a = &m.get_ref().address;
            (a.get_ref().clone(), Some(a.span()))
        })
        .collect();
    if listed.is_empty() && tf.kind == TargetKind::Simulator {
        return tf
            .tenant()
            .mailbox_addresses()
            .into_iter()
            .map(|a| (a, None))
            .collect();
    }
    listed
}

/// The target's guard limits; without `[guard]` (or a field of it) the simulator's generous
/// defaults, and only the recipient domain allowed.
fn guard_limits(tf: &TargetFile, domain: &str) -> GuardLimits {
    let only_domain = || vec![domain.to_ascii_lowercase()];
    let Some(g) = &tf.guard else {
        return GuardLimits {
            allowed: only_domain(),
            max_messages: SIM_DEFAULT_MAX_MESSAGES,
            max_rate: SIM_DEFAULT_MAX_RATE_PER_MIN,
            guard_span: None,
            max_msg_span: None,
            max_rate_span: None,
        };
    };
    let gv = g.get_ref();
    GuardLimits {
        allowed: if gv.allowed_domains.is_empty() {
            only_domain()
        } else {
            gv.allowed_domains
                .iter()
                .map(|d| d.get_ref().to_ascii_lowercase())
                .collect()
        },
        max_messages: gv
            .max_messages_per_run
            .as_ref()
            .map(|m| *m.get_ref())
            .unwrap_or(SIM_DEFAULT_MAX_MESSAGES),
        max_rate: gv
            .max_rate_per_ip
            .as_ref()
            .map(|r| r.get_ref().per_second() * 60.0)
            .unwrap_or(SIM_DEFAULT_MAX_RATE_PER_MIN),
        guard_span: Some(g.span()),
        max_msg_span: gv.max_messages_per_run.as_ref().map(|m| m.span()),
        max_rate_span: gv.max_rate_per_ip.as_ref().map(|m| m.span()),
    }
}

/// The numbers of one burst, defaults filled in: pace, connections, attempts.
#[derive(Debug, Clone, PartialEq)]
struct BurstShape {
    /// Messages.
    count: u32,
    /// Gap between sends (`rate` or `interval`; default 1s).
    interval: Duration,
    /// The same pace per minute.
    rate_per_min: f64,
    /// Messages per connection, at least 1.
    per_connection: u32,
    /// Connections in all.
    connections: u32,
    /// Connections at once, between 1 and `connections`.
    concurrency: u32,
    /// Recipients per message.
    recipients_per_message: u32,
    /// First send to last scheduled send.
    duration_secs: f64,
    /// Attempts per message, retries included.
    attempts: u32,
}

impl BurstShape {
    /// Fills in a burst's defaults.
    fn of(bv: &Burst) -> BurstShape {
        let interval = match (&bv.rate, &bv.interval) {
            (Some(r), _) => r.get_ref().interval(),
            (None, Some(i)) => i.get_ref().0,
            (None, None) => Duration::from_secs(1),
        };
        let count = *bv.count.get_ref();
        let value = |v: &Option<Spanned<u32>>| v.as_ref().map(|v| *v.get_ref()).unwrap_or(1);
        let per_connection = value(&bv.per_connection).max(1);
        let connections = count.div_ceil(per_connection);
        BurstShape {
            count,
            interval,
            rate_per_min: 60.0 / interval.as_secs_f64().max(1e-9),
            per_connection,
            connections,
            concurrency: value(&bv.concurrency).clamp(1, connections.max(1)),
            recipients_per_message: value(&bv.recipients),
            duration_secs: interval.as_secs_f64() * f64::from(count.saturating_sub(1)),
            attempts: bv.retry.as_ref().map(|r| r.get_ref().attempts).unwrap_or(1),
        }
    }
}

/// Where mail goes: the simulator on loopback, or the tenant's MX (given, or from DNS).
fn destination(tf: &TargetFile, domain: String) -> Destination {
    let smtp = tf.smtp.as_ref().map(|s| s.get_ref());
    let (mx, port) = match tf.kind {
        TargetKind::Simulator => (
            "embedded simulator (loopback, ephemeral port)".to_string(),
            0,
        ),
        TargetKind::Tenant => (
            match smtp.and_then(|s| s.mx.as_ref()) {
                Some(m) => m.get_ref().clone(),
                None => format!("MX of {domain}, resolved from DNS"),
            },
            smtp.and_then(|s| s.port).unwrap_or(25),
        ),
    };
    Destination { domain, mx, port }
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
        self.render_header(&mut o);
        for p in &self.phases {
            render_phase(&mut o, p);
        }
        self.render_totals(&mut o);
        o
    }

    /// The scenario, target, files, destination and senders.
    fn render_header(&self, o: &mut String) {
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
    }

    /// The totals, the guard-rail verdict and the dry-run notice.
    fn render_totals(&self, o: &mut String) {
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
    }
}

/// One phase: its heading, change step, burst table and expectations.
fn render_phase(o: &mut String, p: &PlannedPhase) {
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
        render_change(o, c);
    }
    let _ = writeln!(
        o,
        "  {:<28} {:<16} {:<24} {:>5} {:<22} {:>5} {:>6} {:>5} {:>9} {:>8}",
        "burst", "source ip", "tls", "msgs", "pace", "conc", "conns", "rcpts", "body", "duration"
    );
    for b in &p.bursts {
        render_burst(o, b);
    }
    if !p.expectations.is_empty() {
        let _ = writeln!(o, "  expectations:");
        for e in &p.expectations {
            let _ = writeln!(o, "    {}/{}/{}: {}", e.phase, e.sender, e.tls, e.check);
        }
    }
}

/// The change step before a phase and how the harness waits for it.
fn render_change(o: &mut String, c: &PlannedChange) {
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
        WaitMethod::Settle => writeln!(o, "  then wait {} to settle", secs(c.settle_secs)),
        WaitMethod::Poll => writeln!(
            o,
            "  then probe every {} until throttling stops (deadline {})",
            secs(c.poll_interval_secs),
            secs(c.deadline_secs)
        ),
    };
}

/// One row of the burst table and its recipients line.
fn render_burst(o: &mut String, b: &PlannedBurst) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{load_scenario_text, load_target, load_target_text, SourceFile};

    /// A real-tenant target with two senders, one mailbox, tight rails and no IMAP.
    const TENANT: &str = r#"name = "t"
kind = "tenant"

[senders]
primary = "192.0.2.10"
secondary = "198.51.100.20"

[smtp]
domain = "contoso.example"

[[mailboxes]]
address = "qa1@contoso.example"

[guard]
allowed_domains = ["contoso.example"]
max_messages_per_run = 100
max_rate_per_ip = "60/min"
"#;

    fn scenario(text: &str) -> LoadedScenario {
        let src = SourceFile {
            path: "s.toml".into(),
            text: text.into(),
        };
        load_scenario_text(src).unwrap_or_else(|d| panic!("{d}"))
    }

    /// A scenario with one phase `p`; `body` goes under its [[phases]] table.
    fn one_phase(body: &str) -> LoadedScenario {
        scenario(&format!("name = \"x\"\n\n[[phases]]\nname = \"p\"\n{body}"))
    }

    fn target(text: &str) -> LoadedTarget {
        let src = SourceFile {
            path: "t.toml".into(),
            text: text.into(),
        };
        load_target_text(src).unwrap_or_else(|d| panic!("{d}"))
    }

    fn sim() -> LoadedTarget {
        load_target(None).expect("the built-in target loads")
    }

    fn burst(sender: &str, tls: &str, rest: &str) -> String {
        format!("\n[[phases.bursts]]\nsender = \"{sender}\"\ntls = \"{tls}\"\n{rest}\n")
    }

    fn plan(s: &LoadedScenario, t: &LoadedTarget) -> Plan {
        build(s, t).unwrap_or_else(|d| panic!("{d}"))
    }

    fn errors(s: &LoadedScenario, t: &LoadedTarget) -> Vec<Diagnostic> {
        build(s, t).expect_err("the plan is refused").0
    }

    fn messages(s: &LoadedScenario, t: &LoadedTarget) -> Vec<String> {
        errors(s, t).into_iter().map(|d| d.message).collect()
    }

    /// The 1-based line of the first line of `text` that contains `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines()
            .position(|l| l.contains(needle))
            .expect("needle")
            + 1
    }

    fn parse_burst(text: &str) -> Burst {
        toml::from_str(text).expect("a burst")
    }

    // --- guard limits ---

    #[test]
    fn guard_limits_without_a_guard_are_the_simulator_defaults_and_the_domain() {
        let t =
            target("name = \"s\"\nkind = \"simulator\"\n\n[senders]\nprimary = \"127.0.0.2\"\n");
        let g = guard_limits(&t.file, "Contoso.EXAMPLE");
        assert_eq!(g.allowed, vec!["contoso.example"]);
        assert_eq!(g.max_messages, SIM_DEFAULT_MAX_MESSAGES);
        assert_eq!(g.max_rate, SIM_DEFAULT_MAX_RATE_PER_MIN);
        assert!(g.guard_span.is_none() && g.max_msg_span.is_none() && g.max_rate_span.is_none());
    }

    #[test]
    fn guard_limits_read_the_guard_table_and_fill_in_what_it_leaves_out() {
        let t = target(TENANT);
        let g = guard_limits(&t.file, "ignored.example");
        assert_eq!(g.allowed, vec!["contoso.example"]);
        assert_eq!(g.max_messages, 100);
        assert!((g.max_rate - 60.0).abs() < 1e-9);
        assert!(g.guard_span.is_some() && g.max_msg_span.is_some() && g.max_rate_span.is_some());

        let t = target(
            "name = \"s\"\nkind = \"simulator\"\n\n[senders]\nprimary = \"127.0.0.2\"\n\n[guard]\nmax_rate_per_ip = \"2/s\"\n",
        );
        let g = guard_limits(&t.file, "Contoso.example");
        assert_eq!(g.allowed, vec!["contoso.example"]);
        assert_eq!(g.max_messages, SIM_DEFAULT_MAX_MESSAGES);
        assert!((g.max_rate - 120.0).abs() < 1e-9);
        assert!(g.max_msg_span.is_none() && g.guard_span.is_some());
    }

    #[test]
    fn too_many_attempts_are_refused_at_max_messages_per_run() {
        // 30 messages × 4 attempts = 120 > 100: retries count.
        let s = one_phase(&burst(
            "primary",
            "starttls",
            "count = 30\nrate = \"10/min\"\nretry = { attempts = 4, backoff = \"1s\" }",
        ));
        let errs = errors(&s, &target(TENANT));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].message,
            "the plan sends up to 120 messages (retries included) but target `t` allows at most 100 per run (guard.max_messages_per_run); lower the counts or raise the limit deliberately"
        );
        let at = errs[0].location.expect("a position");
        assert_eq!(at.line, line_of(TENANT, "max_messages_per_run"));
        // 25 × 4 = 100 is exactly the limit.
        let s = one_phase(&burst(
            "primary",
            "starttls",
            "count = 25\nrate = \"10/min\"\nretry = { attempts = 4, backoff = \"1s\" }",
        ));
        let p = plan(&s, &target(TENANT));
        assert_eq!((p.total_messages, p.max_attempts), (25, 100));
        assert!(p.guard.ok);
        assert_eq!(p.guard.planned_attempts, 100);
    }

    #[test]
    fn without_a_guard_table_the_errors_name_the_field() {
        let t =
            target("name = \"s\"\nkind = \"simulator\"\n\n[senders]\nprimary = \"127.0.0.2\"\n");
        let s = one_phase(&burst(
            "primary",
            "none",
            "count = 100001\ninterval = \"1ms\"",
        ));
        let errs = errors(&s, &t);
        let origins: Vec<String> = errs.iter().map(|d| d.origin()).collect();
        assert_eq!(
            origins,
            vec!["t.toml: field `guard.max_messages_per_run`"],
            "{errs:?}"
        );
        // 1ms is 60000/min, far under the simulator's default 600000/min.
        let s = one_phase(&burst("primary", "none", "count = 2\ninterval = \"50us\""));
        let errs = errors(&s, &t);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].origin(), "t.toml: field `guard.max_rate_per_ip`");
    }

    #[test]
    fn a_guard_without_the_field_points_at_the_guard_table() {
        let text = "name = \"s\"\nkind = \"simulator\"\n\n[senders]\nprimary = \"127.0.0.2\"\n\n[guard]\nallowed_domains = [\"contoso.example\"]\n";
        let s = one_phase(&burst(
            "primary",
            "none",
            "count = 100001\ninterval = \"1ms\"",
        ));
        let errs = errors(&s, &target(text));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].location.map(|l| l.line),
            Some(line_of(text, "[guard]")),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn parallel_bursts_add_up_per_ip_and_sequential_ones_do_not() {
        let two = |mode: &str| {
            one_phase(&format!(
                "mode = \"{mode}\"\n{}{}",
                burst("primary", "starttls", "count = 2\nrate = \"40/min\""),
                burst("primary", "none", "count = 2\nrate = \"40/min\"")
            ))
        };
        let p = plan(&two("sequential"), &target(TENANT));
        let primary: Ipv4Addr = "192.0.2.10".parse().unwrap();
        assert!((p.guard.peak_rate_per_ip_per_min[&primary] - 40.0).abs() < 1e-9);
        assert_eq!(p.guard.peak_rate_per_ip_per_min.len(), 1);

        assert_eq!(
            messages(&two("parallel"), &target(TENANT)),
            vec!["phase `p` sends from 192.0.2.10 at 80.0/min but target `t` allows at most 60.0/min per IP (guard.max_rate_per_ip)"]
        );
        let errs = errors(&two("parallel"), &target(TENANT));
        assert_eq!(
            errs[0].location.expect("a position").line,
            line_of(TENANT, "max_rate_per_ip")
        );
    }

    #[test]
    fn a_rate_exactly_at_the_limit_passes() {
        let s = one_phase(&format!(
            "mode = \"parallel\"\n{}{}",
            burst("primary", "starttls", "count = 2\nrate = \"20/min\""),
            burst("primary", "none", "count = 2\nrate = \"40/min\"")
        ));
        let p = plan(&s, &target(TENANT));
        assert!(p.guard.ok);
    }

    #[test]
    fn the_peak_names_the_first_phase_that_reaches_it() {
        let s = scenario(&format!(
            "name = \"x\"\n\n[[phases]]\nname = \"a\"\n{}\n[[phases]]\nname = \"b\"\n{}\n[[phases]]\nname = \"c\"\n{}",
            burst("primary", "none", "count = 1\nrate = \"90/min\""),
            burst("primary", "none", "count = 1\nrate = \"120/min\""),
            burst("primary", "none", "count = 1\nrate = \"120/min\""),
        ));
        let msgs = messages(&s, &target(TENANT));
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(
            msgs[0].starts_with("phase `b` sends from 192.0.2.10 at 120.0/min"),
            "{msgs:?}"
        );
    }

    #[test]
    fn a_mailbox_outside_the_allowed_domains_is_refused() {
        let text = TENANT.replace(
            "allowed_domains = [\"contoso.example\"]",
            "allowed_domains = [\"fabrikam.example\"]",
        );
        let s = one_phase(&burst(
            "primary",
            "none",
            "count = 1\nrate = \"1/min\"\nto = [\"a@fabrikam.example\"]",
        ));
        let errs = errors(&s, &target(&text));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].message,
            "mailbox `qa1@contoso.example` is outside the guard's allowed recipient domains (fabrikam.example); add its domain to [guard] allowed_domains or use another mailbox"
        );
        assert_eq!(
            errs[0].location.expect("a position").line,
            line_of(&text, "qa1@contoso.example")
        );
    }

    // --- the change step ---

    fn change_of(p: &Plan) -> &PlannedChange {
        p.phases[0].change.as_ref().expect("a change step")
    }

    #[test]
    fn a_change_step_fills_in_its_defaults() {
        let s = one_phase(&format!(
            "[phases.change]\nconnector = \"create\"\n{}",
            burst("primary", "starttls", "count = 3\ninterval = \"2s\"")
        ));
        let p = plan(&s, &sim());
        let c = change_of(&p);
        assert_eq!(c.action, ConnectorAction::Create);
        assert_eq!(c.connector_name, DEFAULT_CONNECTOR_NAME);
        assert_eq!(c.sender_ips, vec!["127.0.0.2", "127.0.0.3"]);
        assert!(c.require_tls && !c.restrict_domains_to_ips);
        assert_eq!(c.apply, ApplyMethod::Simulator);
        assert_eq!((c.command.as_ref(), c.signal_file.as_ref()), (None, None));
        assert_eq!(c.wait, WaitMethod::Settle);
        assert_eq!(
            (
                c.apply_timeout_secs,
                c.settle_secs,
                c.poll_interval_secs,
                c.deadline_secs
            ),
            (3600.0, 5.0, 5.0, 600.0)
        );
        // A settle wait adds its time; nothing is probed.
        assert_eq!(p.expected_duration_secs, 5.0 + 4.0);
        assert_eq!(p.max_attempts, 3);
    }

    #[test]
    fn a_change_step_lists_each_sender_ip_once() {
        let t = target("name = \"s\"\nkind = \"simulator\"\n\n[senders]\na = \"127.0.0.9\"\nb = \"127.0.0.4\"\nc = \"127.0.0.9\"\n");
        let s = one_phase(&format!(
            "[phases.change]\nconnector = \"update\"\nname = \"Mine\"\nrequire_tls = false\nrestrict_domains_to_ips = true\n{}",
            burst("a", "none", "count = 1\nrate = \"1/min\"")
        ));
        let p = plan(&s, &t);
        let c = change_of(&p);
        assert_eq!(c.sender_ips, vec!["127.0.0.4", "127.0.0.9"]);
        assert_eq!(c.connector_name, "Mine");
        assert!(!c.require_tls && c.restrict_domains_to_ips);
    }

    #[test]
    fn a_poll_wait_counts_its_probes_and_its_first_interval() {
        let s = one_phase(&format!(
            "[phases.change]\nconnector = \"create\"\nwait = \"poll\"\npoll_interval = \"1s\"\ndeadline = \"10s\"\n{}",
            burst("primary", "starttls", "count = 1\nrate = \"1/min\"")
        ));
        let p = plan(&s, &sim());
        // 11 rounds × 2 probes (TLS and plain, since the connector requires TLS) × 2 sender IPs.
        assert_eq!(max_probes(change_of(&p), 2), 44);
        assert_eq!((p.total_messages, p.max_attempts), (1, 45));
        assert_eq!(p.expected_duration_secs, 1.0);
    }

    #[test]
    fn the_targets_connector_way_applies_unless_the_scenario_names_its_own() {
        let t = target(&format!(
            "{TENANT}\n[connector]\napply = \"hook\"\ncommand = [\"set-connector\", \"--now\"]\n"
        ));
        let body = |change: &str| {
            one_phase(&format!(
                "[phases.change]\nconnector = \"create\"\n{change}\n{}",
                burst("primary", "starttls", "count = 1\nrate = \"1/min\"")
            ))
        };
        let p = plan(&body(""), &t);
        let c = change_of(&p);
        assert_eq!(c.apply, ApplyMethod::Hook);
        assert_eq!(
            c.command.as_deref(),
            Some(&["set-connector".to_string(), "--now".to_string()][..])
        );
        let p = plan(&body("apply = \"prompt\""), &t);
        let c = change_of(&p);
        assert_eq!(c.apply, ApplyMethod::Prompt);
        assert_eq!(c.command, None);
        // A tenant without [connector] prompts the operator.
        let p = plan(&body(""), &target(TENANT));
        assert_eq!(change_of(&p).apply, ApplyMethod::Prompt);
        assert!(p.render_text().contains("applied by Prompt\n"));
        let p = plan(&body(""), &t);
        assert!(
            p.render_text()
                .contains("applied by Hook `set-connector --now`\n"),
            "{}",
            p.render_text()
        );
    }

    #[test]
    fn applying_through_the_simulator_is_refused_on_a_tenant() {
        let s = one_phase(&format!(
            "[phases.change]\nconnector = \"create\"\napply = \"simulator\"\n{}",
            burst("primary", "starttls", "count = 1\nrate = \"1/min\"")
        ));
        let errs = errors(&s, &target(TENANT));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "`apply = \"simulator\"` only works against the embedded simulator, and target `t` is a real tenant: use \"prompt\", \"hook\" or \"signal-file\""
        );
        let line = line_of(&s.src.text, "apply = ");
        assert_eq!(errs[0].origin(), format!("s.toml:{line}:9"));
    }

    // --- bursts ---

    #[test]
    fn sender_all_expands_to_every_role_in_order() {
        let s = one_phase(&burst(
            "all",
            "starttls",
            "count = 2\nrate = \"30/min\"\nname = \"both\"",
        ));
        let p = plan(&s, &sim());
        let b = &p.phases[0].bursts;
        let got: Vec<(&str, String, Option<&str>)> = b
            .iter()
            .map(|b| (b.id.as_str(), b.source_ip.to_string(), b.label.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "p/primary/starttls/0",
                    "127.0.0.2".to_string(),
                    Some("both")
                ),
                (
                    "p/secondary/starttls/0",
                    "127.0.0.3".to_string(),
                    Some("both")
                ),
            ]
        );
        assert_eq!(p.total_messages, 4);
        // Sequential: one burst after the other.
        assert_eq!(p.phases[0].expected_duration_secs, 4.0);
    }

    #[test]
    fn a_parallel_phase_lasts_as_long_as_its_longest_burst() {
        let s = one_phase(&format!(
            "mode = \"parallel\"\n{}{}",
            burst("primary", "none", "count = 3\ninterval = \"1s\""),
            burst("secondary", "none", "count = 2\ninterval = \"5s\"")
        ));
        let p = plan(&s, &sim());
        assert_eq!(p.phases[0].expected_duration_secs, 5.0);
        let ids: Vec<&str> = p.phases[0].bursts.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, vec!["p/primary/none/0", "p/secondary/none/1"]);
    }

    #[test]
    fn an_unknown_role_is_reported_once_and_its_recipients_are_not_checked() {
        let s = one_phase(&burst(
            "tertiary",
            "none",
            "count = 1\nrate = \"1/min\"\nto = [\"a@fabrikam.example\"]",
        ));
        assert_eq!(
            messages(&s, &sim()),
            vec!["sender role `tertiary` is not defined by target `sim` (<built-in>/scenarios/targets/sim.toml); its roles are: primary, secondary (or `all`)"]
        );
    }

    #[test]
    fn burst_shape_reads_the_pace_from_rate_or_interval() {
        let b = parse_burst("sender = \"a\"\ntls = \"none\"\ncount = 10\nrate = \"30/min\"");
        let sh = BurstShape::of(&b);
        assert_eq!(sh.interval, Duration::from_secs(2));
        assert!((sh.rate_per_min - 30.0).abs() < 1e-9);
        assert_eq!(sh.duration_secs, 18.0);

        let b = parse_burst("sender = \"a\"\ntls = \"none\"\ncount = 3\ninterval = \"500ms\"");
        let sh = BurstShape::of(&b);
        assert!((sh.rate_per_min - 120.0).abs() < 1e-9);
        assert_eq!(sh.duration_secs, 1.0);

        // No pace at all (refused when loading) still means one a second.
        let b = parse_burst("sender = \"a\"\ntls = \"none\"\ncount = 1");
        let sh = BurstShape::of(&b);
        assert_eq!(sh.interval, Duration::from_secs(1));
        assert_eq!(sh.duration_secs, 0.0);
    }

    #[test]
    fn burst_shape_defaults_to_one_message_per_connection_and_one_at_a_time() {
        let b = parse_burst("sender = \"a\"\ntls = \"none\"\ncount = 10\nrate = \"1/s\"");
        let sh = BurstShape::of(&b);
        assert_eq!(
            (sh.per_connection, sh.connections, sh.concurrency),
            (1, 10, 1)
        );
        assert_eq!((sh.recipients_per_message, sh.attempts), (1, 1));
    }

    #[test]
    fn burst_shape_rounds_connections_up_and_caps_concurrency_at_them() {
        let b = parse_burst(
            "sender = \"a\"\ntls = \"none\"\ncount = 10\nrate = \"1/s\"\nper_connection = 3\nconcurrency = 9\nrecipients = 4\nretry = { attempts = 3, backoff = \"1s\" }",
        );
        let sh = BurstShape::of(&b);
        assert_eq!(
            (sh.per_connection, sh.connections, sh.concurrency),
            (3, 4, 4)
        );
        assert_eq!((sh.recipients_per_message, sh.attempts), (4, 3));
        // A zero (refused when loading) still means one.
        let b = parse_burst(
            "sender = \"a\"\ntls = \"none\"\ncount = 2\nrate = \"1/s\"\nper_connection = 0\nconcurrency = 0",
        );
        let sh = BurstShape::of(&b);
        assert_eq!(
            (sh.per_connection, sh.connections, sh.concurrency),
            (1, 2, 1)
        );
    }

    #[test]
    fn planned_bursts_carry_the_shape_body_size_and_retry() {
        let s = one_phase(&burst(
            "primary",
            "implicit",
            "count = 4\nrate = \"6/min\"\nper_connection = 2\nconcurrency = 2\nbody_size = \"10KiB\"\nretry = { attempts = 2, backoff = \"30s\" }",
        ));
        let p = plan(&s, &sim());
        let b = &p.phases[0].bursts[0];
        assert_eq!(b.interval_secs, 10.0);
        assert!((b.rate_per_min - 6.0).abs() < 1e-9);
        assert_eq!((b.per_connection, b.connections, b.concurrency), (2, 2, 2));
        assert_eq!(b.body_size, 10 * 1024);
        assert_eq!(b.expected_duration_secs, 30.0);
        assert_eq!(b.retry.as_ref().map(|r| r.attempts), Some(2));
        assert_eq!(p.max_attempts, 8);
        let plain = plan(
            &one_phase(&burst("primary", "none", "count = 1\nrate = \"1/s\"")),
            &sim(),
        );
        assert_eq!(plain.phases[0].bursts[0].body_size, DEFAULT_BODY_SIZE);
    }

    #[test]
    fn recipients_are_the_bursts_to_or_else_every_test_mailbox() {
        let s = one_phase(&format!(
            "{}{}",
            burst("primary", "none", "count = 1\nrate = \"1/s\""),
            burst(
                "primary",
                "none",
                "count = 1\nrate = \"1/s\"\nto = [\"qa2@contoso.example\", \"qa1@Contoso.Example\"]"
            )
        ));
        let p = plan(&s, &sim());
        assert_eq!(
            p.phases[0].bursts[0].recipients,
            vec!["qa1@contoso.example", "qa2@contoso.example"]
        );
        assert_eq!(
            p.phases[0].bursts[1].recipients,
            vec!["qa2@contoso.example", "qa1@Contoso.Example"]
        );
        // A simulator target without [[mailboxes]] sends to the simulated tenant's own.
        let t =
            target("name = \"s\"\nkind = \"simulator\"\n\n[senders]\nprimary = \"127.0.0.2\"\n");
        let p = plan(
            &one_phase(&burst("primary", "none", "count = 1\nrate = \"1/s\"")),
            &t,
        );
        assert_eq!(
            p.phases[0].bursts[0].recipients,
            vec![
                "qa1@contoso.example",
                "qa2@contoso.example",
                "qa3@contoso.example"
            ]
        );
        assert_eq!(p.destination.domain, "contoso.example");
    }

    #[test]
    fn a_recipient_outside_the_allowed_domains_is_refused_where_it_is_written() {
        let s = one_phase(&burst(
            "primary",
            "none",
            "count = 1\nrate = \"1/s\"\nto = [\"qa1@contoso.example\", \"x@fabrikam.example\"]",
        ));
        let errs = errors(&s, &sim());
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "recipient `x@fabrikam.example` is outside target `sim`'s allowed recipient domains (contoso.example): the guard rails refuse to send there"
        );
        let line = line_of(&s.src.text, "x@fabrikam.example");
        assert_eq!(errs[0].origin(), format!("s.toml:{line}:30"));
    }

    #[test]
    fn a_burst_with_nobody_to_send_to_is_refused() {
        let s = one_phase(&burst("primary", "none", "count = 1\nrate = \"1/s\""));
        let t = sim();
        let mut x = Expansion::new(&s, &t);
        x.mailboxes.clear();
        let p = &s.file.phases.get_ref()[0];
        let b = p.get_ref().bursts.get_ref()[0].get_ref();
        assert!(x.burst_recipients(b).is_empty());
        let msgs: Vec<&str> = x.errs.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            msgs,
            vec!["burst has no recipients: target `sim` lists no [[mailboxes]] and the burst has no `to`"]
        );
    }

    // --- expectations ---

    /// Primary sends with and without TLS, secondary with STARTTLS only.
    fn three_cells(expect: &str) -> LoadedScenario {
        one_phase(&format!(
            "{}{}{}{expect}",
            burst("primary", "starttls", "count = 1\nrate = \"1/s\""),
            burst("primary", "none", "count = 1\nrate = \"1/s\""),
            burst("secondary", "starttls", "count = 1\nrate = \"1/s\""),
        ))
    }

    fn expect(sender: &str, tls: &str, checks: &str) -> String {
        format!("\n[[phases.expect]]\nsender = \"{sender}\"\ntls = \"{tls}\"\nchecks = {checks}\n")
    }

    #[test]
    fn all_and_all_expand_to_every_cell_for_each_check() {
        let s = three_cells(&expect(
            "all",
            "all",
            "[\"accepted_rate >= 1.0\", \"throttle_rate <= 0.0\"]",
        ));
        let p = plan(&s, &sim());
        // Checks print their values normalised.
        let got: Vec<String> = p.phases[0]
            .expectations
            .iter()
            .map(|e| format!("{}/{}/{}: {}", e.phase, e.sender, e.tls, e.check))
            .collect();
        assert_eq!(
            got,
            vec![
                "p/primary/none: accepted_rate >= 1",
                "p/primary/starttls: accepted_rate >= 1",
                "p/secondary/starttls: accepted_rate >= 1",
                "p/primary/none: throttle_rate <= 0",
                "p/primary/starttls: throttle_rate <= 0",
                "p/secondary/starttls: throttle_rate <= 0",
            ]
        );
    }

    #[test]
    fn a_role_or_a_tls_mode_narrows_the_cells() {
        let s = three_cells(&format!(
            "{}{}",
            expect("primary", "all", "[\"accepted_rate >= 1.0\"]"),
            expect("all", "starttls", "[\"throttle_rate <= 0.0\"]")
        ));
        let p = plan(&s, &sim());
        let got: Vec<String> = p.phases[0]
            .expectations
            .iter()
            .map(|e| format!("{}/{}", e.sender, e.tls))
            .collect();
        assert_eq!(
            got,
            vec![
                "primary/none",
                "primary/starttls",
                "primary/starttls",
                "secondary/starttls"
            ]
        );
    }

    #[test]
    fn an_expectation_with_an_unknown_tls_mode_or_role_is_refused() {
        let s = three_cells(&format!(
            "{}{}",
            expect("primary", "tls13", "[\"accepted_rate >= 1.0\"]"),
            expect("tertiary", "all", "[\"accepted_rate >= 1.0\"]")
        ));
        assert_eq!(
            messages(&s, &sim()),
            vec![
                "unknown TLS mode `tls13`: expected one of none, starttls, starttls-opportunistic, implicit, or all",
                "sender role `tertiary` is not defined by target `sim`; its roles are: primary, secondary (or `all`)",
            ]
        );
    }

    #[test]
    fn an_expectation_of_a_cell_nobody_sends_points_at_what_is_missing() {
        let text_tls = expect("secondary", "none", "[\"accepted_rate >= 1.0\"]");
        let s = three_cells(&text_tls);
        let errs = errors(&s, &sim());
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "no burst in phase `p` sends from `secondary` with tls `none`, so this expectation names a cell that does not exist; the phase's cells are: primary/none, primary/starttls, secondary/starttls"
        );
        // The last `tls = "none"` is the expectation's.
        let lines: Vec<&str> = s.src.text.lines().collect();
        let tls_line = lines
            .iter()
            .rposition(|l| *l == "tls = \"none\"")
            .expect("tls")
            + 1;
        assert_eq!(errs[0].location.expect("a position").line, tls_line);

        // A role the target has but the phase does not send from: the sender is at fault.
        let s = one_phase(&format!(
            "{}{}",
            burst("primary", "starttls", "count = 1\nrate = \"1/s\""),
            expect("secondary", "starttls", "[\"accepted_rate >= 1.0\"]")
        ));
        let errs = errors(&s, &sim());
        assert_eq!(
            errs[0].message,
            "no burst in phase `p` sends from `secondary`, so this expectation names a cell that does not exist; the phase's cells are: primary/starttls"
        );
        assert_eq!(
            errs[0].location.expect("a position").line,
            line_of(&s.src.text, "sender = \"secondary\"")
        );

        // With `all` in it, the whole expectation matches nothing.
        let s = three_cells(&expect("all", "implicit", "[\"accepted_rate >= 1.0\"]"));
        assert_eq!(
            messages(&s, &sim()),
            vec!["this expectation matches no cell of phase `p`; the phase's cells are: primary/none, primary/starttls, secondary/starttls"]
        );
    }

    #[test]
    fn observed_metrics_need_imap_and_tls_version_needs_tls() {
        let s = one_phase(&format!(
            "{}{}",
            burst("primary", "starttls", "count = 1\nrate = \"1/s\""),
            expect(
                "all",
                "all",
                "[\"delivered_rate >= 1.0\", \"accepted_rate >= 1.0\"]"
            )
        ));
        let p = build(&s, &target(TENANT));
        assert_eq!(
            p.expect_err("refused").0[0].message,
            "`delivered_rate` needs IMAP observation, but target `t` has no [imap] settings"
        );
        assert_eq!(plan(&s, &sim()).phases[0].expectations.len(), 2);

        let s = three_cells(&expect("primary", "all", "['tls_version >= \"1.2\"']"));
        assert_eq!(
            messages(&s, &sim()),
            vec!["`tls_version` cannot hold for a `tls = \"none\"` cell: it never negotiates TLS"]
        );
        let s = three_cells(&expect("all", "starttls", "['tls_version >= \"1.2\"']"));
        assert_eq!(plan(&s, &sim()).phases[0].expectations.len(), 2);
    }

    // --- the destination ---

    #[test]
    fn the_destination_is_the_simulator_or_the_tenants_mx() {
        let p = plan(
            &one_phase(&burst("primary", "none", "count = 1\nrate = \"1/s\"")),
            &sim(),
        );
        assert_eq!(p.destination.port, 0);
        assert_eq!(
            p.destination.mx,
            "embedded simulator (loopback, ephemeral port)"
        );
        let s = one_phase(&burst("primary", "none", "count = 1\nrate = \"1/s\""));
        let p = plan(&s, &target(TENANT));
        assert_eq!(
            (p.destination.mx.as_str(), p.destination.port),
            ("MX of contoso.example, resolved from DNS", 25)
        );
        let t = target(&TENANT.replace(
            "domain = \"contoso.example\"",
            "domain = \"contoso.example\"\nmx = \"mx.example\"\nport = 2525",
        ));
        let p = plan(&s, &t);
        assert_eq!(
            (p.destination.mx.as_str(), p.destination.port),
            ("mx.example", 2525)
        );
    }
}
