//! `mailharness send` end to end: guard rails (non-loopback server, foreign source IP) and a real
//! burst against the in-process simulator, checked in the records file and the summary.

mod send_support;

use std::process::Command;

use mailharness::sim::TenantConfig;

fn mh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailharness"))
}

#[test]
fn refuses_a_remote_server_and_a_foreign_source_ip() {
    let out = tempfile::tempdir().unwrap();
    let o = mh()
        .args([
            "send",
            "--server",
            "192.0.2.25:25",
            "--to",
            "a@example.net",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-remote"));
    let o = mh()
        .args(["send", "--server", "127.0.0.1:9", "--from-ip", "192.0.2.1"])
        .args(["--to", "a@example.net", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("192.0.2.1 is not assigned to any interface here"));
    assert!(
        !out.path().join("attempts.jsonl").exists(),
        "nothing sent, nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_a_burst_and_prints_a_summary() {
    let state = tempfile::tempdir().unwrap();
    let sim = mailharness::sim::start(TenantConfig::default(), state.path())
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let ca = state.path().join("ca-for-send.pem");
    std::fs::write(&ca, sim.ca_cert_pem().unwrap()).unwrap();
    let server = sim.smtp_addr().to_string();
    let outp = out.path().to_path_buf();
    let o = tokio::task::spawn_blocking(move || {
        mh().args(["send", "--server", &server, "--from-ip", "127.0.0.3"])
            .args([
                "--to",
                "qa1@contoso.example,qa2@contoso.example",
                "--count",
                "8",
            ])
            .args([
                "--interval",
                "5ms",
                "--concurrency",
                "2",
                "--per-connection",
                "4",
            ])
            .args(["--tls", "starttls", "--ca-file"])
            .arg(&ca)
            .arg("--out")
            .arg(&outp)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    // Three of eight throttled at RCPT: exit 24, swaks' "no RCPTs accepted" (see `send --help`).
    assert_eq!(
        o.status.code(),
        Some(24),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("exit 24: no recipient was accepted"),
        "{stdout}"
    );
    // The default tenant's bucket holds 5 messages for a new IP; the rest are throttled.
    assert!(stdout.contains("accepted         5"), "{stdout}");
    assert!(stdout.contains("throttled        3"), "{stdout}");
    assert!(stdout.contains("lateness vs schedule"), "{stdout}");
    let recs = send_support::read_records(out.path());
    assert_eq!(recs.len(), 8);
    assert!(recs.iter().all(|r| r.tls.is_some()));
    sim.shutdown().await.unwrap();
}

/// A refused connection is a failure at the connect stage: exit 20 (swaks' 2; 2 means
/// configuration here), with the reason on screen and in every attempt of `--json`.
#[test]
fn a_closed_port_exits_20_and_says_why() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tempfile::tempdir().unwrap();
    let server = format!("127.0.0.1:{port}");
    let o = mh()
        .args([
            "send",
            "--server",
            &server,
            "--to",
            "a@example.net",
            "--count",
            "2",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(20), "{stdout}");
    assert!(stdout.contains("connect-failure  2"), "{stdout}");
    assert!(stdout.contains("exit 20: could not connect"), "{stdout}");
    assert!(stdout.contains("Connection refused"), "{stdout}");
    let o = mh()
        .args([
            "send",
            "--server",
            &server,
            "--to",
            "a@example.net",
            "--count",
            "1",
            "--json",
        ])
        .arg("--out")
        .arg(out.path().join("json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(20));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 20);
    assert_eq!(v["attempts"][0]["outcome"], "connect-failure");
    assert_eq!(v["attempts"][0]["failed_stage"], "connect");
}

/// `--transcript` shows the dialogue as it happens, both directions, and marks the TLS part:
/// the negotiated version and cipher, then `~>`/`<~` instead of `->`/`<-`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_shows_both_directions_and_the_tls_part() {
    let state = tempfile::tempdir().unwrap();
    let sim = mailharness::sim::start(TenantConfig::default(), state.path())
        .await
        .unwrap();
    let ca = state.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_cert_pem().unwrap()).unwrap();
    let server = sim.smtp_addr().to_string();
    let out = tempfile::tempdir().unwrap();
    let outp = out.path().to_path_buf();
    let o = tokio::task::spawn_blocking(move || {
        mh().args(["send", "--server", &server, "--from-ip", "127.0.0.5"])
            .args([
                "--to",
                "qa1@contoso.example",
                "--count",
                "1",
                "--transcript",
            ])
            .args(["--tls", "starttls", "--ca-file"])
            .arg(&ca)
            .arg("--out")
            .arg(&outp)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    let at = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` missing:\n{stdout}"))
    };
    assert!(at("=== Trying ") < at("<-  220 "));
    assert!(at("<-  220 ") < at(" -> EHLO mailharness.localdomain"));
    assert!(at(" -> STARTTLS") < at("=== TLS started: TLS 1.3, cipher TLS13_"));
    assert!(at("=== TLS started") < at(" ~> EHLO mailharness.localdomain"));
    assert!(at(" ~> MAIL FROM:<") < at("<~  250 2.1.0"));
    assert!(at(" ~> .") < at("<~  250 2.6.0"));
    assert!(at("<~  250 2.6.0") < at("=== send/primary/starttls/0.0#1: accepted"));
    assert!(
        !stdout.contains(" -> MAIL FROM"),
        "nothing after STARTTLS is marked plain"
    );
    sim.shutdown().await.unwrap();
}
