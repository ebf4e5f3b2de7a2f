//! The tenant file: everything the simulated Microsoft 365 tenant does is configured here.
//!
//! Field-by-field documentation with defaults and the reference facts behind them lives in
//! `scenarios/SIMULATOR.md`; `scenarios/tenants/default.toml` spells out the defaults.
//! The facts come from `shared/reference/m365-inbound.md` (cited below as "reference").

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::vocab::{ByteSize, ConnectorCidr, HumanDuration, Rate, SourceIp};

use super::SimError;

/// The size EOP advertises on tenant MX hosts (reference: "SIZE values seen on tenant MX hosts: 157286400").
pub const EOP_TENANT_MX_SIZE: u64 = 157_286_400;
/// EOP's recipient limit per message (reference: 452 4.5.3 "more than 200 recipients").
pub const EOP_MAX_RECIPIENTS: usize = 200;
/// The AS token of the throttling reply in the support article (reference: `(AS761)`).
pub const DEFAULT_THROTTLE_AS_CODE: &str = "AS761";
/// The Exchange on-premises reply for a connector that requires TLS (reference: "Unconfirmed").
pub const DEFAULT_TLS_REQUIRED_REPLY: &str = "451 5.7.3 STARTTLS is required to send mail";
/// GTUBE, the generic test string for unsolicited bulk email; real filters treat it as spam.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// A simulated tenant: accepted domains, mailboxes, listeners, front-end behaviour and policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// A short tenant name, used in the MX-style host names and logs.
    pub tenant_name: String,
    /// The tenant GUID stamped into `X-EOPTenantAttributedMessage`.
    pub tenant_id: String,
    /// Domains this tenant hosts; mail to any other domain gets 550 5.7.64.
    pub accepted_domains: Vec<String>,
    /// The mailboxes that exist; any other address in an accepted domain gets 550 5.4.1 (DBEB).
    pub mailboxes: Vec<MailboxConfig>,
    /// Loopback listeners.
    pub listen: ListenConfig,
    /// The SMTP front end: host names, limits, timeouts.
    pub front_end: FrontEndConfig,
    /// TLS certificate and protocol versions.
    pub tls: TlsConfig,
    /// Per-source-IP throttling of senders that match no connector.
    pub throttle: ThrottleConfig,
    /// The optional reputation rate limit (451 4.7.650).
    pub reputation: ReputationConfig,
    /// Sending IPs on the simulated Microsoft block list (550 5.7.606).
    pub banned_ips: Vec<SourceIp>,
    /// Inbound (Partner) connectors: defaults and the ones that exist at start.
    pub connectors: ConnectorsConfig,
    /// Delivery into the Maildirs.
    pub delivery: DeliveryConfig,
    /// Junk filtering rules.
    pub junk: JunkConfig,
    /// The IMAP server over the mailboxes (`[imap]`).
    pub imap: super::imap::ImapConfig,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            tenant_name: "contoso".into(),
            tenant_id: "5f2b6a1c-3d4e-4f60-8a7b-9c0d1e2f3a4b".into(),
            accepted_domains: vec!["contoso.example".into()],
            mailboxes: ["qa1", "qa2", "qa3"]
                .iter()
                .map(|l| MailboxConfig {
                    address: format!("{l}@contoso.example"),
                    ..Default::default()
                })
                .collect(),
            listen: ListenConfig::default(),
            front_end: FrontEndConfig::default(),
            tls: TlsConfig::default(),
            throttle: ThrottleConfig::default(),
            reputation: ReputationConfig::default(),
            banned_ips: Vec::new(),
            connectors: ConnectorsConfig::default(),
            delivery: DeliveryConfig::default(),
            junk: JunkConfig::default(),
            imap: super::imap::ImapConfig::default(),
        }
    }
}

/// One mailbox of the tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// The SMTP address, `local@accepted-domain`.
    pub address: String,
    /// For the later IMAP front end: the environment variable holding this mailbox's password.
    /// Never a secret value in a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// A file holding this mailbox's IMAP password (trailing newline ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding XOAUTH2 bearer tokens for this mailbox only
    /// (whitespace- or comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xoauth2_tokens_env: Option<String>,
    /// A file holding XOAUTH2 bearer tokens for this mailbox only, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xoauth2_tokens_file: Option<PathBuf>,
}

