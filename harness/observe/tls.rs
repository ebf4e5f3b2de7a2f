//! The rustls client configuration of the IMAP client and the token endpoint: ring only,
//! Mozilla's roots plus the target's `ca_file`.
//!
//! A certificate listed in `ca_file` is also accepted as the server's own certificate even when
//! it is a self-signed CA certificate (webpki refuses those as end entities with
//! `CaUsedAsEndEntity`; test beds and appliances use exactly such certificates). The operator
//! pinned that exact certificate, so its validity period and names are still checked, and the
//! handshake signature still proves the server holds its key.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct};

use super::ObserveError;

/// Builds the client configuration; `ca_file` adds (and pins) trust anchors from a PEM file.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ObserveError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut pinned = Vec::new();
    if let Some(path) = ca_file {
        use rustls::pki_types::pem::PemObject;
        let bad = |e: &dyn std::fmt::Display| {
            ObserveError::Config(format!("ca_file {}: {e}", path.display()))
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(&e))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        if certs.is_empty() {
            return Err(bad(&"holds no CERTIFICATE block"));
        }
        for c in certs {
            roots.add(c.clone()).map_err(|e| bad(&e))?;
            pinned.push(c);
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ObserveError::Config(format!("certificate verifier: {e}")))?;
    let verifier = Arc::new(Verifier { webpki, pinned });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ObserveError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            return check_pinned(end_entity, server_name, now);
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Validity period and name of a pinned certificate.
fn check_pinned(
    ee: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(ee.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let t = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let v = cert.validity();
    if t < v.not_before.timestamp() {
        return Err(CertificateError::NotValidYet.into());
    }
    if t > v.not_after.timestamp() {
        return Err(CertificateError::Expired.into());
    }
    let sans: Vec<GeneralName<'_>> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| s.value.general_names.clone())
        .unwrap_or_default();
    let ok = match name {
        ServerName::DnsName(d) => {
            let host = d.as_ref().to_ascii_lowercase();
            sans.iter().any(|g| match g {
                GeneralName::DNSName(p) => dns_matches(&p.to_ascii_lowercase(), &host),
                _ => false,
            })
        }
        ServerName::IpAddress(ip) => {
            let ip: std::net::IpAddr = (*ip).into();
            sans.iter().any(|g| match g {
                GeneralName::IPAddress(b) => match (ip, b.len()) {
                    (std::net::IpAddr::V4(v4), 4) => v4.octets().as_slice() == *b,
                    (std::net::IpAddr::V6(v6), 16) => v6.octets().as_slice() == *b,
                    _ => false,
                },
                _ => false,
            })
        }
        _ => false,
    };
    if ok {
        Ok(ServerCertVerified::assertion())
    } else {
        Err(CertificateError::NotValidForName.into())
    }
}

/// RFC 6125 matching: exact, or `*.` standing for exactly one left-most label.
fn dns_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::dns_matches;

    #[test]
    fn wildcard_covers_one_label() {
        assert!(dns_matches("*.outlook.com", "a.outlook.com"));
        assert!(!dns_matches("*.outlook.com", "a.b.outlook.com"));
        assert!(dns_matches("mx.testbed.example", "mx.testbed.example"));
    }
}
