//! Proves that each server of the real-mail-server test bed (`tests/testbed.sh up`) answers, by
//! driving it with real, independent clients: swaks, Postfix's smtp-source, curl (IMAP/IMAPS) and
//! dig. Standard library only.
//!
//! Run: `tests/testbed.sh up && . tests/.testbed/env && cargo test --test testbed`
//!
//! Every child process runs under a timeout guard, every test uses a unique subject token, and
//! Maildirs are polled for up to ~10 s. Mailboxes are shared out so parallel tests cannot collide
//! on counts: qa1 for SMTP delivery checks, qa2 only for the smtp-source count, qa3 for the IMAP
//! search/fetch checks (an IMAP SELECT moves messages from `new/` to `cur/`, which must not
//! disturb the qa1 `new/` checks). Everything that touches the throttled IP 127.0.0.3 lives in
//! one test function, so toggling the throttle cannot race with the "is throttled" check.

use std::env;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NOT_RUNNING: &str = "test bed not running: start it with `tests/testbed.sh up` and source \
                           <dir>/env, or use tests/run.sh";

/// How long to poll a Maildir for a delivery.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(10);
/// Timeout guard for one client process.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The test bed as described by the `export` lines of `<MH_TESTBED_DIR>/env`.
struct Bed {
    smtp_host: String,
    smtp_port: String,
    tls_ca: String,
    tls_name: String,
    throttled_ip: String,
    maildir_root: PathBuf,
    imap_host: String,
    imap_port: String,
    imaps_port: String,
    password: String,
    dns_host: String,
    dns_port: String,
    mx_host: String,
    domain: String,
}

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set. {NOT_RUNNING}"),
    }
}

fn bed() -> Bed {
    if env::var_os("MH_TESTBED_DIR").is_none() {
        panic!("{NOT_RUNNING}");
    }
    Bed {
        smtp_host: var("MH_TESTBED_SMTP_HOST"),
        smtp_port: var("MH_TESTBED_SMTP_PORT"),
        tls_ca: var("MH_TESTBED_TLS_CA"),
        tls_name: var("MH_TESTBED_TLS_NAME"),
        throttled_ip: var("MH_TESTBED_THROTTLED_IP"),
        maildir_root: PathBuf::from(var("MH_TESTBED_MAILDIR_ROOT")),
        imap_host: var("MH_TESTBED_IMAP_HOST"),
        imap_port: var("MH_TESTBED_IMAP_PORT"),
        imaps_port: var("MH_TESTBED_IMAPS_PORT"),
        password: var("MH_TESTBED_IMAP_PASSWORD"),
        dns_host: var("MH_TESTBED_DNS_HOST"),
        dns_port: var("MH_TESTBED_DNS_PORT"),
        mx_host: var("MH_TESTBED_MX_HOST"),
        domain: var("MH_TESTBED_DOMAIN"),
    }
}

/// A subject token nobody else uses: test name, process id, time and a counter.
fn token(test: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "mh-testbed-{test}-{}-{nanos}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    /// stdout and stderr together (swaks writes its transcript to stdout, errors to stderr).
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs a client process with a timeout guard: it is killed (and the test fails) if it does not
/// finish in time. stdout/stderr are drained on threads, so a chatty child cannot block on a pipe.
fn run(program: &str, args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program}: {e} (is it installed? tests/testbed.sh install)")
        });
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break Some(status),
            None if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    let output = Output {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if status.is_none() {
        panic!("{program} {args:?} timed out after {timeout:?}\n{output}");
    }
    output
}

fn testbed_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("testbed.sh")
}

fn swaks(bed: &Bed, local_ip: &str, to: &str, subject: &str, extra: &[&str]) -> Output {
    let header = format!("Subject: {subject}");
    let body = format!("mailharness test bed message {subject}");
    let mut args = vec![
        "--server",
        &bed.smtp_host,
        "--port",
        &bed.smtp_port,
        "--local-interface",
        local_ip,
        "--helo",
        "sender.platform.example",
        "--from",
        "sender@platform.example",
        "--to",
        to,
        "--header",
        &header,
        "--body",
        &body,
        "--timeout",
        "20",
    ];
    args.extend_from_slice(extra);
    run("swaks", &args, CLIENT_TIMEOUT)
}