/// Where the simulator listens. Port 0 means an ephemeral port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The loopback address all listeners bind to.
    pub address: Ipv4Addr,
    /// SMTP with STARTTLS (EOP's port 25).
    pub smtp_port: u16,
    /// SMTP with implicit TLS.
    pub smtps_port: u16,
    /// The HTTP/JSON admin API.
    pub admin_port: u16,
    /// IMAP, plain with STARTTLS (Exchange's port 143).
    #[serde(default)]
    pub imap_port: u16,
    /// IMAP with implicit TLS (Exchange's port 993).
    #[serde(default)]
    pub imaps_port: u16,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            address: Ipv4Addr::LOCALHOST,
            smtp_port: 0,
            smtps_port: 0,
            admin_port: 0,
            imap_port: 0,
            imaps_port: 0,
        }
    }
}

/// The SMTP front end's identity and limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontEndConfig {
    /// The front-end server name (reference greeting: `CH3PEPF00000015`).
    pub host: String,
    /// The region label used in the reply trailer `[<HOST>.<region>.prod.outlook.com ...]`.
    pub region: String,
    /// The advertised SIZE; larger messages get 552 5.3.4.
    pub max_message_size: ByteSize,
    /// Accepted recipients per message before 452 4.5.3.
    pub max_recipients: usize,
    /// How long the server waits for a command line.
    pub command_timeout: HumanDuration,
    /// How long the server waits for more message data during DATA.
    pub data_timeout: HumanDuration,
    /// Whether 4xx/5xx replies end with the EOP trailer.
    pub reply_trailer: bool,
    /// Threads running SMTP sessions: 1 = one event loop (best on small machines), more = a pool.
    pub worker_threads: usize,
}

impl Default for FrontEndConfig {
    fn default() -> Self {
        FrontEndConfig {
            host: "CH3PEPF00000015".into(),
            region: "namprd03".into(),
            max_message_size: ByteSize(EOP_TENANT_MX_SIZE),
            max_recipients: EOP_MAX_RECIPIENTS,
            command_timeout: HumanDuration(Duration::from_secs(300)),
            data_timeout: HumanDuration(Duration::from_secs(600)),
            reply_trailer: true,
            worker_threads: 1,
        }
    }
}

impl FrontEndConfig {
    /// The greeting/EHLO host name, `<host>.mail.protection.outlook.com`.
    pub fn fqdn(&self) -> String {
        format!("{}.mail.protection.outlook.com", self.host)
    }

    /// The host name in the reply trailer and in `Hostname=`, `<host>.<region>.prod.outlook.com`.
    pub fn trailer_host(&self) -> String {
        format!("{}.{}.prod.outlook.com", self.host, self.region)
    }
}

/// A TLS protocol version the front end may negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (works on EOP, reference).
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 (unconfirmed on EOP inbound, reference).
    #[serde(rename = "1.3")]
    Tls13,
}

/// TLS settings. Without `cert_pem`/`key_pem` a CA and a server certificate are generated at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Offer STARTTLS and run the implicit-TLS listener.
    pub enabled: bool,
    /// A PEM certificate chain to use instead of the generated one.
    pub cert_pem: Option<PathBuf>,
    /// The PEM private key for `cert_pem`.
    pub key_pem: Option<PathBuf>,
    /// Protocol versions offered.
    pub versions: Vec<TlsVersion>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert_pem: None,
            key_pem: None,
            versions: vec![TlsVersion::Tls12, TlsVersion::Tls13],
        }
    }
}

/// Per-source-IP token bucket for senders that match no connector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Throttle at all.
    pub enabled: bool,
    /// Messages a fresh source IP may send before it is throttled.
    pub capacity: u32,
    /// Tokens added back over time; absent means none (only the cool-down refills).
    pub refill: Option<Rate>,
    /// After the bucket ran empty, it is full again once this much time has passed.
    pub cooldown: HumanDuration,
    /// The AS token in the reply, for example `AS761` (reference lists AS843, AS77712344, S77714 ...).
    pub as_code: String,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            capacity: 5,
            refill: None,
            cooldown: HumanDuration(Duration::from_secs(15 * 60)),
            as_code: DEFAULT_THROTTLE_AS_CODE.into(),
        }
    }
}

