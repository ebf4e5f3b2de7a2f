//! SMTP protocol behaviour of the simulator over raw sockets: pipelining, STARTTLS injection,
//! dot-unstuffing, bad input, limits, timeouts and graceful shutdown.

mod sim_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use mailharness::sim::TenantConfig;
use sim_support::*;

/// A line-oriented SMTP client over any stream.
struct Client<S: Read + Write> {
    r: BufReader<S>,
}

impl<S: Read + Write> Client<S> {
    fn send(&mut self, s: &str) {
        self.r.get_mut().write_all(s.as_bytes()).expect("write");
        self.r.get_mut().flush().expect("flush");
    }

    fn send_raw(&mut self, b: &[u8]) {
        self.r.get_mut().write_all(b).expect("write");
    }

    /// Reads one (possibly multi-line) reply; returns its lines.
    fn reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            let n = self.r.read_line(&mut l).expect("read reply");
            assert!(n > 0, "connection closed; got so far {lines:?}");
            let l = l.trim_end().to_string();
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if last {
                return lines;
            }
        }
    }

    /// Reads one reply and checks its last line starts with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        let r = self.reply();
        let last = r.last().cloned().unwrap_or_default();
        assert!(last.starts_with(prefix), "expected `{prefix}`, got {r:?}");
        last
    }
}

/// Connects from a 127.0.0.x source address (std has no bind-before-connect, tokio does).
fn connect(sim: &Sim, source: &str) -> Client<TcpStream> {
    let local: std::net::SocketAddr = format!("{source}:0").parse().expect("addr");
    let to = sim.h().smtp_addr();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let s = rt.block_on(async move {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(local).expect("bind source address");
        let s = sock.connect(to).await.expect("connect");
        s.into_std().expect("std stream")
    });
    s.set_nonblocking(false).expect("blocking");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    Client {
        r: BufReader::new(s),
    }
}

fn open_session(sim: &Sim, source: &str) -> Client<TcpStream> {
    let mut c = connect(sim, source);
    let g = c.expect("220 ");
    assert!(
        g.starts_with("220 CH3PEPF00000015.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at "),
        "{g}"
    );
    let id = g
        .rsplit_once('[')
        .map(|(_, id)| id.trim_end_matches(']'))
        .unwrap_or("");
    assert_eq!(id.len(), 16, "{g}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{g}");
    c.send("EHLO mta1.platform.example\r\n");
    let caps = c.reply();
    assert_eq!(
        caps,
        vec![
            format!("250-CH3PEPF00000015.mail.protection.outlook.com Hello [{source}]"),
            "250-SIZE 157286400".to_string(),
            "250-PIPELINING".to_string(),
            "250-DSN".to_string(),
            "250-ENHANCEDSTATUSCODES".to_string(),
            "250-STARTTLS".to_string(),
            "250-8BITMIME".to_string(),
            "250 SMTPUTF8".to_string(),
        ]
    );
    c
}

fn no_throttle() -> TenantConfig {
    let mut cfg = TenantConfig::default();
    cfg.throttle.enabled = false;
    cfg.delivery.delay = "10ms".parse().expect("duration");
    cfg
}

#[test]
fn pipelining_replies_in_order_and_dot_unstuffing() {
    let sim = Sim::start(no_throttle());
    let mut c = open_session(&sim, "127.0.0.2");
    c.send(
        "MAIL FROM:<a@platform.example> BODY=8BITMIME\r\nRCPT TO:<qa1@contoso.example>\r\nRCPT TO:<nobody@contoso.example>\r\nRCPT TO:<QA2@Contoso.Example> NOTIFY=NEVER\r\nDATA\r\n",
    );
    c.expect("250 2.1.0 Sender OK");
    c.expect("250 2.1.5 Recipient OK");
    c.expect("550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [");
    c.expect("250 2.1.5 Recipient OK");
    c.expect("354 ");
    // Data, terminator and the next commands in one write.
    c.send("Subject: dots\r\n\r\n..leading dot\r\n..\r\n...two\r\nend\r\n.\r\nNOOP\r\nQUIT\r\n");
    let q = c.expect("250 2.6.0 <");
    assert!(q.ends_with("Queued mail for delivery"), "{q}");
    assert!(q.contains("[InternalId="), "{q}");
    c.expect("250 2.0.0 OK");
    c.expect("221 2.0.0 ");
    sim.wait_delivered();
    let files = maildir_files(sim.h().maildir_root());
    assert_eq!(files.len(), 2, "one copy per accepted mailbox: {files:?}");
    let text = std::fs::read_to_string(&files[0]).expect("read");
    assert!(
        text.ends_with("\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n"),
        "{text:?}"
    );
    assert!(
        text.contains("\r\nMessage-ID: <"),
        "a Message-ID is added when missing"
    );
    let recs = sim.h().trace(None).expect("trace");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].recipients.len(), 3);
    assert_eq!(recs[0].deliveries.len(), 2);
    sim.shutdown();
}

