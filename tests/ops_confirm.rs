//! `confirm` against the embedded simulator, driven through the library: before the connector
//! the customer sees "Throttled (451 4.7.500, AS761) …", after it (once active) "Accepted by
//! Microsoft 365 over TLS … your connector is working", with arrival and the matched connector
//! from the simulator's trace; the shareable report masks the recipient. Then the CLI on the
//! built-in simulator target.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use mailharness::endpoint::Endpoint;
use mailharness::ops::confirm_with;
use mailharness::send::MessageText;
use mailharness::sim::{self, ConnectorSpec, SimHandle, TenantConfig};
use mailharness::vocab::{ConnectorCidr, HumanDuration, OutcomeClass};

const FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const TO: &str = "qa1@contoso.example";

/// The stored copy of the message with this Message-ID, found through the simulator's trace.
fn delivered_message(sim: &SimHandle, message_id: &str) -> mail_parser::Message<'static> {
    let id = message_id.trim_matches(['<', '>']);
    let rec = sim
        .trace(None)
        .unwrap()
        .into_iter()
        .find(|t| t.message_id.as_deref().map(|m| m.trim_matches(['<', '>'])) == Some(id))
        .expect("traced");
    let raw = std::fs::read(&rec.deliveries[0].path).unwrap();
    mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a message")
        .into_owned()
}

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

        let before = confirm_with(&ep, FROM, TO, None, Some(&sim), None).await.unwrap();
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
            let r = confirm_with(&ep, FROM, TO, None, Some(&sim), None).await.unwrap();
            if r.outcome == OutcomeClass::Accepted {
                after = Some(r);
                break;
            }
        }
        let after = after.expect("the connector never took effect");
        assert!(after.ok);
        assert!(
            after.verdict.starts_with(&format!(
                "Accepted by Microsoft 365 over TLS {} from 127.0.0.2; connector \"Trusted Mail Connector\" matched: your connector is working",
                after.tls_version.as_deref().unwrap()
            )),
            "{}",
            after.verdict
        );
        assert_eq!(after.connector.as_deref(), Some("Trusted Mail Connector"));
        assert!(after.arrival.is_some(), "{after:?}");

        // What the customer reads: plain words and the reference, not test-harness noise.
        let delivered = delivered_message(&sim, &after.message_id);
        assert_eq!(
            delivered.subject(),
            Some(format!("Mail delivery test [{}]", after.reference).as_str())
        );
        let body = delivered.body_text(0).unwrap().into_owned();
        assert!(body.starts_with("Hello,\r\n\r\nThis is a test message from your mail platform."), "{body}");
        assert!(body.contains("You do not need to do anything"), "{body}");
        assert!(body.ends_with(&format!("Reference: {}\r\n", after.reference)), "{body}");

        // Support's own words, with the reference still added.
        let own = MessageText {
            subject: "Acme: checking your new connector".into(),
            body: "Hi Zoë,\nwe are checking the connector you created today.\n".into(),
        };
        let mine = confirm_with(&ep, FROM, TO, None, Some(&sim), Some(&own)).await.unwrap();
        assert_eq!(mine.outcome, OutcomeClass::Accepted, "{mine:?}");
        let delivered = delivered_message(&sim, &mine.message_id);
        assert_eq!(
            delivered.subject(),
            Some(format!("Acme: checking your new connector [{}]", mine.reference).as_str())
        );
        assert_eq!(
            delivered.body_text(0).unwrap(),
            format!(
                "Hi Zoë,\r\nwe are checking the connector you created today.\r\n\r\nReference: {}\r\n",
                mine.reference
            )
        );

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

/// `mailharness confirm ARGS...`.
fn confirm_cli<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .arg("confirm")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_confirms_against_the_built_in_simulator() {
    let out_dir = tempfile::tempdir().unwrap();
    let report_dir = out_dir.path().to_str().unwrap();
    let ok = [
        "--to",
        "qa2@contoso.example",
        "--from-ip",
        "127.0.0.2",
        "--json",
    ];
    let out = confirm_cli(ok.iter().copied().chain(["--report-dir", report_dir]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The default simulator lets a fresh IP's first messages through without a connector, and
    // its trace says no connector matched: the next step is to add the IP, not "nothing to do".
    assert_eq!(v["outcome"], "accepted");
    let verdict = v["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("no inbound connector matched"),
        "{verdict}"
    );
    assert!(
        v["next_step"]
            .as_str()
            .unwrap()
            .contains("add 127.0.0.2 to the inbound connector"),
        "{v}"
    );
    assert_eq!(v["to"], "q***@contoso.example");
    let files: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert_eq!(files.len(), 2);

    // Support's own words from the command line; a text file that cannot be used is named.
    let words = out_dir.path().join("words.txt");
    std::fs::write(&words, "Hello from Acme support.\n").unwrap();
    let words_arg = words.to_str().unwrap();
    let out = confirm_cli(ok.iter().copied().chain([
        "--subject",
        "Acme connector check",
        "--text-file",
        words_arg,
        "--report-dir",
        report_dir,
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&words, " \n").unwrap();
    let missing = out_dir.path().join("missing.txt");
    for (file, says) in [
        (
            words_arg,
            "is empty; write the text the customer should read",
        ),
        (missing.to_str().unwrap(), "cannot read it"),
    ] {
        let out = confirm_cli(["--to", "qa2@contoso.example", "--text-file", file]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("--text-file {file}: {says}")),
            "{err}"
        );
    }

    // A report directory that cannot be created is refused before the customer is mailed.
    let not_a_dir = out_dir.path().join("a-file");
    std::fs::write(&not_a_dir, "x").unwrap();
    let out = confirm_cli([
        "--to",
        "qa2@contoso.example",
        "--report-dir",
        not_a_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--out") && err.contains("give a directory path"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing was sent: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The guard rails hold: no test mail to a domain the target does not allow.
    let out = confirm_cli(["--to", "someone@elsewhere.example"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_domains"));
}
