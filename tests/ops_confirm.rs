//! `confirm` against the embedded simulator, driven through the library: before the connector
//! the customer sees "Throttled (451 4.7.500, AS761) …", after it (once active) "Accepted by
//! Microsoft 365 over TLS … your connector is working", with arrival and the matched connector
//! from the simulator's trace; the shareable report masks the recipient. Then the CLI on the
//! built-in simulator target.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use mailharness::ops::{confirm_with, Endpoint};
use mailharness::record::OutcomeClass;
use mailharness::scenario::types::{ConnectorCidr, HumanDuration};
use mailharness::sim::{self, ConnectorSpec, TenantConfig};

const FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const TO: &str = "qa1@contoso.example";

#[test]
fn confirm_before_and_after_the_connector() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let mut cfg = TenantConfig::default();
        // A sending IP without history is throttled from its first message.
        cfg.throttle.capacity = 0;
        cfg.connectors.activation_delay = HumanDuration(Duration::from_millis(500));
        let sim = sim::start(cfg, dir.path()).await.unwrap();
        let ep = Endpoint::simulator(&sim, "contoso.example").unwrap();

        let before = confirm_with(&ep, FROM, TO, None, Some(&sim)).await.unwrap();
        assert_eq!(before.outcome, OutcomeClass::Throttled, "{before:?}");
        assert!(!before.ok);
        assert!(
            before
                .verdict
                .starts_with("Throttled (451 4.7.500, AS761): the connector does not list this IP"),
            "{}",
            before.verdict
        );
        assert!(
            before.next_step.contains("inbound connector"),
            "{}",
            before.next_step
        );
        assert!(before.reference.starts_with("MH-"));

        sim.create_connector(ConnectorSpec {
            name: "Trusted Mail Connector".into(),
            enabled: true,
            sender_ips: vec!["127.0.0.2".parse::<ConnectorCidr>().unwrap()],
            sender_domains: vec!["*".into()],
            require_tls: Some(true),
            restrict_domains_to_ips: false,
            activation_delay: None,
        })
        .unwrap();
        // Poll rather than sleep a fixed time (the reference: the delay is undocumented).
        let mut after = None;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let r = confirm_with(&ep, FROM, TO, None, Some(&sim)).await.unwrap();
            if r.outcome == OutcomeClass::Accepted {
                after = Some(r);
                break;
            }
        }
        let after = after.expect("the connector never took effect");
        assert!(after.ok);
        assert!(
            after.verdict.starts_with(&format!(
                "Accepted by Microsoft 365 over TLS {} from 127.0.0.2; your connector is working",
                after.tls_version.as_deref().unwrap()
            )),
            "{}",
            after.verdict
        );
        assert_eq!(after.connector.as_deref(), Some("Trusted Mail Connector"));
        assert!(after.arrival.is_some(), "{after:?}");

        // The shareable report: masked recipient, reference id, no full address anywhere.
        let out = tempfile::tempdir().unwrap();
        let md = after.write(out.path()).unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(text.contains(&after.reference));
        assert!(text.contains("q***@contoso.example"));
        let json = std::fs::read_to_string(md.with_extension("json")).unwrap();
        for t in [&text, &json] {
            assert!(!t.contains(TO), "unmasked recipient in {t}");
        }
        sim.shutdown().await.unwrap();
    });
}

#[test]
fn the_cli_confirms_against_the_built_in_simulator() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args([
            "confirm",
            "--to",
            "qa2@contoso.example",
            "--from-ip",
            "127.0.0.2",
            "--json",
            "--report-dir",
        ])
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The default simulator lets a fresh IP's first messages through without a connector.
    assert_eq!(v["outcome"], "accepted");
    assert_eq!(v["to"], "q***@contoso.example");
    let files: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert_eq!(files.len(), 2);

    // The guard rails hold: no test mail to a domain the target does not allow.
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(["confirm", "--to", "someone@elsewhere.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_domains"));
}
