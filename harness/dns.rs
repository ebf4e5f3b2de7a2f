//! MX resolution for real tenants: the domain's MX hosts in preference order, each with its IPv4
//! addresses (connectors match IPv4 senders only, so the harness connects over IPv4).
//!
//! A nameserver can be chosen (`ip:port`), which the tests point at the test bed's dnsmasq; without
//! one the system's resolver configuration is used.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

/// How long one DNS query may take before it is retried.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a timed-out query is retried.
const QUERY_ATTEMPTS: usize = 2;

/// One MX host: `(preference, host name without the trailing dot, its IPv4 addresses)`.
pub type MxRecord = (u16, String, Vec<Ipv4Addr>);

/// Why a domain's mail hosts could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A bad domain name or nameserver address.
    #[error("{0}")]
    Config(String),
    /// The domain does not exist (NXDOMAIN).
    #[error("{domain} does not exist in DNS (NXDOMAIN)")]
    NoSuchDomain {
        /// The domain asked about.
        domain: String,
    },
    /// The domain publishes a null MX (RFC 7505): it accepts no mail.
    #[error("{domain} publishes a null MX (RFC 7505): it accepts no mail")]
    NullMx {
        /// The domain asked about.
        domain: String,
    },
    /// No MX host has an IPv4 address.
    #[error("no MX host of {domain} has an IPv4 address ({hosts}); Microsoft 365 connectors match IPv4 senders only")]
    NoIpv4 {
        /// The domain asked about.
        domain: String,
        /// The MX hosts found, comma-separated.
        hosts: String,
    },
    /// The lookup itself failed (timeout, refused, server failure).
    #[error("DNS lookup of {what} failed: {detail}")]
    Lookup {
        /// What was looked up, e.g. `MX contoso.com`.
        what: String,
        /// The resolver's message.
        detail: String,
    },
}

/// Parses a `--dns` value: `ip:port`, or a bare `ip` for port 53.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, DnsError> {
    let t = s.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(DnsError::Config(format!(
        "nameserver `{s}` is not `ip:port` (e.g. 127.0.0.1:5353) or an IP address"
    )))
}

/// Builds a resolver: the given nameserver only (no hosts file), or the system's configuration.
fn resolver(nameserver: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let mut builder = match nameserver {
        Some(ns) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = ns.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = ns.port();
            let cfg = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                ns.ip(),
                true,
                vec![udp, tcp],
            )]);
            let mut b = TokioResolver::builder_with_config(cfg, TokioRuntimeProvider::default());
            // An explicit nameserver means "ask exactly this server": /etc/hosts must not answer.
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            DnsError::Config(format!(
                "cannot read the system's resolver configuration (/etc/resolv.conf): {e}; pass --dns ip:port"
            ))
        })?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = QUERY_ATTEMPTS;
    // Names given are absolute: never try search domains.
    opts.ndots = 0;
    builder
        .build()
        .map_err(|e| DnsError::Config(format!("cannot build the DNS resolver: {e}")))
}

/// Makes a name absolute (trailing dot) so no search domain is appended.
fn fqdn(name: &str) -> String {
    let n = name.trim();
    if n.ends_with('.') {
        n.to_string()
    } else {
        format!("{n}.")
    }
}

/// Checks a domain name's shape before it goes to DNS, so a typo gets a clear message.
fn check_name(what: &str, name: &str) -> Result<(), DnsError> {
    let n = name.trim().trim_end_matches('.');
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(DnsError::Config(format!(
            "{what} `{name}` is not a valid domain name"
        )))
    }
}

/// Turns a resolver error into ours; "no records" is `Ok(None)` so callers can fall back.
fn lookup_err(what: String, domain: &str, e: NetError) -> Result<Option<()>, DnsError> {
    if e.is_nx_domain() {
        return Err(DnsError::NoSuchDomain {
            domain: domain.trim_end_matches('.').to_string(),
        });
    }
    if e.is_no_records_found() {
        return Ok(None);
    }
    Err(DnsError::Lookup {
        what,
        detail: e.to_string(),
    })
}

