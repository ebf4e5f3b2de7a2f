//! TLS for the front end: a certificate like EOP's, generated at start or loaded from PEM files.
//!
//! Reference ("Greeting and EHLO"): certificate CN `mail.protection.outlook.com`, SAN
//! `*.mail.protection.outlook.com`. The generated leaf also names `localhost` and `127.0.0.1` so
//! that clients connecting to the loopback listener can verify it against the generated CA.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerConnection;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::config::{TlsConfig, TlsVersion};
use super::trace::TlsInfo;
use super::SimError;

/// EOP's certificate subject (reference).
pub const EOP_CERT_CN: &str = "mail.protection.outlook.com";
/// EOP's certificate SAN (reference).
pub const EOP_CERT_SAN: &str = "*.mail.protection.outlook.com";

/// The acceptor plus the PEM texts clients need.
pub struct TlsMaterial {
    /// The rustls acceptor (ring provider only).
    pub acceptor: TlsAcceptor,
    /// The CA certificate that signed the server certificate (the server certificate itself when loaded from files).
    pub ca_pem: String,
}

fn tls_err(what: &str) -> impl Fn(rcgen::Error) -> SimError + '_ {
    move |e| SimError::Tls(format!("{what}: {e}"))
}

/// Generates (into `dir`) or loads the certificate and builds the acceptor.
pub fn build(cfg: &TlsConfig, fqdn: &str, dir: &Path) -> Result<TlsMaterial, SimError> {
    let (chain, key, ca_pem) = match (&cfg.cert_pem, &cfg.key_pem) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| SimError::Tls(format!("reading {}: {e}", cert.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| SimError::Tls(format!("parsing {}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(SimError::Tls(format!(
                    "{} holds no CERTIFICATE block",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| SimError::Tls(format!("reading key {}: {e}", key.display())))?;
            let pem = std::fs::read_to_string(cert)
                .map_err(|e| SimError::io(format!("reading {}", cert.display()), e))?;
            (chain, key, pem)
        }
        _ => generate(fqdn, dir)?,
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = cfg
        .versions
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| SimError::Tls(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| SimError::Tls(format!("server certificate: {e}")))?;
    Ok(TlsMaterial {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem,
    })
}

type Generated = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String);

fn generate(fqdn: &str, dir: &Path) -> Result<Generated, SimError> {
    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(tls_err("CA parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "mailharness simulated tenant CA");
    dn.push(DnType::OrganizationName, "mailharness");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(tls_err("CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_err("CA certificate"))?;

    let sans = vec![
        EOP_CERT_CN.to_string(),
        EOP_CERT_SAN.to_string(),
        fqdn.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let mut params = CertificateParams::new(sans).map_err(tls_err("server parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, EOP_CERT_CN);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(tls_err("server key"))?;
    let cert = params
        .signed_by(&key, &ca)
        .map_err(tls_err("server certificate"))?;

    let ca_pem = ca.pem();
    let write = |name: &str, text: &str| -> Result<(), SimError> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| SimError::io(format!("writing {}", p.display()), e))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| SimError::io(format!("creating {}", dir.display()), e))?;
    write("ca.pem", &ca_pem)?;
    write("cert.pem", &format!("{}{}", cert.pem(), ca_pem))?;
    write("key.pem", &key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("key.pem");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| SimError::io(format!("restricting {}", p.display()), e))?;
    }
    let chain = vec![cert.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| SimError::Tls(format!("server key: {e}")))?;
    Ok((chain, key, ca_pem))
}

/// The negotiated version and cipher, named as EOP's `Received:` line names them.
pub fn describe(conn: &ServerConnection) -> TlsInfo {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1_2".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1_3".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let suite = s.suite();
            let name = suite
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{suite:?}"));
            // rustls spells TLS 1.3 suites TLS13_*; the IANA/Exchange name is TLS_*.
            match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name,
            }
        })
        .unwrap_or_else(|| "unknown".to_string());
    TlsInfo { version, cipher }
}
