//! Shared helpers for the simulator's integration tests: start the simulator in-process on
//! ephemeral loopback ports, and drive it with real tools (swaks, curl, smtp-source) under timeouts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mailharness::sim::{self, SimHandle, TenantConfig};

/// Hard limit for one external tool run.
pub const TOOL_TIMEOUT_SECS: &str = "120";

/// A running simulator, its runtime and its state directory.
pub struct Sim {
    pub rt: tokio::runtime::Runtime,
    pub handle: Option<SimHandle>,
    pub dir: tempfile::TempDir,
}

impl Sim {
    pub fn start(cfg: TenantConfig) -> Sim {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let handle = rt
            .block_on(sim::start(cfg, dir.path()))
            .expect("simulator starts");
        Sim {
            rt,
            handle: Some(handle),
            dir,
        }
    }

    pub fn h(&self) -> &SimHandle {
        self.handle.as_ref().expect("running")
    }

    pub fn smtp_port(&self) -> u16 {
        self.h().smtp_addr().port()
    }

    pub fn smtps_port(&self) -> u16 {
        self.h().smtps_addr().expect("TLS on").port()
    }

    pub fn admin(&self, path: &str) -> String {
        format!("{}{}", self.h().admin_url(), path)
    }

    /// Waits until every accepted message is stored and traced.
    pub fn wait_delivered(&self) {
        let ok = self
            .rt
            .block_on(self.h().wait_delivered(Duration::from_secs(60)));
        assert!(ok, "deliveries did not finish: {:?}", self.h().stats());
    }

    pub fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.shutdown()).expect("clean shutdown");
        }
    }
}

/// A swaks run: its exit code and transcript.
pub struct Swaks {
    pub code: i32,
    pub transcript: String,
}

impl Swaks {
    /// Server reply lines (`<-`, `<~`, `<**`, `<~*` prefixes removed).
    pub fn replies(&self) -> Vec<String> {
        self.transcript
            .lines()
            .filter(|l| l.starts_with('<'))
            .map(|l| {
                l.trim_start_matches(['<', '-', '~', '*'])
                    .trim_start()
                    .to_string()
            })
            .collect()
    }

    /// The first reply starting with `prefix`, or a panic showing the transcript.
    pub fn expect(&self, prefix: &str) -> String {
        match self.replies().into_iter().find(|r| r.starts_with(prefix)) {
            Some(r) => r,
            None => panic!(
                "expected a reply starting with `{prefix}`; swaks exited {} with:\n{}",
                self.code, self.transcript
            ),
        }
    }

    /// Whether the message was queued (final 250 2.6.0).
    pub fn queued(&self) -> bool {
        self.replies().iter().any(|r| r.starts_with("250 2.6.0 "))
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.replies()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }
}

/// How swaks connects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tls {
    Plain,
    Starttls,
    Implicit,
}

/// Runs swaks from `source_ip` to the simulator.
pub fn swaks(sim: &Sim, source_ip: &str, tls: Tls, to: &str, extra: &[&str]) -> Swaks {
    let port = match tls {
        Tls::Implicit => sim.smtps_port(),
        _ => sim.smtp_port(),
    };
    let mut cmd = Command::new("timeout");
    cmd.args([
        TOOL_TIMEOUT_SECS,
        "swaks",
        "--server",
        &format!("127.0.0.1:{port}"),
        "--local-interface",
        source_ip,
        "--helo",
        "mta1.platform.example",
        "--from",
        "qa-sender@platform.example",
        "--to",
        to,
        "--timeout",
        "30",
    ]);
    match tls {
        Tls::Plain => {}
        Tls::Starttls => {
            cmd.arg("--tls");
        }
        Tls::Implicit => {
            cmd.arg("--tls-on-connect");
        }
    }
    cmd.args(extra);
    let out = cmd
        .output()
        .expect("swaks runs (is it installed? tests/testbed.sh install)");
    Swaks {
        code: out.status.code().unwrap_or(-1),
        transcript: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// A curl call to the admin API: (HTTP status, body).
pub fn curl(sim: &Sim, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data", b]);
    }
    cmd.arg(sim.admin(path));
    let out: Output = cmd.output().expect("curl runs");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status code"), body.to_string())
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Polls `GET /connectors/{name}` until its state is `state`; returns the time it took.
pub fn wait_connector_state(sim: &Sim, name: &str, state: &str, since: Instant) -> Duration {
    let path = format!("/connectors/{}", name.replace(' ', "%20"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = curl(sim, "GET", &path, None);
        if code == 200 && json(&body)["state"] == state {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "connector never became {state}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every message file under a Maildir tree (`new/` and `cur/` of every folder).
pub fn maildir_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.parent()
                    .and_then(|x| x.file_name())
                    .and_then(|n| n.to_str()),
                Some("new" | "cur")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A connector JSON body for the two platform stand-in IPs.
pub fn connector_json(require_tls: bool) -> String {
    format!(
        r#"{{"name":"Trusted Mail Connector","sender_ips":["127.0.0.2","127.0.0.3"],"sender_domains":["*"],"require_tls":{require_tls},"enabled":true}}"#
    )
}