#[test]
fn starttls_discards_injected_plaintext_and_resets_state() {
    let sim = Sim::start(no_throttle());
    let mut c = open_session(&sim, "127.0.0.2");
    // The classic injection: commands after STARTTLS in the same packet.
    c.send("STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\n");
    c.expect("220 2.0.0 SMTP server ready");
    let tcp = c.r.into_inner();
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut probe = [0u8; 1];
    match (&tcp).read(&mut probe) {
        Ok(n) => panic!("server answered injected plaintext ({n} bytes)"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
    tcp.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");

    let mut roots = rustls::RootCertStore::empty();
    let pem = sim.h().ca_cert_pem().expect("CA").as_bytes().to_vec();
    for cert in rustls_pki_types_certs(&pem) {
        roots.add(cert).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The certificate names EOP's host: verification succeeds against the generated CA.
    let name =
        rustls::pki_types::ServerName::try_from("contoso-example.mail.protection.outlook.com")
            .expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tls = rustls::StreamOwned::new(conn, tcp);
    let mut c = Client {
        r: BufReader::new(tls),
    };
    // The injected MAIL FROM was not executed, and EHLO is required again.
    c.send("MAIL FROM:<a@platform.example>\r\n");
    c.expect("503 5.5.2 Send hello first");
    c.send("EHLO mta1.platform.example\r\n");
    let caps = c.reply();
    assert!(!caps.iter().any(|l| l.contains("STARTTLS")), "{caps:?}");
    c.send("STARTTLS\r\n");
    c.expect("503 5.5.1 ");
    c.send("MAIL FROM:<a@platform.example>\r\nRCPT TO:<qa1@contoso.example>\r\nDATA\r\n");
    c.expect("250 2.1.0");
    c.expect("250 2.1.5");
    c.expect("354 ");
    c.send("Subject: over tls\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    c.expect("250 2.6.0 ");
    c.expect("221 ");
    sim.wait_delivered();
    let recs = sim.h().trace(None).expect("trace");
    assert_eq!(recs.len(), 1, "only the TLS transaction exists: {recs:?}");
    let tls = recs[0].tls.as_ref().expect("TLS recorded");
    assert!(
        tls.version == "TLS1_3" || tls.version == "TLS1_2",
        "{tls:?}"
    );
    assert!(tls.cipher.starts_with("TLS_"), "{tls:?}");
    sim.shutdown();
}

fn rustls_pki_types_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM")
}

#[test]
fn bad_input_never_ends_the_session() {
    let mut cfg = no_throttle();
    cfg.front_end.max_message_size = "1MiB".parse().expect("size");
    let sim = Sim::start(cfg);
    let mut c = connect(&sim, "127.0.0.2");
    c.expect("220 ");
    c.send("MAIL FROM:<a@platform.example>\r\n");
    c.expect("503 5.5.2 Send hello first");
    c.send("HELO mta1\r\n");
    c.expect("250 CH3PEPF00000015.mail.protection.outlook.com Hello [127.0.0.2]");
    c.send("FOO bar\r\n");
    c.expect("500 5.3.3 Unrecognized command");
    c.send_raw(b"\x00\x01\x02\xff garbage \xc3\x28\r\n");
    c.expect("500 ");
    c.send("RCPT TO:<qa1@contoso.example>\r\n");
    c.expect("503 5.5.1 Need mail command");
    c.send("DATA\r\n");
    c.expect("503 5.5.1 Need mail command");
    c.send("MAIL FROM:not-an-address\r\n");
    c.expect("501 ");
    c.send(&format!("NOOP {}\r\n", "x".repeat(10_000)));
    c.expect("500 5.5.2 Line too long");
    c.send("NOOP\r\n");
    c.expect("250 2.0.0 OK");
    c.send("HELP\r\n");
    let help = c.reply();
    assert!(help[0].starts_with("214-") && help.last().expect("line").starts_with("214 "));
    c.send("VRFY qa1\r\n");
    c.expect("252 2.1.5 ");
    c.send("EXPN list\r\n");
    c.expect("502 5.3.3 ");
    c.send("AUTH PLAIN AGZvbwBiYXI=\r\n");
    c.expect("504 5.7.4 ");
    c.send("BDAT 10\r\n0123456789NOOP\r\n");
    c.expect("503 5.5.1 BDAT not supported");
    c.expect("250 2.0.0 OK");
    c.send("MAIL FROM:<a@platform.example> SIZE=99999999999\r\n");
    c.expect("552 5.3.4 Message size exceeds fixed maximum message size");
    c.send("MAIL FROM:<a@platform.example>\r\nMAIL FROM:<b@platform.example>\r\n");
    c.expect("250 2.1.0");
    c.expect("503 5.5.2 Sender already specified");
    c.send("DATA\r\n");
    c.expect("503 5.5.1 Need rcpt command");
    c.send("RCPT TO:<nobody@contoso.example>\r\nDATA\r\n");
    c.expect("550 5.4.1 ");
    c.expect("554 5.5.1 No valid recipients");
    c.send("RCPT TO:<postmaster>\r\n");
    c.expect("501 5.1.3 ");
    c.send("RSET\r\n");
    c.expect("250 2.0.0 Resetting");
    // The null sender and an empty message.
    c.send("MAIL FROM:<>\r\nRCPT TO:<qa3@contoso.example>\r\nDATA\r\n");
    c.expect("250 2.1.0");
    c.expect("250 2.1.5");
    c.expect("354 ");
    c.send(".\r\n");
    c.expect("250 2.6.0 <");
    c.send("QUIT\r\n");
    c.expect("221 2.0.0 Service closing transmission channel");
    sim.wait_delivered();
    assert_eq!(maildir_files(sim.h().maildir_root()).len(), 1);
    sim.shutdown();
}

/// The idle timer is armed once per session and moved by activity: a client that keeps talking
/// for longer than the timeout stays connected, and times out one timeout after it falls quiet.
#[test]
fn activity_postpones_the_idle_timeout() {
    let mut cfg = no_throttle();
    cfg.front_end.command_timeout = "1s".parse().expect("duration");
    let sim = Sim::start(cfg);
    let mut c = connect(&sim, "127.0.0.2");
    c.expect("220 ");
    c.send("EHLO x\r\n");
    c.reply();
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(400));
        c.send("NOOP\r\n");
        c.expect("250 2.0.0 OK");
    }
    let quiet = std::time::Instant::now();
    c.expect("421 4.4.2 ");
    let waited = quiet.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "timed out {waited:?} after the last command, before the 1 s limit"
    );
    sim.shutdown();
}

