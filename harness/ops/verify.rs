//! `mailharness verify`: after an IP change, can each sending IP still deliver?
//!
//! Per IP: is it bound here; the MX (resolved once, shared); connect, EHLO and STARTTLS with the
//! TLS version, cipher and certificate; one message with TLS and one without, both classified by
//! the knowledge base; and, where the target has mailboxes, where each landed (over IMAP).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{reference_id, senders, OpsError};
use crate::endpoint::{tenant_endpoint, Endpoint};
use crate::observe::{self, ImapTarget, ObserveOptions};
use crate::record::{AttemptRecord, CertVerification, ObservationStatus, TlsInfo};
use crate::reply;
use crate::scenario::LoadedTarget;
use crate::send::{self, OneShot, SendContext};
use crate::vocab::{OutcomeClass, TlsMode};

/// Version of the verification JSON; bump on incompatible change.
pub const VERIFY_SCHEMA: u32 = 1;
/// A certificate expiring within this many days is flagged.
const EXPIRY_WARN_DAYS: i64 = 14;
/// Size of each verification message body.
const BODY_SIZE: u64 = 512;

/// How `verify` runs.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The nameserver for MX lookups (`--dns`), overriding the target's `[smtp] dns`.
    pub dns: Option<SocketAddr>,
    /// Skip IMAP observation even when the target has mailboxes.
    pub no_observe: bool,
    /// A previous verification to compare with.
    pub previous: Option<VerifyReport>,
}

/// The explanation of a refused message, as stored in the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    /// Knowledge-base family id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Title ("IP throttling …", or "Unknown").
    pub title: String,
    /// What it means.
    pub meaning: String,
    /// Whether a connector helps, in words.
    pub connector: String,
    /// What to do.
    pub action: String,
}

/// One verification message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendCheck {
    /// `starttls` or `none`.
    pub tls_mode: TlsMode,
    /// The outcome class, as the send engine records it.
    pub outcome: OutcomeClass,
    /// The deciding reply (`451 4.7.500 …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The AS/S token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Why it failed without a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The knowledge base's explanation, for anything not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Brief>,
    /// The Message-ID sent.
    pub message_id: String,
    /// Where it was found over IMAP (`INBOX`, the Junk folder's name), `missing`, or absent when
    /// not observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

impl SendCheck {
    /// Whether the message was accepted (and, when observed, found).
    pub fn ok(&self) -> bool {
        self.outcome == OutcomeClass::Accepted && self.observed.as_deref() != Some("missing")
    }

    /// Whether plain text was refused for lack of TLS: what an inbound connector with
    /// `-RequireTls $true` does ("Reject email messages if they aren't sent over TLS", reference
    /// "Inbound connectors"). That is the configuration `connector` recommends, so it passes.
    pub fn refused_for_lack_of_tls(&self) -> bool {
        self.tls_mode == TlsMode::None && self.outcome == OutcomeClass::TlsRequired
    }
}

/// Everything found out about one sending IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpResult {
    /// Sender role.
    pub role: String,
    /// The IP.
    pub ip: Ipv4Addr,
    /// Whether it can be bound on this host.
    pub bound: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_error: Option<String>,
    /// Whether an MX host was resolved to connect to.
    pub mx_resolved: bool,
    /// What STARTTLS negotiated (from the TLS message's session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// The message sent with STARTTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_tls: Option<SendCheck>,
    /// The message sent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_tls: Option<SendCheck>,
    /// Certificate or observation warnings that do not fail the IP.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Whether this IP can deliver.
    pub passed: bool,
}

impl IpResult {
    /// Whether the IP can deliver: bound here, the TLS message passed, and the plain one passed
    /// or was refused for lack of TLS.
    fn can_deliver(&self) -> bool {
        self.bound
            && self.with_tls.as_ref().is_some_and(SendCheck::ok)
            && self
                .without_tls
                .as_ref()
                .is_some_and(|c| c.ok() || c.refused_for_lack_of_tls())
    }
}

/// One MX host as found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MxView {
    /// Preference.
    pub preference: u16,
    /// Host name.
    pub host: String,
    /// IPv4 addresses.
    pub ipv4: Vec<Ipv4Addr>,
}

