//! `mailharness confirm`: one test message from the platform to a customer, with a reference id,
//! the receiver's reply and a plain-language verdict, arrival where it can be seen, and a small
//! shareable report with the recipient masked and no secrets.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{mask_address, redact, reference_id, OpsError};
use crate::endpoint::{tenant_endpoint, Endpoint};
use crate::observe::{self, ImapTarget, ObserveOptions};
use crate::record::{AttemptRecord, DecidingReply, ObservationStatus};
use crate::reply;
use crate::scenario::LoadedTarget;
use crate::send::{self, MessageText, OneShot};
use crate::sim::{SimHandle, TraceRecord};
use crate::vocab::{OutcomeClass, TlsMode};

/// How long to wait for the simulator to store an accepted message.
const SIM_DELIVERY_WAIT: Duration = Duration::from_secs(10);

/// What to confirm.
#[derive(Debug, Clone)]
pub struct ConfirmOptions {
    /// The customer's address.
    pub to: String,
    /// The sending IP (default: the target's first sender role).
    pub from_ip: Option<Ipv4Addr>,
    /// Where to write `confirm-<ref>.md` and `.json` (none: no files).
    pub report_dir: Option<PathBuf>,
    /// The nameserver for MX lookups.
    pub dns: Option<std::net::SocketAddr>,
    /// The customer-facing subject and body (default: [`default_text`]); the reference id is
    /// added to both.
    pub text: Option<MessageText>,
}

/// The message a customer receives when no text is given: what it is, that nothing is needed
/// from them, and the reference to quote.
pub fn default_text() -> MessageText {
    MessageText {
        subject: "Mail delivery test".into(),
        body: "Hello,\n\n\
               This is a test message from your mail platform. It was sent to confirm that mail \
               from our sending servers reaches your Microsoft 365 mailbox through the inbound \
               connector your administrator set up.\n\n\
               You do not need to do anything with it, and you can delete it.\n"
            .into(),
    }
}

/// `text` with the reference id added to the subject and as the body's last line, so that the
/// customer can quote it and the message can be found by it.
fn with_reference(text: &MessageText, reference: &str) -> MessageText {
    let mut body = text.body.trim_end().to_string();
    body.push_str(&format!("\n\nReference: {reference}\n"));
    MessageText {
        subject: format!("{} [{reference}]", text.subject.trim()),
        body,
    }
}

/// Version of the confirmation JSON (`confirm --json`, `confirm-<reference>.json`).
pub const CONFIRM_SCHEMA: u32 = 1;

/// The result, ready to share: the recipient is masked and no secret is in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfirmReport {
    /// Version of this document ([`CONFIRM_SCHEMA`]).
    pub schema: u32,
    /// The reference id, in the message's subject and `X-Harness-Run` header.
    pub reference: String,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// The recipient, local part masked.
    pub to: String,
    /// The sending IP.
    pub from_ip: Ipv4Addr,
    /// The MX host.
    pub mx_host: String,
    /// The Message-ID.
    pub message_id: String,
    /// The outcome class.
    pub outcome: OutcomeClass,
    /// TLS version, when the session used TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The receiver's deciding reply (recipient masked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Why it failed without a reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The verdict in plain words.
    pub verdict: String,
    /// What to do next.
    pub next_step: String,
    /// Where it arrived: the folder, `not found`, or absent when it cannot be seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    /// The inbound connector that matched, when the receiver tells (the simulator's message trace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Whether the connector is working (accepted, not throttled).
    pub ok: bool,
}

fn tls_words(v: &str) -> String {
    format!("TLS {v}")
}

