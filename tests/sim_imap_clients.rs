//! Independent clients read what the simulator delivered: curl over `imap://` (plain and
//! STARTTLS) and `imaps://`, with LOGIN/PLAIN and with XOAUTH2 (`--oauth2-bearer`); Python's
//! imaplib (LOGIN, SELECT, UID SEARCH HEADER, UID FETCH) over STARTTLS and implicit TLS; and
//! `mailharness sim` prints the IMAP listeners.

mod sim_imap_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailharness::sim::config::GTUBE;
use sim_imap_support::*;

/// Hard limit for one curl run, in seconds.
const CURL_MAX_TIME: &str = "60";

/// curl with credentials from a netrc file (never on the command line).
fn curl(sim: &ImapSim, url: &str, extra: &[&str]) -> (i32, String, String) {
    let netrc = sim.secrets.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine 127.0.0.1 login {QA1} password {PASSWORD}\n"),
    )
    .expect("netrc");
    let ca = sim.ca_file();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", CURL_MAX_TIME, "--netrc-file"])
        .arg(&netrc)
        .arg("--cacert")
        .arg(&ca)
        .args(extra)
        .arg(url);
    run(&mut cmd)
}

#[test]
fn curl_lists_searches_and_fetches_over_imap_starttls_and_imaps() {
    let sim = ImapSim::start();
    let ids: Vec<String> = (0..3)
        .map(|i| sim.deliver(QA1, &format!("curl {i}"), &format!("curl body {i}")))
        .collect();
    sim.deliver(QA1, "spam", GTUBE);
    let imap = sim.imap();
    let imaps = sim.imaps();

    // LIST over plain imap://.
    let (code, out, err) = curl(&sim, &format!("imap://{imap}/"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk Email\""),
        "{out}"
    );
    assert!(out.contains("\"/\" INBOX"), "{out}");

    // SEARCH over STARTTLS (required, verified against the simulator's CA).
    let (code, out, err) = curl(
        &sim,
        &format!("imap://{imap}/INBOX"),
        &["--ssl-reqd", "-X", "UID SEARCH ALL"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("* SEARCH 1 2 3"), "{out}");
    // URL search query: `?HEADER Message-ID <id>` becomes SEARCH.
    let (code, out, err) = curl(
        &sim,
        &format!(
            "imaps://{imaps}/INBOX?HEADER%20Message-ID%20%22{}%22",
            ids[1].replace('<', "%3C").replace('>', "%3E")
        ),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("* SEARCH 2"), "{out}");

    // FETCH a body over imaps:// by UID.
    let (code, out, err) = curl(&sim, &format!("imaps://{imaps}/INBOX;UID=2"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Message-ID: {}", ids[1])), "{out}");
    assert!(
        out.contains("X-Forefront-Antispam-Report: CIP:127.0.0.1;"),
        "{out}"
    );
    assert!(
        out.contains("(version=TLS1_") || out.contains("Received: from"),
        "{out}"
    );
    assert!(out.contains("curl body 1"), "{out}");

    // The Junk folder, by its quoted name, over imaps.
    let (code, out, err) = curl(
        &sim,
        &format!("imaps://{imaps}/Junk%20Email;UID=1;SECTION=HEADER.FIELDS%20(X-Forefront-Antispam-Report)"),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SFV:SPM"), "{out}");

    // A wrong password fails cleanly.
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", CURL_MAX_TIME, "--user"])
        .arg(format!("{QA1}:wrong"))
        .arg(format!("imap://{imap}/"));
    let (code, _, err) = run(&mut cmd);
    assert_eq!(code, 67, "curl's 'login denied': {err}");
}

#[test]
fn curl_xoauth2_with_a_bearer_token() {
    let sim = ImapSim::start();
    sim.deliver(QA2, "for the app", "x");
    let ca = sim.ca_file();
    let token_curl = |token: &str| {
        // The token goes through a config file so that it never shows in the process list.
        let cfg = sim.secrets.path().join("curl-oauth.cfg");
        std::fs::write(&cfg, format!("oauth2-bearer = \"{token}\"\n")).expect("curl config");
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", CURL_MAX_TIME, "-K"])
            .arg(&cfg)
            .arg("--cacert")
            .arg(&ca)
            .args(["--user", &format!("{QA2}:"), "-X", "UID SEARCH ALL"])
            .arg(format!("imaps://{}/INBOX", sim.imaps()));
        run(&mut cmd)
    };
    let (code, out, err) = token_curl(APP_TOKEN);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("* SEARCH 1"), "{out}");
    let (code, out, err) = token_curl("bogus-token");
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains("* SEARCH"), "{out} {err}");
}

/// Python imaplib: LOGIN, SELECT, UID SEARCH HEADER, UID FETCH; prints JSON.
const IMAPLIB_SCRIPT: &str = r#"
import imaplib, json, os, re, ssl, sys
port, user, mode, cafile, wanted = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
if mode == "ssl":
    M = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)
else:
    M = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    M.starttls(ctx)
M.login(user, os.environ["IMAP_PASSWORD"])
typ, data = M.select("INBOX")
exists = int(data[0])
typ, data = M.uid("SEARCH", None, "HEADER", "Message-ID", '"%s"' % wanted)
uids = data[0].split()
typ, data = M.uid("FETCH", uids[0].decode(), "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT)])")
meta, header = data[0]
typ, data = M.uid("FETCH", uids[0].decode(), "(FLAGS)")
flags_after_peek = data[0].decode()
typ, data = M.uid("FETCH", uids[0].decode(), "(BODY[])")
typ, data = M.uid("FETCH", uids[0].decode(), "(FLAGS)")
flags_after_body = data[0].decode()
M.logout()
print(json.dumps({"exists": exists, "uids": [u.decode() for u in uids], "header": header.decode(),
                  "flags_after_peek": flags_after_peek, "flags_after_body": flags_after_body}))
"#;

#[test]
fn python_imaplib_reads_over_starttls_and_imaps() {
    let sim = ImapSim::start();
    let ids: Vec<String> = (0..4)
        .map(|i| sim.deliver(QA1, &format!("py {i}"), "python"))
        .collect();
    let ca = sim.ca_file();
    for (mode, port, wanted) in [
        ("starttls", sim.imap().port(), &ids[2]),
        ("ssl", sim.imaps().port(), &ids[3]),
    ] {
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(IMAPLIB_SCRIPT)
            .arg(port.to_string())
            .arg(QA1)
            .arg(mode)
            .arg(&ca)
            .arg(wanted)
            .env("IMAP_PASSWORD", PASSWORD);
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{mode}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        assert_eq!(v["exists"], 4, "{v}");
        let uid = if mode == "ssl" { "4" } else { "3" };
        assert_eq!(v["uids"], serde_json::json!([uid]), "{v}");
        let header = v["header"].as_str().unwrap_or_default();
        assert!(
            header.contains(&format!("Message-ID: {wanted}")),
            "{header}"
        );
        assert!(header.contains("Subject: py"), "{header}");
        assert!(
            !v["flags_after_peek"].as_str().unwrap().contains("\\Seen"),
            "{v}"
        );
        assert!(
            v["flags_after_body"].as_str().unwrap().contains("\\Seen"),
            "{v}"
        );
    }
}

#[test]
fn mailharness_sim_prints_the_imap_listeners() {
    let state = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .arg("sim")
        .arg("--state-dir")
        .arg(state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mailharness sim");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut imap = None;
    let mut imaps = None;
    while Instant::now() < deadline {
        let Some(Ok(l)) = lines.next() else { break };
        if let Some(a) = l.trim().strip_prefix("imap (STARTTLS)") {
            imap = Some(a.trim().to_string());
        }
        if let Some(a) = l.trim().strip_prefix("imaps (implicit)") {
            imaps = Some(a.trim().to_string());
        }
        if l.starts_with("Ctrl-C") {
            break;
        }
    }
    let imap_addr = imap.clone().unwrap_or_default().parse().ok();
    if let Some(addr) = imap_addr {
        let c = Client::plain(addr);
        assert!(c.greeting.starts_with("* OK"), "{}", c.greeting);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(imap_addr.is_some(), "no IMAP line: {imap:?}");
    assert!(imaps.is_some_and(|a| a.starts_with("127.0.0.1:")));
}
