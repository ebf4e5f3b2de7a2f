//! Instructions for the tenant admin: the Exchange admin center steps and the PowerShell for the
//! Partner inbound connector (reference: "Inbound connector: Partner organization -> Office 365",
//! and the support article's wizard steps in "The platform's side").

use std::fmt::Write as _;

use crate::scenario::model::ConnectorAction;
use crate::scenario::plan::PlannedChange;

/// Quotes a value for PowerShell (single quotes; a quote inside is doubled).
fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The PowerShell command for a change (`-SenderDomains *` and an explicit `-RequireTls`, since the
/// documented default differs between doc versions).
pub fn powershell(c: &PlannedChange) -> String {
    let ips = c.sender_ips.join(",");
    let tls = if c.require_tls { "$true" } else { "$false" };
    let restrict = if c.restrict_domains_to_ips {
        " -RestrictDomainsToIPAddresses $true"
    } else {
        ""
    };
    let name = ps_quote(&c.connector_name);
    match c.action {
        ConnectorAction::Create => format!(
            "New-InboundConnector -Name {name} -ConnectorType Partner -SenderDomains * -SenderIPAddresses {ips} -RequireTls {tls}{restrict} -Enabled $true"
        ),
        ConnectorAction::Update => format!(
            "Set-InboundConnector -Identity {name} -SenderIPAddresses {ips} -RequireTls {tls} -RestrictDomainsToIPAddresses {}",
            if c.restrict_domains_to_ips { "$true" } else { "$false" }
        ),
        ConnectorAction::Enable => format!("Set-InboundConnector -Identity {name} -Enabled $true"),
        ConnectorAction::Disable => format!("Set-InboundConnector -Identity {name} -Enabled $false"),
        ConnectorAction::Delete => format!("Remove-InboundConnector -Identity {name} -Confirm:$false"),
    }
}

/// The Exchange admin center steps for a change, numbered, for an operator to follow.
pub fn admin_center_steps(c: &PlannedChange) -> Vec<String> {
    let ips = c.sender_ips.join(", ");
    match c.action {
        ConnectorAction::Create => {
            let mut s = vec![
                "Open the Exchange admin center and go to Mail flow > Connectors.".to_string(),
                "Select \"Add a connector\".".to_string(),
                "Connection from: Partner organization. Connection to: Office 365. Next.".to_string(),
                format!("Name: \"{}\"; leave \"Turn it on\" checked. Next.", c.connector_name),
                format!("Identify the partner by \"the IP address of the sending server matches one of the following IP addresses\": {ips}. Next."),
            ];
            s.push(if c.require_tls {
                "Security restrictions: check \"Reject email messages if they aren't sent over Transport Layer Security (TLS)\". Next.".to_string()
            } else {
                "Security restrictions: leave \"Reject email messages if they aren't sent over TLS\" unchecked. Next.".to_string()
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
                c.connector_name
            ),
            format!(
                "Set \"Reject email messages if they aren't sent over TLS\" to {}.",
                if c.require_tls {
                    "checked"
                } else {
                    "unchecked"
                }
            ),
            "Save.".to_string(),
        ],
        ConnectorAction::Enable | ConnectorAction::Disable => vec![
            "Exchange admin center > Mail flow > Connectors.".to_string(),
            format!(
                "Select \"{}\" and turn it {}.",
                c.connector_name,
                if c.action == ConnectorAction::Enable {
                    "on"
                } else {
                    "off"
                }
            ),
        ],
        ConnectorAction::Delete => vec![
            "Exchange admin center > Mail flow > Connectors.".to_string(),
            format!("Select \"{}\" and delete it.", c.connector_name),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::{ApplyMethod, WaitMethod};

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
    }

    #[test]
    fn the_wizard_steps_name_the_ips_and_the_tls_restriction() {
        let text = operator_text(&change(ConnectorAction::Create));
        assert!(text.contains("Partner organization"));
        assert!(text.contains("192.0.2.1, 198.51.100.0/24"));
        assert!(text
            .contains("Reject email messages if they aren't sent over Transport Layer Security"));
    }
}
