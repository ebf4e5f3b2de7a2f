//! Dovecot, pointed at the simulator's Maildirs, reports the same messages with the same header
//! values as the simulator's own IMAP server: same count per folder (INBOX and the `\Junk`
//! folder), same Message-IDs, X-Forefront-Antispam-Report values, sizes and internal dates.
//! Flags travel both ways through the Maildir file names.
//!
//! Needs Dovecot (`tests/testbed.sh install`); a private instance runs as root on a loopback port.

mod sim_imap_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailharness::sim::config::GTUBE;
use sim_imap_support::*;

/// Python imaplib: every message of INBOX and of the `\Junk` folder (found by its flag), with the
/// fields compared; then optionally sets `\Flagged` on one Message-ID.
const DUMP_SCRIPT: &str = r#"
import email, imaplib, json, os, re, sys, time
port, user, flag_id = int(sys.argv[1]), sys.argv[2], sys.argv[3]
M = imaplib.IMAP4("127.0.0.1", port, timeout=60)
M.login(user, os.environ["IMAP_PASSWORD"])
typ, lines = M.list('""', "*")
folders = {}
for l in lines:
    m = re.match(r'\((.*?)\) "(.*?)" (.*)', l.decode())
    attrs, name = m.group(1), m.group(3).strip('"')
    if name.upper() == "INBOX":
        folders["inbox"] = name
    elif "\\Junk" in attrs.split():
        folders["junk"] = name
out = {"folders": folders}
for kind, name in sorted(folders.items()):
    M.select('"%s"' % name)
    typ, data = M.uid("SEARCH", None, "ALL")
    uids = [u.decode() for u in data[0].split()]
    msgs = []
    if uids:
        typ, data = M.uid("FETCH", ",".join(uids),
            "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-FOREFRONT-ANTISPAM-REPORT)])")
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta = item[0]
            hdr = email.message_from_bytes(item[1])
            uid = re.search(rb"UID (\d+)", meta).group(1).decode()
            mid = hdr["Message-ID"]
            msgs.append({
                "message_id": mid,
                "antispam": " ".join(str(hdr["X-Forefront-Antispam-Report"]).split()),
                "size": int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1)),
                "internaldate": int(time.mktime(imaplib.Internaldate2tuple(meta))),
            })
            typ, found = M.uid("SEARCH", None, "HEADER", "Message-ID", '"%s"' % mid)
            assert found[0].split() == [uid.encode()], (mid, found)
            if mid == flag_id:
                M.uid("STORE", uid, "+FLAGS", "(\\Flagged)")
    msgs.sort(key=lambda m: m["message_id"])
    out[kind] = msgs
    M.close()
M.logout()
print(json.dumps(out, sort_keys=True))
"#;

