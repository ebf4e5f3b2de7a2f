//! IMAP access to the simulated tenant's mailboxes, the way Exchange Online serves them.
//!
//! An IMAP4rev1 server over the simulator's Maildirs (`harness/sim/store.rs`): a plain listener
//! offering STARTTLS and an implicit-TLS listener, both on loopback, sharing the front end's
//! certificate. LOGIN and `AUTHENTICATE PLAIN` check mailbox passwords, `AUTHENTICATE XOAUTH2`
//! checks bearer tokens; both come from environment variables or files named in the tenant
//! file, never from the file itself. Folders carry Exchange's names and SPECIAL-USE flags
//! (reference "Reading the test mailboxes"). Behaviour and choices are documented in
//! `scenarios/SIMULATOR.md`, section "IMAP".
//!
//! The server runs on its own thread and runtime, like the SMTP front end, so a slow mailbox
//! scan never delays SMTP sessions.

pub mod folder;
pub mod parse;
pub mod responses;
mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::config::TenantConfig;
use super::SimError;
use crate::vocab::HumanDuration;

/// How long shutdown waits for sessions to receive their BYE.
/// RFC 3501 §5.4: an inactivity autologout timer must be at least 30 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The `[imap]` table of the tenant file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapConfig {
    /// Run the IMAP listeners.
    pub enabled: bool,
    /// Environment variable holding bearer tokens accepted for every mailbox (like an app-only
    /// token with `IMAP.AccessAsApp` and FullAccess on each mailbox); whitespace- or comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_tokens_env: Option<String>,
    /// File holding such tokens, one per line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_tokens_file: Option<PathBuf>,
    /// Inactivity before the server says BYE (RFC 3501 autologout; at least 30 minutes there).
    pub idle_timeout: HumanDuration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            enabled: true,
            app_tokens_env: None,
            app_tokens_file: None,
            idle_timeout: HumanDuration(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

impl ImapConfig {
    /// Checks the table on its own.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.idle_timeout.0 < Duration::from_secs(1) {
            return Err(SimError::Config(
                "imap.idle_timeout: must be at least 1s".into(),
            ));
        }
        if self.app_tokens_env.as_deref() == Some("") {
            return Err(SimError::Config(
                "imap.app_tokens_env: give an environment variable name".into(),
            ));
        }
        Ok(())
    }
}

/// A password or token: compared in constant time, never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(v: impl Into<Vec<u8>>) -> Self {
        Secret(v.into())
    }

    /// Equality that takes as long whatever the first differing byte (length still shows).
    pub fn matches(&self, other: &[u8]) -> bool {
        if self.0.len() != other.len() {
            return false;
        }
        self.0
            .iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What one mailbox accepts.
#[derive(Debug, Default)]
pub struct MailboxAuth {
    /// The password for LOGIN / AUTHENTICATE PLAIN, if any.
    pub password: Option<Secret>,
    /// Bearer tokens for XOAUTH2 that only this mailbox accepts.
    pub tokens: Vec<Secret>,
}

/// Every credential the server accepts, resolved from env vars and files at start.
#[derive(Debug, Default)]
pub struct Credentials {
    /// Lower-cased address → its secrets.
    pub mailboxes: HashMap<String, MailboxAuth>,
    /// Tokens accepted for every mailbox.
    pub app_tokens: Vec<Secret>,
}

fn read_env(field: &str, var: &str) -> Result<String, SimError> {
    std::env::var(var).map_err(|e| {
        SimError::Config(format!(
            "{field}: environment variable {var} is {}",
            match e {
                std::env::VarError::NotPresent => "not set",
                std::env::VarError::NotUnicode(_) => "not valid UTF-8",
            }
        ))
    })
}

fn read_file(field: &str, path: &Path) -> Result<String, SimError> {
    std::fs::read_to_string(path)
        .map_err(|e| SimError::io(format!("{field}: reading {}", path.display()), e))
}

/// Splits a token list (tokens never contain whitespace or commas).
fn tokens(text: &str) -> Vec<Secret> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .collect()
}

impl Credentials {
    /// Reads every configured secret; a named variable that is unset or a file that cannot be
    /// read is an error naming the field, never showing a value.
    pub fn resolve(cfg: &TenantConfig) -> Result<Self, SimError> {
        let mut c = Credentials::default();
        for m in &cfg.mailboxes {
            let field = |f: &str| format!("mailboxes[{}].{f}", m.address);
            let mut auth = MailboxAuth::default();
            let password = match (&m.password_env, &m.password_file) {
                (Some(_), Some(_)) => {
                    return Err(SimError::Config(format!(
                        "{}: give password_env or password_file, not both",
                        field("password_env")
                    )))
                }
                (Some(v), None) => Some(read_env(&field("password_env"), v)?),
                (None, Some(p)) => Some(
                    read_file(&field("password_file"), p)?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ),
                (None, None) => None,
            };
            if let Some(p) = password {
                if p.is_empty() {
                    return Err(SimError::Config(format!(
                        "{}: the password is empty",
                        field("password_env/password_file")
                    )));
                }
                auth.password = Some(Secret::new(p));
            }
            if let Some(v) = &m.xoauth2_tokens_env {
                auth.tokens
                    .extend(tokens(&read_env(&field("xoauth2_tokens_env"), v)?));
            }
            if let Some(p) = &m.xoauth2_tokens_file {
                auth.tokens
                    .extend(tokens(&read_file(&field("xoauth2_tokens_file"), p)?));
            }
            c.mailboxes.insert(m.address.to_ascii_lowercase(), auth);
        }
        if let Some(v) = &cfg.imap.app_tokens_env {
            c.app_tokens
                .extend(tokens(&read_env("imap.app_tokens_env", v)?));
        }
        if let Some(p) = &cfg.imap.app_tokens_file {
            c.app_tokens
                .extend(tokens(&read_file("imap.app_tokens_file", p)?));
        }
        Ok(c)
    }

