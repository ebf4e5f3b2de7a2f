//! `mailharness sim`: the simulated tenant, standalone, until Ctrl-C, SIGTERM or SIGHUP.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mailharness::sim::{self, ListenOverrides, SimHandle, TenantConfig};
use serde::Serialize;

use super::common::{runtime, JsonOpt};
use super::error::CliError;
use super::out;

/// Version of `sim --json`'s document.
const SIM_SCHEMA: u32 = 1;

/// Arguments of `mailharness sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Tenant file (TOML; top-level fields or a `[simulator]` table). Defaults reproduce the mission's story.
    #[arg(long, value_name = "TENANT.TOML")]
    pub config: Option<PathBuf>,
    /// Where Maildirs, trace.jsonl and the generated certificate go (the simulator's state).
    #[arg(long, value_name = "DIR", default_value = "sim-state")]
    pub state_dir: PathBuf,
    /// SMTP (STARTTLS) port; 0 = ephemeral. Overrides listen.smtp_port.
    #[arg(long, value_name = "N")]
    pub smtp_port: Option<u16>,
    /// Implicit-TLS port; 0 = ephemeral. Overrides listen.smtps_port.
    #[arg(long, value_name = "N")]
    pub smtps_port: Option<u16>,
    /// Admin API port; 0 = ephemeral. Overrides listen.admin_port.
    #[arg(long, value_name = "N")]
    pub admin_port: Option<u16>,
    /// IMAP (STARTTLS) port; 0 = ephemeral. Overrides listen.imap_port.
    #[arg(long, value_name = "N")]
    pub imap_port: Option<u16>,
    /// IMAP implicit-TLS port; 0 = ephemeral. Overrides listen.imaps_port.
    #[arg(long, value_name = "N")]
    pub imaps_port: Option<u16>,
    /// Loopback address to listen on. Overrides listen.address.
    #[arg(long, value_name = "IP")]
    pub listen: Option<std::net::Ipv4Addr>,
    #[command(flatten)]
    pub json: JsonOpt,
}

/// What `sim` prints once it is ready: every address a client needs.
#[derive(Debug, Serialize)]
struct Ready {
    schema: u32,
    tenant: String,
    smtp: String,
    smtps: Option<String>,
    imap: Option<String>,
    imaps: Option<String>,
    admin_url: String,
    maildir_root: PathBuf,
    trace: PathBuf,
    ca_certificate: Option<PathBuf>,
    mailboxes: Vec<String>,
}

impl Ready {
    /// The addresses of a started simulator whose state is in `state_dir`.
    fn of(s: &SimHandle, state_dir: &std::path::Path) -> Ready {
        let generated_ca = s.ca_cert_pem().is_some() && s.config().tls.cert_pem.is_none();
        Ready {
            schema: SIM_SCHEMA,
            tenant: s.config().tenant_name.clone(),
            smtp: s.smtp_addr().to_string(),
            smtps: s.smtps_addr().map(|a| a.to_string()),
            imap: s.imap_addr().map(|a| a.to_string()),
            imaps: s.imaps_addr().map(|a| a.to_string()),
            admin_url: s.admin_url(),
            maildir_root: s.maildir_root().to_path_buf(),
            trace: s.trace_path().to_path_buf(),
            ca_certificate: generated_ca.then(|| state_dir.join("tls").join("ca.pem")),
            mailboxes: s.config().mailbox_addresses(),
        }
    }

    /// The addresses for people.
    fn text(&self) -> String {
        let or = |a: &Option<String>, off: &str| a.clone().unwrap_or_else(|| off.into());
        let mut o = format!("simulated tenant `{}` ready\n", self.tenant);
        o += &format!("  smtp (STARTTLS)  {}\n", self.smtp);
        o += &format!(
            "  smtps (implicit) {}\n",
            or(&self.smtps, "disabled (tls.enabled = false)")
        );
        o += &format!(
            "  imap (STARTTLS)  {}\n",
            or(&self.imap, "disabled (imap.enabled = false)")
        );
        if let Some(a) = &self.imaps {
            o += &format!("  imaps (implicit) {a}\n");
        }
        o += &format!("  admin API        {}\n", self.admin_url);
        o += &format!("  maildir root     {}\n", self.maildir_root.display());
        o += &format!("  message trace    {}\n", self.trace.display());
        if let Some(ca) = &self.ca_certificate {
            o += &format!("  CA certificate   {}\n", ca.display());
        }
        o += &format!("  mailboxes        {}\n", self.mailboxes.join(", "));
        o + "Ctrl-C to stop.\n"
    }
}

/// Runs the simulator: prints its addresses, serves until asked to stop, then drains.
pub fn sim(a: SimArgs) -> Result<ExitCode, CliError> {
    let mut cfg = match &a.config {
        Some(p) => TenantConfig::load(p)?,
        None => TenantConfig::default(),
    };
    ListenOverrides {
        smtp_port: a.smtp_port,
        smtps_port: a.smtps_port,
        admin_port: a.admin_port,
        imap_port: a.imap_port,
        imaps_port: a.imaps_port,
        address: a.listen,
    }
    .apply(&mut cfg);
    runtime()?.block_on(async {
        let s = sim::start(cfg, &a.state_dir).await?;
        let ready = Ready::of(&s, &a.state_dir);
        out::emit(a.json.json, &ready, || ready.text())?;
        mailharness::signal::stop_requested().await;
        // With --json, stdout holds the one document; what follows is for people, on stderr.
        let say = |t: &str| {
            if a.json.json {
                out::note(t);
                Ok(())
            } else {
                out::line(t)
            }
        };
        say("stopping: delivering queued messages...")?;
        let st = s.shutdown_with_stats().await?;
        say(&format!(
            "stopped: {} sessions, {} accepted, {} delivered, {} failed",
            st.sessions, st.accepted, st.delivered, st.delivery_failed
        ))?;
        Ok(ExitCode::SUCCESS)
    })
}
