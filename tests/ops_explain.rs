//! `explain` and `connector`: every real reply sample of the reference, Postfix's rewritten form,
//! a realistic Postfix DSN (tests/data/dsn-postfix-delayed.eml), unknown codes; the connector
//! command's parameter spelling, IP validation and diff, through the real binary.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use mailharness::reply::{explain_input, ConnectorAnswer as ConnectorRole, Context, Status};
use mailharness::vocab::OutcomeClass;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailharness"))
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Every real sample of the reference's reply table: (line, family, connector role, outcome).
const SAMPLES: &[(&str, &str, ConnectorRole, OutcomeClass)] = &[
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS843)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS77712344)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS77713180)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (S77714)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (S77719)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    ("451 4.7.650 The mail server [198.51.100.7] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) [Name=Protocol Filter Agent][AGT=PFA][MxId=11BB...]", "reputation-rate-limit", ConnectorRole::No, OutcomeClass::RateLimited),
    ("451 4.7.700 PFA agent busy, please try again.", "server-busy", ConnectorRole::No, OutcomeClass::Deferred),
    ("451 4.7.850 Access denied, please try again later", "suspicious-activity", ConnectorRole::No, OutcomeClass::Deferred),
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.9]. To request removal from this list please visit https://sender.office.com/ and follow the directions. (AS16012609)", "banned-ip", ConnectorRole::No, OutcomeClass::Rejected),
    ("550 5.7.1 Service unavailable, Client host [192.0.2.9] blocked using Spamhaus. (AS3130)", "blocklist", ConnectorRole::No, OutcomeClass::Rejected),
    ("550 5.7.1 Service unavailable, Client host [192.0.2.9] blocked. (S3150)", "blocklist", ConnectorRole::No, OutcomeClass::Rejected),
    ("550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set", "connector-restriction", ConnectorRole::FixExisting, OutcomeClass::Rejected),
    ("550 5.7.64 TenantAttribution; Relay Access Denied", "tenant-attribution", ConnectorRole::FixExisting, OutcomeClass::Rejected),
    ("451 4.4.62 Mail sent to the wrong Office 365 region. ATTR35.", "wrong-region", ConnectorRole::No, OutcomeClass::Deferred),
    ("452 4.5.3 Too many recipients (AS780090)", "too-many-recipients", ConnectorRole::No, OutcomeClass::Deferred),
    ("452 4.5.3 Recipients belong to multiple regions ATTR38", "mixed-regions", ConnectorRole::No, OutcomeClass::Deferred),
    ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", "recipient-unknown", ConnectorRole::No, OutcomeClass::Rejected),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "recipient-unknown", ConnectorRole::No, OutcomeClass::Rejected),
    ("550 5.2.121 Recipient's per hour message receive limit from specific sender exceeded", "mailbox-limit", ConnectorRole::No, OutcomeClass::Rejected),
    ("432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded", "mailbox-limit", ConnectorRole::No, OutcomeClass::Deferred),
    // Without a host it may be any Exchange endpoint (submission too); at a tenant's MX (test below) the connector is the cause.
    ("451 5.7.3 STARTTLS is required to send mail", "tls-required", ConnectorRole::No, OutcomeClass::TlsRequired),
    // Postfix's rewritten form, exactly as the test bed's Postfix sends it.
    ("451 4.7.500 <unknown[127.0.0.3]>: Client host rejected: Server busy. Please try again later from [127.0.0.3]. (AS761)", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
    // Newer EOP trailer.
    ("451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (AS761) [CH3PEPF00000015.namprd04.prod.outlook.com 2025-06-22T05:58:00.123Z 08DDB07650EC6878]", "ip-throttling", ConnectorRole::Helps, OutcomeClass::Throttled),
];

#[test]
fn every_reference_sample_is_explained_from_the_knowledge_base() {
    for (line, family, role, outcome) in SAMPLES {
        let r = explain_input(line.as_bytes(), "test").unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(r.kind, "reply", "{line}");
        let e = &r.items[0].explanation;
        assert_eq!(e.family.as_deref(), Some(*family), "{line}");
        assert_eq!(e.connector, Some(*role), "{line}");
        assert_eq!(e.outcome, *outcome, "{line}");
        assert!(
            e.known && !e.meaning.is_empty() && !e.support.is_empty() && !e.ops.is_empty(),
            "{line}"
        );
        assert!(
            e.source
                .as_deref()
                .is_some_and(|s| s.starts_with("https://")),
            "{line}"
        );
    }
}