fn dump(port: u16, flag_id: &str, log: Option<&Path>) -> serde_json::Value {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(DUMP_SCRIPT)
        .arg(port.to_string())
        .arg(QA1)
        .arg(flag_id)
        .env("IMAP_PASSWORD", PASSWORD);
    let (code, out, err) = run(&mut cmd);
    let server_log = log
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(code, 0, "imaplib against port {port}: {err}\n{server_log}");
    serde_json::from_str(out.trim()).expect("JSON")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A private Dovecot over the simulator's Maildirs; stopped on drop.
struct Dovecot {
    conf: std::path::PathBuf,
    port: u16,
}

impl Dovecot {
    fn start(dir: &Path, maildir: &Path, uid: u32, gid: u32) -> Dovecot {
        let port = free_port();
        let users = dir.join("users");
        std::fs::write(&users, format!("{QA1}:{{PLAIN}}{PASSWORD}\n")).expect("users");
        let conf = dir.join("dovecot.conf");
        let d = dir.display();
        let m = maildir.display();
        // Based on tests/testbed.sh.
        std::fs::write(
            &conf,
            format!(
                r#"instance_name = mailharness-sim-imap-{port}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={m}/%d/%n
}}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{m}/%d/%n
namespace inbox {{
  inbox = yes
  separator = /
  mailbox "Junk Email" {{
    special_use = \Junk
  }}
  mailbox "Deleted Items" {{
    special_use = \Trash
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"#,
                users = users.display()
            ),
        )
        .expect("dovecot.conf");
        for sub in ["run", "state"] {
            std::fs::create_dir_all(dir.join(sub)).expect("dovecot dirs");
        }
        // The daemon inherits stdout/stderr: send them to a file, or waiting for EOF never ends.
        let start_log = dir.join("start.log");
        let log = std::fs::File::create(&start_log).expect("start log");
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .status()
            .expect("run dovecot (tests/testbed.sh install)");
        assert!(
            status.success(),
            "dovecot failed to start: {}\n{}",
            std::fs::read_to_string(&start_log).unwrap_or_default(),
            std::fs::read_to_string(dir.join("dovecot.log")).unwrap_or_default()
        );
        let dc = Dovecot { conf, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dc
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("dovecot")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn dovecot_and_the_simulator_report_the_same_messages() {
    let sim = ImapSim::start();
    let mut inbox = Vec::new();
    for i in 0..5 {
        inbox.push(sim.deliver(QA1, &format!("dovecot {i}"), &format!("body {i}")));
    }
    let junk = sim.deliver(QA1, "junk", &format!("spam {GTUBE}"));
    sim.deliver(QA2, "other mailbox", "not qa1's");

    // Dovecot never serves mail as uid 0 ("userdb returned 0 as uid", whatever first_valid_uid
    // says), and the simulator writes as root here: hand the mailbox to the `mail` user.
    let owner = |flag: &str| -> u32 {
        let (code, out, err) = run(Command::new("id").arg(flag).arg("mail"));
        assert_eq!(code, 0, "{err}");
        out.trim().parse().expect("id")
    };
    let (uid, gid) = (owner("-u"), owner("-g"));
    let (code, _, err) = run(Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(sim.maildir().join("contoso.example/qa1")));
    assert_eq!(code, 0, "{err}");
    let dc_dir = tempfile::tempdir().expect("temp dir");
    let dovecot = Dovecot::start(dc_dir.path(), &sim.maildir(), uid, gid);

    // The simulator first (so it has assigned its UIDs), then Dovecot, which also flags one.
    let ours = dump(sim.imap().port(), "none", None);
    let theirs = dump(
        dovecot.port,
        &inbox[1],
        Some(&dc_dir.path().join("dovecot.log")),
    );
    assert_eq!(ours["folders"]["junk"], "Junk Email", "{ours}");
    assert_eq!(theirs["folders"]["junk"], "Junk Email", "{theirs}");
    assert_eq!(ours["inbox"].as_array().map(Vec::len), Some(5), "{ours}");
    assert_eq!(ours["junk"].as_array().map(Vec::len), Some(1), "{ours}");
    assert_eq!(ours["junk"][0]["message_id"], junk.as_str());
    assert!(ours["junk"][0]["antispam"]
        .as_str()
        .unwrap()
        .contains("SFV:SPM"));
    assert_eq!(ours["inbox"], theirs["inbox"], "INBOX differs");
    assert_eq!(ours["junk"], theirs["junk"], "Junk Email differs");

    // Dovecot renamed files (new/ → cur/, `:2,F`); the simulator follows on its next look.
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    c.select("INBOX");
    let flagged = c.cmd("UID SEARCH FLAGGED").search();
    assert_eq!(flagged.len(), 1, "the \\Flagged set through Dovecot");
    let r = c.cmd(&format!(
        "UID FETCH {} BODY.PEEK[HEADER.FIELDS (Message-ID)]",
        flagged[0]
    ));
    assert!(r.has(&inbox[1]), "{}", r.all());
    // And the other way: \Seen set here shows in Dovecot.
    let seen_uid = c
        .cmd(&format!("UID SEARCH HEADER Message-ID {}", inbox[3]))
        .search();
    assert!(c
        .cmd(&format!("UID STORE {} +FLAGS (\\Seen)", seen_uid[0]))
        .ok());
    let mut d = Client::plain(SocketAddr::from(([127, 0, 0, 1], dovecot.port)));
    d.login(QA1);
    d.select("INBOX");
    let seen = d.cmd("UID SEARCH SEEN");
    assert_eq!(seen.search().len(), 1, "{}", seen.all());
    let r = d.cmd(&format!(
        "UID FETCH {} BODY.PEEK[HEADER.FIELDS (Message-ID)]",
        seen.search()[0]
    ));
    assert!(r.has(&inbox[3]), "{}", r.all());
    drop(dovecot);
}
