//! Tenant policy: IP throttle buckets, inbound connectors with activation delay, TLS rule,
//! accepted domains and mailboxes.
//!
//! Everything here is a pure function of its inputs and an explicit `now: Instant`, so tests
//! drive time by hand and nothing depends on the wall clock or on scheduling.
//!
//! The order of checks at RCPT TO, and the reply for each (reference, "Reply codes seen from EOP"):
//! 1. more than `max_recipients` accepted → `452 4.5.3 Too many recipients (AS780090)`
//! 2. banned sending IP → `550 5.7.606 Access denied, banned sending IP [ip]. ... (AS16012609)`
//! 3. reputation-limited IP → `451 4.7.650 ... rate limited due to IP reputation ... (S775)` (not a connector matter)
//! 4. recipient domain not hosted → `550 5.7.64 TenantAttribution; Relay Access Denied`
//! 5. a restricting connector applies and the IP is not in it → `550 5.7.51 TenantInboundAttribution; ...`
//! 6. a matching connector requires TLS and the session is plain → the configured TLS-required reply
//! 7. unknown mailbox → `550 5.4.1 Recipient address rejected: Access denied. AS(201806281)` (DBEB)
//! 8. no matching connector → the source IP's token bucket; empty → `451 4.7.500 Server busy. ... (AS761)`
//!
//! Token accounting: one token per *message*, taken at the first recipient of a transaction that
//! reaches step 8. Later recipients of the same transaction ride on it. A token is not returned
//! if the client then abandons the transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::{ConnectorPatch, ConnectorSpec, TenantConfig, ThrottleConfig};
use super::reply::{self as replies, rfc3339_ms};
use crate::reply::Reply;

/// What happened to a transaction or a recipient, as recorded in the message trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Accepted (recipient) or queued and delivered (transaction).
    Accepted,
    /// IP throttling, 451 4.7.500.
    Throttled,
    /// Reputation rate limit, 451 4.7.650.
    RateLimited,
    /// A connector requires TLS and the session was plain text.
    TlsRequired,
    /// A permanent rejection (5xx).
    Rejected,
    /// A temporary refusal other than throttling (4xx).
    Deferred,
    /// The client ended the transaction before it completed (RSET, QUIT, new EHLO, disconnect).
    Abandoned,
}

/// The policy rule that decided, for the trace's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// More than `max_recipients`.
    TooManyRecipients,
    /// On the banned-IP list.
    BannedIp,
    /// On the reputation-limited list.
    IpReputation,
    /// The recipient domain is not an accepted domain.
    TenantAttribution,
    /// A restricting connector exists and the IP is not in it.
    ConnectorRestriction,
    /// The matching connector requires TLS.
    ConnectorRequiresTls,
    /// The mailbox does not exist.
    RecipientNotFound,
    /// The source IP's bucket is empty.
    IpThrottle,
    /// Accepted: a connector matched, throttling bypassed.
    ConnectorMatched,
    /// Accepted: no connector, a throttle token was taken for this message.
    ThrottleTokenTaken,
    /// Accepted: no connector, the message already holds a token.
    ThrottleTokenHeld,
    /// Accepted: throttling is disabled.
    ThrottleDisabled,
    /// The message exceeded the size limit.
    MessageTooLarge,
    /// Queued for delivery.
    Queued,
    /// No recipient was given or accepted before the transaction ended.
    NoRecipients,
    /// The client left during DATA.
    DataIncomplete,
}

/// The facts the policy needs about one RCPT TO.
#[derive(Debug, Clone)]
pub struct RcptInput<'a> {
    /// The connecting IP.
    pub ip: IpAddr,
    /// Whether the session runs over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// The envelope sender's domain (empty for the null sender).
    pub sender_domain: &'a str,
    /// The recipient address as given.
    pub rcpt: &'a str,
    /// Recipients already accepted in this transaction.
    pub accepted_so_far: usize,
    /// Whether this transaction already took a throttle token.
    pub token_held: bool,
}

/// The policy's answer for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct RcptVerdict {
    /// Accepted or why not.
    pub decision: Decision,
    /// The rule that decided.
    pub rule: Rule,
    /// The connector that matched this IP and sender domain, if any.
    pub connector: Option<String>,
    /// The reply to send, without the trailer.
    pub reply: Reply,
    /// Whether a throttle token was taken for this message now.
    pub took_token: bool,
}

/// Per-source-IP token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Tokens in millionths, so refill arithmetic is exact integer arithmetic.
    micro: u64,
    /// Refill remainder (micro-token-microseconds) carried to the next update.
    carry: u128,
    updated: Instant,
    empty_since: Option<Instant>,
}