/// A whole verification: the JSON `--json` prints and `--previous` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Schema version.
    pub schema: u32,
    /// The reference id in every message (`X-Harness-Run`).
    pub run_id: String,
    /// Target name.
    pub target: String,
    /// Recipient domain.
    pub domain: String,
    /// The mailbox the messages went to.
    pub recipient: String,
    /// When it ran.
    pub checked_at: DateTime<Utc>,
    /// The MX hosts found (empty when the target names its MX).
    pub mx: Vec<MxView>,
    /// The MX host connected to.
    pub mx_host: String,
    /// `ip:port` connected to.
    pub destination: String,
    /// Whether delivery was observed over IMAP.
    pub observed: bool,
    /// One entry per sending IP.
    pub ips: Vec<IpResult>,
    /// Whether every IP passed.
    pub passed: bool,
    /// What changed since `--previous` (empty without one).
    #[serde(default)]
    pub changes: Vec<String>,
}

fn brief(r: &AttemptRecord) -> Option<Brief> {
    if r.outcome == OutcomeClass::Accepted {
        return None;
    }
    let rep = r.reply.as_ref()?;
    let ctx = reply::Context {
        session_tls: r.tls.is_some(),
        host: None,
        recipient: r.recipients.first().map(String::as_str),
        assume: Some(reply::Origin::Microsoft),
        at_mx: true,
    };
    let e = reply::explain(&reply::Status::from(rep), &ctx);
    Some(Brief {
        family: e.family,
        title: e.title,
        meaning: e.meaning,
        connector: e.connector_text,
        action: e.ops,
    })
}

fn check_of(r: &AttemptRecord) -> SendCheck {
    SendCheck {
        tls_mode: r.tls_mode,
        outcome: r.outcome,
        reply: r.reply.as_ref().map(|d| {
            let mut s = d.code.to_string();
            if let Some(e) = &d.enhanced {
                let _ = write!(s, " {e}");
            }
            if !d.text.is_empty() {
                let _ = write!(s, " {}", d.text);
            }
            s
        }),
        token: r.token.clone(),
        error: r.error.clone(),
        explanation: brief(r),
        message_id: r.message_id.clone(),
        observed: None,
    }
}

/// Certificate warnings: not verified, or expiring soon.
fn tls_warnings(tls: &TlsInfo, now: DateTime<Utc>) -> Vec<String> {
    let mut w = Vec::new();
    match &tls.verification {
        CertVerification::Valid => {}
        CertVerification::Expired => w.push("the MX certificate has expired".into()),
        CertVerification::NameMismatch => {
            w.push("the MX certificate does not name the MX host".into())
        }
        CertVerification::UnknownIssuer => {
            w.push("the MX certificate's issuer is not trusted here".into())
        }
        CertVerification::Invalid(m) => w.push(format!("the MX certificate is invalid: {m}")),
    }
    if let Some(na) = tls.peer_not_after {
        let days = (na - now).num_days();
        if (0..EXPIRY_WARN_DAYS).contains(&days) {
            w.push(format!(
                "the MX certificate expires in {days} day(s), on {na}"
            ));
        }
    }
    w
}

/// Runs the verification against a real tenant (the target's `[smtp]`), or the simulator when the
/// target is one (started in-process for the duration).
pub async fn verify(t: &LoadedTarget, opts: &VerifyOptions) -> Result<VerifyReport, OpsError> {
    if super::is_simulator(t) {
        return verify_on_simulator(t, opts).await;
    }
    let ep = tenant_endpoint(t, opts.dns).await?;
    let imap = match (&t.file.imap, opts.no_observe) {
        (Some(_), false) => {
            Some(
                ImapTarget::from_target(&t.file).map_err(|source| OpsError::Imap {
                    path: t.src.path.clone(),
                    source,
                })?,
            )
        }
        _ => None,
    };
    verify_with(t, &ep, imap.as_ref(), opts).await
}

