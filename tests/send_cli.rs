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
    assert!(stdout.contains("exit 24: no recipient was accepted"), "{stdout}");
    // The default tenant's bucket holds 5 messages for a new IP; the rest are throttled.
    assert!(stdout.contains("accepted         5"), "{stdout}");
    assert!(stdout.contains("throttled        3"), "{stdout}");
    assert!(stdout.contains("lateness vs schedule"), "{stdout}");
    let recs = send_support::read_records(out.path());
    assert_eq!(recs.len(), 8);
    assert!(recs.iter().all(|r| r.tls.is_some()));
    sim.shutdown().await.unwrap();
}
