//! Two more independent clients of the simulator, both Rust crates that share no code with it:
//! lettre's SMTP transport sends (plain text, STARTTLS verified against the simulator's CA, and
//! a refused recipient), and the `imap` crate reads the mailbox back (LOGIN, SELECT, SEARCH,
//! FETCH) over plain IMAP and over implicit TLS. rustls runs with the ring provider only.

mod sim_imap_support;

use std::net::TcpStream;
use std::sync::Arc;

use lettre::message::header::ContentType;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use sim_imap_support::*;

/// The name on the simulator's certificate that clients check.
const SERVER_NAME: &str = "localhost";

fn message(subject: &str, to: &str, id: &str) -> Message {
    Message::builder()
        .from("lettre <lettre@platform.example>".parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(subject)
        .message_id(Some(id.to_string()))
        .header(ContentType::TEXT_PLAIN)
        .body(format!("sent by lettre: {subject}\r\n"))
        .expect("message")
}

fn transport(sim: &ImapSim, tls: Tls) -> SmtpTransport {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(sim.h().smtp_addr().port())
        .hello_name(ClientId::Domain("lettre.platform.example".into()))
        .tls(tls)
        .timeout(Some(std::time::Duration::from_secs(30)))
        .build()
}

fn tls_parameters(sim: &ImapSim) -> TlsParameters {
    let ca = sim.h().ca_cert_pem().expect("TLS on");
    TlsParameters::builder(SERVER_NAME.into())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .build_rustls()
        .expect("TLS parameters")
}

#[test]
fn lettre_sends_plain_and_starttls_and_reads_a_refusal() {
    let sim = ImapSim::start();
    let plain = transport(&sim, Tls::None);
    let r = plain
        .send(&message("lettre plain", QA1, "<plain@lettre.test>"))
        .expect("plain send");
    assert_eq!(u16::from(r.code()), 250);
    let text = r.message().collect::<Vec<_>>().join(" ");
    assert!(text.contains("Queued mail for delivery"), "{text}");

    let secure = transport(&sim, Tls::Required(tls_parameters(&sim)));
    let r = secure
        .send(&message("lettre starttls", QA1, "<tls@lettre.test>"))
        .expect("STARTTLS send");
    assert_eq!(u16::from(r.code()), 250);

    // A mailbox the tenant does not have: DBEB's 550 5.4.1, permanent for lettre too.
    let e = plain
        .send(&message(
            "lettre refused",
            "nobody@contoso.example",
            "<refused@lettre.test>",
        ))
        .expect_err("unknown mailbox refused");
    assert!(e.is_permanent(), "{e}");
    assert_eq!(e.status().map(u16::from), Some(550), "{e}");
    assert!(e.to_string().contains("AS(201806281)"), "{e}");

    assert!(sim
        .rt
        .block_on(sim.h().wait_delivered(std::time::Duration::from_secs(30))));
    let trace = sim.h().trace(None).expect("trace");
    let tls_of = |id: &str| {
        trace
            .iter()
            .find(|r| r.message_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no trace record for {id}"))
            .tls
            .clone()
    };
    assert_eq!(tls_of("<plain@lettre.test>"), None);
    assert!(tls_of("<tls@lettre.test>").is_some());
    let refused = trace
        .iter()
        .find(|r| r.reply.code == 550)
        .expect("refusal traced");
    assert_eq!(refused.reply.to_string().get(..9), Some("550 5.4.1"));
}

/// The simulator's CA as a rustls root store.
fn roots(sim: &ImapSim) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let pem = sim.h().ca_cert_pem().expect("TLS on");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    roots
}

fn imaps_stream(sim: &ImapSim) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots(sim))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME).expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let tcp = TcpStream::connect(sim.imaps()).expect("IMAPS connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok();
    rustls::StreamOwned::new(conn, tcp)
}

/// LOGIN, SELECT, SEARCH by header, FETCH of the header and the body, LOGOUT.
fn read_back<T: std::io::Read + std::io::Write>(
    mut client: imap::Client<T>,
    message_id: &str,
    subject: &str,
    text: &str,
) {
    let greeting = client.read_greeting().expect("greeting");
    assert!(
        String::from_utf8_lossy(&greeting).contains("Microsoft Exchange IMAP4 service is ready"),
        "{}",
        String::from_utf8_lossy(&greeting)
    );
    let mut session = client.login(QA1, PASSWORD).map_err(|e| e.0).expect("LOGIN");
    let inbox = session.select("INBOX").expect("SELECT");
    assert!(inbox.exists >= 1, "{inbox:?}");
    assert!(inbox.uid_validity.is_some(), "{inbox:?}");
    let uids = session
        .uid_search(format!("HEADER Message-ID \"{message_id}\""))
        .expect("UID SEARCH");
    assert_eq!(uids.len(), 1, "{uids:?}");
    let uid = *uids.iter().next().expect("one UID");
    let fetched = session
        .uid_fetch(
            uid.to_string(),
            "(UID RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT])",
        )
        .expect("UID FETCH");
    let m = fetched.iter().next().expect("one message");
    assert_eq!(m.uid, Some(uid));
    let header = String::from_utf8_lossy(m.header().expect("header"));
    assert!(header.contains(&format!("Subject: {subject}")), "{header}");
    assert!(header.contains("X-Forefront-Antispam-Report:"), "{header}");
    let body = String::from_utf8_lossy(m.text().expect("body"));
    assert!(body.contains(text), "{body}");
    assert!(m.size.is_some_and(|s| s > 0));
    // BODY.PEEK: nothing was marked \Seen.
    let seen = session.uid_search("SEEN").expect("SEARCH SEEN");
    assert!(seen.is_empty(), "{seen:?}");
    session.logout().expect("LOGOUT");
}

#[test]
fn the_imap_crate_reads_what_was_delivered_plain_and_over_tls() {
    let sim = ImapSim::start();
    let id = sim.deliver(QA1, "for the imap crate", "read me back");
    let tcp = TcpStream::connect(sim.imap()).expect("IMAP connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok();
    let (subject, text) = ("for the imap crate", "read me back");
    read_back(imap::Client::new(tcp), &id, subject, text);
    read_back(imap::Client::new(imaps_stream(&sim)), &id, subject, text);
}
