//! The rustls client configuration of the IMAP client and the token endpoint: ring only,
//! Mozilla's roots plus the target's `ca_file`.
//!
//! A certificate listed in `ca_file` is also accepted as the server's own certificate even when
//! it is a self-signed CA certificate (webpki refuses those as end entities with
//! `CaUsedAsEndEntity`; test beds and appliances use exactly such certificates). The operator
//! pinned that exact certificate, so its validity period and names are still checked, and the
//! handshake signature still proves the server holds its key. The verifier is the one the send
//! engine uses too (`trust::HarnessVerifier`), in strict mode.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use super::ObserveError;
use crate::trust::HarnessVerifier;
use crate::vocab::TlsVerify;

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
    let verifier = HarnessVerifier::new(roots, pinned, &provider, TlsVerify::Verify)
        .map_err(|e| ObserveError::Config(format!("certificate verifier: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ObserveError::Config(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
