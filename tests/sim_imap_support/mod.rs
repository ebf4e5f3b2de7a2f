//! Helpers for the simulator's IMAP tests: a simulator with IMAP credentials from files, SMTP
//! delivery over a raw socket, and a small blocking IMAP client that keeps every response line.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mailharness::sim::{self, SimHandle, TenantConfig};

/// The password of every test mailbox (written to a file; never in the tenant config).
pub const PASSWORD: &str = "Sim-Imap-Pa55!";
/// A bearer token accepted for every mailbox (app-only style).
pub const APP_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.app-token.sig";
/// A bearer token accepted for qa2 only.
pub const QA2_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.qa2-only.sig";
/// The first test mailbox.
pub const QA1: &str = "qa1@contoso.example";
/// The second test mailbox.
pub const QA2: &str = "qa2@contoso.example";

/// A running simulator with its runtime, state directory and secrets directory.
pub struct ImapSim {
    pub rt: tokio::runtime::Runtime,
    pub handle: Option<SimHandle>,
    pub state: PathBuf,
    pub secrets: tempfile::TempDir,
    _state_dir: Option<tempfile::TempDir>,
    pub cfg: TenantConfig,
}

/// A tenant with no throttling, a short delivery delay and IMAP secrets in files under `secrets`.
pub fn tenant(secrets: &Path) -> TenantConfig {
    let mut cfg = TenantConfig::default();
    cfg.throttle.enabled = false;
    cfg.delivery.delay = "10ms".parse().expect("duration");
    let pw = secrets.join("password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("password file");
    let app = secrets.join("app-tokens");
    std::fs::write(&app, format!("{APP_TOKEN}\n")).expect("token file");
    let qa2 = secrets.join("qa2-tokens");
    std::fs::write(&qa2, QA2_TOKEN).expect("token file");
    for m in &mut cfg.mailboxes {
        m.password_file = Some(pw.clone());
        if m.address == QA2 {
            m.xoauth2_tokens_file = Some(qa2.clone());
        }
    }
    cfg.imap.app_tokens_file = Some(app);
    cfg
}

impl ImapSim {
    /// Starts a simulator in a fresh state directory.
    pub fn start() -> ImapSim {
        let secrets = tempfile::tempdir().expect("temp dir");
        let cfg = tenant(secrets.path());
        let state_dir = tempfile::tempdir().expect("temp dir");
        let state = state_dir.path().to_path_buf();
        let mut s = ImapSim::start_in(cfg, &state, secrets);
        s._state_dir = Some(state_dir);
        s
    }

    /// Starts a simulator on `state` (which may hold a previous run's Maildirs).
    pub fn start_in(cfg: TenantConfig, state: &Path, secrets: tempfile::TempDir) -> ImapSim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let handle = rt
            .block_on(sim::start(cfg.clone(), state))
            .expect("simulator starts");
        ImapSim {
            rt,
            handle: Some(handle),
            state: state.to_path_buf(),
            secrets,
            _state_dir: None,
            cfg,
        }
    }

    /// Stops the simulator, keeping the state directory; returns what a restart needs.
    pub fn stop(mut self) -> (TenantConfig, tempfile::TempDir, Option<tempfile::TempDir>) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown()).expect("clean shutdown");
        }
        let cfg = self.cfg.clone();
        let secrets = std::mem::replace(&mut self.secrets, tempfile::tempdir().expect("tmp"));
        (cfg, secrets, self._state_dir.take())
    }

    pub fn h(&self) -> &SimHandle {
        self.handle.as_ref().expect("running")
    }

    pub fn imap(&self) -> SocketAddr {
        self.h().imap_addr().expect("IMAP on")
    }

    pub fn imaps(&self) -> SocketAddr {
        self.h().imaps_addr().expect("IMAPS on")
    }

    /// Writes the simulator's CA to a file for curl/Python and returns its path.
    pub fn ca_file(&self) -> PathBuf {
        let p = self.secrets.path().join("ca.pem");
        std::fs::write(&p, self.h().ca_cert_pem().expect("TLS on")).expect("CA file");
        p
    }

    /// `<state>/maildir`.
    pub fn maildir(&self) -> PathBuf {
        self.h().maildir_root().to_path_buf()
    }

    /// Sends one message over SMTP and waits until it is stored.
    pub fn deliver(&self, to: &str, subject: &str, body: &str) -> String {
        let id = format!("<{}@sim-imap.test>", uuid::Uuid::new_v4());
        smtp_send(self.h().smtp_addr(), to, &id, subject, body);
        assert!(
            self.rt
                .block_on(self.h().wait_delivered(Duration::from_secs(30))),
            "delivery did not finish"
        );
        id
    }
}

