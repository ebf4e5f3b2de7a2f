//! Ops and support commands: `verify` (can every sending IP still deliver, after an IP change?) and
//! `confirm` (one clearly labelled test message for a customer, with a plain-language verdict).
//!
//! Both reuse the send engine ([`crate::send::send_one`]), the endpoint resolution
//! ([`crate::endpoint`]), the IMAP observer and the reply knowledge base: nothing here speaks SMTP
//! or IMAP itself, so a verdict here means exactly what the same reply means in a run.

pub mod confirm;
mod error;
pub mod verify;

use std::net::Ipv4Addr;

use crate::scenario::LoadedTarget;
use crate::vocab::TargetKind;

pub use confirm::{confirm, confirm_with, default_text, ConfirmOptions, ConfirmReport};
pub use error::OpsError;
pub use verify::{verify, IpResult, SendCheck, VerifyOptions, VerifyReport};

/// The target's sender roles and IPs, in the file's (sorted) order.
pub fn senders(t: &LoadedTarget) -> Vec<(String, Ipv4Addr)> {
    t.file
        .senders
        .get_ref()
        .iter()
        .map(|(role, ip)| (role.clone(), ip.get_ref().0))
        .collect()
}

/// Refuses a recipient outside the target's `[guard] allowed_domains` (when it lists any).
pub fn check_guard(t: &LoadedTarget, recipient: &str) -> Result<(), OpsError> {
    let Some((_, domain)) = recipient.rsplit_once('@') else {
        return Err(OpsError::NotAnAddress(recipient.to_string()));
    };
    let allowed: Vec<String> = t
        .file
        .guard
        .as_ref()
        .map(|g| {
            g.get_ref()
                .allowed_domains
                .iter()
                .map(|d| d.get_ref().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    if allowed.is_empty() || allowed.contains(&domain.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(OpsError::NotAllowed {
            path: t.src.path.clone(),
            allowed: allowed.join(", "),
            domain: domain.to_string(),
        })
    }
}

/// A fresh reference id: `<prefix>-<UTC time>-<6 hex>`, short enough to read out on a call.
pub fn reference_id(prefix: &str) -> String {
    let nonce = uuid::Uuid::new_v4().as_simple().to_string();
    format!(
        "{prefix}-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &nonce[..6]
    )
}

/// Whether the target is the embedded simulator.
pub fn is_simulator(t: &LoadedTarget) -> bool {
    t.file.kind == TargetKind::Simulator
}

/// Masks an address for a shareable report: the local part keeps its first character.
pub fn mask_address(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Replaces every occurrence of `addr` (any case) in `text` with its masked form.
pub fn redact(text: &str, addr: &str) -> String {
    if addr.is_empty() {
        return text.to_string();
    }
    let lower = text.to_ascii_lowercase();
    let needle = addr.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(pos) = lower[i..].find(&needle) {
        out.push_str(&text[i..i + pos]);
        out.push_str(&mask_address(addr));
        i += pos + needle.len();
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_everywhere() {
        assert_eq!(mask_address("alice@contoso.com"), "a***@contoso.com");
        assert_eq!(
            redact("550 5.4.1 <Alice@Contoso.com>: no", "alice@contoso.com"),
            "550 5.4.1 <a***@contoso.com>: no"
        );
        assert_eq!(mask_address("nobody"), "***");
    }
}
