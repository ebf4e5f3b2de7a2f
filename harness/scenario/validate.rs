//! Rules that a single scenario or target file must satisfy beyond its types.

use std::collections::HashSet;

use super::check::parse_check;
use super::diag::Diagnostic;
use super::target::{ImapAuth, ImapTls};
use super::{LoadedScenario, LoadedTarget};
use crate::vocab::{ApplyMethod, TargetKind};

/// The word that stands for every sender role or every TLS mode.
pub const ALL: &str = "all";

/// Checks one scenario file.
pub fn scenario(s: &LoadedScenario) -> Vec<Diagnostic> {
    let src = &s.src;
    let mut errs = Vec::new();
    let name = s.file.name.get_ref();
    if !is_simple_name(name) {
        errs.push(src.error(
            s.file.name.span(),
            format!("scenario name `{name}` must be letters, digits, `-`, `_` or `.` (it is used in run ids and file names)"),
        ));
    }
    if s.file.phases.get_ref().is_empty() {
        errs.push(src.error(s.file.phases.span(), "a scenario needs at least one phase"));
    }
    let mut names = HashSet::new();
    for phase in s.file.phases.get_ref() {
        let p = phase.get_ref();
        let pname = p.name.get_ref();
        if !is_simple_name(pname) {
            errs.push(src.error(
                p.name.span(),
                format!("phase name `{pname}` must be letters, digits, `-`, `_` or `.`"),
            ));
        }
        if !names.insert(pname.clone()) {
            errs.push(src.error(
                p.name.span(),
                format!("phase name `{pname}` is used twice; phase names must be unique"),
            ));
        }
        if p.bursts.get_ref().is_empty() {
            errs.push(src.error(
                p.bursts.span(),
                format!("phase `{pname}` has no bursts; add at least one [[phases.bursts]]"),
            ));
        }
        for b in p.bursts.get_ref() {
            let burst = b.get_ref();
            if *burst.count.get_ref() == 0 {
                errs.push(src.error(burst.count.span(), "`count` must be at least 1"));
            }
            match (&burst.rate, &burst.interval) {
                (None, None) => errs.push(src.error(
                    b.span(),
                    "a burst needs a pace: `rate = \"30/min\"` or `interval = \"2s\"`",
                )),
                (Some(r), Some(_)) => {
                    errs.push(src.error(r.span(), "give either `rate` or `interval`, not both"))
                }
                (None, Some(i)) if i.get_ref().0.is_zero() => {
                    errs.push(src.error(i.span(), "`interval` must be greater than zero"))
                }
                _ => {}
            }
            for (field, v) in [
                ("concurrency", &burst.concurrency),
                ("per_connection", &burst.per_connection),
                ("recipients", &burst.recipients),
            ] {
                if let Some(v) = v {
                    if *v.get_ref() == 0 {
                        errs.push(src.error(v.span(), format!("`{field}` must be at least 1")));
                    }
                }
            }
            if let Some(r) = &burst.recipients {
                if *r.get_ref() > 1000 {
                    errs.push(src.error(
                        r.span(),
                        "`recipients` is at most 1000 per message (Microsoft 365 refuses more than 200 per domain with 452 4.5.3)",
                    ));
                }
            }
            if let Some(retry) = &burst.retry {
                if retry.get_ref().attempts < 2 {
                    errs.push(src.error(
                        retry.span(),
                        "`retry.attempts` counts the first attempt too, so it must be 2 or more",
                    ));
                }
            }
            for to in &burst.to {
                if let Err(e) = check_address(to.get_ref()) {
                    errs.push(src.error(to.span(), e.to_string()));
                }
            }
        }
        if let Some(change) = &p.change {
            let c = change.get_ref();
            let apply = c.apply.as_ref().map(|a| *a.get_ref());
            if apply == Some(ApplyMethod::Hook) && c.command.is_none() {
                errs.push(src.error(
                    change.span(),
                    "`apply = \"hook\"` needs `command = [\"program\", \"argument\", …]`",
                ));
            }
            if let Some(cmd) = &c.command {
                if apply != Some(ApplyMethod::Hook) {
                    errs.push(
                        src.error(cmd.span(), "`command` is only used with `apply = \"hook\"`"),
                    );
                } else if cmd.get_ref().is_empty() {
                    errs.push(src.error(cmd.span(), "`command` needs at least the program to run"));
                }
            }
            if apply == Some(ApplyMethod::SignalFile) && c.signal_file.is_none() {
                errs.push(src.error(
                    change.span(),
                    "`apply = \"signal-file\"` needs `signal_file = \"path\"`",
                ));
            }
            if let Some(sf) = &c.signal_file {
                if apply != Some(ApplyMethod::SignalFile) {
                    errs.push(src.error(
                        sf.span(),
                        "`signal_file` is only used with `apply = \"signal-file\"`",
                    ));
                }
            }
        }
        for e in &p.expect {
            let ex = e.get_ref();
            if ex.checks.get_ref().is_empty() {
                errs.push(src.error(
                    ex.checks.span(),
                    "`checks` is empty; add at least one check such as \"throttle_rate <= 0.0\"",
                ));
            }
            for c in ex.checks.get_ref() {
                if let Err(ce) = parse_check(c.get_ref()) {
                    errs.push(src.error_in_string(c.span(), c.get_ref(), ce.at, ce.message));
                }
            }
        }
    }
    errs
}