/// Millionths of a token per token.
const MICRO: u64 = 1_000_000;

impl Bucket {
    /// A full bucket.
    pub fn new(cfg: &ThrottleConfig, now: Instant) -> Self {
        Bucket {
            micro: u64::from(cfg.capacity) * MICRO,
            carry: 0,
            updated: now,
            empty_since: None,
        }
    }

    fn settle(&mut self, cfg: &ThrottleConfig, now: Instant) {
        let cap = u64::from(cfg.capacity) * MICRO;
        if let Some(t) = self.empty_since {
            if now.saturating_duration_since(t) >= cfg.cooldown.0 {
                self.micro = cap;
                self.carry = 0;
                self.empty_since = None;
            }
        }
        if let Some(rate) = cfg.refill {
            // micro-tokens per second, rounded once from the configured rate.
            let per_sec = (rate.per_second() * MICRO as f64).round() as u128;
            let elapsed_us = now.saturating_duration_since(self.updated).as_micros();
            let numer = elapsed_us
                .saturating_mul(per_sec)
                .saturating_add(self.carry);
            let added = numer / u128::from(MICRO);
            self.carry = numer % u128::from(MICRO);
            let added = u64::try_from(added).unwrap_or(u64::MAX);
            self.micro = self.micro.saturating_add(added).min(cap);
            if self.micro >= MICRO {
                self.empty_since = None;
            }
        }
        if now > self.updated {
            self.updated = now;
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, cfg: &ThrottleConfig, now: Instant) -> bool {
        self.settle(cfg, now);
        if self.micro >= MICRO {
            self.micro -= MICRO;
            if self.micro < MICRO && self.empty_since.is_none() {
                self.empty_since = Some(now);
            }
            true
        } else {
            if self.empty_since.is_none() {
                self.empty_since = Some(now);
            }
            false
        }
    }

    /// Whole tokens left at `now`.
    pub fn available(&self, cfg: &ThrottleConfig, now: Instant) -> u32 {
        let mut b = self.clone();
        b.settle(cfg, now);
        u32::try_from(b.micro / MICRO).unwrap_or(u32::MAX)
    }

    /// When an empty bucket becomes full again by cool-down.
    pub fn reset_at(&self, cfg: &ThrottleConfig) -> Option<Instant> {
        self.empty_since.map(|t| t + cfg.cooldown.0)
    }
}

/// The lifecycle of a connector as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    /// Created; not in effect until `effective_at`.
    Pending,
    /// In effect.
    Active,
    /// In effect; an update takes effect at `effective_at`.
    Updating,
    /// In effect; deletion takes effect at `effective_at`.
    Deleting,
}

/// A connector as listed by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorView {
    /// The latest requested settings (the pending ones during an update).
    #[serde(flatten)]
    pub spec: ConnectorSpec,
    /// Lifecycle state.
    pub state: ConnectorState,
    /// The settings in effect now, if any differ from `spec` or the connector is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_effect: Option<ConnectorSpec>,
    /// When the pending change takes effect (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<String>,
    /// Since when the settings in effect apply (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_since: Option<String>,
}

/// Errors of connector administration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// No such connector.
    #[error("no connector named `{0}`")]
    NotFound(String),
    /// The name is taken.
    #[error("a connector named `{0}` already exists; use PUT /connectors/{{name}} to change it")]
    Conflict(String),
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

#[derive(Debug, Clone)]
struct Versioned {
    spec: ConnectorSpec,
    since: Instant,
}

#[derive(Debug, Clone)]
struct Pending {
    /// `None` means deletion.
    spec: Option<ConnectorSpec>,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Entry {
    active: Option<Versioned>,
    pending: Option<Pending>,
}

/// Maps monotonic instants to wall-clock times.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_wall: DateTime<Utc>,
}

impl Clock {
    /// A clock anchored at the current instant and wall time.
    pub fn new() -> Self {
        Clock {
            base: Instant::now(),
            base_wall: Utc::now(),
        }
    }

    /// A clock anchored at a chosen pair, for tests.
    pub fn anchored(base: Instant, base_wall: DateTime<Utc>) -> Self {
        Clock { base, base_wall }
    }

