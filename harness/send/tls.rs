//! TLS for the client: rustls on the ring provider, strict or recording verification, and what
//! each handshake negotiated.

use std::net::{IpAddr, SocketAddrV4};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::SendError;
use crate::record::{CertVerification, TlsInfo};
use crate::vocab::TlsVerify;

/// How TLS sessions are set up.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Fail on a bad certificate (`verify`), or record the result and continue (`record`).
    pub verify: TlsVerify,
    /// Extra trust anchors in PEM (a test CA, the simulator's CA).
    pub extra_roots_pem: Option<String>,
    /// The name to verify the certificate against (SNI too); `None` verifies the destination IP.
    pub server_name: Option<String>,
    /// Leave out the built-in public roots (tests that must only trust their own CA).
    pub no_public_roots: bool,
}

/// The built client configuration and the verifier used to judge certificates.
pub(crate) struct TlsSetup {
    pub(crate) verify: TlsVerify,
    connector: TlsConnector,
    judge: Arc<Judge>,
    pub(crate) server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("verify", &self.verify)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSetup {
    pub(crate) fn new(opts: &TlsOptions, dest: SocketAddrV4) -> Result<Self, SendError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let mut pinned = Vec::new();
        if !opts.no_public_roots {
            // Compiled-in Mozilla roots: real MX certificates verify without any network fetch.
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if let Some(pem) = &opts.extra_roots_pem {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| {
                    SendError::Config(format!("extra trust anchors: unreadable PEM: {e}"))
                })?;
                roots.add(cert.clone()).map_err(|e| {
                    SendError::Config(format!("extra trust anchors: unusable certificate: {e}"))
                })?;
                pinned.push(cert);
                n += 1;
            }
            if n == 0 {
                return Err(SendError::Config(
                    "extra trust anchors: the PEM text holds no CERTIFICATE block".into(),
                ));
            }
        }
        if roots.is_empty() {
            return Err(SendError::Config(
                "no trust anchors: give a CA file or allow the public roots".into(),
            ));
        }
        let verifier = HarnessVerifier::new(roots, pinned, &provider, opts.verify)
            .map_err(|e| SendError::Config(format!("certificate verifier: {e}")))?;
        let judge = verifier.judge.clone();
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| SendError::Config(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // Every connection does a full handshake: a resumed session would skip the certificate,
        // and the record must show what the server presents each time.
        config.resumption = Resumption::disabled();
        let server_name = match &opts.server_name {
            Some(n) => ServerName::try_from(n.clone())
                .map_err(|e| SendError::Config(format!("TLS server name `{n}`: {e}")))?,
            None => ServerName::IpAddress(IpAddr::V4(*dest.ip()).into()),
        };
        Ok(TlsSetup {
            verify: opts.verify,
            connector: TlsConnector::from(Arc::new(config)),
            judge,
            server_name,
        })
    }

    /// Runs the handshake over `tcp`.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, std::io::Error> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }

    /// What the finished handshake negotiated, with the certificate judged by the real verifier.
    pub(crate) fn info(&self, s: &TlsStream<TcpStream>) -> TlsInfo {
        let (_, c) = s.get_ref();
        let version = match c.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "1.2".to_string(),
            Some(rustls::ProtocolVersion::TLSv1_3) => "1.3".to_string(),
            Some(v) => format!("{v:?}"),
            None => "unknown".into(),
        };
        let cipher = c
            .negotiated_cipher_suite()
            .map(|s| {
                let id = s.suite();
                id.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{id:?}"))
            })
            .unwrap_or_else(|| "unknown".into());
        let certs = c.peer_certificates().unwrap_or(&[]);
        let mut info = TlsInfo {
            version,
            cipher,
            peer_subject: None,
            peer_sans: Vec::new(),
            peer_not_after: None,
            verification: CertVerification::Invalid("no peer certificate".into()),
        };
        if let Some((ee, rest)) = certs.split_first() {
            describe_cert(ee, &mut info);
            info.verification = match self.verify {
                // The handshake only succeeded because the strict verifier accepted the chain.
                TlsVerify::Verify => CertVerification::Valid,
                TlsVerify::Record => {
                    self.judge
                        .verdict(ee, rest, &self.server_name, UnixTime::now())
                }
            };
        }
        info
    }
}

/// The verification class of a certificate error.
pub(crate) fn cert_error_class(e: &CertificateError) -> CertVerification {
    match e {
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => CertVerification::Expired,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            CertVerification::NameMismatch
        }
        CertificateError::UnknownIssuer => CertVerification::UnknownIssuer,
        other => CertVerification::Invalid(format!("{other:?}")),
    }
}

/// Fills subject, SANs and not-after from the end-entity certificate; unparsable data is left out.
fn describe_cert(der: &CertificateDer<'_>, info: &mut TlsInfo) {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return;
    };
    info.peer_subject = Some(cert.subject().to_string());
    info.peer_not_after = DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0);
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => info.peer_sans.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(*b)
                            .ok()
                            .map(|a| IpAddr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*b)
                            .ok()
                            .map(|a| IpAddr::from(a).to_string()),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        info.peer_sans.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Judges certificates: the WebPKI verifier, plus exact-match pinning of the extra anchors.