/// Source IPs that get the reputation rate limit (451 4.7.650) whatever their connectors say.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReputationConfig {
    /// The IPs with a poor reputation.
    pub limited_ips: Vec<SourceIp>,
    /// The S token in the reply (reference: `(S775)`).
    pub s_code: String,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        ReputationConfig {
            limited_ips: Vec::new(),
            s_code: "S775".into(),
        }
    }
}

/// Connector defaults and the connectors present at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// How long after a create/update/delete the change takes effect, unless the connector says otherwise.
    pub activation_delay: HumanDuration,
    /// The reply when a matching connector requires TLS and the session is plain text.
    pub tls_required_reply: ReplyTemplate,
    /// Connectors that exist, already active, when the simulator starts.
    pub initial: Vec<ConnectorSpec>,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        ConnectorsConfig {
            activation_delay: HumanDuration(Duration::from_secs(3)),
            tls_required_reply: DEFAULT_TLS_REQUIRED_REPLY.parse().unwrap_or(ReplyTemplate {
                code: 451,
                enhanced: "5.7.3".into(),
                text: "STARTTLS is required to send mail".into(),
            }),
            initial: Vec::new(),
        }
    }
}

/// An inbound connector of type Partner (reference: "Inbound connector: Partner organization -> Office 365").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSpec {
    /// The connector's unique name (compared case-insensitively), e.g. "Trusted Mail Connector".
    pub name: String,
    /// Whether the connector is turned on.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The sending IPs: IPv4 addresses or /24–/32 ranges.
    pub sender_ips: Vec<ConnectorCidr>,
    /// Sender domains the connector applies to; `*` means all (the default, as in the support article).
    #[serde(default = "star")]
    pub sender_domains: Vec<String>,
    /// Reject plain-text mail from these IPs. Required: its documented default differs between doc versions.
    pub require_tls: Option<bool>,
    /// Reject mail for the tenant from IPs outside `sender_ips` (550 5.7.51).
    #[serde(default)]
    pub restrict_domains_to_ips: bool,
    /// Overrides `[connectors] activation_delay` for this connector's changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_delay: Option<HumanDuration>,
}

fn yes() -> bool {
    true
}

fn star() -> Vec<String> {
    vec!["*".into()]
}

impl ConnectorSpec {
    /// Checks what serde cannot: a name, at least one IP, an explicit `require_tls`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.name.trim().is_empty() {
            return Err(("name".into(), "a connector needs a non-empty name".into()));
        }
        if self.name.len() > 64 || self.name.chars().any(|c| c.is_control() || c == '/') {
            return Err((
                "name".into(),
                "a connector name is at most 64 characters, without '/' or control characters"
                    .into(),
            ));
        }
        if self.sender_ips.is_empty() {
            return Err((
                "sender_ips".into(),
                "list at least one IPv4 address or /24-/32 range: this simulator identifies partner connectors by sending IP".into(),
            ));
        }
        if self.require_tls.is_none() {
            return Err((
                "require_tls".into(),
                "set require_tls explicitly (true or false): the documented default of -RequireTls differs between Microsoft doc versions".into(),
            ));
        }
        if self.sender_domains.is_empty() {
            return Err((
                "sender_domains".into(),
                "list at least one sender domain, or \"*\" for all (-SenderDomains is required)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether this connector applies to mail from `sender_domain`.
    pub fn covers_sender_domain(&self, sender_domain: &str) -> bool {
        self.sender_domains.iter().any(|d| {
            d == "*"
                || d.eq_ignore_ascii_case(sender_domain)
                || d.strip_prefix("*.").is_some_and(|suffix| {
                    sender_domain.len() > suffix.len()
                        && sender_domain
                            .to_ascii_lowercase()
                            .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
                })
        })
    }

    /// Whether `ip` is one of the connector's sending IPs.
    pub fn covers_ip(&self, ip: Ipv4Addr) -> bool {
        self.sender_ips.iter().any(|c| c.contains(ip))
    }
}

/// A partial connector for updates (`Set-InboundConnector`): absent fields keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPatch {
    /// Must equal the connector's name if given (renaming is not supported).
    pub name: Option<String>,
    /// New enabled state.
    pub enabled: Option<bool>,
    /// New sending IPs.
    pub sender_ips: Option<Vec<ConnectorCidr>>,
    /// New sender domains.
    pub sender_domains: Option<Vec<String>>,
    /// New TLS requirement.
    pub require_tls: Option<bool>,
    /// New IP restriction.
    pub restrict_domains_to_ips: Option<bool>,
    /// New activation delay for this and later changes.
    pub activation_delay: Option<HumanDuration>,
}

impl ConnectorPatch {
    /// Applies the patch to a copy of `base`.
    pub fn apply(&self, base: &ConnectorSpec) -> ConnectorSpec {
        let mut s = base.clone();
        if let Some(v) = self.enabled {
            s.enabled = v;
        }
        if let Some(v) = &self.sender_ips {
            s.sender_ips = v.clone();
        }
        if let Some(v) = &self.sender_domains {
            s.sender_domains = v.clone();
        }
        if let Some(v) = self.require_tls {
            s.require_tls = Some(v);
        }
        if let Some(v) = self.restrict_domains_to_ips {
            s.restrict_domains_to_ips = v;
        }
        if let Some(v) = self.activation_delay {
            s.activation_delay = Some(v);
        }
        s
    }
}

/// A configurable SMTP reply written as one string: `"451 5.7.3 STARTTLS is required to send mail"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTemplate {
    /// The three-digit reply code, 400–599.
    pub code: u16,
    /// The enhanced status code, e.g. `5.7.3`.
    pub enhanced: String,
    /// The text after the codes.
    pub text: String,
}

