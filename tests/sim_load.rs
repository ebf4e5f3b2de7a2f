//! Postfix's smtp-source against the simulator: no crash, no lost message.
//! Messages accepted == files in the Maildirs == accepted trace records.

mod sim_support;

use std::process::Command;

use mailharness::sim::{ConnectorSpec, TenantConfig};
use sim_support::*;

/// A tenant where 127.0.0.1 (smtp-source cannot bind a source address) has a connector.
fn load_tenant() -> TenantConfig {
    let mut cfg = TenantConfig::default();
    cfg.connectors.initial = vec![ConnectorSpec {
        name: "Load Test Connector".into(),
        enabled: true,
        sender_ips: vec!["127.0.0.1".parse().expect("ip")],
        sender_domains: vec!["*".into()],
        require_tls: Some(false),
        restrict_domains_to_ips: false,
        activation_delay: None,
    }];
    cfg
}

fn smtp_source(sim: &Sim, args: &[&str]) {
    let out = Command::new("timeout")
        .arg(TOOL_TIMEOUT_SECS)
        .arg("smtp-source")
        .args(args)
        .args([
            "-f",
            "load@platform.example",
            "-t",
            "qa1@contoso.example",
            "-M",
            "mta1.platform.example",
        ])
        .arg(format!("127.0.0.1:{}", sim.smtp_port()))
        .output()
        .expect("smtp-source runs (is postfix installed? tests/testbed.sh install)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "smtp-source {args:?} failed ({}): {stderr}",
        out.status
    );
    assert!(
        !stderr.contains("fatal") && !stderr.contains("error"),
        "smtp-source complained: {stderr}"
    );
}

#[test]
fn smtp_source_load_loses_nothing() {
    let sim = Sim::start(load_tenant());
    // 20 sessions, 2000 messages, connections reused (-d), with a running counter (-c).
    smtp_source(&sim, &["-c", "-d", "-s", "20", "-m", "2000"]);
    // Connection churn: a new connection per message.
    smtp_source(&sim, &["-s", "10", "-m", "300"]);
    // Larger messages (64 KB each), pipelined-ish bursts of reused connections.
    smtp_source(&sim, &["-d", "-s", "5", "-m", "100", "-l", "65536"]);
    let expected = 2000 + 300 + 100;

    sim.wait_delivered();
    let stats = sim.h().stats();
    assert_eq!(stats.accepted, expected, "{stats:?}");
    assert_eq!(stats.delivered, expected, "{stats:?}");
    assert_eq!(stats.delivery_failed, 0);
    let files = maildir_files(sim.h().maildir_root());
    assert_eq!(files.len() as u64, expected, "files in the Maildirs");
    let recs = sim.h().trace(None).expect("trace");
    let accepted: Vec<_> = recs
        .iter()
        .filter(|r| r.decision == mailharness::sim::Decision::Accepted)
        .collect();
    assert_eq!(accepted.len() as u64, expected, "accepted trace records");
    // Every trace record points at an existing, distinct file.
    let mut paths: Vec<_> = accepted
        .iter()
        .flat_map(|r| r.deliveries.iter().map(|d| d.path.clone()))
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len() as u64, expected);
    assert!(paths.iter().all(|p| p.exists()));
    assert!(accepted
        .iter()
        .all(|r| r.connector.as_deref() == Some("Load Test Connector")));
    // Large messages arrived whole.
    assert!(accepted.iter().any(|r| r.size.unwrap_or(0) >= 65536));
    sim.shutdown();
}
