//! Instructions for the tenant admin: the Exchange admin center steps and the PowerShell for the
//! Partner inbound connector (reference: "Inbound connector: Partner organization -> Office 365",
//! and the support article's wizard steps in "The platform's side").

use std::fmt::Write as _;

use crate::scenario::plan::PlannedChange;
use crate::vocab::{ConnectorAction, ConnectorCidr};

/// Quotes a value for PowerShell (single quotes; a quote inside is doubled).
fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What a connector command needs: the connector's settings, independent of how a run applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorParams {
    /// Connector name.
    pub name: String,
    /// `-SenderIPAddresses`: IPv4 addresses or /24–/32 ranges, as written.
    pub sender_ips: Vec<String>,
    /// `-RequireTls`.
    pub require_tls: bool,
    /// `-RestrictDomainsToIPAddresses`.
    pub restrict_domains_to_ips: bool,
}

impl ConnectorParams {
    /// The parameters of a planned change.
    fn of(c: &PlannedChange) -> Self {
        ConnectorParams {
            name: c.connector_name.clone(),
            sender_ips: c.sender_ips.clone(),
            require_tls: c.require_tls,
            restrict_domains_to_ips: c.restrict_domains_to_ips,
        }
    }
}

/// PowerShell's spelling of a boolean.
fn ps_bool(b: bool) -> &'static str {
    if b {
        "$true"
    } else {
        "$false"
    }
}

/// The PowerShell command for a change (`-SenderDomains *` and an explicit `-RequireTls`, since the
/// documented default differs between doc versions).
pub fn powershell(c: &PlannedChange) -> String {
    powershell_for(c.action, &ConnectorParams::of(c))
}

/// The PowerShell command for `action` on a connector with these settings.
pub fn powershell_for(action: ConnectorAction, c: &ConnectorParams) -> String {
    let ips = c.sender_ips.join(",");
    let tls = ps_bool(c.require_tls);
    let restrict = if c.restrict_domains_to_ips {
        " -RestrictDomainsToIPAddresses $true"
    } else {
        ""
    };
    let name = ps_quote(&c.name);
    match action {
        ConnectorAction::Create => format!(
            "New-InboundConnector -Name {name} -ConnectorType Partner -SenderDomains * -SenderIPAddresses {ips} -RequireTls {tls}{restrict} -Enabled $true"
        ),
        // Without the restriction asked for, the parameter is left out: `$false` would silently
        // lift a restriction the tenant already has.
        ConnectorAction::Update => format!(
            "Set-InboundConnector -Identity {name} -SenderIPAddresses {ips} -RequireTls {tls}{restrict}"
        ),
        ConnectorAction::Enable => format!("Set-InboundConnector -Identity {name} -Enabled $true"),
        ConnectorAction::Disable => format!("Set-InboundConnector -Identity {name} -Enabled $false"),
        ConnectorAction::Delete => format!("Remove-InboundConnector -Identity {name} -Confirm:$false"),
    }
}

/// The Exchange admin center steps for a change, numbered, for an operator to follow.
pub fn admin_center_steps(c: &PlannedChange) -> Vec<String> {
    admin_center_steps_for(c.action, &ConnectorParams::of(c))
}