/// Verifies against the embedded simulator, started in-process for the duration, and reads its
/// mailboxes through its own IMAP server (the generated password lives in memory only).
async fn verify_on_simulator(
    t: &LoadedTarget,
    opts: &VerifyOptions,
) -> Result<VerifyReport, OpsError> {
    let dir = tempdir()?;
    let mut tenant = t.file.tenant();
    observe::sim::provision_sim_password(&mut tenant);
    let domain = tenant.accepted_domains.first().cloned().unwrap_or_default();
    let sim = crate::sim::start(tenant, &dir)
        .await
        .map_err(OpsError::Simulator)?;
    let r = async {
        let ep = Endpoint::simulator(&sim, &domain)?;
        let imap = match sim.imap_addr() {
            Some(addr) if !opts.no_observe => {
                let ca = dir.join("tls").join("ca.pem");
                let ca = sim.ca_cert_pem().is_some().then_some(ca.as_path());
                Some(
                    observe::sim::sim_imap_target(addr, ca, sim.config())
                        .map_err(OpsError::Observe)?,
                )
            }
            _ => None,
        };
        // Accepted mail reaches the Maildir through the simulator's delivery queue.
        verify_with(t, &ep, imap.as_ref(), opts).await
    }
    .await;
    let _ = sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// A private state directory for an in-process simulator.
pub(crate) fn tempdir() -> Result<std::path::PathBuf, OpsError> {
    let d = std::env::temp_dir().join(format!(
        "mailharness-ops-{}",
        uuid::Uuid::new_v4().as_simple()
    ));
    match std::fs::create_dir_all(&d) {
        Ok(()) => Ok(d),
        Err(source) => Err(OpsError::Create { path: d, source }),
    }
}

/// Runs the verification against an already resolved endpoint, reading the mailboxes through
/// `imap` when given.
pub async fn verify_with(
    t: &LoadedTarget,
    ep: &Endpoint,
    imap: Option<&ImapTarget>,
    opts: &VerifyOptions,
) -> Result<VerifyReport, OpsError> {
    let path = &t.src.path;
    let recipient = t
        .file
        .mailboxes
        .first()
        .map(|m| m.get_ref().address.get_ref().clone())
        .ok_or_else(|| OpsError::NoMailbox { path: path.clone() })?;
    super::check_guard(t, &recipient)?;
    let run_id = reference_id("verify");
    let ctx = ep.context(&run_id)?;
    let now = Utc::now();
    let mut results = Vec::new();
    let mut attempts = Vec::new();
    for (role, ip) in senders(t) {
        results.push(check_ip(&ctx, role, ip, &recipient, now, &mut attempts).await);
    }
    let observed = match imap {
        Some(imap) if attempts.iter().any(|a| a.outcome == OutcomeClass::Accepted) => {
            let oopts = ObserveOptions::from_target(&t.file);
            let obs = observe::observe(imap, &run_id, &attempts, &oopts)
                .await
                .map_err(OpsError::Observe)?;
            note_observations(&obs, &attempts, &mut results);
            true
        }
        _ => false,
    };
    for res in &mut results {
        res.passed = res.can_deliver();
    }
    let mut report = VerifyReport {
        schema: VERIFY_SCHEMA,
        run_id,
        target: t.file.name.get_ref().clone(),
        domain: ep.domain.clone(),
        recipient,
        checked_at: now,
        mx: mx_views(ep),
        mx_host: ep.mx_host.clone(),
        destination: ep.destination.to_string(),
        observed,
        passed: results.iter().all(|r| r.passed),
        ips: results,
        changes: Vec::new(),
    };
    if let Some(prev) = &opts.previous {
        report.changes = compare(prev, &report);
    }
    Ok(report)
}

/// The MX hosts the endpoint found, as the report shows them.
fn mx_views(ep: &Endpoint) -> Vec<MxView> {
    ep.mx
        .iter()
        .map(|(p, h, ips)| MxView {
            preference: *p,
            host: h.clone(),
            ipv4: ips.clone(),
        })
        .collect()
}

/// One sending IP: whether it is bound here, then one message with STARTTLS and one without
/// (their records are added to `attempts`). `passed` is decided later, after observation.
async fn check_ip(
    ctx: &SendContext,
    role: String,
    ip: Ipv4Addr,
    recipient: &str,
    now: DateTime<Utc>,
    attempts: &mut Vec<AttemptRecord>,
) -> IpResult {
    let mut res = IpResult {
        role,
        ip,
        bound: true,
        bind_error: None,
        mx_resolved: true,
        tls: None,
        with_tls: None,
        without_tls: None,
        warnings: Vec::new(),
        passed: false,
    };
    if let Err(e) = send::check_source_ip(ip) {
        res.bound = false;
        res.bind_error = Some(e.to_string());
        return res;
    }
    // One message per TLS mode, each on its own connection, like any sending MTA would.
    for (i, mode) in [TlsMode::Starttls, TlsMode::None].into_iter().enumerate() {
        let shot = OneShot {
            source_ip: ip,
            sender: res.role.clone(),
            tls_mode: mode,
            recipients: vec![recipient.to_string()],
            phase: "verify".into(),
            burst: "verify".into(),
            index: i as u32,
            body_size: BODY_SIZE,
            text: None,
        };
        let rec = send::send_one(ctx, &shot).await;
        if mode == TlsMode::Starttls {
            res.tls = rec.tls.clone();
            res.with_tls = Some(check_of(&rec));
        } else {
            res.without_tls = Some(check_of(&rec));
        }
        attempts.push(rec);
    }
    if let Some(tls) = &res.tls {
        res.warnings.extend(tls_warnings(tls, now));
    }
    res
}

/// Writes where each message was found (folder, or `missing`) into its check, and the
/// observer's warnings into every IP's.
fn note_observations(
    obs: &observe::Observation,
    attempts: &[AttemptRecord],
    results: &mut [IpResult],
) {
    let mut by_attempt: BTreeMap<String, String> = BTreeMap::new();
    for o in &obs.records {
        let Some(id) = &o.attempt_id else { continue };
        let v = match o.status {
            ObservationStatus::Found => o.folder_name.clone().unwrap_or_else(|| "found".into()),
            ObservationStatus::Missing => "missing".into(),
            ObservationStatus::Anomaly => continue,
        };
        by_attempt.insert(id.clone(), v);
    }
    for res in results.iter_mut() {
        for c in [&mut res.with_tls, &mut res.without_tls]
            .into_iter()
            .flatten()
        {
            let id = attempts
                .iter()
                .find(|a| a.message_id == c.message_id)
                .map(|a| a.attempt_id.clone());
            if let Some(v) = id.and_then(|id| by_attempt.get(&id)) {
                c.observed = Some(v.clone());
            }
        }
    }
    for w in &obs.summary.warnings {
        for res in results.iter_mut() {
            res.warnings.push(format!("observation: {w}"));
        }
    }
}

/// Reads a previous verification's JSON (`--previous`).
pub fn read_previous(path: &std::path::Path) -> Result<VerifyReport, OpsError> {
    let text = std::fs::read_to_string(path).map_err(|source| OpsError::PreviousUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let r: VerifyReport =
        serde_json::from_str(&text).map_err(|source| OpsError::PreviousNotAReport {
            path: path.to_path_buf(),
            source,
        })?;
    if r.schema != VERIFY_SCHEMA {
        return Err(OpsError::PreviousSchema {
            path: path.to_path_buf(),
            schema: r.schema,
            expected: VERIFY_SCHEMA,
        });
    }
    Ok(r)
}

fn outcome_of(c: &Option<SendCheck>) -> String {
    match c {
        Some(c) => match &c.observed {
            Some(o) => format!("{} ({o})", c.outcome),
            None => c.outcome.to_string(),
        },
        None => "not sent".into(),
    }
}

fn outcome_only(c: &Option<SendCheck>) -> String {
    c.as_ref()
        .map(|c| c.outcome.to_string())
        .unwrap_or_else(|| "not sent".into())
}

/// What changed between two verifications, one sentence each.
pub fn compare(prev: &VerifyReport, now: &VerifyReport) -> Vec<String> {
    let mut out = Vec::new();
    if prev.mx_host != now.mx_host || prev.destination != now.destination {
        out.push(format!(
            "MX: {} ({}) -> {} ({})",
            prev.mx_host, prev.destination, now.mx_host, now.destination
        ));
    }
    for n in &now.ips {
        match prev.ips.iter().find(|p| p.ip == n.ip) {
            None => out.push(format!(
                "{} {}: new IP ({})",
                n.role,
                n.ip,
                if n.passed { "passes" } else { "FAILS" }
            )),
            Some(p) => compare_ip(p, n, &mut out),
        }
    }
    for p in &prev.ips {
        if !now.ips.iter().any(|n| n.ip == p.ip) {
            out.push(format!(
                "{} {}: no longer a sending IP (remove it from the connector: `mailharness connector --current …`)",
                p.role, p.ip
            ));
        }
    }
    if out.is_empty() {
        out.push("nothing changed".into());
    }
    out
}

/// What changed for one IP in both verifications: role, verdict, each message, TLS, binding.
fn compare_ip(p: &IpResult, n: &IpResult, out: &mut Vec<String>) {
    if p.role != n.role {
        out.push(format!("{}: role {} -> {}", n.ip, p.role, n.role));
    }
    let verdict = |passed: bool| if passed { "PASS" } else { "FAIL" };
    if p.passed != n.passed {
        out.push(format!(
            "{} {}: {} -> {}",
            n.role,
            n.ip,
            verdict(p.passed),
            verdict(n.passed)
        ));
    }
    for (label, a, b) in [
        ("with TLS", &p.with_tls, &n.with_tls),
        ("without TLS", &p.without_tls, &n.without_tls),
    ] {
        // Observation is compared only when both runs observed.
        let both = a.as_ref().is_some_and(|c| c.observed.is_some())
            && b.as_ref().is_some_and(|c| c.observed.is_some());
        let (x, y) = if both {
            (outcome_of(a), outcome_of(b))
        } else {
            (outcome_only(a), outcome_only(b))
        };
        if x != y {
            out.push(format!("{} {} {label}: {x} -> {y}", n.role, n.ip));
        }
    }
    let v = |t: &Option<TlsInfo>| {
        t.as_ref()
            .map(|t| format!("TLS {} {}", t.version, t.cipher))
            .unwrap_or_else(|| "no TLS".into())
    };
    if v(&p.tls) != v(&n.tls) {
        out.push(format!(
            "{} {}: {} -> {}",
            n.role,
            n.ip,
            v(&p.tls),
            v(&n.tls)
        ));
    }
    if p.bound != n.bound {
        out.push(format!(
            "{} {}: {} here",
            n.role,
            n.ip,
            if n.bound {
                "now bound"
            } else {
                "no longer bound"
            }
        ));
    }
}

fn cell_send(c: &Option<SendCheck>) -> String {
    let Some(c) = c else {
        return "-".into();
    };
    let mut s = c.outcome.to_string();
    if let Some(r) = &c.reply {
        // The code and enhanced code are enough in the table; the explanation follows below.
        let short: Vec<&str> = r.split_whitespace().take(2).collect();
        let _ = write!(s, " {}", short.join(" "));
    }
    if let Some(t) = &c.token {
        let _ = write!(s, " {t}");
    }
    s
}

fn cell_seen(r: &IpResult, observed: bool) -> String {
    if !observed {
        return "not observed".into();
    }
    let f = |c: &Option<SendCheck>| {
        c.as_ref()
            .and_then(|c| c.observed.clone())
            .unwrap_or_else(|| "-".into())
    };
    format!("{} / {}", f(&r.with_tls), f(&r.without_tls))
}

fn cell_tls(r: &IpResult) -> String {
    match &r.tls {
        Some(t) => {
            let v = match &t.verification {
                CertVerification::Valid => "valid".to_string(),
                CertVerification::Expired => "EXPIRED".into(),
                CertVerification::NameMismatch => "NAME-MISMATCH".into(),
                CertVerification::UnknownIssuer => "UNKNOWN-ISSUER".into(),
                CertVerification::Invalid(_) => "INVALID".into(),
            };
            let exp = t
                .peer_not_after
                .map(|d| format!(" until {}", d.format("%Y-%m-%d")))
                .unwrap_or_default();
            format!("TLS {} {} cert {v}{exp}", t.version, t.cipher)
        }
        None if r.bound => "no TLS".into(),
        None => "-".into(),
    }
}

impl VerifyReport {
    /// One table a person can read, then the explanations of failures and what changed.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let mx = if self.mx.is_empty() {
            self.mx_host.clone()
        } else {
            self.mx
                .iter()
                .map(|m| format!("{} (pref {})", m.host, m.preference))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "verify {} ({}): MX {mx} -> {} ; to {} ; reference {}",
            self.target, self.domain, self.destination, self.recipient, self.run_id
        );
        self.render_table(&mut o);
        for r in &self.ips {
            render_ip_details(&mut o, r);
        }
        if !self.changes.is_empty() {
            let _ = writeln!(o, "\nChanges since the previous verification:");
            for c in &self.changes {
                let _ = writeln!(o, "  {c}");
            }
        }
        let failed = self.ips.iter().filter(|r| !r.passed).count();
        let _ = writeln!(
            o,
            "\n{}: {} of {} sending IP(s) can deliver",
            if self.passed { "PASS" } else { "FAIL" },
            self.ips.len() - failed,
            self.ips.len()
        );
        o
    }

    /// The table: one row per IP, columns as wide as their widest cell.
    fn render_table(&self, o: &mut String) {
        let head = [
            "ROLE",
            "IP",
            "BOUND",
            "MX",
            "STARTTLS",
            "WITH TLS",
            "WITHOUT TLS",
            "MAILBOX (tls/plain)",
            "RESULT",
        ];
        let rows: Vec<[String; 9]> = self.ips.iter().map(|r| self.row(r)).collect();
        let mut w = head.map(str::len);
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    let _ = write!(s, "{c:<width$}  ", width = w[i]);
                }
            }
            s
        };
        let _ = writeln!(o, "{}", line(head.iter().map(|s| s.to_string()).collect()));
        for r in rows {
            let _ = writeln!(o, "{}", line(r.to_vec()));
        }
    }

    /// One IP's table row.
    fn row(&self, r: &IpResult) -> [String; 9] {
        [
            r.role.clone(),
            r.ip.to_string(),
            if r.bound { "yes".into() } else { "NO".into() },
            if r.mx_resolved {
                "ok".into()
            } else {
                "-".into()
            },
            cell_tls(r),
            cell_send(&r.with_tls),
            cell_send(&r.without_tls),
            cell_seen(r, self.observed),
            if r.passed {
                "PASS".into()
            } else {
                "FAIL".into()
            },
        ]
    }
}

