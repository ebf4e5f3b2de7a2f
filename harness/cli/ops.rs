//! `verify`, `confirm`, `explain` and `connector`: the ops and support commands.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mailharness::connector::{self, ConnectorRequest};
use mailharness::ops::{self, ConfirmOptions, VerifyOptions};
use mailharness::send::MessageText;
use mailharness::vocab::ConnectorAction;
use serde::Serialize;

use super::common::{read_input, runtime, JsonOpt, OutOpt, TargetOpt};
use super::error::{CliError, EXIT_FAIL, EXIT_OK};
use super::out;

/// Arguments of `mailharness verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: TargetOpt,
    /// Nameserver for the MX lookup, `ip:port` (default: the target's [smtp] dns, else the system's).
    #[arg(long, value_name = "IP:PORT")]
    pub dns: Option<String>,
    #[command(flatten)]
    pub json: JsonOpt,
    /// A previous `verify --json` output: show what changed.
    #[arg(long, value_name = "VERIFY.JSON")]
    pub previous: Option<PathBuf>,
    /// Do not read the mailboxes over IMAP.
    #[arg(long)]
    pub no_observe: bool,
}

/// Parses `--dns`.
fn dns(v: Option<&str>) -> Result<Option<SocketAddr>, CliError> {
    v.map(mailharness::dns::parse_nameserver)
        .transpose()
        .map_err(|e| CliError::Flag {
            flag: "--dns",
            message: e.to_string(),
        })
}

/// `mailharness verify`: every sending IP checked end to end.
pub fn verify(a: VerifyArgs) -> Result<ExitCode, CliError> {
    let tgt = a.target.load()?;
    let opts = VerifyOptions {
        dns: dns(a.dns.as_deref())?,
        no_observe: a.no_observe,
        previous: a
            .previous
            .as_deref()
            .map(ops::verify::read_previous)
            .transpose()?,
    };
    let report = runtime()?.block_on(ops::verify(&tgt, &opts))?;
    out::emit(a.json.json, &report, || report.render_text())?;
    Ok(ExitCode::from(if report.passed {
        EXIT_OK
    } else {
        EXIT_FAIL
    }))
}

/// Arguments of `mailharness confirm`.
#[derive(Debug, Args)]
pub struct ConfirmArgs {
    /// The customer's address.
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// The sending IP (default: the target's first sender role).
    #[arg(long, value_name = "IP")]
    pub from_ip: Option<Ipv4Addr>,
    #[command(flatten)]
    pub target: TargetOpt,
    /// Nameserver for the MX lookup, `ip:port`.
    #[arg(long, value_name = "IP:PORT")]
    pub dns: Option<String>,
    /// Where the shareable report goes (confirm-<reference>.md and .json).
    #[command(flatten)]
    pub out: OutOpt,
    #[command(flatten)]
    pub json: JsonOpt,
    /// The subject the customer sees (default "Mail delivery test"); the reference id is added.
    #[arg(long)]
    pub subject: Option<String>,
    /// A UTF-8 text file ("-" for stdin) with the body the customer reads (default: a short
    /// note that this is a delivery test and needs no action); the reference id is added.
    #[arg(long, value_name = "FILE")]
    pub text_file: Option<PathBuf>,
}

/// `mailharness confirm`: one test message for a customer, a verdict and a shareable report.
pub fn confirm(a: ConfirmArgs) -> Result<ExitCode, CliError> {
    let text = confirm_text(a.subject, a.text_file.as_deref())?;
    let tgt = a.target.load()?;
    let opts = ConfirmOptions {
        to: a.to,
        from_ip: a.from_ip,
        report_dir: Some(a.out.out.clone()),
        dns: dns(a.dns.as_deref())?,
        text,
    };
    let r = runtime()?.block_on(ops::confirm(&tgt, &opts))?;
    if a.json.json {
        out::json(&r)?;
    } else {
        out::print(&r.render_markdown())?;
        out::line(&format!(
            "\nShareable report: {}/confirm-{}.md (and .json)",
            a.out.out.display(),
            r.reference
        ))?;
    }
    Ok(ExitCode::from(if r.ok { EXIT_OK } else { EXIT_FAIL }))
}