/// The Exchange admin center steps for `action` on a connector with these settings.
pub fn admin_center_steps_for(action: ConnectorAction, c: &ConnectorParams) -> Vec<String> {
    let ips = c.sender_ips.join(", ");
    let connector_name = &c.name;
    match action {
        ConnectorAction::Create => {
            let mut s = vec![
                "Open the Exchange admin center and go to Mail flow > Connectors.".to_string(),
                "Select \"Add a connector\".".to_string(),
                "Connection from: Partner organization. Connection to: Office 365. Next.".to_string(),
                format!("Name: \"{}\"; leave \"Turn it on\" checked. Next.", connector_name),
                format!("Identify the partner by \"the IP address of the sending server matches one of the following IP addresses\": {ips}. Next."),
            ];
            s.push(if c.require_tls {
                "Security restrictions: check \"Reject email messages if they aren't sent over Transport Layer Security (TLS)\".".to_string()
            } else {
                "Security restrictions: leave \"Reject email messages if they aren't sent over TLS\" unchecked.".to_string()
            });
            s.push(if c.restrict_domains_to_ips {
                "Also check \"Reject email messages if they aren't sent from within this IP address range\" (the PowerShell's -RestrictDomainsToIPAddresses). Next.".to_string()
            } else {
                "Leave \"Reject email messages if they aren't sent from within this IP address range\" unchecked. Next.".to_string()
            });
            s.push(
                "Review and \"Create connector\". It can take a few minutes to take effect."
                    .to_string(),
            );
            s
        }
        ConnectorAction::Update => vec![
            "Exchange admin center > Mail flow > Connectors.".to_string(),
            format!(
                "Open \"{}\" and edit its sender IP addresses to exactly: {ips}.",
                connector_name
            ),
            format!(
                "Set \"Reject email messages if they aren't sent over TLS\" to {}.",
                if c.require_tls {
                    "checked"
                } else {
                    "unchecked"
                }
            ),
            if c.restrict_domains_to_ips {
                "Check \"Reject email messages if they aren't sent from within this IP address range\".".to_string()
            } else {
                "Leave \"Reject email messages if they aren't sent from within this IP address range\" as it is.".to_string()
            },
            "Save.".to_string(),
        ],
        ConnectorAction::Enable | ConnectorAction::Disable => vec![
            "Exchange admin center > Mail flow > Connectors.".to_string(),
            format!(
                "Select \"{}\" and turn it {}.",
                connector_name,
                if action == ConnectorAction::Enable {
                    "on"
                } else {
                    "off"
                }
            ),
        ],
        ConnectorAction::Delete => vec![
            "Exchange admin center > Mail flow > Connectors.".to_string(),
            format!("Select \"{}\" and delete it.", connector_name),
        ],
    }
}

/// The whole prompt text for an operator: the steps, then the PowerShell alternative.
pub fn operator_text(c: &PlannedChange) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "In the tenant's Exchange admin center:");
    for (i, s) in admin_center_steps(c).iter().enumerate() {
        let _ = writeln!(o, "  {}. {s}", i + 1);
    }
    let _ = writeln!(
        o,
        "Or in Exchange Online PowerShell (Connect-ExchangeOnline first):"
    );
    let _ = writeln!(o, "  {}", powershell(c));
    o
}

/// The connector name used when none is given (the support article's).
pub const DEFAULT_CONNECTOR_NAME: &str = "Trusted Mail Connector";

/// One broken connector rule, naming the value or option at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// The option, file field or value at fault, e.g. `--current` or `senders.primary`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// A connector as an operator asks for it, before the rules are checked.
#[derive(Debug, Clone, Default)]
pub struct ConnectorRequest {
    /// Connector name.
    pub name: String,
    /// Sending IPs, each with where it came from (`senders.primary`, `--current`).
    pub sender_ips: Vec<(String, String)>,
    /// `-RequireTls`.
    pub require_tls: bool,
    /// `-RestrictDomainsToIPAddresses`.
    pub restrict_domains_to_ips: bool,
    /// `-TlsSenderCertificateName`: refused with IPs (no IP and certificate mix).
    pub certificate_name: Option<String>,
}