#[test]
fn explain_and_the_send_engine_classify_alike() {
    for (line, ..) in SAMPLES {
        let reply = mailharness::reply::parse_reply_lines(&[*line]).unwrap();
        let ctx = Context::default();
        let c = mailharness::reply::classify(&reply, &ctx);
        let e = mailharness::reply::explain(&Status::from(&reply), &ctx);
        assert_eq!(c.outcome, e.outcome, "{line}");
        assert_eq!(c.family, e.family.as_deref(), "{line}");
    }
}

#[test]
fn tls_required_at_a_tenants_mx_is_the_connectors_doing() {
    let raw = b"<alice@contoso.com>: host contoso-com.mail.protection.outlook.com[192.0.2.25] said: 451 5.7.3 STARTTLS is required to send mail (in reply to MAIL FROM command)";
    let e = &explain_input(raw, "t").unwrap().items[0].explanation;
    assert_eq!(e.family.as_deref(), Some("tls-required"));
    assert_eq!(e.connector, Some(ConnectorRole::Cause));
}

#[test]
fn the_postfix_dsn_is_read_per_recipient() {
    let raw = std::fs::read(data("dsn-postfix-delayed.eml")).unwrap();
    let r = explain_input(&raw, "dsn").unwrap();
    assert_eq!(r.kind, "dsn");
    assert_eq!(r.reporting_mta.as_deref(), Some("mta1.platform.example"));
    assert_eq!(r.items.len(), 3);
    let a = &r.items[0];
    assert_eq!(a.recipient.as_deref(), Some("alice@contoso.com"));
    assert_eq!(a.action.as_deref(), Some("delayed"));
    assert_eq!(a.explanation.family.as_deref(), Some("ip-throttling"));
    assert_eq!(a.explanation.token.as_deref(), Some("AS761"));
    assert_eq!(
        a.host.as_deref(),
        Some("contoso-com.mail.protection.outlook.com")
    );
    let b = &r.items[1];
    assert_eq!(b.explanation.family.as_deref(), Some("recipient-unknown"));
    assert_eq!(b.explanation.token.as_deref(), Some("AS201806281"));
    // An X-Postfix diagnostic is not an SMTP reply: the Status field is explained.
    let c = &r.items[2];
    assert_eq!(c.explanation.family.as_deref(), Some("mailbox-limit"));
    assert_eq!(c.explanation.code, None);
}

