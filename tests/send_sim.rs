//! The send engine against the embedded simulator, in-process: before a connector both source IPs
//! are throttled (451 4.7.500 … AS761) once their buckets run dry; after `create_connector`
//! (RequireTls) and its activation delay, STARTTLS is accepted and plain text gets `tls-required`.

mod send_support;

use std::net::SocketAddr;
use std::time::Duration;

use mailharness::record::{CertVerification, Stage};
use mailharness::send::{
    run_burst, AttemptSink, CancelToken, Progress, SendContext, TlsOptions, TlsVerify,
};
use mailharness::sim::{ConnectorSpec, TenantConfig};
use mailharness::vocab::{HumanDuration, OutcomeClass, TlsMode};
use send_support::*;

fn v4(a: SocketAddr) -> std::net::SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("the simulator listens on IPv4 loopback"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_and_after_the_connector() {
    let state = tempfile::tempdir().unwrap();
    let mut cfg = TenantConfig::default();
    cfg.connectors.activation_delay = HumanDuration(Duration::from_millis(300));
    let capacity = cfg.throttle.capacity;
    let sim = mailharness::sim::start(cfg, state.path()).await.unwrap();
    let ctx = SendContext::new(
        "send-sim",
        v4(sim.smtp_addr()),
        "mta.platform.example",
        "sender@platform.example",
        &TlsOptions {
            verify: TlsVerify::Verify,
            extra_roots_pem: sim.ca_cert_pem().map(str::to_string),
            server_name: None,
            no_public_roots: true,
        },
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let sink = AttemptSink::open(out.path()).unwrap();
    let cancel = CancelToken::new();
    let progress = Progress::hidden();
    let rcpts = ["qa1@contoso.example", "qa2@contoso.example"];
    let n = capacity + 4;

    // Before: each IP's bucket holds `capacity` messages, then AS761.
    let a = burst(
        "before",
        "primary",
        IP_A,
        TlsMode::Starttls,
        n,
        0.005,
        2,
        5,
        &rcpts,
    );
    let b = burst(
        "before",
        "secondary",
        IP_B,
        TlsMode::None,
        n,
        0.005,
        2,
        5,
        &rcpts,
    );
    let (sa, sb) = tokio::join!(
        run_burst(&ctx, &a, "before", &sink, &cancel, &progress),
        run_burst(&ctx, &b, "before", &sink, &cancel, &progress),
    );
    for s in [sa.unwrap(), sb.unwrap()] {
        assert_eq!(
            s.count(OutcomeClass::Accepted),
            u64::from(capacity),
            "{s:?}"
        );
        assert_eq!(s.count(OutcomeClass::Throttled), 4, "{s:?}");
    }

    // The connector: both IPs, TLS required.
    sim.create_connector(ConnectorSpec {
        name: "Trusted Mail Connector".into(),
        enabled: true,
        sender_ips: vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()],
        sender_domains: vec!["*".into()],
        require_tls: Some(true),
        restrict_domains_to_ips: false,
        activation_delay: None,
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;

    let c = burst(
        "after",
        "primary",
        IP_A,
        TlsMode::Starttls,
        n,
        0.005,
        2,
        5,
        &rcpts,
    );
    let d = burst(
        "after",
        "secondary",
        IP_B,
        TlsMode::None,
        4,
        0.005,
        1,
        2,
        &rcpts,
    );
    let (sc, sd) = tokio::join!(
        run_burst(&ctx, &c, "after", &sink, &cancel, &progress),
        run_burst(&ctx, &d, "after", &sink, &cancel, &progress),
    );
    let (sc, sd) = (sc.unwrap(), sd.unwrap());
    assert_eq!(sc.count(OutcomeClass::Accepted), u64::from(n), "{sc:?}");
    assert_eq!(sd.count(OutcomeClass::TlsRequired), 4, "{sd:?}");
    let total = sink.close().await.unwrap();

    let recs = read_records(out.path());
    assert_eq!(total.records as usize, recs.len());
    assert_eq!(recs.len() as u32, 3 * n + 4);
    for (bid, cnt) in [(&a.id, n), (&b.id, n), (&c.id, n), (&d.id, 4)] {
        assert_one_record_each(&recs, bid, cnt);
    }
    for r in &recs {
        match (r.phase.as_str(), r.outcome) {
            ("before", OutcomeClass::Throttled) => {
                let reply = r.reply.as_ref().unwrap();
                assert_eq!(
                    (reply.code, reply.enhanced.as_deref()),
                    (451, Some("4.7.500"))
                );
                assert_eq!(r.token.as_deref(), Some("AS761"));
                assert!(
                    reply.text.contains(&format!("[{}]", r.source_ip)),
                    "{}",
                    reply.text
                );
            }
            ("before", OutcomeClass::Accepted) => {}
            ("after", OutcomeClass::Accepted) => {
                let tls = r.tls.as_ref().expect("STARTTLS");
                assert_eq!(tls.verification, CertVerification::Valid);
                assert!(tls
                    .peer_subject
                    .as_deref()
                    .unwrap_or("")
                    .contains("mail.protection.outlook.com"));
                assert!(r.queue_id.is_some());
            }
            ("after", OutcomeClass::TlsRequired) => {
                assert!(r.tls.is_none());
                let reply = r.reply.as_ref().unwrap();
                assert!(
                    matches!(
                        reply.stage,
                        Stage::Mail | Stage::Rcpt | Stage::Data | Stage::EndOfData
                    ),
                    "{reply:?}"
                );
            }
            other => panic!("unexpected {other:?}: {r:?}"),
        }
    }
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_reaches_the_smtps_listener() {
    let state = tempfile::tempdir().unwrap();
    let sim = mailharness::sim::start(TenantConfig::default(), state.path())
        .await
        .unwrap();
    let Some(smtps) = sim.smtps_addr() else {
        panic!("the default tenant has an SMTPS listener");
    };
    let mut ctx = SendContext::new(
        "send-sim-implicit",
        v4(sim.smtp_addr()),
        "mta.platform.example",
        "sender@platform.example",
        &TlsOptions {
            verify: TlsVerify::Verify,
            extra_roots_pem: sim.ca_cert_pem().map(str::to_string),
            server_name: Some("localhost".into()),
            no_public_roots: true,
        },
    )
    .unwrap();
    ctx.implicit_tls_port = smtps.port();
    let out = tempfile::tempdir().unwrap();
    let b = burst(
        "p",
        "primary",
        IP_A,
        TlsMode::Implicit,
        3,
        0.0,
        1,
        3,
        &["qa1@contoso.example"],
    );
    let (s, recs) = run_alone(&ctx, &b, "p", out.path()).await;
    assert_eq!(s.count(OutcomeClass::Accepted), 3, "{s:?}");
    for r in &recs {
        assert_eq!(
            &stages(r)[..3],
            &[Stage::Connect, Stage::TlsHandshake, Stage::Greeting]
        );
        assert_eq!(r.destination, smtps.to_string());
    }
    sim.shutdown().await.unwrap();
}
