//! `mailharness verify` against the real test bed (`tests/testbed.sh up`): dnsmasq answers the MX
//! of testbed.example, Postfix receives (127.0.0.3 is throttled with Postfix's rewrite of EOP's
//! 451 4.7.500 … (AS761)), Dovecot is read over IMAP. One human table, then `--json`, then
//! `--previous`.
//!
//! Run: `tests/testbed.sh up && . tests/.testbed/env && cargo test --test ops_verify`

use std::env;
use std::path::PathBuf;
use std::process::Command;

const NOT_RUNNING: &str = "test bed not running: start it with `tests/testbed.sh up` and source \
                           <dir>/env, or use tests/run.sh";

fn var(name: &str) -> String {
    match env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set. {NOT_RUNNING}"),
    }
}

/// A tenant target for the test bed; MX comes from dnsmasq, not from the file.
fn target(dir: &tempfile::TempDir) -> PathBuf {
    if env::var_os("MH_TESTBED_DIR").is_none() {
        panic!("{NOT_RUNNING}");
    }
    let p = dir.path().join("testbed.toml");
    let text = format!(
        r#"name = "testbed"
kind = "tenant"

[senders]
primary = "127.0.0.2"
secondary = "127.0.0.3"

[smtp]
domain = "{domain}"
port = {smtp_port}
ca_file = "{ca}"
command_timeout = "30s"

[imap]
host = "{imap_host}"
port = {imap_port}
tls = "starttls"
auth = "login"
ca_file = "{ca}"

[[mailboxes]]
address = "qa1@{domain}"
login = "qa1"
password_env = "MH_TESTBED_IMAP_PASSWORD"

[guard]
allowed_domains = ["{domain}"]
max_messages_per_run = 100
max_rate_per_ip = "60/min"

[observe]
deadline = "20s"
poll_interval = "300ms"
"#,
        domain = var("MH_TESTBED_DOMAIN"),
        smtp_port = var("MH_TESTBED_SMTP_PORT"),
        ca = var("MH_TESTBED_TLS_CA"),
        imap_host = var("MH_TESTBED_IMAP_HOST"),
        imap_port = var("MH_TESTBED_IMAP_PORT"),
    );
    std::fs::write(&p, text).unwrap();
    p
}

fn dns() -> String {
    format!(
        "{}:{}",
        var("MH_TESTBED_DNS_HOST"),
        var("MH_TESTBED_DNS_PORT")
    )
}

#[test]
fn verify_reports_both_ips_then_json_then_changes() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(&dir);
    let bin = env!("CARGO_BIN_EXE_mailharness");

    // The human table.
    let out = Command::new(bin)
        .args(["verify", "--dns", &dns(), "--target"])
        .arg(&t)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("MX mx.testbed.example (pref 10)"), "{text}");
    let row = |ip: &str| {
        text.lines()
            .find(|l| l.contains(ip) && (l.ends_with("PASS") || l.ends_with("FAIL")))
            .unwrap_or_else(|| panic!("no row for {ip}:\n{text}"))
            .to_string()
    };
    let primary = row("127.0.0.2");
    assert!(
        primary.starts_with("primary") && primary.ends_with("PASS"),
        "{primary}"
    );
    assert!(primary.contains("cert valid"), "{primary}");
    assert!(primary.contains("INBOX / INBOX"), "{primary}");
    let secondary = row("127.0.0.3");
    assert!(secondary.ends_with("FAIL"), "{secondary}");
    assert!(
        secondary.contains("throttled 451 4.7.500 AS761"),
        "{secondary}"
    );
    assert!(text.contains("IP throttling"), "{text}");
    assert!(text.contains("inbound connector"), "{text}");
    assert!(
        text.contains("FAIL: 1 of 2 sending IP(s) can deliver"),
        "{text}"
    );

    // The JSON.
    let out = Command::new(bin)
        .args(["verify", "--json", "--dns", &dns(), "--target"])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["mx"][0]["host"], "mx.testbed.example");
    assert_eq!(v["mx"][0]["preference"], 10);
    let ips = v["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2);
    let p = &ips[0];
    assert_eq!(
        (p["role"].as_str(), p["passed"].as_bool()),
        (Some("primary"), Some(true))
    );
    assert_eq!(p["bound"], true);
    assert!(["1.2", "1.3"].contains(&p["tls"]["version"].as_str().unwrap()));
    assert_eq!(p["tls"]["verification"], "valid");
    assert!(p["tls"]["peer_not_after"].is_string());
    assert_eq!(p["with_tls"]["outcome"], "accepted");
    assert_eq!(p["without_tls"]["outcome"], "accepted");
    assert_eq!(p["with_tls"]["observed"], "INBOX");
    let s = &ips[1];
    assert_eq!(s["passed"], false);
    for mode in ["with_tls", "without_tls"] {
        assert_eq!(s[mode]["outcome"], "throttled", "{s}");
        assert_eq!(s[mode]["token"], "AS761");
        assert_eq!(s[mode]["explanation"]["family"], "ip-throttling");
    }

    // A previous verification in which the secondary IP was another one, and passed.
    let mut prev = v.clone();
    prev["ips"][1]["ip"] = "192.0.2.77".into();
    prev["ips"][1]["passed"] = true.into();
    prev["ips"][0]["without_tls"]["outcome"] = "deferred".into();
    let prev_path = dir.path().join("prev.json");
    std::fs::write(&prev_path, serde_json::to_string(&prev).unwrap()).unwrap();
    let out = Command::new(bin)
        .args(["verify", "--no-observe", "--dns", &dns(), "--previous"])
        .arg(&prev_path)
        .arg("--target")
        .arg(&t)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Changes since the previous verification"),
        "{text}"
    );
    assert!(
        text.contains("secondary 127.0.0.3: new IP (FAILS)"),
        "{text}"
    );
    assert!(
        text.contains("192.0.2.77: no longer a sending IP"),
        "{text}"
    );
    assert!(
        text.contains("primary 127.0.0.2 without TLS: deferred"),
        "{text}"
    );
}

#[test]
fn an_ip_not_bound_here_fails_without_sending() {
    let dir = tempfile::tempdir().unwrap();
    let t = target(&dir);
    let text = std::fs::read_to_string(&t)
        .unwrap()
        .replace("secondary = \"127.0.0.3\"", "secondary = \"192.0.2.10\"");
    std::fs::write(&t, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args([
            "verify",
            "--json",
            "--no-observe",
            "--dns",
            &dns(),
            "--target",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["ips"][1];
    assert_eq!(s["ip"], "192.0.2.10");
    assert_eq!(s["bound"], false);
    assert!(s["bind_error"].as_str().unwrap().contains("not assigned"));
    assert!(s.get("with_tls").is_none());
}

/// The connector `mailharness connector` recommends requires TLS, so plain text from the IPs is
/// refused for lack of TLS. verify must count that refusal as the intended result, not a failure.
#[test]
fn verify_passes_when_a_tls_requiring_connector_refuses_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = std::fs::read_to_string("scenarios/targets/sim.toml").unwrap();
    let target = dir.path().join("with-connector.toml");
    std::fs::write(
        &target,
        format!(
            "{builtin}\n[[simulator.connectors.initial]]\nname = \"Trusted Mail Connector\"\n\
             sender_ips = [\"127.0.0.2\", \"127.0.0.3\"]\nrequire_tls = true\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(["verify", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(
        text.matches("refused for lack of TLS, as a connector that requires TLS should")
            .count(),
        2,
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
}
