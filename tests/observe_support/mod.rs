//! Shared helpers of the observation tests (`tests/observe_*.rs`): the Dovecot test bed, message
//! placement straight into Maildirs, swaks sends, and synthesized attempt records.
//!
//! Every test uses its own `X-Harness-Run` id and only the qa3 mailbox, so other test files
//! (qa1 delivery checks, qa2 exact counts) are never disturbed.
#![allow(dead_code)]

use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mailharness::observe::{
    tls_config, AuthMethod, ConnectOptions, ImapTarget, MailboxAccess, SecretSource,
};
use mailharness::record::{AttemptRecord, RECORD_SCHEMA};
use mailharness::scenario::target::ImapTls;
use mailharness::vocab::{OutcomeClass, TlsMode};

const NOT_RUNNING: &str = "test bed not running: start it with `tests/testbed.sh up` and source \
                           <dir>/env, or use tests/run.sh";

/// The mailbox these tests own.
pub const USER: &str = "qa3";
/// The env var holding the test bed's IMAP password (read by the library at call time).
pub const PASSWORD_ENV: &str = "MH_TESTBED_IMAP_PASSWORD";

/// The test bed, from the `MH_TESTBED_*` variables.
pub struct Bed {
    pub smtp_host: String,
    pub smtp_port: String,
    pub imap_host: String,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub tls_ca: PathBuf,
    pub maildir_root: PathBuf,
    pub domain: String,
}

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set. {NOT_RUNNING}"),
    }
}

/// Reads the test bed's environment, panicking with a clear message when it is not running.
pub fn bed() -> Bed {
    if env::var_os("MH_TESTBED_DIR").is_none() {
        panic!("{NOT_RUNNING}");
    }
    let _ = var(PASSWORD_ENV);
    Bed {
        smtp_host: var("MH_TESTBED_SMTP_HOST"),
        smtp_port: var("MH_TESTBED_SMTP_PORT"),
        imap_host: var("MH_TESTBED_IMAP_HOST"),
        imap_port: var("MH_TESTBED_IMAP_PORT").parse().expect("IMAP port"),
        imaps_port: var("MH_TESTBED_IMAPS_PORT").parse().expect("IMAPS port"),
        tls_ca: PathBuf::from(var("MH_TESTBED_TLS_CA")),
        maildir_root: PathBuf::from(var("MH_TESTBED_MAILDIR_ROOT")),
        domain: var("MH_TESTBED_DOMAIN"),
    }
}

impl Bed {
    /// The qa3 address.
    pub fn address(&self) -> String {
        format!("{USER}@{}", self.domain)
    }

    /// An IMAP target for qa3 over the given TLS mode, LOGIN with the env password.
    pub fn target(&self, tls: ImapTls) -> ImapTarget {
        let port = match tls {
            ImapTls::Implicit => self.imaps_port,
            _ => self.imap_port,
        };
        ImapTarget {
            connect: ConnectOptions {
                host: self.imap_host.clone(),
                port,
                tls,
                tls_config: Some(tls_config(Some(&self.tls_ca)).expect("TLS config")),
                timeout: Duration::from_secs(30),
            },
            auth: AuthMethod::Login,
            mailboxes: vec![MailboxAccess {
                address: self.address(),
                login: USER.to_string(),
                password: Some(SecretSource::Env(PASSWORD_ENV.to_string())),
            }],
        }
    }

    /// The Maildir of qa3, or its Junk folder (Maildir++ `.Junk`).
    pub fn maildir(&self, junk: bool) -> PathBuf {
        let base = self.maildir_root.join(USER);
        if junk {
            base.join(".Junk")
        } else {
            base
        }
    }
}