/// Below the table: why an IP is not bound, or each message that did not pass and what its
/// reply means; then the IP's warnings.
fn render_ip_details(o: &mut String, r: &IpResult) {
    if !r.bound {
        let _ = writeln!(
            o,
            "\n{} {} FAILS: not bound on this host: {}",
            r.role,
            r.ip,
            r.bind_error.as_deref().unwrap_or("")
        );
        return;
    }
    for c in [&r.with_tls, &r.without_tls].into_iter().flatten() {
        if c.ok() {
            continue;
        }
        if c.refused_for_lack_of_tls() {
            let _ = writeln!(
                o,
                "\n{} {} {}: refused for lack of TLS, as a connector that requires TLS should (not a failure)",
                r.role,
                r.ip,
                mode_words(c.tls_mode)
            );
            continue;
        }
        render_failed_send(o, r, c);
    }
    for w in &r.warnings {
        let _ = writeln!(o, "  warning ({} {}): {w}", r.role, r.ip);
    }
}

/// A message that did not pass: its outcome, reply or error, and the explanation.
fn render_failed_send(o: &mut String, r: &IpResult, c: &SendCheck) {
    let _ = writeln!(
        o,
        "\n{} {} {}: {}",
        r.role,
        r.ip,
        mode_words(c.tls_mode),
        c.outcome
    );
    if let Some(rep) = &c.reply {
        let _ = writeln!(o, "  reply:      {rep}");
    }
    if let Some(e) = &c.error {
        let _ = writeln!(o, "  error:      {e}");
    }
    if c.observed.as_deref() == Some("missing") {
        let _ = writeln!(
            o,
            "  accepted, but not found in the mailbox by the deadline"
        );
    }
    if let Some(b) = &c.explanation {
        let _ = writeln!(o, "  family:     {}", b.title);
        let _ = writeln!(o, "  meaning:    {}", b.meaning);
        let _ = writeln!(o, "  connector:  {}", b.connector);
        let _ = writeln!(o, "  what to do: {}", b.action);
    }
}

