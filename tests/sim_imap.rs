//! The simulator's IMAP server over raw sockets: authentication (LOGIN, PLAIN, XOAUTH2 success
//! and Microsoft's failure challenge), folders with SPECIAL-USE, SELECT/SEARCH/FETCH/STORE/
//! EXPUNGE, new-mail polling, UID stability across restarts, a 10,000-message folder, mailbox
//! isolation, and bad input answered with a tagged BAD on a connection that stays usable.

mod sim_imap_support;

use std::fs;
use std::time::Duration;

use base64::Engine as _;
use mailharness::sim::config::GTUBE;
use sim_imap_support::*;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn capabilities_login_and_folders_with_special_use() {
    let sim = ImapSim::start();
    let mut c = Client::plain(sim.imap());
    assert!(
        c.greeting.contains("Microsoft Exchange IMAP4"),
        "{}",
        c.greeting
    );
    let caps = c.cmd("CAPABILITY");
    let line = caps.untagged[0].clone();
    for cap in [
        "IMAP4rev1",
        "STARTTLS",
        "AUTH=PLAIN",
        "AUTH=XOAUTH2",
        "SPECIAL-USE",
        "UIDPLUS",
        "LITERAL+",
    ] {
        assert!(line.split(' ').any(|c| c == cap), "{cap} missing: {line}");
    }
    // No login, no data.
    for cmd in [
        "SELECT INBOX",
        "LIST \"\" *",
        "STATUS INBOX (MESSAGES)",
        "FETCH 1 FLAGS",
    ] {
        let r = c.cmd(cmd);
        assert_eq!(r.status(), "BAD", "{cmd}: {}", r.all());
    }
    let r = c.cmd(&format!("LOGIN {QA1} wrong-password"));
    assert_eq!(r.done.split_once(' ').unwrap().1, "NO LOGIN failed.");
    let r = c.cmd(&format!("LOGIN nobody@contoso.example \"{PASSWORD}\""));
    assert_eq!(r.status(), "NO");
    c.login(QA1);
    let caps = c.cmd("CAPABILITY");
    assert!(!caps.untagged[0].contains("AUTH="), "{}", caps.all());
    let list = c.cmd("LIST \"\" \"*\"");
    assert!(list.ok(), "{}", list.all());
    let expect = [
        "* LIST (\\HasNoChildren \\Trash) \"/\" \"Deleted Items\"",
        "* LIST (\\HasNoChildren \\Drafts) \"/\" Drafts",
        "* LIST (\\HasNoChildren) \"/\" INBOX",
        "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk Email\"",
        "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"",
    ];
    assert_eq!(list.untagged, expect);
    let special = c.cmd("LIST (SPECIAL-USE) \"\" \"*\"");
    assert_eq!(special.untagged.len(), 4, "{}", special.all());
    let lsub = c.cmd("LSUB \"\" \"Junk*\"");
    assert_eq!(
        lsub.untagged,
        ["* LSUB (\\HasNoChildren \\Junk) \"/\" \"Junk Email\""]
    );
    let root = c.cmd("LIST \"\" \"\"");
    assert_eq!(root.untagged, ["* LIST (\\Noselect) \"/\" \"\""]);
    // The Maildir++ folders exist on disk, where Dovecot finds them too.
    assert!(sim
        .maildir()
        .join("contoso.example/qa1/.Deleted Items/cur")
        .is_dir());
    let r = c.cmd("SELECT \"No Such Folder\"");
    assert_eq!(r.status(), "NO");
    let r = c.cmd("LOGOUT");
    assert!(r.ok() && r.has("* BYE"), "{}", r.all());
}