    /// Whether `password` opens `address`'s mailbox.
    pub fn check_password(&self, address: &str, password: &[u8]) -> bool {
        self.mailboxes
            .get(&address.to_ascii_lowercase())
            .and_then(|m| m.password.as_ref())
            .is_some_and(|p| p.matches(password))
    }

    /// Whether the bearer `token` opens `address`'s mailbox.
    pub fn check_token(&self, address: &str, token: &[u8]) -> bool {
        let Some(m) = self.mailboxes.get(&address.to_ascii_lowercase()) else {
            return false;
        };
        // Check every candidate so timing does not tell which list holds it.
        let mut ok = false;
        for t in m.tokens.iter().chain(&self.app_tokens) {
            ok |= t.matches(token);
        }
        ok
    }
}

/// State shared by every IMAP session.
pub(crate) struct ImapShared {
    pub(crate) maildir_root: PathBuf,
    pub(crate) credentials: Credentials,
    pub(crate) registry: folder::Registry,
    pub(crate) tls: Option<TlsAcceptor>,
    /// The back-end host name Exchange puts (base64 UTF-16) in its greeting.
    pub(crate) server_name: String,
    pub(crate) idle_timeout: Duration,
}

/// Bound but not yet running listeners (see [`prepare`]).
pub struct Prepared {
    shared: Arc<ImapShared>,
    imap: TcpSocket,
    imaps: Option<TcpSocket>,
    imap_addr: SocketAddr,
    imaps_addr: Option<SocketAddr>,
}

/// The running IMAP server: its addresses and thread.
pub struct ImapServer {
    /// The plain/STARTTLS listener.
    pub imap_addr: SocketAddr,
    /// The implicit-TLS listener (`None` when TLS is disabled).
    pub imaps_addr: Option<SocketAddr>,
    thread: std::thread::JoinHandle<()>,
}

impl ImapServer {
    /// Waits for the server thread to end (after the shutdown signal).
    pub fn join(self) -> Result<(), SimError> {
        self.thread
            .join()
            .map_err(|_| SimError::Internal("the IMAP thread panicked".into()))
    }
}

/// Resolves credentials and binds the listeners; nothing is served until [`Prepared::spawn`].
pub fn prepare(
    cfg: &TenantConfig,
    maildir_root: &Path,
    tls: Option<TlsAcceptor>,
) -> Result<Prepared, SimError> {
    let credentials = Credentials::resolve(cfg)?;
    let listen = &cfg.listen;
    let imap = super::bind_socket(SocketAddr::from((listen.address, listen.imap_port)), "IMAP")?;
    let imaps = match &tls {
        Some(_) => Some(super::bind_socket(
            SocketAddr::from((listen.address, listen.imaps_port)),
            "IMAPS",
        )?),
        None => None,
    };
    let addr = |s: &TcpSocket, what: &str| {
        s.local_addr()
            .map_err(|e| SimError::io(format!("reading the {what} listener address"), e))
    };
    let imap_addr = addr(&imap, "IMAP")?;
    let imaps_addr = imaps.as_ref().map(|s| addr(s, "IMAPS")).transpose()?;
    Ok(Prepared {
        shared: Arc::new(ImapShared {
            maildir_root: maildir_root.to_path_buf(),
            credentials,
            registry: folder::Registry::default(),
            tls,
            server_name: cfg.front_end.trailer_host(),
            idle_timeout: cfg.imap.idle_timeout.0,
        }),
        imap,
        imaps,
        imap_addr,
        imaps_addr,
    })
}

impl Prepared {
    /// The plain/STARTTLS listener address.
    pub fn imap_addr(&self) -> SocketAddr {
        self.imap_addr
    }

    /// Starts serving on a thread of its own until `shutdown` turns true.
    pub async fn spawn(self, shutdown: watch::Receiver<bool>) -> Result<ImapServer, SimError> {
        let Prepared {
            shared,
            imap,
            imaps,
            imap_addr,
            imaps_addr,
        } = self;
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("sim-imap-worker")
                .enable_all()
                .build()
        };
        let thread = super::spawn_listeners(
            ("IMAP", "IMAPS"),
            runtime,
            (imap, imaps),
            shared,
            shutdown,
            session::serve_connection,
        )
        .await?;
        Ok(ImapServer {
            imap_addr,
            imaps_addr,
            thread,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_and_stay_hidden() {
        let s = Secret::new("hunter2");
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3") && !s.matches(b"hunter"));
        assert!(!format!("{s:?}").contains("hunter"));
        assert_eq!(tokens("a, b\nc ,,").len(), 3);
    }

    #[test]
    fn credentials_come_from_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let toks = dir.path().join("tokens");
        std::fs::write(&toks, "tok-a\ntok-b\n").unwrap();
        let mut cfg = TenantConfig::default();
        cfg.mailboxes[0].password_file = Some(pw);
        cfg.imap.app_tokens_file = Some(toks);
        let c = Credentials::resolve(&cfg).unwrap();
        assert!(c.check_password("QA1@contoso.example", b"s3cret"));
        assert!(!c.check_password("qa2@contoso.example", b"s3cret"));
        assert!(c.check_token("qa2@contoso.example", b"tok-b"));
        assert!(!c.check_token("nobody@contoso.example", b"tok-b"));
        cfg.mailboxes[1].password_env = Some("MAILHARNESS_TEST_SURELY_UNSET_VAR".into());
        let e = Credentials::resolve(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("MAILHARNESS_TEST_SURELY_UNSET_VAR") && e.contains("not set"),
            "{e}"
        );
    }
}