/// Message files in `<root>/<user>/{new,cur}` whose header carries `Subject: <token>`.
fn find_messages(bed: &Bed, user: &str, token: &str) -> Vec<PathBuf> {
    let needle = format!("Subject: {token}");
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let dir = bed.maildir_root.join(user).join(sub);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(bytes) = fs::read(&path) {
                if String::from_utf8_lossy(&bytes)
                    .lines()
                    .any(|l| l.trim_end() == needle)
                {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

/// Polls until at least `want` messages with the token are there, up to the delivery deadline.
fn wait_for_messages(bed: &Bed, user: &str, token: &str, want: usize) -> Vec<PathBuf> {
    let started = Instant::now();
    loop {
        let found = find_messages(bed, user, token);
        if found.len() >= want || started.elapsed() >= DELIVERY_DEADLINE {
            return found;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn mailbox(bed: &Bed, user: &str) -> String {
    format!("{user}@{}", bed.domain)
}

fn assert_throttled(bed: &Bed, out: &Output, subject: &str) {
    let all = out.all();
    assert!(
        all.contains("451 4.7.500"),
        "expected 451 4.7.500 from the throttled IP\n{out}"
    );
    assert!(all.contains("(AS761)"), "expected the AS761 token\n{out}");
    assert!(
        !all.contains("queued as"),
        "a throttled message must not be queued\n{out}"
    );
    assert!(
        find_messages(bed, "qa1", subject).is_empty(),
        "a throttled message was delivered"
    );
}

#[test]
fn swaks_plain_delivers_to_maildir_new() {
    let bed = bed();
    let subject = token("plain");
    let out = swaks(&bed, "127.0.0.2", &mailbox(&bed, "qa1"), &subject, &[]);
    assert_eq!(out.code, Some(0), "swaks failed\n{out}");
    assert!(out.stdout.contains("250 2.0.0 Ok: queued as"), "{out}");
    let found = wait_for_messages(&bed, "qa1", &subject, 1);
    assert_eq!(
        found.len(),
        1,
        "message {subject} not delivered exactly once to qa1: {found:?}"
    );
    assert_eq!(
        found[0]
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str()),
        Some("new"),
        "expected the message in qa1/new/: {found:?}"
    );
    let text = fs::read_to_string(&found[0]).unwrap();
    assert!(
        text.contains("127.0.0.2"),
        "Received header should name the source IP:\n{text}"
    );
}

#[test]
fn swaks_starttls_negotiates_tls12_or_13_and_delivers() {
    let bed = bed();
    let subject = token("starttls");
    // --tls-verify against MH_TESTBED_TLS_CA proves the self-signed cert works as a trust anchor.
    let out = swaks(
        &bed,
        "127.0.0.2",
        &mailbox(&bed, "qa1"),
        &subject,
        &["--tls", "--tls-verify", "--tls-ca-path", &bed.tls_ca],
    );
    assert_eq!(out.code, Some(0), "swaks --tls failed\n{out}");
    let all = out.all();
    assert!(
        all.contains("TLS started with cipher TLSv1.3")
            || all.contains("TLS started with cipher TLSv1.2"),
        "TLS 1.2/1.3 not negotiated\n{out}"
    );
    assert!(
        all.contains(&format!("CN={}", bed.tls_name)),
        "peer certificate should be {}\n{out}",
        bed.tls_name
    );
    let found = wait_for_messages(&bed, "qa1", &subject, 1);
    assert_eq!(
        found.len(),
        1,
        "TLS message {subject} not delivered: {found:?}"
    );
    let text = fs::read_to_string(&found[0]).unwrap();
    assert!(
        text.contains("using TLSv1.3") || text.contains("using TLSv1.2"),
        "Received header should record TLS:\n{text}"
    );
}

/// The throttled IP gets Postfix's rewrite of the access-table reply. Exact text produced by
/// Postfix 3.7 (smtpd_peername_lookup = no, so the client name is "unknown"), at RCPT TO:
///
/// `451 4.7.500 <unknown[127.0.0.3]>: Client host rejected: Server busy. Please try again later from [127.0.0.3]. (AS761)`
///
/// Then `tests/testbed.sh throttle` (empty table, "the connector was created") makes the same IP
/// accepted, and `tests/testbed.sh throttle 127.0.0.3` restores the throttle. Both live in this
/// one function so no other test can see the switched-off state; a guard restores the throttle
/// even if an assertion fails halfway.
#[test]
fn throttled_ip_gets_451_and_throttle_subcommand_toggles_it() {
    let bed = bed();
    let to = mailbox(&bed, "qa1");
    let ip = bed.throttled_ip.clone();

    // 1. Throttled by default.
    let subject = token("throttled");
    let out = swaks(&bed, &ip, &to, &subject, &[]);
    assert_throttled(&bed, &out, &subject);
    let expected = format!(
        "451 4.7.500 <unknown[{ip}]>: Client host rejected: Server busy. Please try again later from [{ip}]. (AS761)"
    );
    assert!(
        out.all().contains(&expected),
        "expected exactly `{expected}`\n{out}"
    );

    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = run(
                testbed_sh().to_str().unwrap(),
                &["throttle", &self.0],
                CLIENT_TIMEOUT,
            );
        }
    }
    let restore = Restore(ip.clone());

    // 2. Throttle switched off: the same IP is accepted and the message is delivered. A smtpd
    //    process still holding the old table could answer one more session, so retry briefly.
    let off = run(
        testbed_sh().to_str().unwrap(),
        &["throttle"],
        CLIENT_TIMEOUT,
    );
    assert_eq!(off.code, Some(0), "testbed.sh throttle failed\n{off}");
    let subject = token("unthrottled");
    let started = Instant::now();
    let out = loop {
        let out = swaks(&bed, &ip, &to, &subject, &[]);
        if out.code == Some(0) || started.elapsed() > Duration::from_secs(10) {
            break out;
        }
        thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        out.code,
        Some(0),
        "{ip} should be accepted with an empty access table\n{out}"
    );
    assert!(out.stdout.contains("queued as"), "{out}");
    let found = wait_for_messages(&bed, "qa1", &subject, 1);
    assert_eq!(
        found.len(),
        1,
        "unthrottled message {subject} not delivered"
    );

    // 3. Throttle restored.
    let on = run(
        testbed_sh().to_str().unwrap(),
        &["throttle", &ip],
        CLIENT_TIMEOUT,
    );
    assert_eq!(on.code, Some(0), "testbed.sh throttle {ip} failed\n{on}");
    let subject = token("rethrottled");
    let started = Instant::now();
    let out = loop {
        let out = swaks(&bed, &ip, &to, &subject, &[]);
        if out.all().contains("451 4.7.500") || started.elapsed() > Duration::from_secs(10) {
            break out;
        }
        thread::sleep(Duration::from_millis(300));
    };
    assert_throttled(&bed, &out, &subject);
    drop(restore);
}

#[test]
fn smtp_source_delivers_exactly_20_to_qa2() {
    let bed = bed();
    let subject = token("smtpsource");
    let target = format!("{}:{}", bed.smtp_host, bed.smtp_port);
    let to = mailbox(&bed, "qa2");
    let out = run(
        "smtp-source",
        &[
            "-c",
            "-m",
            "20",
            "-s",
            "4",
            "-S",
            &subject,
            "-t",
            &to,
            "-f",
            "sender@platform.example",
            &target,
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "smtp-source failed\n{out}");
    let found = wait_for_messages(&bed, "qa2", &subject, 20);
    assert_eq!(
        found.len(),
        20,
        "expected 20 messages in qa2, found {}",
        found.len()
    );
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        find_messages(&bed, "qa2", &subject).len(),
        20,
        "more than 20 messages arrived"
    );
}

fn curl(bed: &Bed, url: &str, extra: &[&str]) -> Output {
    curl_as(bed, "qa1", url, extra)
}

fn curl_as(bed: &Bed, user: &str, url: &str, extra: &[&str]) -> Output {
    let cred = format!("{user}:{}", bed.password);
    let mut args = vec!["-sS", "--max-time", "20", "--user", &cred, url];
    args.extend_from_slice(extra);
    run("curl", &args, CLIENT_TIMEOUT)
}

fn assert_list_has_inbox_and_junk(out: &Output) {
    assert_eq!(out.code, Some(0), "curl LIST failed\n{out}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("* LIST") && l.trim_end().ends_with("INBOX")),
        "LIST lacks INBOX\n{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("* LIST")
            && l.contains("\\Junk")
            && l.trim_end().ends_with("Junk")),
        "LIST lacks Junk with \\Junk\n{out}"
    );
}

#[test]
fn imap_plain_list_shows_inbox_and_junk() {
    let bed = bed();
    let url = format!("imap://{}:{}/", bed.imap_host, bed.imap_port);
    assert_list_has_inbox_and_junk(&curl(&bed, &url, &[]));
}

#[test]
fn imap_starttls_required_list_works() {
    let bed = bed();
    let url = format!("imap://{}:{}/", bed.imap_host, bed.imap_port);
    let out = curl(&bed, &url, &["--ssl-reqd", "--cacert", &bed.tls_ca, "-v"]);
    assert_list_has_inbox_and_junk(&out);
    assert!(
        out.stderr.contains("STARTTLS"),
        "curl did not issue STARTTLS\n{out}"
    );
    assert!(
        out.stderr.contains("SSL connection using TLSv1.3")
            || out.stderr.contains("SSL connection using TLSv1.2"),
        "no TLS 1.2/1.3 after STARTTLS\n{out}"
    );
}

#[test]
fn imaps_search_and_fetch_find_delivered_message() {
    let bed = bed();
    let subject = token("imaps");
    let out = swaks(&bed, "127.0.0.2", &mailbox(&bed, "qa3"), &subject, &[]);
    assert_eq!(out.code, Some(0), "swaks failed\n{out}");
    assert_eq!(
        wait_for_messages(&bed, "qa3", &subject, 1).len(),
        1,
        "not delivered to qa3"
    );

    let base = format!("imaps://{}:{}", bed.imap_host, bed.imaps_port);
    let list = curl_as(&bed, "qa3", &format!("{base}/"), &["--cacert", &bed.tls_ca]);
    assert_list_has_inbox_and_junk(&list);

    let search_cmd = format!("UID SEARCH SUBJECT \"{subject}\"");
    let search = curl_as(
        &bed,
        "qa3",
        &format!("{base}/INBOX"),
        &["--cacert", &bed.tls_ca, "-X", &search_cmd],
    );
    assert_eq!(search.code, Some(0), "curl SEARCH failed\n{search}");
    let uids: Vec<u32> = search
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("* SEARCH"))
        .flat_map(|rest| {
            rest.split_whitespace()
                .filter_map(|u| u.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        uids.len(),
        1,
        "expected exactly one UID for {subject}\n{search}"
    );

    let fetch = curl_as(
        &bed,
        "qa3",
        &format!("{base}/INBOX;UID={}", uids[0]),
        &["--cacert", &bed.tls_ca],
    );
    assert_eq!(fetch.code, Some(0), "curl FETCH failed\n{fetch}");
    assert!(
        fetch.stdout.contains(&format!("Subject: {subject}")),
        "fetched message lacks the subject\n{fetch}"
    );
}

#[test]
fn imap_rejects_wrong_password() {
    let bed = bed();
    let url = format!("imap://{}:{}/", bed.imap_host, bed.imap_port);
    let out = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "20",
            "--user",
            "qa1:not-the-password",
            &url,
        ],
        CLIENT_TIMEOUT,
    );
    assert_ne!(
        out.code,
        Some(0),
        "login with a wrong password must fail\n{out}"
    );
}

fn dig(bed: &Bed, name: &str, rtype: &str) -> String {
    let server = format!("@{}", bed.dns_host);
    let out = run(
        "dig",
        &[
            &server,
            "-p",
            &bed.dns_port,
            "+time=2",
            "+tries=2",
            name,
            rtype,
            "+short",
        ],
        CLIENT_TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "dig failed\n{out}");
    out.stdout.trim().to_string()
}

#[test]
fn dnsmasq_answers_mx_and_a() {
    let bed = bed();
    assert_eq!(dig(&bed, &bed.domain, "MX"), format!("10 {}.", bed.mx_host));
    assert_eq!(dig(&bed, &bed.mx_host, "A"), "127.0.0.1");
}