#[test]
fn authenticate_plain_and_xoauth2_success_and_failure() {
    let sim = ImapSim::start();
    // PLAIN with SASL-IR.
    let mut c = Client::plain(sim.imap());
    let r = c.cmd(&format!(
        "AUTHENTICATE PLAIN {}",
        b64(&format!("\0{QA1}\0{PASSWORD}"))
    ));
    assert_eq!(
        r.done.split_once(' ').unwrap().1,
        "OK AUTHENTICATE completed."
    );
    // PLAIN with a continuation, wrong password.
    let mut c = Client::plain(sim.imap());
    c.send_raw(b"p1 AUTHENTICATE PLAIN\r\n");
    assert_eq!(c.read_line(), "+ ");
    c.send_raw(format!("{}\r\n", b64(&format!("\0{QA1}\0nope"))).as_bytes());
    let r = c.read_until_tag("p1");
    assert_eq!(r.done, "p1 NO AUTHENTICATE failed.");
    // XOAUTH2 with the app token, for any mailbox.
    for user in [QA1, QA2] {
        let mut c = Client::plain(sim.imap());
        let ir = b64(&format!("user={user}\x01auth=Bearer {APP_TOKEN}\x01\x01"));
        let r = c.cmd(&format!("AUTHENTICATE XOAUTH2 {ir}"));
        assert!(r.ok(), "{}", r.all());
        c.select("INBOX");
    }
    // XOAUTH2 without SASL-IR, mailbox-scoped token.
    let mut c = Client::plain(sim.imap());
    c.send_raw(b"x1 AUTHENTICATE XOAUTH2\r\n");
    assert_eq!(c.read_line(), "+ ");
    let ir = b64(&format!("user={QA2}\x01auth=Bearer {QA2_TOKEN}\x01\x01"));
    c.send_raw(format!("{ir}\r\n").as_bytes());
    assert!(c.read_until_tag("x1").ok());
    // The qa2 token does not open qa1; an unknown token neither. Microsoft's failure: a base64
    // JSON challenge, the client's empty line, then `NO AUTHENTICATE failed.`.
    for (user, token) in [
        (QA1, QA2_TOKEN),
        (QA1, "not-a-token"),
        ("x@contoso.example", APP_TOKEN),
    ] {
        let mut c = Client::plain(sim.imap());
        let ir = b64(&format!("user={user}\x01auth=Bearer {token}\x01\x01"));
        c.send_raw(format!("x2 AUTHENTICATE XOAUTH2 {ir}\r\n").as_bytes());
        let challenge = c.read_line();
        let json = base64::engine::general_purpose::STANDARD
            .decode(challenge.strip_prefix("+ ").expect("challenge"))
            .expect("base64");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(v["status"], "401");
        assert_eq!(v["schema"], "Bearer");
        assert_eq!(v["scope"], "https://outlook.office.com/.default");
        c.send_raw(b"\r\n");
        let r = c.read_until_tag("x2");
        assert_eq!(r.done, "x2 NO AUTHENTICATE failed.");
        assert!(r.untagged.is_empty(), "{}", r.all());
        // Still not logged in, connection usable.
        assert_eq!(c.cmd("SELECT INBOX").status(), "BAD");
        assert!(c.cmd("NOOP").ok());
    }
    // Garbage that is not base64 gets the same failure path.
    let mut c = Client::plain(sim.imap());
    c.send_raw(b"x3 AUTHENTICATE XOAUTH2 !!!!\r\n");
    let l = c.read_line();
    assert!(l.starts_with("x3 BAD") || l.starts_with("+ "), "{l}");
    if l.starts_with("+ ") {
        c.send_raw(b"\r\n");
        assert_eq!(c.read_until_tag("x3").status(), "NO");
    }
    let r = c.cmd("AUTHENTICATE CRAM-MD5");
    assert_eq!(r.status(), "NO");
    assert!(c.cmd("NOOP").ok());
}

