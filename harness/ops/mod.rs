//! Ops and support commands: `verify` (can every sending IP still deliver, after an IP change?) and
//! `confirm` (one clearly labelled test message for a customer, with a plain-language verdict).
//!
//! Both reuse the send engine ([`crate::send::send_one`]), the IMAP observer and the reply
//! knowledge base: nothing here speaks SMTP or IMAP itself, so a verdict here means exactly what
//! the same reply means in a run.

pub mod confirm;
pub mod verify;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::dns::{self, MxRecord};
use crate::scenario::LoadedTarget;
use crate::send::{SendContext, TlsOptions};
use crate::sim::SimHandle;
use crate::vocab::TargetKind;

pub use confirm::{confirm, confirm_with, default_text, ConfirmOptions, ConfirmReport};
pub use verify::{verify, IpResult, SendCheck, VerifyOptions, VerifyReport};

/// The EHLO name used when the target sets none (the same as `run`'s).
pub const DEFAULT_HELO: &str = "mailharness.platform.example";
/// The envelope sender used when the target sets none (the same as `run`'s).
pub const DEFAULT_MAIL_FROM: &str = "mailharness@platform.example";
/// The name the simulator's certificate carries (EOP's CN).
const SIM_CERT_NAME: &str = "mail.protection.outlook.com";

/// Why an ops command could not run (a failed delivery is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Bad arguments or target file (exit 2).
    #[error("{0}")]
    Config(String),
    /// Infrastructure: DNS, the simulator, a file (exit 3).
    #[error("{0}")]
    Infra(String),
}

/// Where mail goes for one ops command, resolved.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The recipient domain.
    pub domain: String,
    /// The MX hosts found (empty when the target names its MX or is the simulator).
    pub mx: Vec<MxRecord>,
    /// The MX host connected to.
    pub mx_host: String,
    /// Its IPv4 address and the target's port.
    pub destination: SocketAddrV4,
    /// TLS settings (trust anchors, the name to verify).
    pub tls: TlsOptions,
    /// EHLO name.
    pub helo: String,
    /// Envelope sender.
    pub mail_from: String,
    /// Connect timeout, when the target sets one.
    pub connect_timeout: Option<Duration>,
    /// Per-reply timeout, when the target sets one.
    pub command_timeout: Option<Duration>,
}

impl Endpoint {
    /// The simulator's endpoint: its loopback SMTP port and its own CA.
    pub fn simulator(sim: &SimHandle, domain: &str) -> Result<Endpoint, OpsError> {
        let destination = match sim.smtp_addr() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => {
                return Err(OpsError::Infra(format!(
                    "the simulator listens on IPv6 {a}; connectors match IPv4 senders only"
                )))
            }
        };
        Ok(Endpoint {
            domain: domain.to_string(),
            mx: Vec::new(),
            mx_host: SIM_CERT_NAME.into(),
            destination,
            tls: TlsOptions {
                verify: Default::default(),
                extra_roots_pem: sim.ca_cert_pem().map(str::to_string),
                server_name: Some(SIM_CERT_NAME.into()),
                no_public_roots: true,
            },
            helo: DEFAULT_HELO.into(),
            mail_from: DEFAULT_MAIL_FROM.into(),
            connect_timeout: None,
            command_timeout: None,
        })
    }

    /// A send context for this endpoint; `run_id` is the reference id in every message.
    pub fn context(&self, run_id: &str) -> Result<SendContext, OpsError> {
        let mut ctx = SendContext::new(
            run_id,
            self.destination,
            &self.helo,
            &self.mail_from,
            &self.tls,
        )
        .map_err(|e| OpsError::Config(format!("TLS settings: {e}")))?;
        // Every target is a Microsoft 365 tenant, simulated or real.
        ctx.assume_origin = Some(crate::reply::Origin::Microsoft);
        ctx.at_mx = true;
        if let Some(t) = self.connect_timeout {
            ctx.connect_timeout = t;
        }
        if let Some(t) = self.command_timeout {
            ctx.command_timeout = t;
        }
        Ok(ctx)
    }
}

/// The nameserver to use: the command line's, else the target's `[smtp] dns`, else the system's.
fn nameserver(t: &LoadedTarget, cli: Option<SocketAddr>) -> Result<Option<SocketAddr>, OpsError> {
    if cli.is_some() {
        return Ok(cli);
    }
    let smtp = t.file.smtp.as_ref().map(|s| s.get_ref());
    match smtp.and_then(|s| s.dns.as_ref()) {
        Some(d) => dns::parse_nameserver(d.get_ref())
            .map(Some)
            .map_err(|e| OpsError::Config(format!("{}: [smtp] dns: {e}", t.src.path.display()))),
        None => Ok(None),
    }
}