/// The verdict and next step for one attempt (recipient already masked in `reply_text`).
fn verdict(rec: &AttemptRecord, reply_text: Option<&str>) -> (String, String) {
    let ip = rec.source_ip;
    if rec.outcome == OutcomeClass::Accepted {
        let how = match &rec.tls {
            Some(t) => format!("over {}", tls_words(&t.version)),
            None => "without TLS".into(),
        };
        // Microsoft 365 also accepts mail from an IP no connector lists, until it throttles it,
        // and no header names the connector that matched (reference "Headers"): acceptance
        // alone does not prove the connector. The simulator's trace can, and confirm_with says so.
        return (
            format!("Accepted by Microsoft 365 {how} from {ip}"),
            "Nothing to do for this message; keep the reference id if you contact support. \
             Microsoft 365 does not say which connector matched, so one accepted message does not \
             by itself prove the connector: if mail from this IP was throttled before, it shows the \
             connector helps."
                .into(),
        );
    }
    let Some(d) = &rec.reply else {
        return (
            format!(
                "Not delivered ({}) from {ip}: {}",
                rec.outcome,
                rec.error.as_deref().unwrap_or("no reply")
            ),
            "Check that this host can reach the MX on port 25, then run confirm again.".into(),
        );
    };
    let ctx = reply::Context {
        session_tls: rec.tls.is_some(),
        host: None,
        recipient: rec.recipients.first().map(String::as_str),
        assume: Some(reply::Origin::Microsoft),
        at_mx: true,
    };
    let e = reply::explain(&reply::Status::from(d), &ctx);
    let mut codes = d.code.to_string();
    if let Some(en) = &d.enhanced {
        let _ = write!(codes, " {en}");
    }
    if let Some(t) = &rec.token {
        let _ = write!(codes, ", {t}");
    }
    let head = match rec.outcome {
        OutcomeClass::Throttled => format!(
            "Throttled ({codes}): the connector does not list this IP ({ip}) yet, or the change has not taken effect"
        ),
        _ => format!("{} ({codes}) from {ip}: {}", e.title, e.meaning),
    };
    let _ = reply_text;
    (head, e.support)
}

/// Sends one confirmation through `ep` and reads where it went: over IMAP when `imap` covers the
/// recipient, or in the simulator's message trace when `sim` is given.
pub async fn confirm_with(
    ep: &Endpoint,
    from_ip: Ipv4Addr,
    to: &str,
    imap: Option<(&ImapTarget, ObserveOptions)>,
    sim: Option<&SimHandle>,
    text: Option<&MessageText>,
) -> Result<ConfirmReport, OpsError> {
    send::check_source_ip(from_ip).map_err(OpsError::FromIp)?;
    let reference = reference_id("MH");
    let ctx = ep.context(&reference)?;
    let text = with_reference(text.unwrap_or(&default_text()), &reference);
    let shot = OneShot {
        source_ip: from_ip,
        sender: "platform".into(),
        tls_mode: TlsMode::StarttlsOpportunistic,
        recipients: vec![to.to_string()],
        phase: "connector-test".into(),
        burst: "confirm".into(),
        index: 0,
        body_size: 512,
        text: Some(text),
    };
    let sent_at = Utc::now();
    let rec = send::send_one(&ctx, &shot).await;
    let reply_text = rec.reply.as_ref().map(|d| redact(&reply_line(d), to));
    let (mut verdict, mut next_step) = verdict(&rec, reply_text.as_deref());
    let mut arrival = None;
    let mut connector = None;
    if rec.outcome == OutcomeClass::Accepted {
        if let Some(sim) = sim {
            if let Some(t) = trace_entry(sim, &rec, sent_at).await? {
                connector = t.connector.clone();
                next_step = connector_verdict(connector.as_deref(), rec.source_ip, &mut verdict);
                arrival = Some(match t.deliveries.first() {
                    Some(d) => d.folder.clone(),
                    None => "not found".into(),
                });
            }
        } else if let Some((imap, opts)) = imap {
            arrival = imap_arrival(imap, &opts, &reference, &rec).await?;
        }
        match arrival.as_deref() {
            Some("not found") => {
                verdict.push_str(", but the message was not found in the mailbox by the deadline")
            }
            Some(f) => {
                let _ = write!(verdict, "; it arrived in {f}");
            }
            None => {}
        }
    }
    Ok(ConfirmReport {
        schema: CONFIRM_SCHEMA,
        reference,
        sent_at,
        to: mask_address(to),
        from_ip,
        mx_host: ep.mx_host.clone(),
        message_id: rec.message_id.clone(),
        outcome: rec.outcome,
        tls_version: rec.tls.as_ref().map(|t| t.version.clone()),
        reply: reply_text,
        error: rec.error.as_deref().map(|e| redact(e, to)),
        verdict: redact(&verdict, to),
        next_step,
        ok: rec.outcome == OutcomeClass::Accepted && arrival.as_deref() != Some("not found"),
        arrival,
        connector,
    })
}