/// The IPv4 addresses of one host (empty when it has none).
async fn a_records(r: &TokioResolver, host: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
    match r.ipv4_lookup(fqdn(host).as_str()).await {
        Ok(l) => {
            let mut v: Vec<Ipv4Addr> = l
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            v.sort();
            v.dedup();
            Ok(v)
        }
        Err(e) => lookup_err(format!("A {host}"), host, e).map(|_| Vec::new()),
    }
}

/// Resolves `domain`'s MX hosts, sorted by preference, each with its IPv4 addresses.
///
/// A domain without MX records gets its implicit MX (RFC 5321 §5.1: the domain itself, preference
/// 0). Errors when the domain does not exist, publishes a null MX, or no host has an IPv4 address.
pub async fn resolve_mx(
    domain: &str,
    nameserver: Option<SocketAddr>,
) -> Result<Vec<MxRecord>, DnsError> {
    check_name("recipient domain", domain)?;
    let r = resolver(nameserver)?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut mx: Vec<(u16, String)> = match r.mx_lookup(fqdn(&domain).as_str()).await {
        Ok(l) => l
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::MX(m) => Some((
                    m.preference,
                    m.exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                )),
                _ => None,
            })
            .collect(),
        Err(e) => {
            lookup_err(format!("MX {domain}"), &domain, e)?;
            Vec::new()
        }
    };
    if mx.iter().any(|(_, h)| h.is_empty()) {
        return Err(DnsError::NullMx { domain });
    }
    if mx.is_empty() {
        mx.push((0, domain.clone()));
    }
    // Equal preferences keep a stable, readable order.
    mx.sort();
    mx.dedup();
    let mut out = Vec::with_capacity(mx.len());
    for (pref, host) in mx {
        let ips = match a_records(&r, &host).await {
            Ok(v) => v,
            // A dangling MX host is reported as "no IPv4" below, not as a hard failure.
            Err(DnsError::NoSuchDomain { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        out.push((pref, host, ips));
    }
    if out.iter().all(|(_, _, ips)| ips.is_empty()) {
        return Err(DnsError::NoIpv4 {
            hosts: out
                .iter()
                .map(|(_, h, _)| h.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            domain,
        });
    }
    Ok(out)
}

/// Resolves one host's IPv4 addresses through the chosen nameserver (or the system's); an IP
/// literal resolves to itself.
pub async fn resolve_host_v4(
    host: &str,
    nameserver: Option<SocketAddr>,
) -> Result<Vec<Ipv4Addr>, DnsError> {
    if let Ok(ip) = host.trim().parse::<Ipv4Addr>() {
        return Ok(vec![ip]);
    }
    check_name("host", host)?;
    let r = resolver(nameserver)?;
    let v = a_records(&r, host).await?;
    if v.is_empty() {
        return Err(DnsError::NoIpv4 {
            domain: host.to_string(),
            hosts: host.to_string(),
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_parse_with_and_without_a_port() {
        assert_eq!(
            parse_nameserver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(parse_nameserver("10.0.0.1").unwrap().port(), 53);
        assert!(parse_nameserver("dns.example")
            .unwrap_err()
            .to_string()
            .contains("ip:port"));
    }

    #[test]
    fn domain_names_are_checked_before_any_query() {
        assert!(check_name("d", "contoso.com").is_ok());
        assert!(check_name("d", "contoso.com.").is_ok());
        assert!(check_name("d", "bad..name").is_err());
        assert!(check_name("d", "sp ace.example").is_err());
        assert!(check_name("d", "").is_err());
    }

    #[test]
    fn unknown_domain_against_a_dead_nameserver_is_a_lookup_error_not_a_panic() {
        // A loopback port nobody listens on: the query times out or is refused.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        drop(sock);
        let r = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                resolve_mx("nowhere.example", Some(addr)),
            )
            .await
        });
        assert!(matches!(r, Ok(Err(DnsError::Lookup { .. }))), "{r:?}");
    }
}
