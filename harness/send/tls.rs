//! TLS for the client: rustls on the ring provider, strict or recording verification, and what
//! each handshake negotiated.

use std::net::{IpAddr, SocketAddrV4};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::SendError;
use crate::record::{CertVerification, TlsInfo};
use crate::trust::{cert_error_class, HarnessVerifier};
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
    verifier: Arc<HarnessVerifier>,
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
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| SendError::Config(format!("TLS versions: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
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
            verifier,
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
                    self.verifier
                        .verdict(ee, rest, &self.server_name, UnixTime::now())
                }
            };
        }
        info
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