/// The deciding reply as one line: code, enhanced code, text.
fn reply_line(d: &DecidingReply) -> String {
    let mut s = d.code.to_string();
    if let Some(e) = &d.enhanced {
        let _ = write!(s, " {e}");
    }
    let _ = write!(s, " {}", d.text);
    s
}

/// The simulator's trace entry of an accepted message, once the simulator has stored it.
async fn trace_entry(
    sim: &SimHandle,
    rec: &AttemptRecord,
    sent_at: DateTime<Utc>,
) -> Result<Option<TraceRecord>, OpsError> {
    sim.wait_delivered(SIM_DELIVERY_WAIT).await;
    let trace = sim
        .trace(Some(sent_at - chrono::Duration::seconds(1)))
        .map_err(OpsError::Trace)?;
    let mid = rec.message_id.trim_matches(['<', '>']);
    Ok(trace.into_iter().find(|t| {
        t.message_id
            .as_deref()
            .is_some_and(|m| m.trim_matches(['<', '>']) == mid)
    }))
}

/// Adds to the verdict what the matching connector (or none) means; returns the next step.
fn connector_verdict(connector: Option<&str>, ip: Ipv4Addr, verdict: &mut String) -> String {
    match connector {
        Some(name) => {
            let _ = write!(
                verdict,
                "; connector \"{name}\" matched: your connector is working"
            );
            "Nothing to do. Keep the reference id if you contact support.".into()
        }
        None => {
            let _ = write!(
                verdict,
                ", but no inbound connector matched this IP: it is not throttled yet, and may be once its volume grows"
            );
            format!(
                "Ask the customer's administrator to add {ip} to the inbound connector \
                 (`mailharness connector` prints the steps), then run confirm again."
            )
        }
    }
}

/// The folder the message arrived in over IMAP, `not found`, or `None` when the observer could
/// not tell.
async fn imap_arrival(
    imap: &ImapTarget,
    opts: &ObserveOptions,
    reference: &str,
    rec: &AttemptRecord,
) -> Result<Option<String>, OpsError> {
    let obs = observe::observe(imap, reference, std::slice::from_ref(rec), opts)
        .await
        .map_err(OpsError::Observe)?;
    Ok(obs
        .records
        .iter()
        .find(|o| o.status != ObservationStatus::Anomaly)
        .map(|o| match o.status {
            ObservationStatus::Found => o.folder_name.clone().unwrap_or_else(|| "found".into()),
            _ => "not found".into(),
        }))
}

/// Confirms against a target: the simulator (started in-process for the duration) or a tenant.
pub async fn confirm(t: &LoadedTarget, opts: &ConfirmOptions) -> Result<ConfirmReport, OpsError> {
    super::check_guard(t, &opts.to)?;
    // Before sending: a report that cannot be written after the customer got the message would
    // lose the verdict, and running again would mail them twice.
    if let Some(dir) = &opts.report_dir {
        std::fs::create_dir_all(dir).map_err(|source| OpsError::ReportDir {
            path: dir.clone(),
            source,
        })?;
    }
    let from_ip = match opts.from_ip {
        Some(ip) => ip,
        None => super::senders(t)
            .first()
            .map(|(_, ip)| *ip)
            .ok_or_else(|| OpsError::NoSender {
                path: t.src.path.clone(),
            })?,
    };
    let report = if super::is_simulator(t) {
        let dir = super::verify::tempdir()?;
        let sim = crate::sim::start(t.file.tenant(), &dir)
            .await
            .map_err(OpsError::Simulator)?;
        let domain = opts.to.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let ep = Endpoint::simulator(&sim, domain)?;
        let r = confirm_with(&ep, from_ip, &opts.to, None, Some(&sim), opts.text.as_ref()).await;
        let _ = sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        r?
    } else {
        let ep = tenant_endpoint(t, opts.dns).await?;
        let covered = t
            .file
            .mailboxes
            .iter()
            .any(|m| m.get_ref().address.get_ref().eq_ignore_ascii_case(&opts.to));
        let imap = if covered && t.file.imap.is_some() {
            Some(
                ImapTarget::from_target(&t.file).map_err(|source| OpsError::Imap {
                    path: t.src.path.clone(),
                    source,
                })?,
            )
        } else {
            None
        };
        let oopts = ObserveOptions::from_target(&t.file);
        confirm_with(
            &ep,
            from_ip,
            &opts.to,
            imap.as_ref().map(|i| (i, oopts)),
            None,
            opts.text.as_ref(),
        )
        .await?
    };
    if let Some(dir) = &opts.report_dir {
        report.write(dir)?;
    }
    Ok(report)
}

