//! Whether the target's sender IPs belong to this machine: `run` binds each connection to its
//! sender's IP, so `plan` checks the same thing first and says where the IP is written.

use super::diag::{Diagnostic, Diagnostics};
use super::LoadedTarget;

/// Whether `ip` can be bound as a source address here: `false` only when the OS says it is not
/// assigned to any interface (any other failure is left for the connection to report).
pub fn is_local(ip: std::net::Ipv4Addr) -> bool {
    // Binding a UDP socket sends nothing, and fails with EADDRNOTAVAIL exactly when a TCP bind would.
    !matches!(
        std::net::UdpSocket::bind((ip, 0)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable
    )
}

/// Every sender IP of the target that is not on this machine, as an error at its place in the
/// target file naming the role and the fix.
pub fn check_senders_here(t: &LoadedTarget) -> Result<(), Diagnostics> {
    check_with(t, is_local)
}

/// [`check_senders_here`] with the locality test given (tests pretend addresses are foreign).
fn check_with(
    t: &LoadedTarget,
    local: impl Fn(std::net::Ipv4Addr) -> bool,
) -> Result<(), Diagnostics> {
    let errs: Vec<Diagnostic> = t
        .file
        .senders
        .get_ref()
        .iter()
        .filter(|(_, ip)| !local(ip.get_ref().0))
        .map(|(role, ip)| {
            let addr = ip.get_ref().0;
            t.src.error(
                ip.span(),
                format!(
                    "sender `{role}` = {addr} is not assigned to any interface on this machine, so `run` cannot send from it; \
                     add the address here (on Linux, for a test: `ip addr add {addr}/32 dev lo`) or run mailharness on the host that owns {addr}"
                ),
            )
        })
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{load_target_text, SourceFile};

    #[test]
    fn a_foreign_sender_ip_is_an_error_at_its_line_with_role_and_fix() {
        let text = "name = \"t\"\nkind = \"simulator\"\n[senders]\nprimary = \"127.0.0.2\"\nsecondary = \"127.0.0.3\"\n";
        let t = load_target_text(SourceFile {
            path: "t.toml".into(),
            text: text.into(),
        })
        .expect("target");
        assert!(check_with(&t, |_| true).is_ok());
        let e = check_with(&t, |ip| ip.octets()[3] != 3)
            .expect_err("127.0.0.3 is foreign here")
            .to_string();
        assert!(
            e.starts_with("t.toml:5:13: error: sender `secondary` = 127.0.0.3 is not assigned"),
            "{e}"
        );
        assert!(
            e.contains("ip addr add 127.0.0.3/32 dev lo")
                && e.contains("the host that owns 127.0.0.3"),
            "{e}"
        );
        assert!(
            check_senders_here(&t).is_ok(),
            "all of 127/8 is local on Linux"
        );
    }
}
