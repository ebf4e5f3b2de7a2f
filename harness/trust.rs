//! Judging a TLS server's certificate, shared by the SMTP client (`send`) and the IMAP client and
//! token endpoint (`observe`): rustls's WebPKI verifier, plus byte-for-byte pinning of the extra
//! trust anchors a target gives, and the verification classes that records store.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore};

use crate::record::CertVerification;
use crate::vocab::TlsVerify;

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

/// The clients' verifier (SMTP in `send`, IMAP and the token endpoint in `observe`). `verify` fails
/// the handshake unless the judge says valid; `record` lets it proceed (the verdict is recorded
/// afterwards). Both check handshake signatures, so the session is genuinely with the
/// certificate's key.
#[derive(Debug)]
pub(crate) struct HarnessVerifier {
    judge: Judge,
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
            judge: Judge { webpki, pinned },
            mode,
        }))
    }

    /// The verdict on a certificate chain for `name`, whatever the mode: what `record` records.
    pub(crate) fn verdict(
        &self,
        ee: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> CertVerification {
        self.judge.verdict(ee, intermediates, name, now)
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
