//! Where mail goes, resolved once for `run`, `verify` and `confirm`: the embedded simulator's
//! loopback port and CA, or a real tenant's MX (given, or from DNS) on the target's port, with the
//! TLS, EHLO and envelope settings to send there.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::time::Duration;

use crate::dns::{self, DnsError, MxRecord};
use crate::scenario::target::SmtpSettings;
use crate::scenario::LoadedTarget;
use crate::send::{SendContext, SendError, TlsOptions};
use crate::sim::SimHandle;
use crate::vocab::ErrorClass;

/// The EHLO name used when the target sets none.
pub const DEFAULT_HELO: &str = "mailharness.platform.example";
/// The envelope sender used when the target sets none.
pub const DEFAULT_MAIL_FROM: &str = "mailharness@platform.example";
/// The name the simulator's certificate carries (EOP's CN).
const SIM_CERT_NAME: &str = "mail.protection.outlook.com";

/// Why the endpoint could not be resolved, or a send context not built for it.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The simulator listens on IPv6, which connectors cannot match.
    #[error("the simulator listens on IPv6 {0}; connectors match IPv4 senders only")]
    SimulatorIpv6(SocketAddrV6),
    /// The target has no `[smtp]` table.
    #[error("{path}: the target has no [smtp] table")]
    NoSmtp {
        /// The target file.
        path: PathBuf,
    },
    /// `[smtp] domain` is missing or empty.
    #[error("{path}: [smtp] domain is not set: it names the tenant's recipient domain")]
    NoDomain {
        /// The target file.
        path: PathBuf,
    },
    /// `[smtp] dns` is not a nameserver address.
    #[error("{path}: [smtp] dns: {source}")]
    Nameserver {
        /// The target file.
        path: PathBuf,
        /// What is wrong with it.
        source: DnsError,
    },
    /// The MX host the target names does not resolve.
    #[error("{path}: [smtp] mx {host}: {source}")]
    MxHost {
        /// The target file.
        path: PathBuf,
        /// The host it names.
        host: String,
        /// The lookup's failure.
        source: DnsError,
    },
    /// The domain's MX lookup failed.
    #[error("MX of {domain}: {source}")]
    Mx {
        /// The recipient domain.
        domain: String,
        /// The lookup's failure.
        source: DnsError,
    },
    /// No MX host of the domain has an IPv4 address.
    #[error("no MX host of {domain} has IPv4")]
    NoIpv4Mx {
        /// The recipient domain.
        domain: String,
    },
    /// `[smtp] ca_file` cannot be read.
    #[error("{path}: [smtp] ca_file {file}: cannot read it: {source}")]
    CaFile {
        /// The target file.
        path: PathBuf,
        /// The CA file as written.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS settings do not make a client configuration.
    #[error("TLS settings: {0}")]
    Tls(#[source] SendError),
}

impl EndpointError {
    /// Whether the target's settings are at fault (exit 2) or the surroundings (exit 3).
    pub fn class(&self) -> ErrorClass {
        match self {
            EndpointError::NoSmtp { .. }
            | EndpointError::NoDomain { .. }
            | EndpointError::Nameserver { .. }
            | EndpointError::CaFile { .. }
            | EndpointError::Tls(_) => ErrorClass::Config,
            EndpointError::SimulatorIpv6(_)
            | EndpointError::MxHost { .. }
            | EndpointError::Mx { .. }
            | EndpointError::NoIpv4Mx { .. } => ErrorClass::Infra,
        }
    }
}

/// Where mail goes, resolved.
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
    pub fn simulator(sim: &SimHandle, domain: &str) -> Result<Endpoint, EndpointError> {
        let destination = match sim.smtp_addr() {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => return Err(EndpointError::SimulatorIpv6(a)),
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
    pub fn context(&self, run_id: &str) -> Result<SendContext, EndpointError> {
        let mut ctx = SendContext::new(
            run_id,
            self.destination,
            &self.helo,
            &self.mail_from,
            &self.tls,
        )
        .map_err(EndpointError::Tls)?;
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
fn nameserver(
    t: &LoadedTarget,
    smtp: &SmtpSettings,
    cli: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, EndpointError> {
    if cli.is_some() {
        return Ok(cli);
    }
    smtp.dns
        .as_ref()
        .map(|d| {
            dns::parse_nameserver(d.get_ref()).map_err(|source| EndpointError::Nameserver {
                path: t.src.path.clone(),
                source,
            })
        })
        .transpose()
}

/// Resolves a real tenant's endpoint: `[smtp] mx` if given, else the domain's MX from DNS; the
/// first MX host with an IPv4 address, on the target's `[smtp] port` (default 25).
pub async fn tenant_endpoint(
    t: &LoadedTarget,
    dns_override: Option<SocketAddr>,
) -> Result<Endpoint, EndpointError> {
    let path = &t.src.path;
    let smtp = t
        .file
        .smtp
        .as_ref()
        .map(|s| s.get_ref())
        .ok_or_else(|| EndpointError::NoSmtp { path: path.clone() })?;
    let domain = smtp
        .domain
        .as_ref()
        .map(|d| d.get_ref().trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| EndpointError::NoDomain { path: path.clone() })?;
    let ns = nameserver(t, smtp, dns_override)?;
    let (mx, host, ip) = match &smtp.mx {
        Some(m) => given_mx(t, m.get_ref().trim(), ns).await?,
        None => mx_of(&domain, ns).await?,
    };
    let extra = match &smtp.ca_file {
        Some(f) => Some(
            std::fs::read_to_string(f).map_err(|source| EndpointError::CaFile {
                path: path.clone(),
                file: f.clone(),
                source,
            })?,
        ),
        None => None,
    };
    Ok(Endpoint {
        domain,
        mx,
        mx_host: host.clone(),
        destination: SocketAddrV4::new(ip, smtp.port.unwrap_or(25)),
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

/// The MX host the target names, resolved: no MX records, the host and its first IPv4 address.
async fn given_mx(
    t: &LoadedTarget,
    host: &str,
    ns: Option<SocketAddr>,
) -> Result<(Vec<MxRecord>, String, Ipv4Addr), EndpointError> {
    let ips = dns::resolve_host_v4(host, ns)
        .await
        .map_err(|source| EndpointError::MxHost {
            path: t.src.path.clone(),
            host: host.to_string(),
            source,
        })?;
    Ok((Vec::new(), host.to_string(), ips[0]))
}

/// The domain's MX records, and the first MX host with an IPv4 address.
async fn mx_of(
    domain: &str,
    ns: Option<SocketAddr>,
) -> Result<(Vec<MxRecord>, String, Ipv4Addr), EndpointError> {
    let mx = dns::resolve_mx(domain, ns)
        .await
        .map_err(|source| EndpointError::Mx {
            domain: domain.to_string(),
            source,
        })?;
    let (host, ip) = mx
        .iter()
        .find_map(|(_, h, ips)| ips.first().map(|ip| (h.clone(), *ip)))
        .ok_or_else(|| EndpointError::NoIpv4Mx {
            domain: domain.to_string(),
        })?;
    Ok((mx, host, ip))
}