impl FromStr for ReplyTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected `<code> <enhanced> <text>` such as \"451 5.7.3 STARTTLS is required to send mail\"";
        let mut parts = s.trim().splitn(3, ' ');
        let code: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("invalid reply `{s}`: {expected}"))?;
        if !(400..600).contains(&code) {
            return Err(format!(
                "invalid reply `{s}`: the code must be a 4xx or 5xx rejection"
            ));
        }
        let enhanced = parts.next().unwrap_or_default().to_string();
        let valid_enhanced = {
            let f: Vec<&str> = enhanced.split('.').collect();
            f.len() == 3
                && f.iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                && (f[0] == "4" || f[0] == "5")
        };
        if !valid_enhanced {
            return Err(format!(
                "invalid reply `{s}`: `{enhanced}` is not an enhanced status code such as 5.7.3; {expected}"
            ));
        }
        let text = parts.next().unwrap_or_default().trim().to_string();
        if text.is_empty() || text.contains(['\r', '\n']) {
            return Err(format!(
                "invalid reply `{s}`: the text must be one non-empty line"
            ));
        }
        Ok(ReplyTemplate {
            code,
            enhanced,
            text,
        })
    }
}

impl fmt::Display for ReplyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.text)
    }
}

impl<'de> Deserialize<'de> for ReplyTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl Serialize for ReplyTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// When and how accepted mail reaches the Maildirs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Time between the final 250 and the message appearing in the mailbox.
    pub delay: HumanDuration,
    /// fsync each message file and its directory before the trace says delivered.
    pub fsync: bool,
    /// Accepted messages waiting for delivery; when full, the final 250 waits (back-pressure).
    pub queue_capacity: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            delay: HumanDuration(Duration::from_millis(200)),
            fsync: false,
            queue_capacity: 10_000,
        }
    }
}

/// Rules that make a message junk: SCL ≥ 5, `SFV:SPM`, filed in `Junk Email`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JunkConfig {
    /// Apply the rules at all.
    pub enabled: bool,
    /// Case-insensitive substrings of the Subject header that make a message junk.
    pub subject_markers: Vec<String>,
    /// Substrings of the body that make a message junk.
    pub body_markers: Vec<String>,
    /// Envelope sender domains treated as having no SPF record: junk, `spf=none`.
    pub no_spf_sender_domains: Vec<String>,
    /// The SCL given to junk (5–9).
    pub scl: u8,
}

impl Default for JunkConfig {
    fn default() -> Self {
        JunkConfig {
            enabled: true,
            subject_markers: vec!["[SIM-JUNK]".into()],
            body_markers: vec![GTUBE.into()],
            no_spf_sender_domains: vec!["nospf.example".into()],
            scl: 5,
        }
    }
}

impl TenantConfig {
    /// Every mailbox address, lower-cased.
    pub fn mailbox_addresses(&self) -> Vec<String> {
        self.mailboxes
            .iter()
            .map(|m| m.address.to_ascii_lowercase())
            .collect()
    }