#[test]
fn select_search_fetch_peek_store_expunge_and_new_mail() {
    let sim = ImapSim::start();
    let ids: Vec<String> = (0..3)
        .map(|i| sim.deliver(QA1, &format!("hello {i}"), &format!("body number {i}")))
        .collect();
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    let sel = c.select("INBOX");
    assert_eq!(Client::exists(&sel), Some(3));
    assert!(sel.has("* 3 RECENT"), "{}", sel.all());
    assert!(sel.has("[UIDVALIDITY "), "{}", sel.all());
    assert!(sel.has("[UIDNEXT 4]"), "{}", sel.all());
    assert!(sel.has("[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)]"));
    assert!(sel.done.contains("[READ-WRITE]"));

    // SEARCH: ALL, HEADER, SINCE, UID ranges, combined, NOT/OR.
    assert_eq!(c.cmd("UID SEARCH ALL").search(), [1, 2, 3]);
    assert_eq!(
        c.cmd(&format!("UID SEARCH HEADER Message-ID \"{}\"", ids[1]))
            .search(),
        [2]
    );
    assert_eq!(
        c.cmd("UID SEARCH HEADER x-harness-run SIM-IMAP").search(),
        [1, 2, 3]
    );
    assert_eq!(
        c.cmd("UID SEARCH HEADER X-Forefront-Antispam-Report \"SFV:NSPM\"")
            .search(),
        [1, 2, 3]
    );
    let today = chrono::Utc::now().date_naive();
    let since = |d: chrono::NaiveDate| d.format("%-d-%b-%Y").to_string();
    assert_eq!(
        c.cmd(&format!("UID SEARCH SINCE {}", since(today)))
            .search(),
        [1, 2, 3]
    );
    assert!(c
        .cmd(&format!(
            "UID SEARCH SINCE {}",
            since(today + chrono::Days::new(2))
        ))
        .search()
        .is_empty());
    assert_eq!(
        c.cmd(&format!(
            "UID SEARCH SINCE {} UID 2:* HEADER Subject hello",
            since(today)
        ))
        .search(),
        [2, 3]
    );
    assert_eq!(c.cmd("UID SEARCH NOT UID 2").search(), [1, 3]);
    assert_eq!(
        c.cmd("UID SEARCH OR UID 1 SUBJECT \"hello 2\"").search(),
        [1, 3]
    );
    assert_eq!(c.cmd("SEARCH 2:3").search(), [2, 3]);
    assert_eq!(c.cmd("SEARCH BODY \"number 1\"").search(), [2]);
    assert_eq!(
        c.cmd("UID SEARCH UID 7:*").search(),
        [3],
        "* is the largest UID"
    );

    // FETCH: metadata and header fields; PEEK leaves \Seen alone.
    let r = c.cmd(
        "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Message-ID X-Forefront-Antispam-Report)])",
    );
    assert!(r.ok(), "{}", r.all());
    assert_eq!(r.untagged.len(), 3, "{}", r.all());
    assert!(r.untagged[1].starts_with("* 2 FETCH (UID 2 FLAGS (\\Recent) INTERNALDATE \""));
    assert!(r.untagged[1].contains(&format!("Message-ID: {}", ids[1])));
    assert!(r.untagged[1].contains("X-Forefront-Antispam-Report: CIP:127.0.0.1;"));
    assert!(!r.untagged[1].contains("Subject:"));
    let r = c.cmd("UID FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[])");
    assert!(r.has("Received: from mta1.platform.example"), "{}", r.all());
    assert!(r.has("body number 0"));
    assert!(
        !c.cmd("UID FETCH 1 FLAGS").has("\\Seen"),
        "PEEK must not set \\Seen"
    );
    assert_eq!(c.cmd("UID SEARCH UNSEEN").search(), [1, 2, 3]);
    // BODY[] sets \Seen (and says so).
    let r = c.cmd("UID FETCH 1 BODY[]");
    assert!(r.has("FLAGS (\\Seen \\Recent)"), "{}", r.all());
    assert_eq!(c.cmd("UID SEARCH SEEN").search(), [1]);
    // Partial fetch and TEXT.
    let r = c.cmd("FETCH 2 (BODY.PEEK[TEXT] BODY.PEEK[]<0.9>)");
    assert!(r.has("BODY[TEXT] {"), "{}", r.all());
    assert!(r.has("BODY[]<0> {9}\r\nReceived:"), "{}", r.all());
    // The flag is in the Maildir file name, where Dovecot sees it too.
    let cur: Vec<String> = fs::read_dir(sim.maildir().join("contoso.example/qa1/cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cur.len(), 1, "{cur:?}");
    assert!(cur[0].ends_with(":2,S"), "{cur:?}");

    // A second session polls: new mail shows up on NOOP as EXISTS.
    let mut watcher = Client::plain(sim.imap());
    watcher.login(QA1);
    assert_eq!(Client::exists(&watcher.select("INBOX")), Some(3));
    let new_id = sim.deliver(QA1, "hello 3", "late arrival");
    let r = watcher.cmd("NOOP");
    assert!(r.has("* 4 EXISTS") && r.has("* 1 RECENT"), "{}", r.all());
    assert_eq!(
        watcher
            .cmd(&format!("UID SEARCH HEADER Message-ID {new_id}"))
            .search(),
        [4]
    );

    // STORE: +FLAGS, -FLAGS, FLAGS, .SILENT, by UID and by sequence number.
    let r = c.cmd("UID STORE 2 +FLAGS (\\Flagged \\Seen)");
    assert!(
        r.has("* 2 FETCH (FLAGS (\\Flagged \\Seen \\Recent) UID 2)"),
        "{}",
        r.all()
    );
    let r = c.cmd("STORE 2 -FLAGS (\\Seen)");
    assert!(
        r.has("* 2 FETCH (FLAGS (\\Flagged \\Recent))"),
        "{}",
        r.all()
    );
    let r = c.cmd("STORE 2 FLAGS.SILENT (\\Answered)");
    assert!(r.ok() && r.untagged.is_empty(), "{}", r.all());
    assert_eq!(c.cmd("SEARCH ANSWERED").search(), [2]);

    // UID EXPUNGE removes only the named \Deleted messages; EXPUNGE the rest.
    assert!(c.cmd("UID STORE 1:3 +FLAGS.SILENT (\\Deleted)").ok());
    let r = c.cmd("UID EXPUNGE 3");
    assert_eq!(r.untagged, ["* 3 EXPUNGE"], "{}", r.all());
    let r = c.cmd("EXPUNGE");
    // The 4th message arrived meanwhile; this session learns of it too.
    assert!(r.has("* 2 EXPUNGE") && r.has("* 1 EXPUNGE"), "{}", r.all());
    assert_eq!(c.cmd("UID SEARCH ALL").search(), [4]);
    // The watcher sees the expunges on its next NOOP.
    let r = watcher.cmd("NOOP");
    assert_eq!(
        r.untagged.iter().filter(|l| l.ends_with("EXPUNGE")).count(),
        3,
        "{}",
        r.all()
    );
    assert_eq!(watcher.cmd("SEARCH ALL").search(), [1]);
    assert_eq!(watcher.cmd("UID SEARCH ALL").search(), [4]);

    // EXAMINE is read-only: no \Seen from BODY[], no STORE/EXPUNGE.
    let r = watcher.cmd("EXAMINE INBOX");
    assert!(r.done.contains("[READ-ONLY]"), "{}", r.all());
    let r = watcher.cmd("UID FETCH 4 BODY[]");
    assert!(!r.has("\\Seen"), "{}", r.all());
    assert_eq!(watcher.cmd("UID STORE 4 +FLAGS (\\Seen)").status(), "NO");
    assert_eq!(watcher.cmd("EXPUNGE").status(), "NO");
    assert!(watcher.cmd("CLOSE").ok());
    assert_eq!(watcher.cmd("FETCH 1 FLAGS").status(), "BAD");

    // CLOSE expunges silently.
    assert!(c.cmd("UID STORE 4 +FLAGS.SILENT (\\Deleted)").ok());
    let r = c.cmd("CLOSE");
    assert!(r.ok() && r.untagged.is_empty(), "{}", r.all());
    let r = c.cmd("STATUS INBOX (MESSAGES UIDNEXT UNSEEN)");
    assert!(
        r.has("* STATUS INBOX (MESSAGES 0 UIDNEXT 5 UNSEEN 0)"),
        "{}",
        r.all()
    );
}

#[test]
fn junk_is_filed_in_junk_email_with_its_special_use() {
    let sim = ImapSim::start();
    let clean = sim.deliver(QA1, "clean", "nothing to see");
    let junk = sim.deliver(QA1, "offer", &format!("buy now {GTUBE}"));
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    let list = c.cmd("LIST \"\" *");
    let junk_name = list
        .untagged
        .iter()
        .find(|l| l.contains("\\Junk"))
        .and_then(|l| l.rsplit_once(" \"/\" "))
        .map(|(_, n)| n.trim_matches('"').to_string())
        .expect("a \\Junk folder");
    assert_eq!(junk_name, "Junk Email");
    let sel = c.select(&junk_name);
    assert_eq!(Client::exists(&sel), Some(1));
    assert_eq!(
        c.cmd(&format!("UID SEARCH HEADER Message-ID {junk}"))
            .search(),
        [1]
    );
    let r = c.cmd("UID FETCH 1 BODY.PEEK[HEADER.FIELDS (X-Forefront-Antispam-Report X-Microsoft-Antispam-Mailbox-Delivery)]");
    assert!(
        r.has("SFV:SPM") && r.has("dest:J;RF:JunkEmail;"),
        "{}",
        r.all()
    );
    c.select("INBOX");
    assert!(c
        .cmd(&format!("UID SEARCH HEADER Message-ID {junk}"))
        .search()
        .is_empty());
    assert_eq!(
        c.cmd(&format!("UID SEARCH HEADER Message-ID {clean}"))
            .search(),
        [1]
    );
    let st = c.cmd("STATUS \"Junk Email\" (MESSAGES UNSEEN)");
    assert!(st.has("(MESSAGES 1 UNSEEN 1)"), "{}", st.all());
}

#[test]
fn a_mailbox_sees_only_its_own_mail() {
    let sim = ImapSim::start();
    let for_qa2 = sim.deliver(QA2, "private", "for qa2");
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    assert_eq!(Client::exists(&c.select("INBOX")), Some(0));
    assert!(c.cmd("UID SEARCH ALL").search().is_empty());
    let mut d = Client::plain(sim.imap());
    d.login(QA2);
    d.select("INBOX");
    assert_eq!(
        d.cmd(&format!("UID SEARCH HEADER Message-ID {for_qa2}"))
            .search(),
        [1]
    );
    // Path tricks in folder names lead nowhere.
    for name in [
        "../qa2",
        "../../contoso.example/qa2",
        ".Junk Email",
        "INBOX/../..",
    ] {
        assert_eq!(
            c.cmd(&format!("SELECT \"{name}\"")).status(),
            "NO",
            "{name}"
        );
    }
}

#[test]
fn uids_and_flags_survive_a_restart() {
    let sim = ImapSim::start();
    let ids: Vec<String> = (0..3)
        .map(|i| sim.deliver(QA1, &format!("m{i}"), "x"))
        .collect();
    let (validity, uid_of_2) = {
        let mut c = Client::plain(sim.imap());
        c.login(QA1);
        let sel = c.select("INBOX");
        let v = sel
            .untagged
            .iter()
            .find_map(|l| {
                l.split("[UIDVALIDITY ")
                    .nth(1)?
                    .split(']')
                    .next()
                    .map(str::to_string)
            })
            .expect("UIDVALIDITY");
        assert!(c.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)").ok());
        assert!(c.cmd("UID EXPUNGE 1").ok());
        assert!(c.cmd("UID STORE 2 +FLAGS.SILENT (\\Flagged)").ok());
        let uid = c
            .cmd(&format!("UID SEARCH HEADER Message-ID {}", ids[2]))
            .search();
        (v, uid)
    };
    assert_eq!(uid_of_2, [3]);
    let (cfg, secrets, state_dir) = sim.stop();
    let state_dir = state_dir.expect("state dir");
    let sim = ImapSim::start_in(cfg, state_dir.path(), secrets);
    let late = sim.deliver(QA1, "after restart", "y");
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    let sel = c.select("INBOX");
    assert!(
        sel.has(&format!("[UIDVALIDITY {validity}]")),
        "{}",
        sel.all()
    );
    assert!(sel.has("[UIDNEXT 5]"), "{}", sel.all());
    assert_eq!(c.cmd("UID SEARCH ALL").search(), [2, 3, 4]);
    assert_eq!(
        c.cmd(&format!("UID SEARCH HEADER Message-ID {}", ids[2]))
            .search(),
        [3]
    );
    assert_eq!(
        c.cmd(&format!("UID SEARCH HEADER Message-ID {late}"))
            .search(),
        [4]
    );
    assert_eq!(c.cmd("UID SEARCH FLAGGED").search(), [2]);
    // UID 1 was expunged before the restart and is never reused.
    assert!(c.cmd("UID SEARCH UID 1").search().is_empty());
    drop(state_dir);
}

#[test]
fn ten_thousand_message_folder() {
    const N: usize = 10_000;
    let sim = ImapSim::start();
    // Make the mailbox exist, then write the files straight into the Maildir.
    sim.deliver(QA1, "first", "delivered over SMTP");
    let new = sim.maildir().join("contoso.example/qa1/new");
    let t0 = 1_700_000_000u64;
    for i in 0..N {
        let msg = format!(
            "Message-ID: <bulk-{i}@sim-imap.test>\r\nSubject: bulk {i}\r\nX-Bulk-Group: g{}\r\n\r\nmessage {i}\r\n",
            i % 10
        );
        let name = format!(
            "{}.M{i}P1Q{i}.bulk,S={n},W={n}",
            t0 + i as u64,
            n = msg.len()
        );
        fs::write(new.join(&name), &msg).unwrap();
        let f = fs::File::options()
            .write(true)
            .open(new.join(&name))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(t0 + i as u64))
            .unwrap();
    }
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    let sel = c.select("INBOX");
    assert_eq!(Client::exists(&sel), Some(N as u32 + 1));
    assert!(sel.has(&format!("[UIDNEXT {}]", N + 2)), "{}", sel.all());
    // Older files (by mtime) get the lower UIDs: the SMTP message, delivered now, comes last.
    assert_eq!(
        c.cmd("UID SEARCH HEADER Message-ID <bulk-0@sim-imap.test>")
            .search(),
        [1]
    );
    assert_eq!(
        c.cmd("UID SEARCH HEADER Subject first").search(),
        [N as u32 + 1]
    );
    assert_eq!(c.cmd("UID SEARCH ALL").search().len(), N + 1);
    assert_eq!(
        c.cmd("UID SEARCH HEADER X-Bulk-Group g7").search().len(),
        N / 10
    );
    assert_eq!(
        c.cmd("UID SEARCH BEFORE 1-Jan-2024 HEADER X-Bulk-Group g3")
            .search()
            .len(),
        N / 10
    );
    let r = c.cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE)");
    assert!(r.ok(), "{}", r.done);
    assert_eq!(r.untagged.len(), N + 1);
    let r = c.cmd("UID FETCH 5000:5099 (BODY.PEEK[HEADER.FIELDS (Message-ID)])");
    assert_eq!(r.untagged.len(), 100);
    assert!(
        r.untagged[0].contains("<bulk-4999@sim-imap.test>"),
        "{}",
        r.untagged[0]
    );
    let r = c.cmd("FETCH 9990:* BODY.PEEK[]");
    assert_eq!(r.untagged.len(), 12);
    assert!(r.untagged[0].contains("message 9989"), "{}", r.untagged[0]);
    // Delete a tenth, expunge, count again.
    assert!(c.cmd("UID SEARCH HEADER X-Bulk-Group g5").ok());
    let g5 = c.cmd("UID SEARCH HEADER X-Bulk-Group g5").search();
    let set: Vec<String> = g5.iter().map(u32::to_string).collect();
    assert!(c
        .cmd(&format!(
            "UID STORE {} +FLAGS.SILENT (\\Deleted)",
            set.join(",")
        ))
        .ok());
    let r = c.cmd("EXPUNGE");
    assert_eq!(r.untagged.len(), N / 10, "{}", r.done);
    assert_eq!(c.cmd("SEARCH ALL").search().len(), N + 1 - N / 10);
    let st = c.cmd("STATUS INBOX (MESSAGES)");
    assert!(
        st.has(&format!("(MESSAGES {})", N + 1 - N / 10)),
        "{}",
        st.all()
    );
}