/// Checks one target file.
pub fn target(t: &LoadedTarget) -> Vec<Diagnostic> {
    let src = &t.src;
    let f = &t.file;
    let mut errs = Vec::new();
    if !is_simple_name(f.name.get_ref()) {
        errs.push(src.error(
            f.name.span(),
            "target name must be letters, digits, `-`, `_` or `.`",
        ));
    }
    if f.senders.get_ref().is_empty() {
        errs.push(src.error(
            f.senders.span(),
            "`senders` must map at least one role to an IPv4 address, e.g. primary = \"192.0.2.1\"",
        ));
    }
    for role in f.senders.get_ref().keys() {
        if role == ALL || !is_simple_name(role) {
            errs.push(src.error(
                f.senders.span(),
                format!("sender role `{role}` is not allowed: roles are letters, digits, `-` or `_`, and `all` is reserved"),
            ));
        }
    }
    for m in &f.mailboxes {
        let mb = m.get_ref();
        if let Err(e) = check_address(mb.address.get_ref()) {
            errs.push(src.error(mb.address.span(), e.to_string()));
        }
        if let Some(p) = &mb.password {
            errs.push(src.error_redacted(
                p.span(),
                "secrets never live in target files: set `password_env` (an environment variable name) or `password_file` (a path) instead of `password`",
            ));
        }
        if mb.password_env.is_some() && mb.password_file.is_some() {
            errs.push(src.error(
                m.span(),
                "give either `password_env` or `password_file`, not both",
            ));
        }
    }
    if let Some(imap) = &f.imap {
        let i = imap.get_ref();
        if i.tls == ImapTls::Plain && !is_loopback_host(i.host.get_ref()) {
            errs.push(src.error(
                i.host.span(),
                "`tls = \"plain\"` is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost): use \"implicit\" or \"starttls\"",
            ));
        }
        match (*i.auth.get_ref(), &i.oauth) {
            (ImapAuth::Xoauth2, None) => errs.push(src.error(
                i.auth.span(),
                "`auth = \"xoauth2\"` needs an [imap.oauth] table with token_env, token_file, token_command, or client-credentials settings",
            )),
            (ImapAuth::Xoauth2, Some(o)) => {
                let ov = o.get_ref();
                for (field, v) in [("token", &ov.token), ("client_secret", &ov.client_secret)] {
                    if let Some(v) = v {
                        errs.push(src.error_redacted(
                            v.span(),
                            format!("secrets never live in target files: use `{field}_env` or `{field}_file` instead of `{field}`"),
                        ));
                    }
                }
                let sources = [
                    ov.token_env.is_some(),
                    ov.token_file.is_some(),
                    ov.token_command.is_some(),
                    ov.client_id.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if sources != 1 {
                    errs.push(src.error(
                        o.span(),
                        "[imap.oauth] needs exactly one token source: token_env, token_file, token_command, or client_id (client credentials)",
                    ));
                }
                if ov.client_id.is_some() {
                    if ov.client_secret_env.is_none() && ov.client_secret_file.is_none() {
                        errs.push(src.error(o.span(), "client credentials need `client_secret_env` or `client_secret_file`"));
                    }
                    if ov.tenant_id.is_none() && ov.token_endpoint.is_none() {
                        errs.push(src.error(o.span(), "client credentials need `tenant_id` (or an explicit `token_endpoint`)"));
                    }
                }
            }
            (ImapAuth::Login, _) => {
                for m in &f.mailboxes {
                    let mb = m.get_ref();
                    if mb.password_env.is_none() && mb.password_file.is_none() {
                        errs.push(src.error(
                            mb.address.span(),
                            "with `auth = \"login\"` every mailbox needs `password_env` or `password_file`",
                        ));
                    }
                }
            }
        }
    }
    match f.kind {
        TargetKind::Tenant => {
            let smtp = f.smtp.as_ref().map(|s| s.get_ref());
            if smtp.and_then(|s| s.domain.as_ref()).is_none() {
                errs.push(Diagnostic::field(
                    Some(&src.path),
                    "smtp.domain",
                    "a tenant target needs [smtp] domain = \"<the tenant's accepted domain>\"",
                ));
            }
            if f.mailboxes.is_empty() {
                errs.push(Diagnostic::field(
                    Some(&src.path),
                    "mailboxes",
                    "a tenant target needs at least one [[mailboxes]] entry (the test mailboxes)",
                ));
            }
            match &f.guard {
                None => errs.push(Diagnostic::field(
                    Some(&src.path),
                    "guard",
                    "a tenant target needs a [guard] table with allowed_domains, max_messages_per_run and max_rate_per_ip: a careless burst can damage a sending IP's reputation",
                )),
                Some(g) => {
                    let gv = g.get_ref();
                    if gv.allowed_domains.is_empty() || gv.max_messages_per_run.is_none() || gv.max_rate_per_ip.is_none() {
                        errs.push(src.error(
                            g.span(),
                            "[guard] for a tenant target must set allowed_domains, max_messages_per_run and max_rate_per_ip",
                        ));
                    }
                }
            }
            if let Some(s) = &f.simulator {
                errs.push(src.error(
                    s.span(),
                    "[simulator] settings only apply to `kind = \"simulator\"`",
                ));
            }
        }
        TargetKind::Simulator => {
            let tenant = f.tenant();
            if let (Some(table), Err(e)) = (&f.simulator, tenant.validate()) {
                errs.push(src.error(table.span(), format!("[simulator] {e}")));
            }
            let known = tenant.mailbox_addresses();
            for m in &f.mailboxes {
                let a = m.get_ref().address.get_ref();
                if !known.iter().any(|k| k.eq_ignore_ascii_case(a)) {
                    errs.push(src.error(
                        m.get_ref().address.span(),
                        format!(
                            "`{a}` is not a mailbox of the simulated tenant (its mailboxes: {}); add it under [[simulator.mailboxes]] or pick one of those",
                            known.join(", ")
                        ),
                    ));
                }
            }
            for (role, ip) in f.senders.get_ref() {
                if !ip.get_ref().0.is_loopback() {
                    errs.push(src.error(
                        ip.span(),
                        format!("the simulator listens on loopback only, so sender `{role}` must be a 127.0.0.x address (stand-ins for the platform's IPs)"),
                    ));
                }
            }
        }
    }
    if let Some(c) = &f.connector {
        let cv = c.get_ref();
        let apply = *cv.apply.get_ref();
        if apply == ApplyMethod::Hook && cv.command.as_ref().is_none_or(|c| c.get_ref().is_empty())
        {
            errs.push(src.error(
                c.span(),
                "[connector] apply = \"hook\" needs `command = [\"program\", \"argument\", …]`",
            ));
        }
        if apply == ApplyMethod::SignalFile && cv.signal_file.is_none() {
            errs.push(src.error(
                c.span(),
                "[connector] apply = \"signal-file\" needs `signal_file = \"path\"`",
            ));
        }
        if apply == ApplyMethod::Simulator && f.kind == TargetKind::Tenant {
            errs.push(src.error(cv.apply.span(), "a real tenant cannot be changed through the simulator: use \"prompt\", \"hook\" or \"signal-file\""));
        }
    }
    if let Some(g) = &f.guard {
        for d in &g.get_ref().allowed_domains {
            if !is_domain(d.get_ref()) {
                errs.push(src.error(d.span(), format!("`{}` is not a domain name", d.get_ref())));
            }
        }
    }
    errs
}

/// Names used in ids and file names.
pub fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An address that is not `local@domain`, or holds characters that could break an SMTP command.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a mail address: expected local@domain, e.g. qa1@contoso.example")]
pub struct BadAddress(pub String);

/// Checks that an address is `local@domain` with no characters that could break an SMTP command.
pub fn check_address(a: &str) -> Result<(), BadAddress> {
    let bad = a
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>'));
    match a.rsplit_once('@') {
        Some((local, domain)) if !bad && !local.is_empty() && is_domain(domain) => Ok(()),
        _ => Err(BadAddress(a.to_string())),
    }
}

/// The domain part of a checked address, lower-cased.
pub fn domain_of(a: &str) -> String {
    a.rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_loopback_host(h: &str) -> bool {
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}