/// Parses a comma- or space-separated IP list (as `--current` takes it) under the connector rules.
pub fn parse_ip_list(field: &str, list: &str) -> Result<Vec<ConnectorCidr>, Vec<RuleError>> {
    let items: Vec<(String, String)> = list
        .split([',', ' ', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| (field.to_string(), s.to_string()))
        .collect();
    if items.is_empty() {
        return Err(vec![RuleError {
            field: field.into(),
            message: "no IP addresses given (expected e.g. 192.0.2.1,198.51.100.0/24)".into(),
        }]);
    }
    check_ips(&items)
}

/// Checks IPs against the connector rules (IPv4 only, single address or /24–/32, no host bits),
/// dropping duplicates. Every broken value is reported, not just the first.
pub fn check_ips(ips: &[(String, String)]) -> Result<Vec<ConnectorCidr>, Vec<RuleError>> {
    let mut out: Vec<ConnectorCidr> = Vec::new();
    let mut errs = Vec::new();
    for (field, raw) in ips {
        match raw.parse::<ConnectorCidr>() {
            Ok(c) if !out.contains(&c) => out.push(c),
            Ok(_) => {}
            Err(e) => errs.push(RuleError {
                field: field.clone(),
                message: e,
            }),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Checks a whole request: the name, the IPs, and no mix of IP and certificate restriction.
pub fn check_rules(req: &ConnectorRequest) -> Result<ConnectorParams, Vec<RuleError>> {
    let mut errs = Vec::new();
    let name = req.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '/') {
        errs.push(RuleError {
            field: "--name".into(),
            message: format!(
                "connector name {:?} must be 1 to 64 characters, without '/' or control characters",
                req.name
            ),
        });
    }
    let ips = match check_ips(&req.sender_ips) {
        Ok(v) => v,
        Err(e) => {
            errs.extend(e);
            Vec::new()
        }
    };
    if req.sender_ips.is_empty() {
        errs.push(RuleError {
            field: "senders".into(),
            message: "no sending IPs: the connector identifies the partner by IP address".into(),
        });
    }
    if let Some(cert) = &req.certificate_name {
        errs.push(RuleError {
            field: "--certificate-name".into(),
            message: format!(
                "a certificate restriction ({cert:?}) together with sending IPs mixes IP and certificate restriction in one partner connector, which Microsoft advises against; identify this connector by IP only, or make a separate connector for the certificate"
            ),
        });
    }
    if errs.is_empty() {
        Ok(ConnectorParams {
            name: name.to_string(),
            sender_ips: ips.iter().map(ToString::to_string).collect(),
            require_tls: req.require_tls,
            restrict_domains_to_ips: req.restrict_domains_to_ips,
        })
    } else {
        Err(errs)
    }
}

/// Whether range `outer` covers all of `inner`.
fn covers(outer: &ConnectorCidr, inner: &ConnectorCidr) -> bool {
    outer.prefix <= inner.prefix && outer.contains(inner.addr)
}

/// The change to a connector's IP list after an IP change.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct IpDiff {
    /// Current entries that still cover a wanted IP.
    pub keep: Vec<ConnectorCidr>,
    /// Wanted IPs no current entry covers.
    pub add: Vec<ConnectorCidr>,
    /// Current entries that cover no wanted IP.
    pub remove: Vec<ConnectorCidr>,
}

impl IpDiff {
    /// The list the connector should hold afterwards: kept entries, then added ones.
    pub fn result(&self) -> Vec<ConnectorCidr> {
        self.keep.iter().chain(&self.add).copied().collect()
    }

    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// Compares the connector's current IP list with the IPs mail is sent from now.
pub fn ip_diff(current: &[ConnectorCidr], wanted: &[ConnectorCidr]) -> IpDiff {
    let mut d = IpDiff::default();
    for c in current {
        if wanted.iter().any(|w| covers(c, w)) {
            d.keep.push(*c);
        } else {
            d.remove.push(*c);
        }
    }
    for w in wanted {
        if !current.iter().any(|c| covers(c, w)) && !d.add.contains(w) {
            d.add.push(*w);
        }
    }
    d
}

/// The incremental form Exchange accepts for multi-valued properties: `@{Add="…"; Remove="…"}`.
pub fn powershell_incremental(name: &str, d: &IpDiff) -> String {
    let q = |v: &[ConnectorCidr]| {
        v.iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    if !d.add.is_empty() {
        parts.push(format!("Add={}", q(&d.add)));
    }
    if !d.remove.is_empty() {
        parts.push(format!("Remove={}", q(&d.remove)));
    }
    format!(
        "Set-InboundConnector -Identity {} -SenderIPAddresses @{{{}}}",
        ps_quote(name),
        parts.join("; ")
    )
}

/// The check an admin runs afterwards to see what the connector really holds.
pub fn powershell_check(name: &str) -> String {
    format!(
        "Get-InboundConnector -Identity {} | Format-List Name,Enabled,ConnectorType,SenderDomains,SenderIPAddresses,RequireTls,RestrictDomainsToIPAddresses",
        ps_quote(name)
    )
}

/// The full text of `mailharness connector`: for a new connector, or (with `current`) the change
/// after an IP change. `roles` names each wanted IP for the reader.
pub fn instructions_text(
    target_name: &str,
    params: &ConnectorParams,
    roles: &[(String, String)],
    current: Option<&[ConnectorCidr]>,
) -> String {
    let mut o = String::new();
    let who = |ip: &ConnectorCidr| {
        let s = ip.to_string();
        let names: Vec<&str> = roles
            .iter()
            .filter(|(_, v)| *v == s || v.parse::<ConnectorCidr>().is_ok_and(|c| covers(ip, &c)))
            .map(|(r, _)| r.as_str())
            .collect();
        if names.is_empty() {
            s
        } else {
            format!("{s} ({})", names.join(", "))
        }
    };
    let wanted: Vec<ConnectorCidr> = params
        .sender_ips
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let _ = writeln!(
        o,
        "Inbound connector \"{}\" for target {target_name}: mail comes from {}.",
        params.name,
        wanted.iter().map(who).collect::<Vec<_>>().join(", ")
    );
    let Some(current) = current else {
        let _ = writeln!(o);
        let _ = writeln!(o, "In the tenant's Exchange admin center:");
        for (i, s) in admin_center_steps_for(ConnectorAction::Create, params)
            .iter()
            .enumerate()
        {
            let _ = writeln!(o, "  {}. {s}", i + 1);
        }
        let _ = writeln!(
            o,
            "\nOr in Exchange Online PowerShell (Connect-ExchangeOnline first):"
        );
        let _ = writeln!(o, "  {}", powershell_for(ConnectorAction::Create, params));
        let _ = writeln!(o, "\nAn existing connector is changed with:");
        let _ = writeln!(o, "  {}", powershell_for(ConnectorAction::Update, params));
        let _ = writeln!(
            o,
            "\nCheck it afterwards with:\n  {}",
            powershell_check(&params.name)
        );
        let _ = writeln!(
            o,
            "\nIt can take a few minutes to take effect; then send a test with `mailharness confirm`."
        );
        return o;
    };
    let d = ip_diff(current, &wanted);
    let list = |v: &[ConnectorCidr]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let _ = writeln!(o, "The connector lists now: {}", list(current));
    if d.is_empty() {
        let _ = writeln!(
            o,
            "\nNothing to change: the connector already covers every sending IP."
        );
        if !d.keep.is_empty() {
            let _ = writeln!(o, "Check it with:\n  {}", powershell_check(&params.name));
        }
        return o;
    }
    let _ = writeln!(o, "\nChange needed after the IP change:");
    for c in &d.add {
        let _ = writeln!(o, "  add     {}", who(c));
    }
    for c in &d.remove {
        let _ = writeln!(o, "  remove  {c} (no longer sends)");
    }
    for c in &d.keep {
        let _ = writeln!(o, "  keep    {}", who(c));
    }
    let result = d.result();
    let after = ConnectorParams {
        sender_ips: result.iter().map(ToString::to_string).collect(),
        ..params.clone()
    };
    let _ = writeln!(o, "\nIn the tenant's Exchange admin center:");
    for (i, s) in admin_center_steps_for(ConnectorAction::Update, &after)
        .iter()
        .enumerate()
    {
        let _ = writeln!(o, "  {}. {s}", i + 1);
    }
    let _ = writeln!(
        o,
        "\nOr in Exchange Online PowerShell (Connect-ExchangeOnline first):"
    );
    let _ = writeln!(o, "  {}", powershell_for(ConnectorAction::Update, &after));
    let _ = writeln!(
        o,
        "  (the same change, incrementally: {})",
        powershell_incremental(&params.name, &d)
    );
    let _ = writeln!(
        o,
        "\nCheck it afterwards with:\n  {}",
        powershell_check(&params.name)
    );
    let _ = writeln!(
        o,
        "\nUntil the change takes effect (a few minutes), mail from an added IP may be throttled (451 4.7.500); run `mailharness verify` after it."
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{ApplyMethod, WaitMethod};

    fn change(action: ConnectorAction) -> PlannedChange {
        PlannedChange {
            action,
            connector_name: "Trusted Mail Connector".into(),
            sender_ips: vec!["192.0.2.1".into(), "198.51.100.0/24".into()],
            require_tls: true,
            restrict_domains_to_ips: false,
            apply: ApplyMethod::Prompt,
            command: None,
            signal_file: None,
            apply_timeout_secs: 60.0,
            wait: WaitMethod::Poll,
            settle_secs: 5.0,
            poll_interval_secs: 5.0,
            deadline_secs: 600.0,
        }
    }

    #[test]
    fn powershell_spells_the_parameters_as_microsoft_documents_them() {
        assert_eq!(
            powershell(&change(ConnectorAction::Create)),
            "New-InboundConnector -Name 'Trusted Mail Connector' -ConnectorType Partner -SenderDomains * -SenderIPAddresses 192.0.2.1,198.51.100.0/24 -RequireTls $true -Enabled $true"
        );
        assert!(powershell(&change(ConnectorAction::Update)).starts_with(
            "Set-InboundConnector -Identity 'Trusted Mail Connector' -SenderIPAddresses"
        ));
        let mut c = change(ConnectorAction::Create);
        c.connector_name = "O'Brien".into();
        assert!(powershell(&c).contains("-Name 'O''Brien'"));
        // An update never lifts an IP restriction the tenant has; it sets one only when asked.
        assert!(
            !powershell(&change(ConnectorAction::Update)).contains("RestrictDomainsToIPAddresses")
        );
        let mut c = change(ConnectorAction::Update);
        c.restrict_domains_to_ips = true;
        assert!(powershell(&c).ends_with("-RequireTls $true -RestrictDomainsToIPAddresses $true"));
    }

    #[test]
    fn the_wizard_steps_match_the_powershell_on_the_ip_restriction() {
        let range = "Reject email messages if they aren't sent from within this IP address range";
        for action in [ConnectorAction::Create, ConnectorAction::Update] {
            let mut c = change(action);
            c.restrict_domains_to_ips = true;
            let steps = admin_center_steps(&c).join("\n");
            assert!(steps.contains(&format!("heck \"{range}\"")), "{steps}");
            assert!(powershell(&c).contains("-RestrictDomainsToIPAddresses $true"));
            c.restrict_domains_to_ips = false;
            let steps = admin_center_steps(&c).join("\n");
            assert!(!steps.contains(&format!("heck \"{range}\"")), "{steps}");
        }
    }

    #[test]
    fn the_wizard_steps_name_the_ips_and_the_tls_restriction() {
        let text = operator_text(&change(ConnectorAction::Create));
        assert!(text.contains("Partner organization"));
        assert!(text.contains("192.0.2.1, 198.51.100.0/24"));
        assert!(text
            .contains("Reject email messages if they aren't sent over Transport Layer Security"));
    }

    fn cidrs(s: &str) -> Vec<ConnectorCidr> {
        parse_ip_list("--current", s).unwrap()
    }

    #[test]
    fn ip_lists_follow_the_connector_rules_and_name_every_bad_value() {
        assert_eq!(cidrs("192.0.2.1, 198.51.100.0/24,192.0.2.1").len(), 2);
        let errs = parse_ip_list(
            "--current",
            "2001:db8::1,10.0.0.0/16,192.0.2.5/24,203.0.113.2213",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].message.contains("IPv6"));
        assert!(errs[1].message.contains("/24 to /32"));
        assert!(errs[2].message.contains("192.0.2.0/24"));
        assert!(errs.iter().all(|e| e.field == "--current"));
        assert!(parse_ip_list("--current", " , ").is_err());
    }

    #[test]
    fn ip_and_certificate_restrictions_do_not_mix() {
        let req = ConnectorRequest {
            name: DEFAULT_CONNECTOR_NAME.into(),
            sender_ips: vec![("senders.primary".into(), "192.0.2.1".into())],
            require_tls: true,
            restrict_domains_to_ips: false,
            certificate_name: Some("mail.platform.example".into()),
        };
        let errs = check_rules(&req).unwrap_err();
        assert!(
            errs[0].to_string().contains("mixes IP and certificate"),
            "{errs:?}"
        );
        let ok = check_rules(&ConnectorRequest {
            certificate_name: None,
            ..req
        })
        .unwrap();
        assert_eq!(ok.sender_ips, vec!["192.0.2.1"]);
    }

    #[test]
    fn the_diff_adds_removes_and_keeps_covering_ranges() {
        let d = ip_diff(
            &cidrs("192.0.2.1,198.51.100.0/24"),
            &cidrs("198.51.100.7,203.0.113.9"),
        );
        assert_eq!(d.add, cidrs("203.0.113.9"));
        assert_eq!(d.remove, cidrs("192.0.2.1"));
        assert_eq!(d.keep, cidrs("198.51.100.0/24"));
        assert_eq!(d.result(), cidrs("198.51.100.0/24,203.0.113.9"));
        assert_eq!(
            powershell_incremental("Trusted Mail Connector", &d),
            "Set-InboundConnector -Identity 'Trusted Mail Connector' -SenderIPAddresses @{Add=\"203.0.113.9\"; Remove=\"192.0.2.1\"}"
        );
        assert!(ip_diff(&cidrs("192.0.2.0/24"), &cidrs("192.0.2.8")).is_empty());
    }
}