#[test]
fn bad_input_gets_a_tagged_bad_and_the_connection_survives() {
    let sim = ImapSim::start();
    sim.deliver(QA1, "one", "x");
    let mut c = Client::plain(sim.imap());
    let check_bad = |c: &mut Client, raw: &[u8], tag: &str| {
        c.send_raw(raw);
        let r = c.read_until_tag(tag);
        assert_eq!(
            r.status(),
            "BAD",
            "{:?}: {}",
            String::from_utf8_lossy(raw),
            r.all()
        );
        assert!(
            c.cmd("NOOP").ok(),
            "connection unusable after {:?}",
            String::from_utf8_lossy(raw)
        );
    };
    // Garbage with no valid tag: untagged BAD.
    c.send_raw(b"\x01\x02\xff garbage\r\n");
    let l = c.read_line();
    assert!(l.starts_with("* BAD"), "{l}");
    c.send_raw(b"\r\n");
    assert!(c.read_line().starts_with("* BAD"));
    assert!(c.cmd("NOOP").ok());
    check_bad(&mut c, b"a1 FROBNICATE\r\n", "a1");
    check_bad(&mut c, b"a2\r\n", "a2");
    check_bad(&mut c, b"a3 LOGIN\r\n", "a3");
    check_bad(&mut c, b"a4 LOGIN \"unterminated\r\n", "a4");
    check_bad(&mut c, b"a5 LOGIN {99999999999}\r\n", "a5");
    check_bad(&mut c, b"a6 LOGIN {2000000}\r\n", "a6");
    // A LITERAL+ literal too large: its octets are skipped, not buffered.
    let mut big = b"a7 LOGIN {1500000+}\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'z', 1_500_000));
    big.extend_from_slice(b" x\r\n");
    check_bad(&mut c, &big, "a7");
    // A line longer than 64 KiB.
    let mut long = b"a8 NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'q', 100_000));
    long.extend_from_slice(b"\r\n");
    check_bad(&mut c, &long, "a8");
    // Synchronizing literal that fits: continuation, then the command runs.
    c.send_raw(format!("a9 LOGIN {QA1} {{{}}}\r\n", PASSWORD.len()).as_bytes());
    assert!(c.read_line().starts_with("+ "));
    c.send_raw(format!("{PASSWORD}\r\n").as_bytes());
    assert!(c.read_until_tag("a9").ok());
    c.select("INBOX");
    for (raw, tag) in [
        (&b"b1 FETCH 0 FLAGS\r\n"[..], "b1"),
        (b"b2 FETCH 1:x FLAGS\r\n", "b2"),
        (b"b3 FETCH 5 FLAGS\r\n", "b3"),
        (b"b4 UID FETCH 1 (FLAGS\r\n", "b4"),
        (b"b5 UID FETCH 1 BODY[HEADER.FIELDS ()]\r\n", "b5"),
        (b"b6 UID SEARCH SINCE 32-Jan-2025\r\n", "b6"),
        (b"b7 UID SEARCH HEADER\r\n", "b7"),
        (b"b8 UID STORE 1 +FLAGS (\\Bogus)\r\n", "b8"),
        (b"b9 UID STORE 1 SOMETHING (\\Seen)\r\n", "b9"),
        (b"c1 UID FROB 1\r\n", "c1"),
        (b"c2 SEARCH (ALL\r\n", "c2"),
        (b"c3 FETCH 1 ENVELOPE\r\n", "c3"),
        (b"c4 LOGIN a b\r\n", "c4"),
        (b"c5 STARTTLS extra\r\n", "c5"),
        (b"c6 SELECT\r\n", "c6"),
        (b"c7 UID SEARCH UID 1:2:3\r\n", "c7"),
    ] {
        check_bad(&mut c, raw, tag);
    }
    // Input built to exhaust the stack: deep nesting is refused, a wildcard flood just matches.
    let deep = format!(
        "c8 UID SEARCH {}ALL{}\r\n",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    check_bad(&mut c, deep.as_bytes(), "c8");
    let nots = format!("c9 SEARCH {}ALL\r\n", "NOT ".repeat(10_000));
    check_bad(&mut c, nots.as_bytes(), "c9");
    let r = c.cmd(&format!("LIST \"\" \"{}\"", "*%".repeat(30_000)));
    assert!(r.ok() && r.untagged.len() == 5, "{}", r.done);
    // The session still works normally.
    assert_eq!(c.cmd("UID SEARCH ALL").search(), [1]);
    assert_eq!(c.cmd("COPY 1 \"Deleted Items\"").status(), "NO");
}

#[test]
fn idle_reports_new_mail() {
    let sim = ImapSim::start();
    let mut c = Client::plain(sim.imap());
    c.login(QA1);
    c.select("INBOX");
    c.send_raw(b"i1 IDLE\r\n");
    assert!(c.read_line().starts_with("+ "));
    sim.deliver(QA1, "while idling", "x");
    assert_eq!(c.read_line(), "* 1 EXISTS");
    c.send_raw(b"DONE\r\n");
    let r = c.read_until_tag("i1");
    assert!(r.ok(), "{}", r.all());
}