#[test]
fn idle_client_times_out_with_421() {
    let mut cfg = no_throttle();
    cfg.front_end.command_timeout = "1s".parse().expect("duration");
    let sim = Sim::start(cfg);
    let mut c = connect(&sim, "127.0.0.2");
    c.expect("220 ");
    c.send("EHLO x\r\nMAIL FROM:<a@platform.example>\r\n");
    c.reply();
    c.expect("250 2.1.0");
    c.expect("421 4.4.2 ");
    let mut rest = String::new();
    assert_eq!(
        c.r.read_line(&mut rest).expect("eof"),
        0,
        "closed after 421"
    );
    let recs = sim.h().trace(None).expect("trace");
    assert_eq!(recs.len(), 1);
    assert_eq!(
        serde_json::to_value(recs[0].decision).expect("json"),
        serde_json::json!("abandoned")
    );
    sim.shutdown();
}

#[test]
fn shutdown_says_421_and_delivers_the_queue() {
    let mut cfg = no_throttle();
    cfg.delivery.delay = "1h".parse().expect("duration");
    let sim = Sim::start(cfg);
    let mut c = open_session(&sim, "127.0.0.3");
    c.send("MAIL FROM:<a@platform.example>\r\nRCPT TO:<qa1@contoso.example>\r\nDATA\r\n");
    c.expect("250 2.1.0");
    c.expect("250 2.1.5");
    c.expect("354 ");
    c.send("Subject: queued\r\n\r\nbody\r\n.\r\n");
    c.expect("250 2.6.0 ");
    let root = sim.h().maildir_root().to_path_buf();
    assert!(
        maildir_files(&root).is_empty(),
        "held for the delivery delay"
    );
    let trace_path = sim.h().trace_path().to_path_buf();
    let dir = sim.dir.path().to_path_buf();
    let Sim {
        rt,
        mut handle,
        dir: keep,
    } = sim;
    let h = handle.take().expect("handle");
    let closer = std::thread::spawn(move || {
        let r = c.reply();
        assert!(r[0].starts_with("421 4.3.2 "), "{r:?}");
    });
    rt.block_on(h.shutdown()).expect("shutdown");
    closer.join().expect("client saw 421");
    assert_eq!(
        maildir_files(&root).len(),
        1,
        "queued mail delivered at shutdown"
    );
    let recs = mailharness::sim::trace::read_trace_file(&trace_path, None).expect("trace");
    assert_eq!(recs.len(), 1);
    assert!(recs[0].delivered_at.is_some());
    assert!(dir.exists());
    drop(keep);
}

#[test]
fn the_command_line_cap_holds_at_its_edge_and_across_reads() {
    let sim = Sim::start(no_throttle());
    let mut c = connect(&sim, "127.0.0.2");
    c.expect("220 ");
    // 4096 octets with CRLF is the longest line taken; one more is too long.
    let noop = |len: usize| format!("NOOP {}\r\n", "x".repeat(len - 7));
    c.send(&noop(4096));
    c.expect("250 2.0.0 OK");
    c.send(&noop(4097));
    c.expect("500 5.5.2 Line too long");
    c.send("NOOP\r\n");
    c.expect("250 2.0.0 OK");
    // An over-long line in pieces: refused once past the cap, its rest skipped to its LF.
    let line = noop(9000);
    for piece in line.as_bytes().chunks(1000) {
        c.send_raw(piece);
        std::thread::sleep(Duration::from_millis(5));
    }
    c.expect("500 5.5.2 Line too long");
    c.send("NOOP\r\n");
    c.expect("250 2.0.0 OK");
}
