//! The simulator against real clients: swaks (plain, STARTTLS, implicit TLS, bound to
//! 127.0.0.2/127.0.0.3/...) and curl on the admin API. Every assertion is on exact codes.

mod sim_support;

use std::time::{Duration, Instant};

use mailharness::sim::TenantConfig;
use sim_support::*;

const QA1: &str = "qa1@contoso.example";

/// The mission's story with the default tenant: both platform IPs are throttled after the burst;
/// a connector created over the admin API takes effect after its activation delay; then mail over
/// TLS flows without throttling and plain-text mail gets the TLS-required reply.
#[test]
fn mission_story_throttle_connector_tls() {
    let sim = Sim::start(TenantConfig::default());
    let (code, body) = curl(&sim, "GET", "/health", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["status"], "ok");
    let (_, body) = curl(&sim, "GET", "/connectors", None);
    assert_eq!(json(&body), serde_json::json!([]), "no connector at start");

    // Before: a burst of 5 per source IP, then 451 4.7.500 (AS761) at RCPT TO.
    for ip in ["127.0.0.2", "127.0.0.3"] {
        for i in 0..5 {
            let s = swaks(&sim, ip, Tls::Plain, QA1, &[]);
            assert!(
                s.queued(),
                "message {i} from {ip} not queued:\n{}",
                s.transcript
            );
            s.expect("250 2.1.5 Recipient OK");
        }
        let s = swaks(&sim, ip, Tls::Plain, QA1, &[]);
        let r = s.expect("451 4.7.500 ");
        assert!(
            r.starts_with(&format!(
                "451 4.7.500 Server busy. Please try again later from [{ip}]. (AS761) [CH3PEPF00000015.namprd03.prod.outlook.com "
            )),
            "{r}"
        );
        assert!(!s.queued());
        // TLS alone does not help without a connector.
        let s = swaks(&sim, ip, Tls::Starttls, QA1, &[]);
        s.expect("451 4.7.500 ");
    }

    // The connector: sent with curl, pending until the activation delay (3 s) has passed.
    let before_create = Instant::now();
    let (code, body) = curl(&sim, "POST", "/connectors", Some(&connector_json(true)));
    assert_eq!(code, 201, "{body}");
    let v = json(&body);
    assert_eq!(v["state"], "pending");
    assert_eq!(v["require_tls"], true);
    let s = swaks(&sim, "127.0.0.2", Tls::Starttls, QA1, &[]);
    if before_create.elapsed() < Duration::from_secs(3) {
        // Only meaningful if swaks finished inside the delay.
        s.expect("451 4.7.500 ");
    }
    let took = wait_connector_state(&sim, "Trusted Mail Connector", "active", before_create);
    assert!(
        took >= Duration::from_secs(3),
        "active after {took:?}, before the 3 s activation delay"
    );

    // After: TLS mail from both IPs flows past the old burst size (STARTTLS and implicit TLS).
    for ip in ["127.0.0.2", "127.0.0.3"] {
        for i in 0..6 {
            let s = swaks(&sim, ip, Tls::Starttls, QA1, &[]);
            assert!(s.queued(), "TLS message {i} from {ip}:\n{}", s.transcript);
        }
        let s = swaks(&sim, ip, Tls::Implicit, QA1, &[]);
        assert!(s.queued(), "implicit TLS from {ip}:\n{}", s.transcript);
        // Plain text is refused with the configured TLS-required reply.
        let s = swaks(&sim, ip, Tls::Plain, QA1, &[]);
        let r = s.expect("451 5.7.3 ");
        assert!(
            r.starts_with("451 5.7.3 STARTTLS is required to send mail ["),
            "{r}"
        );
    }

    // Unknown mailbox (DBEB) and a domain the tenant does not host, over TLS from a connector IP.
    let s = swaks(
        &sim,
        "127.0.0.2",
        Tls::Starttls,
        "nobody@contoso.example",
        &[],
    );
    let r = s.expect("550 5.4.1 ");
    assert!(r.starts_with("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"));
    let s = swaks(
        &sim,
        "127.0.0.2",
        Tls::Starttls,
        "someone@fabrikam.example",
        &[],
    );
    let r = s.expect("550 5.7.64 ");
    assert!(r.starts_with("550 5.7.64 TenantAttribution; Relay Access Denied"));

    // Restrict domains to IPs: another IP is now refused with 5.7.51 (change effective after 1 s).
    let before_update = Instant::now();
    let (code, body) = curl(
        &sim,
        "PUT",
        "/connectors/Trusted%20Mail%20Connector",
        Some(r#"{"restrict_domains_to_ips":true,"activation_delay":"1s"}"#),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["state"], "updating");
    let took = wait_connector_state(&sim, "Trusted Mail Connector", "active", before_update);
    assert!(took >= Duration::from_secs(1));
    let s = swaks(&sim, "127.0.0.4", Tls::Starttls, QA1, &[]);
    let r = s.expect("550 5.7.51 ");
    assert!(r.starts_with(
        "550 5.7.51 TenantInboundAttribution; There is a partner connector configured"
    ));
    let s = swaks(&sim, "127.0.0.2", Tls::Starttls, QA1, &[]);
    assert!(s.queued(), "{}", s.transcript);

    // Delivered copies carry the EOP evidence headers.
    sim.wait_delivered();
    let files = maildir_files(sim.h().maildir_root());
    let accepted = sim.h().stats().accepted as usize;
    assert_eq!(accepted, 10 + 12 + 2 + 1);
    assert_eq!(files.len(), accepted);
    let tls_copy = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .find(|t| t.contains("version=TLS1_"))
        .expect("a copy received over TLS");
    assert!(tls_copy.starts_with("Received: from mta1.platform.example (127.0.0."));
    assert!(tls_copy.contains("X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"));
    assert!(tls_copy.contains("SFV:NSPM;"));
    assert!(tls_copy.contains("DIR:INB;"));
    assert!(tls_copy.contains("dest:I;"));

    // The trace, read with curl, explains every transaction.
    let (code, body) = curl(&sim, "GET", "/trace", None);
    assert_eq!(code, 200);
    let trace = json(&body);
    let recs = trace.as_array().expect("array");
    let count = |d: &str| recs.iter().filter(|r| r["decision"] == d).count();
    assert_eq!(count("accepted"), accepted);
    assert_eq!(count("throttled"), 2 + 2 + 1);
    assert_eq!(count("tls_required"), 2);
    assert_eq!(count("rejected"), 3);
    let throttled = recs
        .iter()
        .find(|r| r["decision"] == "throttled")
        .expect("one");
    assert_eq!(throttled["connector"], serde_json::Value::Null);
    assert_eq!(throttled["reason"], "ip_throttle");
    assert_eq!(throttled["reply"]["enhanced"], "4.7.500");
    let tls_req = recs
        .iter()
        .find(|r| r["decision"] == "tls_required")
        .expect("one");
    assert_eq!(tls_req["connector"], "Trusted Mail Connector");
    assert_eq!(tls_req["tls"], serde_json::Value::Null);
    let after = recs
        .iter()
        .filter(|r| r["decision"] == "accepted" && r["connector"] == "Trusted Mail Connector")
        .count();
    assert_eq!(after, 12 + 2 + 1);
    assert!(recs
        .iter()
        .filter(|r| r["connector"] == "Trusted Mail Connector" && r["decision"] == "accepted")
        .all(|r| r["tls"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLS1_"))));
    sim.shutdown();
}

/// Banned IP, reputation limit, too many recipients, oversize, junk rules and header stripping.
#[test]
fn other_policy_branches() {
    let mut cfg = TenantConfig {
        banned_ips: vec!["127.0.0.9".parse().expect("ip")],
        ..Default::default()
    };
    cfg.reputation.limited_ips = vec!["127.0.0.8".parse().expect("ip")];
    cfg.front_end.max_message_size = "64KiB".parse().expect("size");
    cfg.throttle.enabled = false;
    cfg.delivery.delay = "50ms".parse().expect("duration");
    let sim = Sim::start(cfg);

    let s = swaks(&sim, "127.0.0.9", Tls::Starttls, QA1, &[]);
    let r = s.expect("550 5.7.606 ");
    assert!(r.starts_with("550 5.7.606 Access denied, banned sending IP [127.0.0.9]. To request removal from this list please visit https://sender.office.com/ and follow the directions. (AS16012609) ["), "{r}");

    let s = swaks(&sim, "127.0.0.8", Tls::Plain, QA1, &[]);
    let r = s.expect("451 4.7.650 ");
    assert!(
        r.contains("rate limited due to IP reputation") && r.contains("(S775)"),
        "{r}"
    );

    // 201 recipients in one message (pipelined): the 201st gets 452 4.5.3, the 200 are delivered.
    let to: Vec<&str> = std::iter::repeat_n(QA1, 201).collect();
    let to = to.join(",");
    let s = swaks(&sim, "127.0.0.2", Tls::Plain, &to, &["--pipeline"]);
    assert_eq!(s.count("250 2.1.5 Recipient OK"), 200, "{}", s.transcript);
    let r = s.expect("452 4.5.3 ");
    assert!(
        r.starts_with("452 4.5.3 Too many recipients (AS780090) ["),
        "{r}"
    );

    // Oversize: a message larger than the advertised SIZE gets 552 5.3.4 after DATA.
    let big = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(big.path(), "x".repeat(100 * 1024)).expect("write");
    let s = swaks(
        &sim,
        "127.0.0.2",
        Tls::Plain,
        QA1,
        &[
            "--attach-type",
            "text/plain",
            "--attach",
            &big.path().display().to_string(),
        ],
    );
    s.expect("250-SIZE 65536");
    let r = s.expect("552 5.3.4 ");
    assert!(
        r.starts_with("552 5.3.4 Message size exceeds fixed maximum message size"),
        "{r}"
    );
    assert!(!s.queued());

    // Junk by subject marker, and a sender-supplied X-MS-Exchange-Organization-SCL is stripped.
    let s = swaks(
        &sim,
        "127.0.0.3",
        Tls::Plain,
        "qa2@contoso.example",
        &[
            "--header",
            "Subject: [SIM-JUNK] cheap stuff",
            "--add-header",
            "X-MS-Exchange-Organization-SCL: -1",
        ],
    );
    assert!(s.queued(), "{}", s.transcript);
    // Junk by sender domain without SPF.
    let s = swaks(
        &sim,
        "127.0.0.3",
        Tls::Plain,
        "qa3@contoso.example",
        &["--from", "x@nospf.example"],
    );
    assert!(s.queued(), "{}", s.transcript);
    sim.wait_delivered();
    let root = sim.h().maildir_root().to_path_buf();
    let junk2 = maildir_files(&root.join("contoso.example/qa2/.Junk Email"));
    assert_eq!(junk2.len(), 1);
    let text = std::fs::read_to_string(&junk2[0]).expect("read");
    assert_eq!(
        text.matches("X-MS-Exchange-Organization-SCL:").count(),
        1,
        "{text}"
    );
    assert!(text.contains("X-MS-Exchange-Organization-SCL: 5\r\n"));
    assert!(text.contains("SFV:SPM;") && text.contains("CAT:SPM;"));
    assert!(text.contains("dest:J;RF:JunkEmail;"));
    assert!(
        !text.contains("version=TLS"),
        "plain-text session has no TLS in Received"
    );
    let junk3 = maildir_files(&root.join("contoso.example/qa3/.Junk Email"));
    assert_eq!(junk3.len(), 1);
    let text = std::fs::read_to_string(&junk3[0]).expect("read");
    assert!(text.contains("spf=none (sender IP is 127.0.0.3) smtp.mailfrom=nospf.example"));

    // The 200-recipient message is one file for qa1 (recipients are mailboxes, not copies).
    let inbox1 = maildir_files(&root.join("contoso.example/qa1"));
    assert_eq!(inbox1.len(), 1);

    // Trace: one record per transaction.
    let recs = sim.h().trace(None).expect("trace");
    let reasons: Vec<String> = recs
        .iter()
        .map(|r| {
            serde_json::to_value(r.reason)
                .expect("json")
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for want in ["banned_ip", "ip_reputation", "message_too_large", "queued"] {
        assert!(
            reasons.iter().any(|r| r == want),
            "no {want} in {reasons:?}"
        );
    }
    sim.shutdown();
}

/// curl on the admin API: validation errors name the field and the rule; CRUD and bucket reset.
#[test]
fn admin_api_with_curl() {
    let sim = Sim::start(TenantConfig::default());
    let (code, body) = curl(
        &sim,
        "POST",
        "/connectors",
        Some(r#"{"name":"Wide","sender_ips":["10.0.0.0/16"],"require_tls":true}"#),
    );
    assert_eq!(code, 400);
    let v = json(&body);
    assert_eq!(v["field"], "sender_ips[0]");
    assert!(
        v["error"].as_str().expect("text").contains("/24 to /32"),
        "{body}"
    );

    let (code, body) = curl(
        &sim,
        "POST",
        "/connectors",
        Some(r#"{"name":"NoTls","sender_ips":["127.0.0.2"]}"#),
    );
    assert_eq!(code, 400);
    assert_eq!(json(&body)["field"], "require_tls");

    let (code, body) = curl(
        &sim,
        "POST",
        "/connectors",
        Some(r#"{"name":"x","sender_ips":["127.0.0.2"],"require_tls":true,"colour":"red"}"#),
    );
    assert_eq!(code, 400);
    assert!(body.contains("colour"), "{body}");

    // A delay past the 30-day bound is refused, and the list still works afterwards.
    let (code, body) = curl(
        &sim,
        "POST",
        "/connectors",
        Some(
            r#"{"name":"Late","sender_ips":["127.0.0.2"],"require_tls":true,"activation_delay":"300000years"}"#,
        ),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("at most 30 days"), "{body}");
    let (code, body) = curl(&sim, "GET", "/connectors", None);
    assert_eq!((code, json(&body)), (200, serde_json::json!([])));

    let (code, body) = curl(&sim, "POST", "/connectors", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    assert!(json(&body)["error"].as_str().is_some());

    let (code, _) = curl(&sim, "POST", "/connectors", Some(&connector_json(false)));
    assert_eq!(code, 201);
    let (code, body) = curl(&sim, "POST", "/connectors", Some(&connector_json(false)));
    assert_eq!(code, 409, "{body}");
    let (code, body) = curl(&sim, "GET", "/connectors/trusted%20mail%20connector", None);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["name"], "Trusted Mail Connector");
    let (code, _) = curl(&sim, "GET", "/connectors/absent", None);
    assert_eq!(code, 404);
    let (code, body) = curl(&sim, "PUT", "/connectors/absent", Some("{}"));
    assert_eq!(code, 404, "{body}");
    let (code, body) = curl(
        &sim,
        "DELETE",
        "/connectors/Trusted%20Mail%20Connector",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (_, body) = curl(&sim, "GET", "/connectors", None);
    assert_eq!(
        json(&body),
        serde_json::json!([]),
        "a pending connector is withdrawn at once"
    );

    // Buckets: throttle 127.0.0.5, see it, reset it.
    for _ in 0..5 {
        assert!(swaks(&sim, "127.0.0.5", Tls::Plain, QA1, &[]).queued());
    }
    swaks(&sim, "127.0.0.5", Tls::Plain, QA1, &[]).expect("451 4.7.500 ");
    let (_, body) = curl(&sim, "GET", "/buckets", None);
    let b = json(&body);
    assert_eq!(b[0]["ip"], "127.0.0.5");
    assert_eq!(b[0]["tokens"], 0);
    assert!(b[0]["resets_at"].as_str().is_some());
    let (code, body) = curl(&sim, "POST", "/buckets/reset", None);
    assert_eq!(code, 200);
    assert_eq!(json(&body)["reset"], 1);
    assert!(swaks(&sim, "127.0.0.5", Tls::Plain, QA1, &[]).queued());

    // Trace with ?since=: a time in the future gives nothing, a bad time a 400.
    sim.wait_delivered();
    let (code, body) = curl(&sim, "GET", "/trace?since=2999-01-01T00:00:00Z", None);
    assert_eq!(code, 200);
    assert_eq!(json(&body), serde_json::json!([]));
    let (code, body) = curl(&sim, "GET", "/trace?since=yesterday", None);
    assert_eq!(code, 400);
    assert_eq!(json(&body)["field"], "since");
    let (_, body) = curl(&sim, "GET", "/trace?since=2000-01-01T00:00:00Z", None);
    assert_eq!(json(&body).as_array().map(Vec::len), Some(7));
    let (code, _) = curl(&sim, "GET", "/nope", None);
    assert_eq!(code, 404);
    sim.shutdown();
}
