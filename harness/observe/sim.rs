//! The embedded simulator's mailboxes, as the harness's own IMAP client reads them.
//!
//! Mailboxes of a simulated tenant that name no credentials of their own get a password the
//! harness generates. It lives in this process's environment under [`SIM_PASSWORD_ENV`], never in
//! a file, on a command line, in a log or in a report: the simulator's IMAP server and this client
//! both read it from there. A finished run's mailboxes stay readable: its Maildirs are kept in the
//! run directory (`sim/maildir`), and [`SimMailboxes`] serves them again on loopback.

use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::watch;

use super::{
    tls_config, AuthMethod, ConnectOptions, ImapTarget, MailboxAccess, ObserveError, SecretSource,
    DEFAULT_COMMAND_TIMEOUT,
};
use crate::scenario::target::ImapTls;
use crate::sim::{self, TenantConfig};

/// The environment variable holding the generated password of the simulated mailboxes. Set it
/// yourself to choose the password (to read a run's mailboxes with another IMAP client).
pub const SIM_PASSWORD_ENV: &str = "MAILHARNESS_SIM_IMAP_PASSWORD";

/// Generates the password into the environment, unless it is there already.
///
/// Call it before the process starts threads (the binary does, first thing): changing the
/// environment while another thread reads it is undefined behaviour in C libraries.
pub fn install_sim_password() {
    if std::env::var_os(SIM_PASSWORD_ENV).is_none_or(|v| v.is_empty()) {
        std::env::set_var(
            SIM_PASSWORD_ENV,
            uuid::Uuid::new_v4().as_simple().to_string(),
        );
    }
}

/// Gives every simulated mailbox without credentials of its own the generated password.
pub fn provision_sim_password(tenant: &mut TenantConfig) {
    // A library caller that did not install it first gets it now (see `install_sim_password`).
    install_sim_password();
    for m in &mut tenant.mailboxes {
        if m.password_env.is_none() && m.password_file.is_none() {
            m.password_env = Some(SIM_PASSWORD_ENV.to_string());
        }
    }
}

/// The IMAP side of a simulator listening on `addr`: STARTTLS trusting the CA in `ca` (plain
/// IMAP on loopback without one), logging in with each mailbox's own password source.
pub fn sim_imap_target(
    addr: SocketAddr,
    ca: Option<&Path>,
    tenant: &TenantConfig,
) -> Result<ImapTarget, ObserveError> {
    let (tls, tls_config) = match ca {
        Some(ca) => (ImapTls::Starttls, Some(tls_config(Some(ca))?)),
        None => (ImapTls::Plain, None),
    };
    let mailboxes = tenant
        .mailboxes
        .iter()
        .map(|m| {
            let address = m.address.to_ascii_lowercase();
            let source = match (&m.password_env, &m.password_file) {
                (Some(var), _) => SecretSource::Env(var.clone()),
                (None, Some(p)) => SecretSource::File(p.clone()),
                (None, None) => SecretSource::Env(SIM_PASSWORD_ENV.to_string()),
            };
            MailboxAccess {
                login: address.clone(),
                address,
                password: Some(source),
            }
        })
        .collect();
    Ok(ImapTarget {
        connect: ConnectOptions {
            host: addr.ip().to_string(),
            port: addr.port(),
            tls,
            tls_config,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        },
        auth: AuthMethod::Login,
        mailboxes,
    })
}

/// A finished simulator run's mailboxes, served again by the simulator's IMAP server on an
/// ephemeral loopback port until [`SimMailboxes::close`].
pub struct SimMailboxes {
    /// How to read them.
    pub target: ImapTarget,
    server: sim::imap::ImapServer,
    stop: watch::Sender<bool>,
}

impl SimMailboxes {
    /// Serves `<sim_dir>/maildir` (a run directory's `sim/`) for `tenant`'s mailboxes.
    pub async fn open(mut tenant: TenantConfig, sim_dir: &Path) -> Result<Self, ObserveError> {
        let maildir = sim_dir.join("maildir");
        if !maildir.is_dir() {
            return Err(ObserveError::Config(format!(
                "{} does not exist: only a run on the embedded simulator keeps its mailboxes there; \
                 for a real tenant give --target with its [imap] table",
                maildir.display()
            )));
        }
        provision_sim_password(&mut tenant);
        tenant.imap.enabled = true;
        tenant.listen.imap_port = 0;
        tenant.listen.imaps_port = 0;
        let prepared =
            sim::imap::prepare(&tenant, &maildir, None).map_err(ObserveError::Simulator)?;
        let addr = prepared.imap_addr();
        let (stop, rx) = watch::channel(false);
        let server = prepared.spawn(rx).await.map_err(ObserveError::Simulator)?;
        Ok(SimMailboxes {
            target: sim_imap_target(addr, None, &tenant)?,
            server,
            stop,
        })
    }

    /// Stops the server and waits for its thread.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let server = self.server;
        let _ = tokio::task::spawn_blocking(move || server.join()).await;
    }
}
