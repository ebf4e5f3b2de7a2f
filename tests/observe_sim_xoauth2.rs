//! Observation over XOAUTH2 against a server that supports it: the embedded simulator's IMAP server
//! (Microsoft 365 has had no basic auth for IMAP since 2023). A configured bearer token finds the
//! message; an unknown token is refused and never appears in the error.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mailharness::observe::{
    self, AuthMethod, ConnectOptions, ImapTarget, MailboxAccess, ObserveOptions, TokenProvider,
    TokenSource,
};
use mailharness::scenario::target::ImapTls;
use mailharness::send::{self, OneShot, SendContext, TlsOptions};
use mailharness::sim::{self, TenantConfig};
use mailharness::vocab::{OutcomeClass, TlsMode};

const GOOD_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.sim-good-token";
const MAILBOX: &str = "qa1@contoso.example";

fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(v) => v,
        SocketAddr::V6(_) => panic!("the simulator listens on IPv4 loopback"),
    }
}

fn imap_target(sim: &sim::SimHandle, state: &Path, token_file: &Path) -> ImapTarget {
    let tls = observe::tls_config(Some(&state.join("tls").join("ca.pem"))).unwrap();
    let addr = sim.imap_addr().expect("the simulator serves IMAP");
    ImapTarget {
        connect: ConnectOptions {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls: ImapTls::Starttls,
            tls_config: Some(tls.clone()),
            timeout: Duration::from_secs(10),
        },
        auth: AuthMethod::Xoauth2(Arc::new(TokenProvider::new(
            TokenSource::File(token_file.to_path_buf()),
            tls,
        ))),
        mailboxes: vec![MailboxAccess {
            address: MAILBOX.into(),
            login: MAILBOX.into(),
            password: None,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_against_the_simulator_finds_the_message_and_refuses_an_unknown_token() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("accepted-tokens");
    std::fs::write(&tokens, format!("{GOOD_TOKEN}\n")).unwrap();
    let mut cfg = TenantConfig::default();
    cfg.imap.app_tokens_file = Some(tokens.clone());
    let state = dir.path().join("sim");
    let sim = sim::start(cfg, &state).await.unwrap();

    let run_id = format!("xoauth2-{}", uuid::Uuid::new_v4().as_simple());
    let ctx = SendContext::new(
        &run_id,
        v4(sim.smtp_addr()),
        "mta1.platform.example",
        "harness@platform.example",
        &TlsOptions {
            extra_roots_pem: sim.ca_cert_pem().map(str::to_string),
            server_name: Some("mail.protection.outlook.com".into()),
            no_public_roots: true,
            ..Default::default()
        },
    )
    .unwrap();
    let attempt = send::send_one(
        &ctx,
        &OneShot {
            source_ip: Ipv4Addr::new(127, 0, 0, 2),
            sender: "primary".into(),
            tls_mode: TlsMode::Starttls,
            recipients: vec![MAILBOX.into()],
            phase: "xoauth2".into(),
            burst: "xoauth2".into(),
            index: 0,
            body_size: 256,
            text: None,
        },
    )
    .await;
    assert_eq!(attempt.outcome, OutcomeClass::Accepted, "{attempt:?}");

    let opts = ObserveOptions {
        deadline: Duration::from_secs(10),
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let good_file = dir.path().join("client-token");
    std::fs::write(&good_file, GOOD_TOKEN).unwrap();
    let obs = observe::observe(
        &imap_target(&sim, &state, &good_file),
        &run_id,
        std::slice::from_ref(&attempt),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(
        (obs.summary.found, obs.summary.missing),
        (1, 0),
        "{:?}",
        obs.summary
    );
    assert!(obs.records[0]
        .evidence
        .received
        .as_deref()
        .unwrap_or("")
        .contains("version=TLS1_"));

    // An unknown token: the failure challenge, the empty answer, then NO; the token is not echoed.
    let bad_file = dir.path().join("bad-token");
    std::fs::write(&bad_file, "not-a-token-the-tenant-knows").unwrap();
    let err = observe::observe(
        &imap_target(&sim, &state, &bad_file),
        &run_id,
        &[attempt],
        &opts,
    )
    .await
    .expect_err("an unknown token must be refused");
    let text = err.to_string();
    assert!(text.contains("AUTHENTICATE failed"), "{text}");
    assert!(
        !text.contains("not-a-token-the-tenant-knows"),
        "the token leaked: {text}"
    );
    sim.shutdown().await.unwrap();
}