///
/// Test servers (the test bed, many appliances) present a self-signed certificate that is its own
/// trust anchor. WebPKI refuses a CA certificate as an end entity, so a certificate that is
/// byte-for-byte one of the extra anchors is trusted as pinned; its validity period and names
/// are still checked.
#[derive(Debug)]
struct Judge {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl Judge {
    fn verdict(
        &self,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> CertVerification {
        if self.pinned.iter().any(|p| p.as_ref() == ee.as_ref()) {
            return pinned_verdict(ee, name, now);
        }
        match self
            .webpki
            .verify_server_cert(ee, intermediates, name, &[], now)
        {
            Ok(_) => CertVerification::Valid,
            // A self-signed certificate that is no trust anchor: whatever else webpki objects to
            // (CaUsedAsEndEntity, typically), the operator's problem is the unknown issuer.
            Err(_) if self_issued(ee) => CertVerification::UnknownIssuer,
            Err(rustls::Error::InvalidCertificate(e)) => cert_error_class(&e),
            Err(e) => CertVerification::Invalid(e.to_string()),
        }
    }
}

/// Whether the certificate's issuer is its subject.
fn self_issued(ee: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(ee.as_ref())
        .is_ok_and(|(_, c)| c.issuer().as_raw() == c.subject().as_raw())
}

/// Validity period and name check of a pinned certificate.
fn pinned_verdict(
    ee: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> CertVerification {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(ee.as_ref()) else {
        return CertVerification::Invalid("unparsable certificate".into());
    };
    let t = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let v = cert.validity();
    if t < v.not_before.timestamp() || t > v.not_after.timestamp() {
        return CertVerification::Expired;
    }
    let mut dns: Vec<String> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        ips.push(IpAddr::from(a));
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        ips.push(IpAddr::from(a));
                    }
                }
                _ => {}
            }
        }
    }
    let ok = match name {
        ServerName::DnsName(d) => {
            let host = d.as_ref().to_ascii_lowercase();
            dns.iter().any(|pat| dns_matches(pat, &host))
        }
        ServerName::IpAddress(ip) => ips.contains(&IpAddr::from(*ip)),
        _ => false,
    };
    if ok {
        CertVerification::Valid
    } else {
        CertVerification::NameMismatch
    }
}

/// RFC 6125 matching: exact, or a `*.` wildcard standing for exactly one left-most label.
fn dns_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

/// The client's verifier (SMTP here, IMAP and the token endpoint in `observe`). `verify` fails
/// the handshake unless the judge says valid; `record` lets it proceed (the verdict is recorded
/// afterwards). Both check handshake signatures, so the session is genuinely with the
/// certificate's key.
#[derive(Debug)]
pub(crate) struct HarnessVerifier {
    judge: Arc<Judge>,
    mode: TlsVerify,
}

impl HarnessVerifier {
    /// A verifier over `roots` (WebPKI) that also trusts the `pinned` certificates byte for byte.
    pub(crate) fn new(
        roots: RootCertStore,
        pinned: Vec<CertificateDer<'static>>,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        mode: TlsVerify,
    ) -> Result<Arc<Self>, rustls::server::VerifierBuilderError> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()?;
        Ok(Arc::new(HarnessVerifier {
            judge: Arc::new(Judge { webpki, pinned }),
            mode,
        }))
    }
}

impl ServerCertVerifier for HarnessVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.mode == TlsVerify::Record {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .judge
            .verdict(end_entity, intermediates, server_name, now)
        {
            CertVerification::Valid => Ok(ServerCertVerified::assertion()),
            CertVerification::Expired => Err(CertificateError::Expired.into()),
            CertVerification::NameMismatch => Err(CertificateError::NotValidForName.into()),
            CertVerification::UnknownIssuer => Err(CertificateError::UnknownIssuer.into()),
            CertVerification::Invalid(why) => Err(rustls::Error::General(why)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.judge.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.judge.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.judge.webpki.supported_verify_schemes()
    }
}

/// Describes a handshake error, naming the certificate problem when there is one.
pub(crate) fn handshake_error_text(e: &std::io::Error) -> (String, Option<CertVerification>) {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => (
            format!("TLS handshake failed: invalid peer certificate: {c:?}"),
            Some(cert_error_class(c)),
        ),
        _ => (format!("TLS handshake failed: {e}"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(dns_matches("mx.testbed.example", "mx.testbed.example"));
        assert!(dns_matches(
            "*.mail.protection.outlook.com",
            "contoso-com.mail.protection.outlook.com"
        ));
        assert!(!dns_matches(
            "*.mail.protection.outlook.com",
            "a.b.mail.protection.outlook.com"
        ));
        assert!(!dns_matches(
            "*.mail.protection.outlook.com",
            "mail.protection.outlook.com"
        ));
    }
}