#[test]
fn the_cli_reads_an_argument_a_file_and_stdin() {
    let out = bin()
        .args([
            "explain",
            "550 5.7.51 TenantInboundAttribution; There is a partner connector configured",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("connector-restriction"), "{text}");
    assert!(text.contains("fix the existing connector"), "{text}");

    let out = bin()
        .args(["explain", "--json", "--file"])
        .arg(data("dsn-postfix-delayed.eml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "dsn");
    assert_eq!(v["items"][0]["explanation"]["family"], "ip-throttling");
    assert_eq!(v["items"][0]["explanation"]["connector"], "helps");

    let mut child = bin()
        .args(["explain"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Delivery has failed.\r\nRemote server returned '550 5.7.606 Access denied, banned sending IP [192.0.2.9]. (AS16012609)'\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("banned-ip") && text.contains("sender.office.com"),
        "{text}"
    );
}

#[test]
fn unknown_codes_and_empty_input_are_honest() {
    let out = bin()
        .args(["explain", "--json", "553 5.3.9 Something new"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["items"][0]["explanation"];
    assert_eq!(e["known"], false);
    assert_eq!(e["title"], "Unknown");
    assert_eq!(e["class"], "permanent failure");
    assert_eq!(e["subject"], "mail system status");

    let out = bin().args(["explain", "hello there"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no SMTP reply"));
}

fn target_file(dir: &tempfile::TempDir, senders: &str) -> PathBuf {
    let p = dir.path().join("target.toml");
    std::fs::write(
        &p,
        format!("name = \"acme\"\nkind = \"tenant\"\n[senders]\n{senders}\n[smtp]\ndomain = \"contoso.example\"\nmx = \"127.0.0.1\"\n[[mailboxes]]\naddress = \"qa1@contoso.example\"\n[guard]\nallowed_domains = [\"contoso.example\"]\nmax_messages_per_run = 10\nmax_rate_per_ip = \"10/min\"\n"),
    )
    .unwrap();
    p
}

#[test]
fn connector_prints_the_wizard_and_powershell_spelled_right() {
    let dir = tempfile::tempdir().unwrap();
    let t = target_file(
        &dir,
        "primary = \"203.0.113.22\"\nsecondary = \"198.51.100.221\"",
    );
    let out = bin()
        .args(["connector", "--target"])
        .arg(&t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("New-InboundConnector -Name 'Trusted Mail Connector' -ConnectorType Partner -SenderDomains * -SenderIPAddresses 203.0.113.22,198.51.100.221 -RequireTls $true -Enabled $true"), "{text}");
    assert!(text.contains("Set-InboundConnector -Identity 'Trusted Mail Connector' -SenderIPAddresses 203.0.113.22,198.51.100.221 -RequireTls $true"), "{text}");
    assert!(text.contains("Partner organization") && text.contains("Mail flow > Connectors"));
    assert!(text.contains("203.0.113.22 (primary)"), "{text}");
}

#[test]
fn connector_diff_after_an_ip_change() {
    let dir = tempfile::tempdir().unwrap();
    let t = target_file(
        &dir,
        "primary = \"203.0.113.22\"\nsecondary = \"198.51.100.221\"",
    );
    let out = bin()
        .args([
            "connector",
            "--current",
            "203.0.113.221,192.0.2.221,198.51.100.0/24",
            "--target",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("add     203.0.113.22 (primary)"), "{text}");
    assert!(text.contains("remove  203.0.113.221"), "{text}");
    assert!(text.contains("remove  192.0.2.221"), "{text}");
    assert!(
        text.contains("keep    198.51.100.0/24 (secondary)"),
        "{text}"
    );
    assert!(text.contains("Set-InboundConnector -Identity 'Trusted Mail Connector' -SenderIPAddresses 198.51.100.0/24,203.0.113.22 -RequireTls $true"), "{text}");
    assert!(
        text.contains("@{Add=\"203.0.113.22\"; Remove=\"203.0.113.221\",\"192.0.2.221\"}"),
        "{text}"
    );

    let out = bin()
        .args([
            "connector",
            "--current",
            "198.51.100.221, 203.0.113.22",
            "--target",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Nothing to change"));
}

#[test]
fn connector_rules_are_checked_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = target_file(&dir, "primary = \"203.0.113.22\"");
    let out = bin()
        .args([
            "connector",
            "--current",
            "2001:db8::1,10.0.0.0/8,203.0.113.2213",
            "--certificate-name",
            "mail.platform.example",
            "--target",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--current: `2001:db8::1` is an IPv6 address"),
        "{err}"
    );
    assert!(err.contains("/24 to /32"), "{err}");
    assert!(err.contains("invalid IP address `203.0.113.2213`"), "{err}");
    assert!(
        err.contains("mixes IP and certificate restriction"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn json_carries_schema_source_confidence_and_the_host_given() {
    let out = bin()
        .args([
            "explain",
            "--json",
            "--host",
            "hotmail-com.olc.protection.outlook.com",
            "451 4.7.500 Server busy. Please try again later from [192.0.2.2]. (S77719)",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], mailharness::reply::EXPLAIN_SCHEMA);
    let it = &v["items"][0];
    assert_eq!(it["host"], "hotmail-com.olc.protection.outlook.com");
    let e = &it["explanation"];
    assert_eq!(e["family"], "ip-throttling");
    assert_eq!(e["origin"], "microsoft-consumer");
    assert_eq!(e["connector"], "not-a-tenant");
    assert_eq!(e["confidence"], "documented");
    assert!(e["source"].as_str().unwrap().starts_with("https://"));

    // A reply with no code at all is read by its words, and says so.
    let out = bin()
        .args([
            "explain",
            "--json",
            "status=deferred (TLS is required, but was not offered by host mx.example[192.0.2.7])",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["items"][0]["explanation"];
    assert_eq!(e["family"], "tls-failure");
    assert_eq!(e["confidence"], "inferred");
    assert!(e["warnings"][0].as_str().unwrap().contains("wording alone"));
}

#[test]
fn terminal_output_never_carries_raw_escapes() {
    let out = bin()
        .args([
            "explain",
            "550 5.7.1 \x1b]0;pwned\x07 blocked using zen.spamhaus.org;",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\\x1b]0;pwned\\x07"));
}