impl Drop for ImapSim {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

/// One SMTP transaction over a raw socket (plain text; the simulator accepts it without a connector).
pub fn smtp_send(addr: SocketAddr, to: &str, message_id: &str, subject: &str, body: &str) {
    let s = TcpStream::connect(addr).expect("SMTP connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let expect = |code: &str, r: &mut BufReader<TcpStream>| loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("SMTP reply");
        assert!(l.starts_with(code), "expected {code}, got {l:?}");
        if l.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220", &mut r);
    let mut cmd = |c: &str, code: &str, r: &mut BufReader<TcpStream>| {
        w.write_all(format!("{c}\r\n").as_bytes())
            .expect("SMTP write");
        expect(code, r);
    };
    cmd("EHLO mta1.platform.example", "250", &mut r);
    cmd("MAIL FROM:<alerts@platform.example>", "250", &mut r);
    cmd(&format!("RCPT TO:<{to}>"), "250", &mut r);
    cmd("DATA", "354", &mut r);
    let msg = format!(
        "From: Alerts <alerts@platform.example>\r\nTo: <{to}>\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\nDate: Mon, 2 Jun 2025 10:00:00 +0000\r\nX-Harness-Run: sim-imap\r\n\r\n{body}\r\n."
    );
    cmd(&msg, "250", &mut r);
    cmd("QUIT", "221", &mut r);
}

/// A blocking IMAP client that returns every response line of each command.
pub struct Client {
    r: BufReader<Box<dyn ReadWrite>>,
    n: u32,
    /// The greeting line.
    pub greeting: String,
}

/// A byte stream both readable and writable.
pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// A completed command: untagged lines (literals inlined) and the tagged completion.
#[derive(Debug)]
pub struct Reply {
    pub untagged: Vec<String>,
    pub done: String,
}

impl Reply {
    /// `OK`, `NO` or `BAD` of the completion.
    pub fn status(&self) -> &str {
        self.done.split(' ').nth(1).unwrap_or_default()
    }

    pub fn ok(&self) -> bool {
        self.status() == "OK"
    }

    /// Numbers of the `* SEARCH` line.
    pub fn search(&self) -> Vec<u32> {
        self.untagged
            .iter()
            .find_map(|l| l.strip_prefix("* SEARCH"))
            .map(|s| {
                s.split_whitespace()
                    .map(|n| n.parse().expect("number"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether an untagged line contains `s`.
    pub fn has(&self, s: &str) -> bool {
        self.untagged.iter().any(|l| l.contains(s))
    }

    pub fn all(&self) -> String {
        let mut s = self.untagged.join("\n");
        s.push('\n');
        s.push_str(&self.done);
        s
    }
}

impl Client {
    /// Connects to the plain listener.
    pub fn plain(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("IMAP connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        Client::over(Box::new(s))
    }

    fn over(io: Box<dyn ReadWrite>) -> Client {
        let mut c = Client {
            r: BufReader::new(io),
            n: 0,
            greeting: String::new(),
        };
        c.greeting = c.read_line();
        assert!(c.greeting.starts_with("* OK"), "{}", c.greeting);
        c
    }

    /// Reads one line without CRLF (panics at EOF: the server must never drop us).
    pub fn read_line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self.r.read_until(b'\n', &mut buf).expect("IMAP read");
        assert!(n > 0, "the server closed the connection");
        while buf.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            buf.pop();
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Reads a response line with its literals inlined.
    fn read_response(&mut self) -> String {
        let mut line = self.read_line();
        while let Some(open) = line.rfind('{') {
            if !line.ends_with('}') {
                break;
            }
            let Ok(n) = line[open + 1..line.len() - 1].parse::<usize>() else {
                break;
            };
            let mut data = vec![0; n];
            self.r.read_exact(&mut data).expect("literal");
            line.push_str("\r\n");
            line.push_str(&String::from_utf8_lossy(&data));
            line.push_str(&self.read_line());
        }
        line
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, data: &[u8]) {
        self.r.get_mut().write_all(data).expect("IMAP write");
    }

    /// Reads until the completion of `tag`.
    pub fn read_until_tag(&mut self, tag: &str) -> Reply {
        let mut untagged = Vec::new();
        loop {
            let l = self.read_response();
            if l.starts_with(&format!("{tag} ")) {
                return Reply { untagged, done: l };
            }
            untagged.push(l);
        }
    }

    /// Sends `<tag> <cmd>` and reads its reply.
    pub fn cmd(&mut self, cmd: &str) -> Reply {
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.send_raw(format!("{tag} {cmd}\r\n").as_bytes());
        self.read_until_tag(&tag)
    }

    /// LOGIN with the test password; asserts success.
    pub fn login(&mut self, user: &str) {
        let r = self.cmd(&format!("LOGIN {user} \"{PASSWORD}\""));
        assert!(r.ok(), "{}", r.all());
    }

    /// SELECT; asserts success.
    pub fn select(&mut self, folder: &str) -> Reply {
        let r = self.cmd(&format!("SELECT \"{folder}\""));
        assert!(r.ok(), "{}", r.all());
        r
    }

    /// The number from `* <n> EXISTS`.
    pub fn exists(r: &Reply) -> Option<u32> {
        r.untagged
            .iter()
            .rev()
            .find_map(|l| l.strip_suffix(" EXISTS")?.strip_prefix("* ")?.parse().ok())
    }
}

/// Runs a command with a time limit; returns (exit code, stdout, stderr).
pub fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run tool");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
