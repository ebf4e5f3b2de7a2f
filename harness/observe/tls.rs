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

use crate::record::CertVerification;

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

/// Validity period and name of a pinned certificate: the send engine's check, as a rustls result.
fn check_pinned(
    ee: &CertificateDer<'_>,
    name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    match crate::send::tls::pinned_verdict(ee, name, now) {
        CertVerification::Valid => Ok(ServerCertVerified::assertion()),
        CertVerification::Expired => Err(CertificateError::Expired.into()),
        CertVerification::NameMismatch => Err(CertificateError::NotValidForName.into()),
        _ => Err(CertificateError::BadEncoding.into()),
    }
}