    /// The wall-clock time of `t`.
    pub fn wall(&self, t: Instant) -> DateTime<Utc> {
        let d = t.saturating_duration_since(self.base);
        let back = self.base.saturating_duration_since(t);
        let d = chrono::Duration::from_std(d).unwrap_or_default()
            - chrono::Duration::from_std(back).unwrap_or_default();
        self.base_wall + d
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A source IP's throttle state as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BucketView {
    /// The source IP.
    pub ip: IpAddr,
    /// Whole tokens left.
    pub tokens: u32,
    /// When the cool-down refills an empty bucket (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
}

/// The tenant's policy and its mutable state (buckets and connectors).
#[derive(Debug)]
pub struct Policy {
    cfg: TenantConfig,
    clock: Clock,
    domains: HashSet<String>,
    mailboxes: HashSet<String>,
    banned: HashSet<Ipv4Addr>,
    reputation: HashSet<Ipv4Addr>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    connectors: Mutex<BTreeMap<String, Entry>>,
}

/// A refusal of one recipient.
fn refused(decision: Decision, rule: Rule, reply: Reply, connector: Option<String>) -> RcptVerdict {
    RcptVerdict {
        decision,
        rule,
        connector,
        reply,
        took_token: false,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The IPv4 address connectors and lists match on (IPv4-mapped IPv6 counts as IPv4).
pub fn as_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

impl Policy {
    /// Builds the policy; connectors in `connectors.initial` are active from `now`.
    pub fn new(cfg: TenantConfig, clock: Clock, now: Instant) -> Self {
        let mut connectors = BTreeMap::new();
        for c in &cfg.connectors.initial {
            connectors.insert(
                c.name.to_ascii_lowercase(),
                Entry {
                    active: Some(Versioned {
                        spec: c.clone(),
                        since: now,
                    }),
                    pending: None,
                },
            );
        }
        Policy {
            domains: cfg.accepted_domains().into_iter().collect(),
            mailboxes: cfg.mailbox_addresses().into_iter().collect(),
            banned: cfg.banned_ips.iter().map(|s| s.0).collect(),
            reputation: cfg.reputation.limited_ips.iter().map(|s| s.0).collect(),
            buckets: Mutex::new(HashMap::new()),
            connectors: Mutex::new(connectors),
            clock,
            cfg,
        }
    }

    /// The configuration this policy enforces.
    pub fn config(&self) -> &TenantConfig {
        &self.cfg
    }

    /// The clock mapping instants to wall time.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Decides one RCPT TO, in the order of the module comment.
    pub fn evaluate_rcpt(&self, input: &RcptInput<'_>, now: Instant) -> RcptVerdict {
        let ip_text = input.ip.to_string();
        let v4 = as_v4(input.ip);
        let rcpt = input.rcpt.to_ascii_lowercase();
        if let Some((decision, rule, reply)) = self.refuse_early(input, v4, &ip_text, &rcpt) {
            return refused(decision, rule, reply, None);
        }

        let (restricting, matched) = self.connectors_for(v4, input.sender_domain, now);
        if let Some(name) = restricting {
            return refused(
                Decision::Rejected,
                Rule::ConnectorRestriction,
                replies::TENANT_INBOUND_ATTRIBUTION.reply(),
                Some(name),
            );
        }
        if let Some((name, true)) = &matched {
            if !input.tls {
                return refused(
                    Decision::TlsRequired,
                    Rule::ConnectorRequiresTls,
                    replies::tls_required(&self.cfg.connectors.tls_required_reply),
                    Some(name.clone()),
                );
            }
        }
        let connector = matched.map(|(name, _)| name);

        if !self.mailboxes.contains(&rcpt) {
            return refused(
                Decision::Rejected,
                Rule::RecipientNotFound,
                replies::RECIPIENT_NOT_FOUND.reply(),
                connector,
            );
        }
        self.accept_or_throttle(input, connector, &ip_text, now)
    }

    /// Steps 1–4: what refuses a recipient before connectors are looked at.
    fn refuse_early(
        &self,
        input: &RcptInput<'_>,
        v4: Option<Ipv4Addr>,
        ip_text: &str,
        rcpt: &str,
    ) -> Option<(Decision, Rule, Reply)> {
        if input.accepted_so_far >= self.cfg.front_end.max_recipients {
            return Some((
                Decision::Deferred,
                Rule::TooManyRecipients,
                replies::TOO_MANY_RECIPIENTS.reply(),
            ));
        }
        if v4.is_some_and(|ip| self.banned.contains(&ip)) {
            return Some((
                Decision::Rejected,
                Rule::BannedIp,
                replies::banned_ip(ip_text),
            ));
        }
        if v4.is_some_and(|ip| self.reputation.contains(&ip)) {
            return Some((
                Decision::RateLimited,
                Rule::IpReputation,
                replies::reputation_limited(ip_text, &self.cfg.reputation.s_code),
            ));
        }
        let domain = rcpt.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        if !self.domains.contains(domain) {
            return Some((
                Decision::Rejected,
                Rule::TenantAttribution,
                replies::TENANT_ATTRIBUTION.reply(),
            ));
        }
        None
    }

    /// Step 8: an existing mailbox is accepted through a matching connector, with throttling
    /// off, on the transaction's token, or on a new token from the source IP's bucket.
    fn accept_or_throttle(
        &self,
        input: &RcptInput<'_>,
        connector: Option<String>,
        ip_text: &str,
        now: Instant,
    ) -> RcptVerdict {
        let ok = |rule, took_token, connector| RcptVerdict {
            decision: Decision::Accepted,
            rule,
            connector,
            reply: replies::RECIPIENT_OK.reply(),
            took_token,
        };
        if connector.is_some() {
            return ok(Rule::ConnectorMatched, false, connector);
        }
        if !self.cfg.throttle.enabled {
            return ok(Rule::ThrottleDisabled, false, None);
        }
        if input.token_held {
            return ok(Rule::ThrottleTokenHeld, false, None);
        }
        let mut buckets = lock(&self.buckets);
        let bucket = buckets
            .entry(input.ip)
            .or_insert_with(|| Bucket::new(&self.cfg.throttle, now));
        if bucket.take(&self.cfg.throttle, now) {
            return ok(Rule::ThrottleTokenTaken, true, None);
        }
        refused(
            Decision::Throttled,
            Rule::IpThrottle,
            replies::throttled(ip_text, &self.cfg.throttle.as_code),
            None,
        )
    }

    /// The connector that matches `ip` and `sender_domain` at `now`, if any.
    pub fn matching_connector(
        &self,
        ip: IpAddr,
        sender_domain: &str,
        now: Instant,
    ) -> Option<String> {
        self.connectors_for(as_v4(ip), sender_domain, now)
            .1
            .map(|(name, _)| name)
    }

    /// (a restricting connector that excludes this IP, the name and require-TLS setting of the
    /// enabled connector matching it, one requiring TLS first). Only these are copied out: this
    /// runs per RCPT.
    fn connectors_for(
        &self,
        ip: Option<Ipv4Addr>,
        sender_domain: &str,
        now: Instant,
    ) -> (Option<String>, Option<(String, bool)>) {
        let mut map = lock(&self.connectors);
        settle(&mut map, now);
        let mut restricting = None;
        let mut matched = None;
        for e in map.values() {
            let Some(v) = &e.active else { continue };
            let c = &v.spec;
            if !c.enabled || !c.covers_sender_domain(sender_domain) {
                continue;
            }
            let inside = ip.is_some_and(|ip| c.covers_ip(ip));
            if inside {
                // Several may match: the strictest wins, so that a connector without a TLS
                // requirement never cancels one with it (a choice: the reference does not say
                // how EOP picks among overlapping connectors).
                let tls = c.require_tls == Some(true);
                if matched.as_ref().is_none_or(|(_, t)| tls && !t) {
                    matched = Some((c.name.clone(), tls));
                }
            } else if c.restrict_domains_to_ips && restricting.is_none() {
                restricting = Some(c.name.clone());
            }
        }
        (restricting, matched)
    }

    fn delay_for(&self, spec: &ConnectorSpec) -> Duration {
        spec.activation_delay
            .unwrap_or(self.cfg.connectors.activation_delay)
            .0
    }

    /// Makes `spec` the entry's pending state, due after its activation delay.
    fn schedule(&self, entry: &mut Entry, spec: ConnectorSpec, now: Instant) -> ConnectorView {
        let at = now + self.delay_for(&spec);
        entry.pending = Some(Pending {
            spec: Some(spec),
            at,
        });
        self.view(entry)
    }

    /// Creates a connector; it takes effect after its activation delay.
    pub fn create_connector(
        &self,
        spec: ConnectorSpec,
        now: Instant,
    ) -> Result<ConnectorView, ConnectorError> {
        spec.validate()
            .map_err(|(field, message)| ConnectorError::Invalid { field, message })?;
        let key = spec.name.to_ascii_lowercase();
        let mut map = lock(&self.connectors);
        settle(&mut map, now);
        if let Some(e) = map.get(&key) {
            let being_deleted = e.pending.as_ref().is_some_and(|p| p.spec.is_none());
            if !being_deleted {
                return Err(ConnectorError::Conflict(spec.name));
            }
        }
        let entry = map.entry(key).or_insert(Entry {
            active: None,
            pending: None,
        });
        Ok(self.schedule(entry, spec, now))
    }

    /// Changes a connector (`Set-InboundConnector`); it takes effect after the activation delay.
    pub fn update_connector(
        &self,
        name: &str,
        patch: &ConnectorPatch,
        now: Instant,
    ) -> Result<ConnectorView, ConnectorError> {
        let key = name.to_ascii_lowercase();
        let mut map = lock(&self.connectors);
        settle(&mut map, now);
        let entry = map
            .get_mut(&key)
            .ok_or_else(|| ConnectorError::NotFound(name.to_string()))?;
        let base = match (&entry.pending, &entry.active) {
            (Some(Pending { spec: Some(s), .. }), _) => s.clone(),
            (Some(Pending { spec: None, .. }), _) | (None, None) => {
                return Err(ConnectorError::NotFound(name.to_string()))
            }
            (None, Some(v)) => v.spec.clone(),
        };
        if let Some(n) = &patch.name {
            if !n.eq_ignore_ascii_case(&base.name) {
                return Err(ConnectorError::Invalid {
                    field: "name".into(),
                    message: format!(
                        "renaming is not supported (body says `{n}`, path says `{name}`); delete and create instead"
                    ),
                });
            }
        }
        let spec = patch.apply(&base);
        spec.validate()
            .map_err(|(field, message)| ConnectorError::Invalid { field, message })?;
        Ok(self.schedule(entry, spec, now))
    }

    /// Deletes a connector; the deletion takes effect after the activation delay.
    pub fn delete_connector(
        &self,
        name: &str,
        now: Instant,
    ) -> Result<ConnectorView, ConnectorError> {
        let key = name.to_ascii_lowercase();
        let mut map = lock(&self.connectors);
        settle(&mut map, now);
        let Some(entry) = map.get_mut(&key) else {
            return Err(ConnectorError::NotFound(name.to_string()));
        };
        let Some(active) = &entry.active else {
            // Never took effect: withdraw at once.
            let removed = map.remove(&key);
            return match removed.and_then(|e| e.pending).and_then(|p| p.spec) {
                Some(spec) => Ok(ConnectorView {
                    spec,
                    state: ConnectorState::Deleting,
                    in_effect: None,
                    effective_at: Some(rfc3339_ms(self.clock.wall(now))),
                    active_since: None,
                }),
                None => Err(ConnectorError::NotFound(name.to_string())),
            };
        };
        if matches!(&entry.pending, Some(Pending { spec: None, .. })) {
            return Err(ConnectorError::NotFound(name.to_string()));
        }
        let at = now + self.delay_for(&active.spec);
        entry.pending = Some(Pending { spec: None, at });
        Ok(self.view(entry))
    }

    /// Every connector, in name order.
    pub fn list_connectors(&self, now: Instant) -> Vec<ConnectorView> {
        let mut map = lock(&self.connectors);
        settle(&mut map, now);
        map.values().map(|e| self.view(e)).collect()
    }

    /// One connector by name (case-insensitive).
    pub fn get_connector(&self, name: &str, now: Instant) -> Option<ConnectorView> {
        let mut map = lock(&self.connectors);
        settle(&mut map, now);
        map.get(&name.to_ascii_lowercase()).map(|e| self.view(e))
    }

    fn view(&self, e: &Entry) -> ConnectorView {
        let wall = |t: Instant| rfc3339_ms(self.clock.wall(t));
        let active_since = e.active.as_ref().map(|v| wall(v.since));
        match (&e.active, &e.pending) {
            (Some(v), None) => ConnectorView {
                spec: v.spec.clone(),
                state: ConnectorState::Active,
                in_effect: None,
                effective_at: None,
                active_since,
            },
            (Some(v), Some(p)) => ConnectorView {
                spec: p.spec.clone().unwrap_or_else(|| v.spec.clone()),
                state: if p.spec.is_some() {
                    ConnectorState::Updating
                } else {
                    ConnectorState::Deleting
                },
                in_effect: p.spec.is_some().then(|| v.spec.clone()),
                effective_at: Some(wall(p.at)),
                active_since,
            },
            (None, Some(p)) => ConnectorView {
                spec: p.spec.clone().unwrap_or_else(|| ConnectorSpec {
                    name: String::new(),
                    enabled: false,
                    sender_ips: Vec::new(),
                    sender_domains: Vec::new(),
                    require_tls: None,
                    restrict_domains_to_ips: false,
                    activation_delay: None,
                }),
                state: ConnectorState::Pending,
                in_effect: None,
                effective_at: Some(wall(p.at)),
                active_since: None,
            },
            (None, None) => ConnectorView {
                spec: ConnectorSpec {
                    name: String::new(),
                    enabled: false,
                    sender_ips: Vec::new(),
                    sender_domains: Vec::new(),
                    require_tls: None,
                    restrict_domains_to_ips: false,
                    activation_delay: None,
                },
                state: ConnectorState::Deleting,
                in_effect: None,
                effective_at: None,
                active_since: None,
            },
        }
    }

    /// Empties the bucket table: every source IP starts again with a full bucket. Returns how many were reset.
    pub fn reset_buckets(&self) -> usize {
        let mut b = lock(&self.buckets);
        let n = b.len();
        b.clear();
        n
    }

    /// The throttle state of every source IP seen.
    pub fn buckets(&self, now: Instant) -> Vec<BucketView> {
        let b = lock(&self.buckets);
        let mut v: Vec<BucketView> = b
            .iter()
            .map(|(ip, bucket)| BucketView {
                ip: *ip,
                tokens: bucket.available(&self.cfg.throttle, now),
                resets_at: bucket
                    .reset_at(&self.cfg.throttle)
                    .filter(|_| bucket.available(&self.cfg.throttle, now) == 0)
                    .map(|t| rfc3339_ms(self.clock.wall(t))),
            })
            .collect();
        v.sort_by_key(|b| b.ip);
        v
    }
}

fn settle(map: &mut BTreeMap<String, Entry>, now: Instant) {
    map.retain(|_, e| {
        if e.pending.as_ref().is_some_and(|p| p.at <= now) {
            if let Some(p) = e.pending.take() {
                let since = p.at;
                e.active = p.spec.map(|spec| Versioned { spec, since });
            }
        }
        e.active.is_some() || e.pending.is_some()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{HumanDuration, Rate};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn input<'a>(ip_s: &str, tls: bool, rcpt: &'a str) -> RcptInput<'a> {
        RcptInput {
            ip: ip(ip_s),
            tls,
            sender_domain: "platform.example",
            rcpt,
            accepted_so_far: 0,
            token_held: false,
        }
    }

    fn connector(require_tls: bool, restrict: bool) -> ConnectorSpec {
        ConnectorSpec {
            name: "Trusted Mail Connector".into(),
            enabled: true,
            sender_ips: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
            sender_domains: vec!["*".into()],
            require_tls: Some(require_tls),
            restrict_domains_to_ips: restrict,
            activation_delay: None,
        }
    }

    fn policy() -> (Policy, Instant) {
        let t0 = Instant::now();
        (Policy::new(TenantConfig::default(), Clock::new(), t0), t0)
    }

    #[test]
    fn bucket_throttles_after_capacity_and_resets_after_cooldown() {
        let (p, t0) = policy();
        for i in 0..5 {
            let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), t0);
            assert_eq!(v.decision, Decision::Accepted, "message {i}");
            assert!(v.took_token);
        }
        let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), t0);
        assert_eq!(v.decision, Decision::Throttled);
        assert_eq!(
            v.reply.to_string(),
            "451 4.7.500 Server busy. Please try again later from [127.0.0.2]. (AS761)"
        );
        // Another IP has its own bucket.
        let v = p.evaluate_rcpt(&input("127.0.0.3", false, "qa1@contoso.example"), t0);
        assert_eq!(v.decision, Decision::Accepted);
        // Still empty just before the cool-down (15 min from the moment it ran empty)...
        let almost = t0 + Duration::from_secs(15 * 60 - 1);
        let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), almost);
        assert_eq!(v.decision, Decision::Throttled);
        // ...and full after it.
        let after = t0 + Duration::from_secs(15 * 60);
        for _ in 0..5 {
            let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), after);
            assert_eq!(v.decision, Decision::Accepted);
        }
        assert_eq!(
            p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), after)
                .decision,
            Decision::Throttled
        );
        assert_eq!(p.reset_buckets(), 2);
        assert_eq!(
            p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), after)
                .decision,
            Decision::Accepted
        );
    }

    #[test]
    fn refill_rate_adds_tokens_deterministically() {
        let mut cfg = TenantConfig::default();
        cfg.throttle.capacity = 2;
        cfg.throttle.refill = Some("1/s".parse::<Rate>().unwrap());
        let t0 = Instant::now();
        let p = Policy::new(cfg, Clock::new(), t0);
        let go = |t| {
            p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), t)
                .decision
        };
        assert_eq!(go(t0), Decision::Accepted);
        assert_eq!(go(t0), Decision::Accepted);
        assert_eq!(go(t0), Decision::Throttled);
        assert_eq!(go(t0 + Duration::from_millis(999)), Decision::Throttled);
        assert_eq!(go(t0 + Duration::from_millis(1999)), Decision::Accepted);
        // Exactly two tokens in two seconds: integer arithmetic, no float drift at the boundary.
        assert_eq!(go(t0 + Duration::from_millis(1999)), Decision::Throttled);
        assert_eq!(go(t0 + Duration::from_millis(2000)), Decision::Accepted);
        assert_eq!(go(t0 + Duration::from_millis(2000)), Decision::Throttled);
    }

    #[test]
    fn token_is_per_message_not_per_recipient() {
        let (p, t0) = policy();
        let mut i = input("127.0.0.2", false, "qa1@contoso.example");
        let v = p.evaluate_rcpt(&i, t0);
        assert!(v.took_token);
        i.token_held = true;
        i.accepted_so_far = 1;
        i.rcpt = "qa2@contoso.example";
        let v = p.evaluate_rcpt(&i, t0);
        assert_eq!(
            (v.decision, v.rule),
            (Decision::Accepted, Rule::ThrottleTokenHeld)
        );
        assert!(!v.took_token);
        assert_eq!(p.buckets(t0)[0].tokens, 4);
    }

    #[test]
    fn connector_takes_effect_after_activation_delay_and_bypasses_throttle() {
        let (p, t0) = policy();
        for _ in 0..5 {
            p.evaluate_rcpt(&input("127.0.0.2", true, "qa1@contoso.example"), t0);
        }
        let view = p.create_connector(connector(true, false), t0).unwrap();
        assert_eq!(view.state, ConnectorState::Pending);
        let before = t0 + Duration::from_millis(2999);
        let v = p.evaluate_rcpt(&input("127.0.0.2", true, "qa1@contoso.example"), before);
        assert_eq!(v.decision, Decision::Throttled, "not active before 3 s");
        assert_eq!(v.connector, None);
        let at = t0 + Duration::from_secs(3);
        let v = p.evaluate_rcpt(&input("127.0.0.2", true, "qa1@contoso.example"), at);
        assert_eq!(
            (v.decision, v.rule, v.connector.as_deref()),
            (
                Decision::Accepted,
                Rule::ConnectorMatched,
                Some("Trusted Mail Connector")
            )
        );
        assert_eq!(
            p.get_connector("trusted mail connector", at).unwrap().state,
            ConnectorState::Active
        );
        // Many more messages: no throttling.
        for _ in 0..50 {
            assert_eq!(
                p.evaluate_rcpt(&input("127.0.0.3", true, "qa2@contoso.example"), at)
                    .decision,
                Decision::Accepted
            );
        }
    }

    #[test]
    fn tls_rule_refuses_plain_text_with_configured_reply() {
        let (p, t0) = policy();
        p.create_connector(connector(true, false), t0).unwrap();
        let at = t0 + Duration::from_secs(3);
        let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), at);
        assert_eq!(v.decision, Decision::TlsRequired);
        assert_eq!(
            v.reply.to_string(),
            "451 5.7.3 STARTTLS is required to send mail"
        );
        // Not requiring TLS: plain text is fine.
        let (p, t0) = policy();
        p.create_connector(connector(false, false), t0).unwrap();
        let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), at);
        assert_eq!(v.decision, Decision::Accepted);
        // A disabled connector matches nothing.
        let (p, t0) = policy();
        let mut c = connector(true, false);
        c.enabled = false;
        p.create_connector(c, t0).unwrap();
        let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), at);
        assert_eq!(v.rule, Rule::ThrottleTokenTaken);
    }

    #[test]
    fn of_overlapping_connectors_the_one_requiring_tls_applies() {
        // "A open" sorts first and does not require TLS; "B strict" does. Plain text must still
        // be refused, whatever the names' order.
        let (p, t0) = policy();
        let mut open = connector(false, false);
        open.name = "A open".into();
        let mut strict = connector(true, false);
        strict.name = "B strict".into();
        p.create_connector(open, t0).unwrap();
        p.create_connector(strict, t0).unwrap();
        let at = t0 + Duration::from_secs(3);
        let v = p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), at);
        assert_eq!(v.decision, Decision::TlsRequired);
        assert_eq!(
            p.matching_connector(ip("127.0.0.2"), "platform.example", at)
                .as_deref(),
            Some("B strict")
        );
        let v = p.evaluate_rcpt(&input("127.0.0.2", true, "qa1@contoso.example"), at);
        assert_eq!(v.decision, Decision::Accepted);
    }

    #[test]
    fn restrict_domains_to_ips_rejects_other_ips() {
        let (p, t0) = policy();
        p.create_connector(connector(true, true), t0).unwrap();
        let at = t0 + Duration::from_secs(3);
        let v = p.evaluate_rcpt(&input("127.0.0.4", true, "qa1@contoso.example"), at);
        assert_eq!(v.decision, Decision::Rejected);
        assert_eq!(v.reply.code, 550);
        assert_eq!(
            v.reply.enhanced.map(|e| e.to_string()).as_deref(),
            Some("5.7.51")
        );
        assert!(v.reply.text().starts_with("TenantInboundAttribution;"));
        assert_eq!(
            p.evaluate_rcpt(&input("127.0.0.2", true, "qa1@contoso.example"), at)
                .decision,
            Decision::Accepted
        );
    }

    #[test]
    fn updates_and_deletes_also_wait_for_the_delay() {
        let (p, t0) = policy();
        let mut c = connector(false, false);
        c.activation_delay = Some(HumanDuration(Duration::from_secs(10)));
        p.create_connector(c, t0).unwrap();
        let t1 = t0 + Duration::from_secs(10);
        assert!(p
            .matching_connector(ip("127.0.0.2"), "x.example", t1)
            .is_some());
        let patch = ConnectorPatch {
            require_tls: Some(true),
            ..Default::default()
        };
        let v = p
            .update_connector("Trusted Mail Connector", &patch, t1)
            .unwrap();
        assert_eq!(v.state, ConnectorState::Updating);
        assert_eq!(v.in_effect.unwrap().require_tls, Some(false));
        let plain = |t| {
            p.evaluate_rcpt(&input("127.0.0.2", false, "qa1@contoso.example"), t)
                .decision
        };
        assert_eq!(plain(t1 + Duration::from_secs(9)), Decision::Accepted);
        assert_eq!(plain(t1 + Duration::from_secs(10)), Decision::TlsRequired);
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(
            p.delete_connector("TRUSTED MAIL CONNECTOR", t2)
                .unwrap()
                .state,
            ConnectorState::Deleting
        );
        assert!(p
            .matching_connector(ip("127.0.0.2"), "x", t2 + Duration::from_secs(9))
            .is_some());
        assert!(p
            .matching_connector(ip("127.0.0.2"), "x", t2 + Duration::from_secs(10))
            .is_none());
        assert!(p.list_connectors(t2 + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn admin_errors_are_precise() {
        let (p, t0) = policy();
        p.create_connector(connector(true, false), t0).unwrap();
        assert!(matches!(
            p.create_connector(connector(true, false), t0),
            Err(ConnectorError::Conflict(_))
        ));
        assert!(matches!(
            p.update_connector("nope", &ConnectorPatch::default(), t0),
            Err(ConnectorError::NotFound(_))
        ));
        let mut c = connector(true, false);
        c.name = "other".into();
        c.require_tls = None;
        match p.create_connector(c, t0) {
            Err(ConnectorError::Invalid { field, .. }) => assert_eq!(field, "require_tls"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn order_of_checks_and_exact_replies() {
        let mut cfg = TenantConfig {
            banned_ips: vec!["127.0.0.9".parse().unwrap()],
            ..Default::default()
        };
        cfg.reputation.limited_ips = vec!["127.0.0.8".parse().unwrap()];
        let t0 = Instant::now();
        let p = Policy::new(cfg, Clock::new(), t0);
        let v = p.evaluate_rcpt(&input("127.0.0.9", true, "x@fabrikam.example"), t0);
        assert!(
            v.reply.to_string().starts_with("550 5.7.606 "),
            "{}",
            v.reply
        );
        assert!(v.reply.text().contains("[127.0.0.9]") && v.reply.text().ends_with("(AS16012609)"));
        let v = p.evaluate_rcpt(&input("127.0.0.8", true, "qa1@contoso.example"), t0);
        assert!(
            v.reply.to_string().starts_with("451 4.7.650 "),
            "{}",
            v.reply
        );
        let v = p.evaluate_rcpt(&input("127.0.0.2", true, "x@fabrikam.example"), t0);
        assert_eq!(
            v.reply.to_string(),
            "550 5.7.64 TenantAttribution; Relay Access Denied"
        );
        let v = p.evaluate_rcpt(&input("127.0.0.2", true, "nobody@contoso.example"), t0);
        assert_eq!(
            v.reply.to_string(),
            "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"
        );
        // Unknown recipients do not consume tokens.
        assert!(p.buckets(t0).is_empty());
        let mut i = input("127.0.0.2", true, "qa1@contoso.example");
        i.accepted_so_far = 200;
        let v = p.evaluate_rcpt(&i, t0);
        assert_eq!(
            v.reply.to_string(),
            "452 4.5.3 Too many recipients (AS780090)"
        );
    }
}