impl ConfirmReport {
    /// The report for a person, and for pasting into a ticket (Markdown).
    pub fn render_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# Connector test {}\n", self.reference);
        let _ = writeln!(o, "**{}.**\n", self.verdict);
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| Reference id | `{}` |", self.reference);
        let _ = writeln!(o, "| Sent | {} |", self.sent_at.to_rfc3339());
        let _ = writeln!(o, "| To | {} |", self.to);
        let _ = writeln!(o, "| From IP | {} |", self.from_ip);
        let _ = writeln!(o, "| MX | {} |", self.mx_host);
        let _ = writeln!(o, "| Message-ID | `{}` |", self.message_id);
        let _ = writeln!(
            o,
            "| TLS | {} |",
            self.tls_version
                .as_deref()
                .map(tls_words)
                .unwrap_or_else(|| "none".into())
        );
        if let Some(r) = &self.reply {
            let _ = writeln!(o, "| Receiver's reply | `{}` |", r.replace('|', "\\|"));
        }
        if let Some(e) = &self.error {
            let _ = writeln!(o, "| Error | {} |", e.replace('|', "\\|"));
        }
        if let Some(a) = &self.arrival {
            let _ = writeln!(o, "| Arrived in | {a} |");
        }
        if let Some(c) = &self.connector {
            let _ = writeln!(o, "| Connector matched | {c} |");
        }
        let _ = writeln!(o, "\nNext step: {}", self.next_step);
        o
    }

    /// Writes `confirm-<reference>.md` and `.json` into `dir`; returns the Markdown path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, OpsError> {
        std::fs::create_dir_all(dir).map_err(|source| OpsError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
        let md = dir.join(format!("confirm-{}.md", self.reference));
        write_file(&md, self.render_markdown())?;
        let js = dir.join(format!("confirm-{}.json", self.reference));
        write_file(
            &js,
            serde_json::to_string_pretty(self).map_err(OpsError::Encode)?,
        )?;
        Ok(md)
    }
}

/// Writes `text` to `path`.
fn write_file(path: &Path, text: String) -> Result<(), OpsError> {
    std::fs::write(path, text).map_err(|source| OpsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Stage;

    #[test]
    fn the_reply_line_keeps_code_enhanced_code_and_text() {
        let d = DecidingReply {
            stage: Stage::Data,
            code: 451,
            enhanced: Some("4.7.500".into()),
            text: "Server busy".into(),
        };
        assert_eq!(reply_line(&d), "451 4.7.500 Server busy");
        let d = DecidingReply {
            enhanced: None,
            ..d
        };
        assert_eq!(reply_line(&d), "451 Server busy");
    }

    #[test]
    fn a_matched_connector_is_good_news_and_none_asks_for_the_ip() {
        let ip = Ipv4Addr::new(127, 0, 0, 2);
        let mut v = String::from("Accepted");
        let next = connector_verdict(Some("Trusted Mail Connector"), ip, &mut v);
        assert_eq!(
            v,
            "Accepted; connector \"Trusted Mail Connector\" matched: your connector is working"
        );
        assert_eq!(
            next,
            "Nothing to do. Keep the reference id if you contact support."
        );
        let mut v = String::from("Accepted");
        let next = connector_verdict(None, ip, &mut v);
        assert!(v.starts_with("Accepted, but no inbound connector matched this IP"));
        assert_eq!(
            next,
            "Ask the customer's administrator to add 127.0.0.2 to the inbound connector (`mailharness connector` prints the steps), then run confirm again."
        );
    }
}