/// Resolves a real tenant's endpoint: `[smtp] mx` if given, else the domain's MX from DNS; the
/// first MX host with an IPv4 address, on the target's `[smtp] port` (default 25).
pub async fn tenant_endpoint(
    t: &LoadedTarget,
    dns_override: Option<SocketAddr>,
) -> Result<Endpoint, OpsError> {
    let path = t.src.path.display().to_string();
    let smtp = t
        .file
        .smtp
        .as_ref()
        .map(|s| s.get_ref())
        .ok_or_else(|| OpsError::Config(format!("{path}: the target has no [smtp] table")))?;
    let domain = smtp
        .domain
        .as_ref()
        .map(|d| d.get_ref().trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            OpsError::Config(format!(
                "{path}: [smtp] domain is not set: it names the tenant's recipient domain"
            ))
        })?;
    let ns = nameserver(t, dns_override)?;
    let port = smtp.port.unwrap_or(25);
    let (mx, host, ip) = match &smtp.mx {
        Some(m) => {
            let host = m.get_ref().trim().to_string();
            let ips = dns::resolve_host_v4(&host, ns)
                .await
                .map_err(|e| OpsError::Infra(format!("{path}: [smtp] mx {host}: {e}")))?;
            (Vec::new(), host, ips[0])
        }
        None => {
            let mx = dns::resolve_mx(&domain, ns)
                .await
                .map_err(|e| OpsError::Infra(format!("MX of {domain}: {e}")))?;
            let (host, ip) = mx
                .iter()
                .find_map(|(_, h, ips)| ips.first().map(|ip| (h.clone(), *ip)))
                .ok_or_else(|| OpsError::Infra(format!("no MX host of {domain} has IPv4")))?;
            (mx, host, ip)
        }
    };
    let extra = match &smtp.ca_file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(|e| {
            OpsError::Config(format!("{path}: [smtp] ca_file {f}: cannot read it: {e}"))
        })?),
        None => None,
    };
    Ok(Endpoint {
        domain,
        mx,
        mx_host: host.clone(),
        destination: SocketAddrV4::new(ip, port),
        tls: TlsOptions {
            verify: smtp.tls_verify,
            extra_roots_pem: extra,
            server_name: Some(host),
            no_public_roots: false,
        },
        helo: smtp.helo.clone().unwrap_or_else(|| DEFAULT_HELO.into()),
        mail_from: smtp
            .mail_from
            .as_ref()
            .map(|m| m.get_ref().clone())
            .unwrap_or_else(|| DEFAULT_MAIL_FROM.into()),
        connect_timeout: smtp.connect_timeout.map(|d| d.0),
        command_timeout: smtp.command_timeout.map(|d| d.0),
    })
}

/// The target's sender roles and IPs, in the file's (sorted) order.
pub fn senders(t: &LoadedTarget) -> Vec<(String, Ipv4Addr)> {
    t.file
        .senders
        .get_ref()
        .iter()
        .map(|(role, ip)| (role.clone(), ip.get_ref().0))
        .collect()
}

/// Refuses a recipient outside the target's `[guard] allowed_domains` (when it lists any).
pub fn check_guard(t: &LoadedTarget, recipient: &str) -> Result<(), OpsError> {
    let Some((_, domain)) = recipient.rsplit_once('@') else {
        return Err(OpsError::Config(format!(
            "recipient {recipient:?} is not an email address"
        )));
    };
    let allowed: Vec<String> = t
        .file
        .guard
        .as_ref()
        .map(|g| {
            g.get_ref()
                .allowed_domains
                .iter()
                .map(|d| d.get_ref().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    if allowed.is_empty() || allowed.contains(&domain.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(OpsError::Config(format!(
            "{}: [guard] allowed_domains ({}) does not include {domain}; add it to send there",
            t.src.path.display(),
            allowed.join(", ")
        )))
    }
}

/// A fresh reference id: `<prefix>-<UTC time>-<6 hex>`, short enough to read out on a call.
pub fn reference_id(prefix: &str) -> String {
    let nonce = uuid::Uuid::new_v4().as_simple().to_string();
    format!(
        "{prefix}-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &nonce[..6]
    )
}

/// Whether the target is the embedded simulator.
pub fn is_simulator(t: &LoadedTarget) -> bool {
    t.file.kind == TargetKind::Simulator
}

/// Masks an address for a shareable report: the local part keeps its first character.
pub fn mask_address(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Replaces every occurrence of `addr` (any case) in `text` with its masked form.
pub fn redact(text: &str, addr: &str) -> String {
    if addr.is_empty() {
        return text.to_string();
    }
    let lower = text.to_ascii_lowercase();
    let needle = addr.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find(&needle) {
        out.push_str(&text[i..i + pos]);
        out.push_str(&mask_address(addr));
        i += pos + needle.len();
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_everywhere() {
        assert_eq!(mask_address("alice@contoso.com"), "a***@contoso.com");
        assert_eq!(
            redact("550 5.4.1 <Alice@Contoso.com>: no", "alice@contoso.com"),
            "550 5.4.1 <a***@contoso.com>: no"
        );
        assert_eq!(mask_address("nobody"), "***");
    }
}