/// A run id nobody else uses.
pub fn run_id(test: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!(
        "obs-{test}-{}-{nanos:x}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A Message-ID for a run and seq.
pub fn message_id(run: &str, seq: &str) -> String {
    format!("<{}.{}@harness.test>", run, seq.replace('/', "."))
}

/// An attempt record as the send engine would write it.
pub fn attempt(
    run: &str,
    seq: &str,
    to: &str,
    outcome: OutcomeClass,
    finished_at: DateTime<Utc>,
) -> AttemptRecord {
    AttemptRecord {
        schema: RECORD_SCHEMA,
        run_id: run.to_string(),
        seq: seq.to_string(),
        attempt_id: format!("{seq}#1"),
        attempt: 1,
        retry_of: None,
        phase: "before".into(),
        burst: "b0".into(),
        index: 0,
        sender: "primary".into(),
        source_ip: "127.0.0.2".parse().expect("ip"),
        destination: "127.0.0.1:25".into(),
        tls_mode: TlsMode::None,
        tls: None,
        message_id: message_id(run, seq),
        recipients: vec![to.to_string()],
        size: 100,
        connection: 1,
        connection_seq: 1,
        scheduled_at: finished_at,
        scheduled_ms: 0.0,
        started_at: finished_at,
        started_ms: 0.0,
        finished_at,
        finished_ms: 0.0,
        transcript: vec![],
        outcome,
        reply: None,
        token: None,
        queue_id: None,
        error: None,
    }
}

/// Sends one message through Postfix with swaks, STARTTLS when asked.
pub fn swaks(bed: &Bed, run: &str, seq: &str, tls: bool) {
    let to = bed.address();
    let h_run = format!("X-Harness-Run: {run}");
    let h_seq = format!("X-Harness-Seq: {seq}");
    // swaks replaces its own header only when the name matches its spelling exactly.
    let h_mid = format!("Message-Id: {}", message_id(run, seq));
    let subject = format!("Subject: observe test {run} {seq}");
    let mut args = vec![
        "--server",
        &bed.smtp_host,
        "--port",
        &bed.smtp_port,
        "--local-interface",
        "127.0.0.2",
        "--helo",
        "sender.platform.example",
        "--from",
        "sender@platform.example",
        "--to",
        &to,
        "--header",
        &subject,
        "--add-header",
        &h_run,
        "--add-header",
        &h_seq,
        "--header",
        &h_mid,
        "--body",
        "observation test",
        "--timeout",
        "20",
        "--silent",
        "2",
    ];
    if tls {
        args.push("--tls");
    }
    let out = Command::new("swaks")
        .args(&args)
        .output()
        .expect("swaks runs (tests/testbed.sh install)");
    assert!(
        out.status.success(),
        "swaks failed for {seq}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A message text with harness headers and EOP-style evidence headers.
pub fn message(run: Option<&str>, seq: Option<&str>, mid: &str, junk: bool) -> String {
    let date = Utc::now().to_rfc2822();
    let mut m = format!(
        "Received: from mta1.platform.example (127.0.0.2) by mx.testbed.example (127.0.0.1)\r\n \
         with Microsoft SMTP Server (version=TLS1_2,\r\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) \
         id 15.20.7897.13\r\n via Frontend Transport; {date}\r\n\
         X-MS-Exchange-Organization-AuthAs: Anonymous\r\n\
         X-Forefront-Antispam-Report: CIP:127.0.0.2;CTRY:;LANG:en;SCL:{scl};SRV:;IPV:NLI;SFV:{sfv};H:mta1.platform.example;PTR:;CAT:{cat};SFS:;DIR:INB;\r\n\
         X-Microsoft-Antispam-Mailbox-Delivery: ucf:0;jmr:0;auth:0;dest:{dest};ENG:(1);\r\n\
         Authentication-Results: spf=none (sender IP is 127.0.0.2)\r\n smtp.mailfrom=platform.example; dkim=none\r\n\
         From: sender@platform.example\r\nTo: qa3@testbed.example\r\nSubject: placed\r\nDate: {date}\r\n\
         Message-ID: {mid}\r\n",
        scl = if junk { 6 } else { 1 },
        sfv = if junk { "SPM" } else { "NSPM" },
        cat = if junk { "SPM" } else { "NONE" },
        dest = if junk { "J" } else { "I" },
    );
    if let Some(r) = run {
        m.push_str(&format!("X-Harness-Run: {r}\r\n"));
    }
    if let Some(s) = seq {
        m.push_str(&format!("X-Harness-Seq: {s}\r\n"));
    }
    m.push_str("\r\nbody\r\n");
    m
}

/// Delivers a message file into `<maildir>/new/` the Maildir way (tmp, then rename), owned
/// by the mail user like Postfix's deliveries.
pub fn place(dir: &Path, content: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    for sub in ["new", "cur", "tmp"] {
        let d = dir.join(sub);
        if !d.exists() {
            fs::create_dir_all(&d).expect("maildir dirs");
            std::os::unix::fs::chown(&d, Some(5000), Some(5000)).expect("chown dir");
        }
    }
    let _ = std::os::unix::fs::chown(dir, Some(5000), Some(5000));
    let name = format!(
        "{}.M{}P{}Q{}.observe-test",
        Utc::now().timestamp(),
        Utc::now().timestamp_subsec_micros(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let tmp = dir.join("tmp").join(&name);
    let mut f = fs::File::create(&tmp).expect("create message");
    f.write_all(content.as_bytes()).expect("write message");
    drop(f);
    std::os::unix::fs::chown(&tmp, Some(5000), Some(5000)).expect("chown message");
    let dest = dir.join("new").join(&name);
    fs::rename(&tmp, &dest).expect("deliver message");
    dest
}

/// Files in `<dir>/{new,cur}` whose content contains `needle`, with their Maildir flags.
pub fn files_with(dir: &Path, needle: &str) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(rd) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if let Ok(text) = fs::read_to_string(&p) {
                if text.contains(needle) {
                    let name = p
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .to_string();
                    let flags = name
                        .split_once(":2,")
                        .map(|(_, f)| f.to_string())
                        .unwrap_or_default();
                    out.push((p, flags));
                }
            }
        }
    }
    out
}

/// A current-thread tokio runtime for one test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
