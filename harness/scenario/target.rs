//! The target file: where to send (the embedded simulator or a real tenant) and the guard rails.
//!
//! Field-by-field documentation lives in `scenarios/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::sim::TenantConfig;
use crate::vocab::{ApplyMethod, HumanDuration, Rate, SourceIp, TargetKind, TlsVerify};

/// The built-in default target: the embedded simulator, exactly as shipped in `scenarios/targets/sim.toml`.
pub const DEFAULT_TARGET_TOML: &str = include_str!("../../scenarios/targets/sim.toml");

/// The pseudo path shown in errors about the built-in target.
pub const DEFAULT_TARGET_PATH: &str = "<built-in>/scenarios/targets/sim.toml";

/// A whole target file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// Short name, used in run ids and reports.
    pub name: Spanned<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// `simulator` (the embedded tenant) or `tenant` (a real Microsoft 365 tenant).
    pub kind: TargetKind,
    /// Sender roles mapped to the source IPs bound on this host.
    pub senders: Spanned<BTreeMap<String, Spanned<SourceIp>>>,
    /// How to reach the receiving MX.
    pub smtp: Option<Spanned<SmtpSettings>>,
    /// How to read the test mailboxes back.
    pub imap: Option<Spanned<ImapSettings>>,
    /// The test mailboxes that receive the bursts.
    #[serde(default)]
    pub mailboxes: Vec<Spanned<Mailbox>>,
    /// Limits that protect the sending IPs' reputation.
    pub guard: Option<Spanned<Guard>>,
    /// Observation timing.
    pub observe: Option<ObserveSettings>,
    /// How connector changes are applied at this target when the scenario does not say.
    pub connector: Option<Spanned<ConnectorApply>>,
    /// Tenant settings of the embedded simulator (`kind = "simulator"` only).
    pub simulator: Option<Spanned<TenantConfig>>,
}

impl TargetFile {
    /// The simulated tenant's settings: the `[simulator]` table, or the defaults.
    pub fn tenant(&self) -> TenantConfig {
        self.simulator
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default()
    }
}

/// SMTP settings of a target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// The recipient domain (the tenant's accepted domain).
    pub domain: Option<Spanned<String>>,
    /// The MX host; absent means resolve the domain's MX from DNS.
    pub mx: Option<Spanned<String>>,
    /// TCP port (default 25).
    pub port: Option<u16>,
    /// Port for implicit TLS bursts (default 465).
    pub implicit_tls_port: Option<u16>,
    /// The nameserver to resolve MX with, `ip:port` (default: the system's).
    pub dns: Option<Spanned<String>>,
    /// EHLO name (default: the host name).
    pub helo: Option<String>,
    /// Envelope sender (default `mailharness@<helo>`).
    pub mail_from: Option<Spanned<String>>,
    /// Certificate verification policy.
    #[serde(default)]
    pub tls_verify: TlsVerify,
    /// A PEM file of extra trust anchors (e.g. a test CA).
    pub ca_file: Option<String>,
    /// Connect timeout (default 30s).
    pub connect_timeout: Option<HumanDuration>,
    /// Per-command reply timeout (default 5m, as RFC 5321 suggests).
    pub command_timeout: Option<HumanDuration>,
}

/// How IMAP is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    #[default]
    Implicit,
    /// STARTTLS on the plain port.
    Starttls,
    /// No TLS: allowed only for loopback hosts.
    Plain,
}

/// How the harness logs in over IMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImapAuth {
    /// LOGIN with a password (each mailbox's `password_env` or `password_file`).
    Login,
    /// SASL XOAUTH2 with a bearer token (Microsoft 365 since 2023).
    Xoauth2,
}

/// IMAP settings of a target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    /// Host name.
    pub host: Spanned<String>,
    /// Port (default 993 for implicit TLS, 143 otherwise).
    pub port: Option<u16>,
    /// TLS mode.
    #[serde(default)]
    pub tls: ImapTls,
    /// Authentication mechanism.
    pub auth: Spanned<ImapAuth>,
    /// Where the XOAUTH2 token comes from.
    pub oauth: Option<Spanned<OAuthSettings>>,
    /// A PEM file of extra trust anchors.
    pub ca_file: Option<String>,
}

/// Sources of an XOAUTH2 bearer token. Exactly one source is used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// An environment variable holding the token.
    pub token_env: Option<String>,
    /// A file holding the token.
    pub token_file: Option<String>,
    /// A command printing the token on stdout.
    pub token_command: Option<Vec<String>>,
    /// Client-credentials flow: the token endpoint (default: Microsoft's, from `tenant_id`).
    pub token_endpoint: Option<String>,
    /// Client-credentials flow: the Entra tenant id.
    pub tenant_id: Option<String>,
    /// Client-credentials flow: the application (client) id.
    pub client_id: Option<String>,
    /// Client-credentials flow: environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Client-credentials flow: file holding the client secret.
    pub client_secret_file: Option<String>,
    /// Client-credentials flow: scope (default `https://outlook.office365.com/.default`).
    pub scope: Option<String>,
    /// Rejected: secrets never live in target files.
    pub token: Option<Spanned<toml::Value>>,
    /// Rejected: secrets never live in target files.
    pub client_secret: Option<Spanned<toml::Value>>,
}

/// One test mailbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    /// The address mail is sent to; also the IMAP user unless `login` is set.
    pub address: Spanned<String>,
    /// IMAP user name when it differs from the address.
    pub login: Option<String>,
    /// Environment variable holding the IMAP password (LOGIN auth).
    pub password_env: Option<String>,
    /// File holding the IMAP password (LOGIN auth).
    pub password_file: Option<String>,
    /// Rejected: secrets never live in target files.
    pub password: Option<Spanned<toml::Value>>,
}

/// Guard rails that protect the sending IPs' reputation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// Recipient domains mail may be sent to; anything else is refused before sending.
    #[serde(default)]
    pub allowed_domains: Vec<Spanned<String>>,
    /// The most messages (attempts, retries included) one run may send.
    pub max_messages_per_run: Option<Spanned<u32>>,
    /// The highest rate one source IP may send at.
    pub max_rate_per_ip: Option<Spanned<Rate>>,
}

/// How a target applies connector changes (an environment's own hook, say), unless a scenario's
/// change step names its own way.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorApply {
    /// `prompt`, `hook` or `signal-file` (`simulator` for simulator targets).
    pub apply: Spanned<ApplyMethod>,
    /// The command for `hook`.
    pub command: Option<Spanned<Vec<String>>>,
    /// The file for `signal-file`.
    pub signal_file: Option<Spanned<String>>,
}

/// Observation timing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObserveSettings {
    /// How long to wait for accepted mail to arrive before calling it missing.
    pub deadline: Option<HumanDuration>,
    /// How often to poll the mailboxes.
    pub poll_interval: Option<HumanDuration>,
    /// Delete this run's messages afterwards.
    #[serde(default)]
    pub cleanup: bool,
}