    /// Every accepted domain, lower-cased.
    pub fn accepted_domains(&self) -> Vec<String> {
        self.accepted_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect()
    }

    /// Parses a tenant file: either the tenant fields at top level, or a `[simulator]` table.
    pub fn from_toml_str(text: &str) -> Result<Self, toml::de::Error> {
        #[derive(Deserialize)]
        struct Wrapped {
            simulator: TenantConfig,
        }
        let has_table = text
            .parse::<toml::Table>()
            .map(|t| t.contains_key("simulator"))
            .unwrap_or(false);
        if has_table {
            toml::from_str::<Wrapped>(text).map(|w| w.simulator)
        } else {
            toml::from_str(text)
        }
    }

    /// Reads and validates a tenant file; errors name the file and, for syntax, line and column.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Io {
            context: format!("reading tenant file {}", path.display()),
            source: e,
        })?;
        let cfg = Self::from_toml_str(&text).map_err(|e| {
            let loc = e
                .span()
                .map(|s| {
                    let (line, col) = crate::text::line_col(&text, s.start);
                    format!(":{line}:{col}")
                })
                .unwrap_or_default();
            SimError::Config(format!("{}{loc}: {}", path.display(), e.message()))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks cross-field rules: mailboxes in accepted domains, unique names, sane limits.
    pub fn validate(&self) -> Result<(), SimError> {
        self.validate_mailboxes()?;
        self.validate_settings()?;
        self.validate_connectors()
    }

    /// Accepted domains, and mailboxes in them: well-formed, unique, one password source.
    fn validate_mailboxes(&self) -> Result<(), SimError> {
        let err = |field: &str, msg: String| Err(SimError::Config(format!("{field}: {msg}")));
        if self.accepted_domains.is_empty() {
            return err(
                "accepted_domains",
                "list at least one domain the tenant hosts".into(),
            );
        }
        for d in &self.accepted_domains {
            if d.is_empty() || d.contains(['@', ' ']) || !d.contains('.') {
                return err(
                    "accepted_domains",
                    format!("`{d}` is not a domain name such as contoso.example"),
                );
            }
        }
        let domains = self.accepted_domains();
        let mut seen = std::collections::HashSet::new();
        for m in &self.mailboxes {
            let Some((local, domain)) = m.address.rsplit_once('@') else {
                return err(
                    "mailboxes",
                    format!("`{}` is not an address local@domain", m.address),
                );
            };
            if local.is_empty()
                || local.contains(['/', '\0'])
                || local.starts_with('.')
                || local.contains("..")
            {
                return err(
                    "mailboxes",
                    format!(
                        "`{}`: the local part must be non-empty, without '/', and not start with '.'",
                        m.address
                    ),
                );
            }
            if !domains.contains(&domain.to_ascii_lowercase()) {
                return err(
                    "mailboxes",
                    format!(
                        "`{}` is not in an accepted domain ({})",
                        m.address,
                        domains.join(", ")
                    ),
                );
            }
            if !seen.insert(m.address.to_ascii_lowercase()) {
                return err("mailboxes", format!("`{}` is listed twice", m.address));
            }
            if m.password_env.is_some() && m.password_file.is_some() {
                return err(
                    &format!("mailboxes[{}]", m.address),
                    "give password_env or password_file, not both".into(),
                );
            }
        }
        Ok(())
    }

    /// Front end, TLS, throttle, junk, IMAP and delivery limits.
    fn validate_settings(&self) -> Result<(), SimError> {
        let err = |field: &str, msg: String| Err(SimError::Config(format!("{field}: {msg}")));
        if self.front_end.max_recipients == 0 {
            return err("front_end.max_recipients", "must be at least 1".into());
        }
        if !(1..=64).contains(&self.front_end.worker_threads) {
            return err("front_end.worker_threads", "must be 1 to 64".into());
        }
        if self.front_end.max_message_size.0 == 0 {
            return err("front_end.max_message_size", "must be at least 1".into());
        }
        if self.front_end.host.is_empty()
            || !self
                .front_end
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return err(
                "front_end.host",
                "must be a host label such as CH3PEPF00000015".into(),
            );
        }
        if self.tls.enabled && self.tls.versions.is_empty() {
            return err(
                "tls.versions",
                "list at least one of \"1.2\", \"1.3\" (or set tls.enabled = false)".into(),
            );
        }
        if self.tls.cert_pem.is_some() != self.tls.key_pem.is_some() {
            return err("tls", "cert_pem and key_pem must be given together".into());
        }
        if self.throttle.enabled && self.throttle.as_code.trim().is_empty() {
            return err(
                "throttle.as_code",
                "must not be empty, e.g. \"AS761\"".into(),
            );
        }
        if !(5..=9).contains(&self.junk.scl) {
            return err(
                "junk.scl",
                "junk SCL must be 5 to 9 (5-6 spam, 9 high confidence spam)".into(),
            );
        }
        self.imap.validate()?;
        if self.delivery.queue_capacity == 0 {
            return err("delivery.queue_capacity", "must be at least 1".into());
        }
        Ok(())
    }

    /// Initial connectors: each valid, names unique.
    fn validate_connectors(&self) -> Result<(), SimError> {
        let err = |field: &str, msg: String| Err(SimError::Config(format!("{field}: {msg}")));
        let mut names = std::collections::HashSet::new();
        for c in &self.connectors.initial {
            if let Err((field, msg)) = c.validate() {
                return err(&format!("connectors.initial[{}].{field}", c.name), msg);
            }
            if !names.insert(c.name.to_ascii_lowercase()) {
                return err(
                    "connectors.initial",
                    format!("connector name `{}` is used twice", c.name),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_tell_the_mission_story() {
        let c = TenantConfig::default();
        c.validate().expect("defaults are valid");
        assert_eq!(c.accepted_domains(), vec!["contoso.example"]);
        assert_eq!(c.mailbox_addresses().len(), 3);
        assert!(c.connectors.initial.is_empty());
        assert_eq!(c.throttle.capacity, 5);
        assert_eq!(
            c.connectors.tls_required_reply.to_string(),
            DEFAULT_TLS_REQUIRED_REPLY
        );
    }

    #[test]
    fn shipped_default_tenant_file_equals_the_defaults() {
        let text = include_str!("../../scenarios/tenants/default.toml");
        let file = TenantConfig::from_toml_str(text).expect("default.toml parses");
        file.validate().expect("valid");
        let a = serde_json::to_value(&file).unwrap();
        let b = serde_json::to_value(TenantConfig::default()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn empty_file_is_the_default_and_simulator_table_works() {
        let a = TenantConfig::from_toml_str("").unwrap();
        assert_eq!(a.mailboxes.len(), 3);
        let b = TenantConfig::from_toml_str("[simulator]\ntenant_name = \"x\"\n").unwrap();
        assert_eq!(b.tenant_name, "x");
    }

    #[test]
    fn unknown_fields_and_bad_cidrs_are_rejected_with_spans() {
        let e = TenantConfig::from_toml_str("tenant_nmae = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("tenant_nmae"), "{e}");
        let e = TenantConfig::from_toml_str(
            "[[connectors.initial]]\nname = \"c\"\nrequire_tls = true\nsender_ips = [\"10.0.0.0/16\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("/24 to /32"), "{e}");
        assert!(e.span().is_some());
    }

    #[test]
    fn reply_templates_parse_and_validate() {
        let r: ReplyTemplate = "530 5.7.0 Must issue a STARTTLS command first"
            .parse()
            .unwrap();
        assert_eq!((r.code, r.enhanced.as_str()), (530, "5.7.0"));
        assert!("250 2.0.0 ok".parse::<ReplyTemplate>().is_err());
        assert!("451 x.y text".parse::<ReplyTemplate>().is_err());
        assert!("451 4.7.0".parse::<ReplyTemplate>().is_err());
    }

    #[test]
    fn connector_requires_explicit_tls_choice() {
        let c: ConnectorSpec =
            serde_json::from_str(r#"{"name":"c","sender_ips":["127.0.0.2"]}"#).unwrap();
        assert_eq!(c.validate().unwrap_err().0, "require_tls");
        assert!(c.covers_sender_domain("anything.example"));
    }

    #[test]
    fn mailbox_outside_accepted_domains_is_rejected() {
        let mut c = TenantConfig::default();
        c.mailboxes.push(MailboxConfig {
            address: "x@fabrikam.example".into(),
            ..Default::default()
        });
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("accepted domain"));
    }
}