fn mode_words(m: TlsMode) -> &'static str {
    match m {
        TlsMode::None => "without TLS",
        _ => "with TLS",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(mode: TlsMode, outcome: OutcomeClass, observed: Option<&str>) -> SendCheck {
        SendCheck {
            tls_mode: mode,
            outcome,
            reply: None,
            token: None,
            error: None,
            explanation: None,
            message_id: format!("<{mode}@x>"),
            observed: observed.map(str::to_string),
        }
    }

    fn ip(with: OutcomeClass, without: OutcomeClass) -> IpResult {
        IpResult {
            role: "primary".into(),
            ip: Ipv4Addr::new(192, 0, 2, 1),
            bound: true,
            bind_error: None,
            mx_resolved: true,
            tls: None,
            with_tls: Some(sent(TlsMode::Starttls, with, None)),
            without_tls: Some(sent(TlsMode::None, without, None)),
            warnings: Vec::new(),
            passed: true,
        }
    }

    #[test]
    fn an_ip_delivers_when_tls_passes_and_plain_passes_or_is_refused_for_lack_of_tls() {
        use OutcomeClass::*;
        assert!(ip(Accepted, Accepted).can_deliver());
        assert!(ip(Accepted, TlsRequired).can_deliver());
        assert!(!ip(Accepted, Throttled).can_deliver());
        assert!(!ip(TlsRequired, Accepted).can_deliver());
        let mut missing = ip(Accepted, Accepted);
        missing.with_tls.as_mut().unwrap().observed = Some("missing".into());
        assert!(!missing.can_deliver());
        let mut unbound = ip(Accepted, Accepted);
        unbound.bound = false;
        assert!(!unbound.can_deliver());
    }

    #[test]
    fn compare_ip_names_each_change_and_compares_folders_only_when_both_observed() {
        use OutcomeClass::*;
        let p = ip(Accepted, Accepted);
        let mut out = Vec::new();
        compare_ip(&p, &p.clone(), &mut out);
        assert!(out.is_empty(), "{out:?}");

        let mut n = ip(Accepted, TlsRequired);
        n.role = "secondary".into();
        n.passed = false;
        n.bound = false;
        n.with_tls.as_mut().unwrap().observed = Some("Junk Email".into());
        compare_ip(&p, &n, &mut out);
        assert_eq!(
            out,
            vec![
                "192.0.2.1: role primary -> secondary",
                "secondary 192.0.2.1: PASS -> FAIL",
                "secondary 192.0.2.1 without TLS: accepted -> tls-required",
                "secondary 192.0.2.1: no longer bound here",
            ]
        );
        let mut p2 = p.clone();
        p2.with_tls.as_mut().unwrap().observed = Some("INBOX".into());
        let mut out = Vec::new();
        compare_ip(&p2, &n, &mut out);
        assert!(
            out.contains(
                &"secondary 192.0.2.1 with TLS: accepted (INBOX) -> accepted (Junk Email)"
                    .to_string()
            ),
            "{out:?}"
        );
    }

    #[test]
    fn details_explain_failures_and_excuse_a_tls_requiring_refusal() {
        use OutcomeClass::*;
        let mut r = ip(Throttled, TlsRequired);
        r.with_tls.as_mut().unwrap().reply = Some("451 4.7.500 busy".into());
        r.warnings.push("w".into());
        let mut o = String::new();
        render_ip_details(&mut o, &r);
        assert_eq!(
            o,
            "\nprimary 192.0.2.1 with TLS: throttled\n  reply:      451 4.7.500 busy\n\nprimary 192.0.2.1 without TLS: refused for lack of TLS, as a connector that requires TLS should (not a failure)\n  warning (primary 192.0.2.1): w\n"
        );
        r.bound = false;
        r.bind_error = Some("EADDRNOTAVAIL".into());
        let mut o = String::new();
        render_ip_details(&mut o, &r);
        assert_eq!(
            o,
            "\nprimary 192.0.2.1 FAILS: not bound on this host: EADDRNOTAVAIL\n"
        );
    }
}