/// The customer-facing words of `confirm`: `--subject` and the body from `--text-file`, each
/// falling back to the default wording; None when neither is given.
fn confirm_text(
    subject: Option<String>,
    text_file: Option<&Path>,
) -> Result<Option<MessageText>, CliError> {
    if subject.is_none() && text_file.is_none() {
        return Ok(None);
    }
    let mut text = ops::default_text();
    if let Some(s) = subject {
        if s.trim().is_empty() {
            return Err(CliError::Flag {
                flag: "--subject",
                message: "is empty; give the subject the customer should see".into(),
            });
        }
        text.subject = s;
    }
    if let Some(p) = text_file {
        let bad = |message: String| CliError::BadInput {
            flag: "--text-file",
            path: p.to_path_buf(),
            message,
        };
        let body = String::from_utf8(read_input("--text-file", p)?).map_err(|e| {
            bad(format!(
                "not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ))
        })?;
        if body.trim().is_empty() {
            return Err(bad(
                "is empty; write the text the customer should read".into()
            ));
        }
        text.body = body;
    }
    Ok(Some(text))
}

/// Arguments of `mailharness explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The reply line, e.g. "451 4.7.500 Server busy ... (AS761)" (omit to read --file or stdin).
    pub reply: Vec<String>,
    /// A bounce message or RFC 3464 DSN file ("-" for stdin).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The host that sent the reply, when the text does not name it (for example the
    /// recipient's MX: a tenant's `*.mail.protection.outlook.com` or consumer Outlook.com).
    #[arg(long)]
    pub host: Option<String>,
    #[command(flatten)]
    pub json: JsonOpt,
}

/// `mailharness explain`: a reply argument, a file, or stdin.
pub fn explain(a: ExplainArgs) -> Result<ExitCode, CliError> {
    let (input, name): (Vec<u8>, String) = if !a.reply.is_empty() {
        (a.reply.join(" ").into_bytes(), "the argument".into())
    } else {
        let path = a.file.as_deref().unwrap_or(Path::new("-"));
        let name = if path == Path::new("-") {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        (read_input("--file", path)?, name)
    };
    let r = mailharness::reply::explain_input_from(&input, &name, a.host.as_deref())?;
    out::emit(a.json.json, &r, || r.render_text())?;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `mailharness connector`.
#[derive(Debug, Args)]
pub struct ConnectorArgs {
    #[command(flatten)]
    pub target: TargetOpt,
    /// The IPs the connector lists now, comma-separated.
    #[arg(long, value_name = "IPS")]
    pub current: Option<String>,
    /// The connector name.
    #[arg(long, default_value = connector::DEFAULT_CONNECTOR_NAME)]
    pub name: String,
    /// Also reject mail for the tenant from any other IP (-RestrictDomainsToIPAddresses $true).
    #[arg(long)]
    pub restrict_to_ips: bool,
    /// A TLS certificate name to restrict to (refused: IP and certificate restrictions must not mix).
    #[arg(long)]
    pub certificate_name: Option<String>,
    #[command(flatten)]
    pub json: JsonOpt,
}

/// Version of `connector --json`'s document.
const CONNECTOR_SCHEMA: u32 = 1;

/// `connector --json`: the connector's settings, the admin's steps and commands, and the change.
#[derive(Debug, Serialize)]
struct ConnectorDoc {
    schema: u32,
    target: String,
    name: String,
    sender_ips: Vec<RoleIp>,
    require_tls: bool,
    restrict_domains_to_ips: bool,
    admin_center_steps: Vec<String>,
    powershell_create: String,
    powershell_update: String,
    powershell_check: String,
    change: Option<IpChange>,
    text: String,
}

/// A sender role and its IP.
#[derive(Debug, Serialize)]
struct RoleIp {
    role: String,
    ip: String,
}

/// With `--current`: what to change after an IP change.
#[derive(Debug, Serialize)]
struct IpChange {
    current: Vec<String>,
    diff: connector::IpDiff,
    powershell: Option<String>,
}

/// `mailharness connector`: instructions for the tenant admin, checked against the connector rules.
pub fn connector(a: ConnectorArgs) -> Result<ExitCode, CliError> {
    let tgt = a.target.load()?;
    let roles: Vec<(String, String)> = ops::senders(&tgt)
        .into_iter()
        .map(|(r, ip)| (r, ip.to_string()))
        .collect();
    let req = ConnectorRequest {
        name: a.name.clone(),
        sender_ips: roles
            .iter()
            .map(|(r, ip)| {
                (
                    format!("{}: senders.{r}", tgt.src.path.display()),
                    ip.clone(),
                )
            })
            .collect(),
        require_tls: true,
        restrict_domains_to_ips: a.restrict_to_ips,
        certificate_name: a.certificate_name,
    };
    let mut errors = Vec::new();
    let params = connector::check_rules(&req)
        .map_err(|e| errors.extend(e))
        .ok();
    let current = match a
        .current
        .as_deref()
        .map(|c| connector::parse_ip_list("--current", c))
    {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            errors.extend(e);
            None
        }
        None => None,
    };
    let Some(p) = params.filter(|_| errors.is_empty()) else {
        return Err(CliError::Connector(errors));
    };
    let name = tgt.file.name.get_ref();
    let text = connector::instructions_text(name, &p, &roles, current.as_deref());
    if !a.json.json {
        out::print(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let change = current.map(|cur| {
        let wanted: Vec<_> = p.sender_ips.iter().filter_map(|s| s.parse().ok()).collect();
        let diff = connector::ip_diff(&cur, &wanted);
        IpChange {
            current: cur.iter().map(|c| c.to_string()).collect(),
            powershell: (!diff.is_empty())
                .then(|| connector::powershell_incremental(&p.name, &diff)),
            diff,
        }
    });
    out::json(&ConnectorDoc {
        schema: CONNECTOR_SCHEMA,
        target: name.clone(),
        name: p.name.clone(),
        sender_ips: roles
            .into_iter()
            .map(|(role, ip)| RoleIp { role, ip })
            .collect(),
        require_tls: p.require_tls,
        restrict_domains_to_ips: p.restrict_domains_to_ips,
        admin_center_steps: connector::admin_center_steps_for(ConnectorAction::Create, &p),
        powershell_create: connector::powershell_for(ConnectorAction::Create, &p),
        powershell_update: connector::powershell_for(ConnectorAction::Update, &p),
        powershell_check: connector::powershell_check(&p.name),
        change,
        text,
    })?;
    Ok(ExitCode::SUCCESS)
}
