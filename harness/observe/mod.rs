//! Observation over IMAP: find every accepted message of a run, where it landed (INBOX or the
//! `\Junk` folder), how long it took, and what the receiver stamped on it.
//!
//! The flow per mailbox: LIST to find INBOX and the SPECIAL-USE `\Junk` folder (never by name),
//! EXAMINE (read-only), `UID SEARCH HEADER X-Harness-Run <run>` (or `SINCE` plus a header fetch
//! where the server can't search custom headers), then batched `UID FETCH` of UID, INTERNALDATE
//! and `BODY.PEEK[HEADER.FIELDS (…)]`. Found messages match attempt records by Message-ID (and
//! `X-Harness-Seq` when a copy has no Message-ID). Polling repeats until every accepted attempt
//! is found or the deadline passes. Clean-up deletes exactly this run's UIDs.

pub mod headers;
pub mod imap;
pub mod sim;
pub mod tls;
pub mod token;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Serialize;

pub use imap::{ConnectOptions, FetchedHeaders, Folder, FolderStatus, ImapClient, Status};
pub use tls::tls_config;
pub use token::{Secret, SecretSource, TokenProvider, TokenSource};

use crate::record::{
    AttemptRecord, Evidence, FolderKind, ObservationRecord, ObservationStatus, RECORD_SCHEMA,
};
use crate::scenario::target::{ImapAuth, ImapTls, TargetFile};
use crate::vocab::OutcomeClass;

/// The run header every harness message carries.
pub const RUN_HEADER: &str = "X-Harness-Run";
/// The attempt-sequence header every harness message carries.
pub const SEQ_HEADER: &str = "X-Harness-Seq";
/// Default per-response IMAP timeout.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything that can stop an observation. Secrets never appear in these messages.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The target or run directory is unusable (exit 2).
    #[error("configuration: {0}")]
    Config(String),
    /// A TCP connection failed.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS with {server} failed: {detail}")]
    Tls {
        /// `host:port`.
        server: String,
        /// rustls's description.
        detail: String,
    },
    /// A server did not answer in time.
    #[error("timed out {0}")]
    Timeout(String),
    /// I/O failed on an established connection or a file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server broke the protocol or sent something unparsable.
    #[error("IMAP protocol error: {0}")]
    Protocol(String),
    /// The server refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Getting an XOAUTH2 token failed.
    #[error("cannot get an XOAUTH2 token: {0}")]
    Token(String),
    /// The simulator's IMAP server could not serve a run's mailboxes again.
    #[error("serving the simulator's mailboxes: {0}")]
    Simulator(#[source] crate::sim::SimError),
    /// A command completed with NO or BAD.
    #[error("IMAP server {server}: {command} failed ({status:?}): {text}")]
    Command {
        /// `host:port`.
        server: String,
        /// The command's name (never its arguments' secrets).
        command: String,
        /// NO or BAD.
        status: Status,
        /// The server's text.
        text: String,
    },
}

impl ObserveError {
    /// Whether this is a configuration problem (exit 2) rather than an infrastructure one (exit 3).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ObserveError::Config(_) | ObserveError::Simulator(crate::sim::SimError::Config(_))
        )
    }

    /// Whether retrying on the next poll cannot help (bad configuration or credentials).
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            ObserveError::Config(_)
                | ObserveError::Auth(_)
                | ObserveError::Token(_)
                | ObserveError::Tls { .. }
        )
    }
}

/// One test mailbox and how to log in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxAccess {
    /// The address mail is sent to (matched against attempt recipients, case-insensitively).
    pub address: String,
    /// The IMAP user name (the address unless the target says otherwise).
    pub login: String,
    /// Where the LOGIN password lives (LOGIN auth only).
    pub password: Option<SecretSource>,
}

/// How the harness authenticates to the IMAP server.
#[derive(Debug, Clone)]
pub enum AuthMethod {
    /// LOGIN with each mailbox's password.
    Login,
    /// AUTHENTICATE XOAUTH2 with tokens from a shared provider.
    Xoauth2(Arc<TokenProvider>),
}

/// The IMAP side of a target, resolved: where to connect, how to log in, which mailboxes.
#[derive(Debug, Clone)]
pub struct ImapTarget {
    /// Connection settings.
    pub connect: ConnectOptions,
    /// Authentication.
    pub auth: AuthMethod,
    /// The test mailboxes.
    pub mailboxes: Vec<MailboxAccess>,
}

impl ImapTarget {
    /// Resolves the `[imap]` and `[[mailboxes]]` tables of a target file (secrets are not read
    /// yet: only where they live).
    pub fn from_target(t: &TargetFile) -> Result<ImapTarget, ObserveError> {
        let imap = t.imap.as_ref().map(|s| s.get_ref()).ok_or_else(|| {
            ObserveError::Config(format!(
                "target {:?} has no [imap] table: there is no way to read its mailboxes",
                t.name.get_ref()
            ))
        })?;
        let host = imap.host.get_ref().clone();
        if imap.tls == ImapTls::Plain && !token::is_loopback_host(&host) {
            return Err(ObserveError::Config(format!(
                "[imap] tls = \"plain\" is allowed only for loopback hosts, not {host:?}"
            )));
        }
        let port = imap.port.unwrap_or(match imap.tls {
            ImapTls::Implicit => 993,
            _ => 143,
        });
        let tls = tls_config(imap.ca_file.as_deref().map(Path::new))?;
        let auth = match imap.auth.get_ref() {
            ImapAuth::Login => AuthMethod::Login,
            ImapAuth::Xoauth2 => {
                let o = imap.oauth.as_ref().map(|o| o.get_ref()).ok_or_else(|| {
                    ObserveError::Config(
                        "[imap] auth = \"xoauth2\" needs an [imap.oauth] table".into(),
                    )
                })?;
                AuthMethod::Xoauth2(Arc::new(TokenProvider::new(
                    TokenSource::from_settings(o)?,
                    tls.clone(),
                )))
            }
        };
        let mut mailboxes = Vec::new();
        for m in &t.mailboxes {
            let m = m.get_ref();
            let address = m.address.get_ref().clone();
            if m.password.is_some() {
                return Err(ObserveError::Config(format!(
                    "mailbox {address}: passwords never live in target files; use password_env or password_file"
                )));
            }
            let password = match (&m.password_env, &m.password_file) {
                (Some(v), None) => Some(SecretSource::Env(v.clone())),
                (None, Some(p)) => Some(SecretSource::File(PathBuf::from(p))),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(ObserveError::Config(format!(
                        "mailbox {address}: give password_env or password_file, not both"
                    )))
                }
            };
            if matches!(auth, AuthMethod::Login) && password.is_none() {
                return Err(ObserveError::Config(format!(
                    "mailbox {address}: LOGIN needs password_env or password_file"
                )));
            }
            mailboxes.push(MailboxAccess {
                login: m.login.clone().unwrap_or_else(|| address.clone()),
                address,
                password,
            });
        }
        if mailboxes.is_empty() {
            return Err(ObserveError::Config(
                "the target lists no [[mailboxes]]".into(),
            ));
        }
        Ok(ImapTarget {
            connect: ConnectOptions {
                host,
                port,
                tls: imap.tls,
                tls_config: (imap.tls != ImapTls::Plain).then_some(tls),
                timeout: DEFAULT_COMMAND_TIMEOUT,
            },
            auth,
            mailboxes,
        })
    }

    /// Connects and authenticates as one mailbox. Credentials are read now, not earlier.
    pub async fn open(&self, mailbox: &MailboxAccess) -> Result<ImapClient, ObserveError> {
        // Read the credential before connecting, so a missing secret is a config error, fast.
        let password = match (&self.auth, &mailbox.password) {
            (AuthMethod::Login, Some(src)) => {
                Some(src.read(&format!("password of mailbox {}", mailbox.address))?)
            }
            (AuthMethod::Login, None) => {
                return Err(ObserveError::Config(format!(
                    "mailbox {}: LOGIN needs password_env or password_file",
                    mailbox.address
                )))
            }
            _ => None,
        };
        let mut client = ImapClient::connect(&self.connect).await?;
        match &self.auth {
            AuthMethod::Login => {
                let pw = password.ok_or_else(|| ObserveError::Config("no password".into()))?;
                client.login(&mailbox.login, &pw).await?;
            }
            AuthMethod::Xoauth2(provider) => {
                let token = provider.token().await?;
                if let Err(e) = client.authenticate_xoauth2(&mailbox.login, &token).await {
                    // A rejected token may be revoked or stale: don't reuse it next time.
                    provider.invalidate().await;
                    return Err(e);
                }
            }
        }
        Ok(client)
    }
}

/// How to find the run's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SearchMode {
    /// `SEARCH HEADER`, falling back to `SINCE` when the server refuses it.
    #[default]
    Auto,
    /// `SEARCH HEADER` only.
    Header,
    /// `SEARCH SINCE` plus a header fetch and filter (servers that don't index custom headers).
    Since,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SearchMode::Auto),
            "header" => Ok(SearchMode::Header),
            "since" => Ok(SearchMode::Since),
            _ => Err(format!(
                "unknown search mode {s:?}: expected auto, header or since"
            )),
        }
    }
}

/// Timing and behaviour of one observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserveOptions {
    /// How long to wait for accepted mail before calling it missing (zero: one pass).
    pub deadline: Duration,
    /// Pause between polls.
    pub poll_interval: Duration,
    /// Delete this run's messages afterwards.
    pub cleanup: bool,
    /// How to search.
    pub search: SearchMode,
}

impl Default for ObserveOptions {
    fn default() -> Self {
        ObserveOptions {
            deadline: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            cleanup: false,
            search: SearchMode::Auto,
        }
    }
}

impl ObserveOptions {
    /// The target's `[observe]` table over the defaults.
    pub fn from_target(t: &TargetFile) -> ObserveOptions {
        let mut o = ObserveOptions::default();
        if let Some(s) = &t.observe {
            if let Some(d) = s.deadline {
                o.deadline = d.0;
            }
            if let Some(p) = s.poll_interval {
                o.poll_interval = p.0;
            }
            o.cleanup = s.cleanup;
        }
        o
    }
}

/// Counts for one folder kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FolderCounts {
    /// Accepted messages found there.
    pub found: usize,
    /// Stray run messages found there.
    pub anomaly: usize,
}

/// What clean-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupSummary {
    /// Messages deleted (UIDs expunged).
    pub deleted: usize,
    /// What failed (clean-up failures never fail the observation).
    pub errors: Vec<String>,
}

/// The result of one observation, for people and for the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObserveSummary {
    /// The run.
    pub run_id: String,
    /// Copies expected: accepted attempts × their recipients that are test mailboxes.
    pub expected: usize,
    /// Expected copies found.
    pub found: usize,
    /// Expected copies not found by the deadline.
    pub missing: usize,
    /// Run messages found that no accepted attempt explains (or duplicates).
    pub anomalies: usize,
    /// Found and anomaly counts by folder kind (`inbox`, `junk`, `other`).
    pub by_folder: BTreeMap<String, FolderCounts>,
    /// Accepted attempts none of whose recipients is a configured test mailbox.
    pub unobservable: Vec<String>,
    /// Mailboxes searched with the SINCE fallback.
    pub since_fallback: Vec<String>,
    /// Things worth knowing (no `\Junk` folder, …).
    pub warnings: Vec<String>,
    /// Clean-up, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<CleanupSummary>,
    /// Poll rounds made.
    pub polls: u32,
    /// Wall time of the observation.
    pub elapsed_ms: f64,
}

impl ObserveSummary {
    /// Whether every expected copy was found.
    pub fn all_found(&self) -> bool {
        self.missing == 0
    }

    /// A short human-readable summary.
    pub fn render_text(&self) -> String {
        let mut s = format!(
            "run {}: {} expected, {} found, {} missing, {} anomalies ({} polls, {:.1}s)\n",
            self.run_id,
            self.expected,
            self.found,
            self.missing,
            self.anomalies,
            self.polls,
            self.elapsed_ms / 1000.0
        );
        for (kind, c) in &self.by_folder {
            s.push_str(&format!(
                "  {kind:<6} found {:>6}  anomaly {:>4}\n",
                c.found, c.anomaly
            ));
        }
        if !self.unobservable.is_empty() {
            s.push_str(&format!(
                "  {} accepted attempts went to no configured test mailbox\n",
                self.unobservable.len()
            ));
        }
        for m in &self.since_fallback {
            s.push_str(&format!(
                "  note: {m} does not search custom headers; used SINCE + header fetch\n"
            ));
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        if let Some(c) = &self.cleanup {
            s.push_str(&format!("  clean-up: {} messages deleted\n", c.deleted));
            for e in &c.errors {
                s.push_str(&format!("  clean-up error: {e}\n"));
            }
        }
        s
    }
}

/// Records and summary of one observation.
#[derive(Debug, Clone)]
pub struct Observation {
    /// One record per expected copy (found or missing), then anomalies.
    pub records: Vec<ObservationRecord>,
    /// The counts.
    pub summary: ObserveSummary,
}

/// A run message seen in a mailbox.
#[derive(Debug, Clone)]
struct FoundMsg {
    mailbox: usize,
    folder: usize,
    uidvalidity: Option<u32>,
    uid: u32,
    internal_date: Option<DateTime<FixedOffset>>,
    received_date: Option<DateTime<FixedOffset>>,
    seq: Option<String>,
    message_id: Option<String>,
    evidence: Evidence,
}

/// One folder being watched.
#[derive(Debug)]
struct FolderState {
    name: String,
    kind: FolderKind,
    uidvalidity: Option<u32>,
    /// UIDs already fetched (whether or not they were run messages).
    seen: HashSet<u32>,
}

/// One mailbox being watched.
struct Session {
    index: usize,
    client: Option<ImapClient>,
    folders: Option<Vec<FolderState>>,
    since_mode: bool,
    found: Vec<FoundMsg>,
    polled_ok: bool,
    last_error: Option<ObserveError>,
}

/// An expected copy: an accepted attempt in one of its recipients' mailboxes.
#[derive(Debug, Clone, Copy)]
struct Expect {
    attempt: usize,
    mailbox: usize,
}

/// Observes one run: polls until every accepted attempt is found or the deadline passes, then
/// (optionally) cleans up. Attempts of other runs are ignored.
pub async fn observe(
    target: &ImapTarget,
    run_id: &str,
    attempts: &[AttemptRecord],
    opts: &ObserveOptions,
) -> Result<Observation, ObserveError> {
    let started = Instant::now();
    let mut summary = ObserveSummary::empty(run_id);
    let expects = expected_copies(target, run_id, attempts, &mut summary.unobservable);
    summary.expected = expects.len();
    let mut sessions: Vec<Session> = (0..target.mailboxes.len())
        .map(|index| Session {
            index,
            client: None,
            folders: None,
            since_mode: opts.search == SearchMode::Since,
            found: Vec::new(),
            polled_ok: false,
            last_error: None,
        })
        .collect();
    let mut poll = Poll {
        target,
        run_id,
        since: since_date(attempts, run_id),
        opts,
        summary,
    };
    let matching = match poll
        .until_found(&expects, attempts, &mut sessions, started + opts.deadline)
        .await
    {
        Ok(m) => m,
        Err(e) => {
            close_all(&mut sessions).await;
            return Err(e);
        }
    };
    let mut summary = poll.summary;
    let records = build_records(
        target,
        run_id,
        attempts,
        &expects,
        &sessions,
        &matching,
        &mut summary,
    );

    if opts.cleanup {
        summary.cleanup = Some(cleanup(target, &mut sessions, run_id).await);
    }
    close_all(&mut sessions).await;
    summary.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Observation { records, summary })
}

impl ObserveSummary {
    /// Nothing expected, found or polled yet.
    fn empty(run_id: &str) -> Self {
        ObserveSummary {
            run_id: run_id.to_string(),
            expected: 0,
            found: 0,
            missing: 0,
            anomalies: 0,
            by_folder: BTreeMap::new(),
            unobservable: Vec::new(),
            since_fallback: Vec::new(),
            warnings: Vec::new(),
            cleanup: None,
            polls: 0,
            elapsed_ms: 0.0,
        }
    }
}

/// The copies to look for, in attempt order: each accepted attempt of the run in each of its
/// recipients' test mailboxes. Attempts that went to no test mailbox are added to `unobservable`.
fn expected_copies(
    target: &ImapTarget,
    run_id: &str,
    attempts: &[AttemptRecord],
    unobservable: &mut Vec<String>,
) -> Vec<Expect> {
    let mut expects = Vec::new();
    for (ai, a) in attempts.iter().enumerate() {
        if a.run_id != run_id || a.outcome != OutcomeClass::Accepted {
            continue;
        }
        let mut any = false;
        for (mi, m) in target.mailboxes.iter().enumerate() {
            if a.recipients
                .iter()
                .any(|r| r.trim().eq_ignore_ascii_case(&m.address))
            {
                expects.push(Expect {
                    attempt: ai,
                    mailbox: mi,
                });
                any = true;
            }
        }
        if !any {
            unobservable.push(a.attempt_id.clone());
        }
    }
    expects
}

/// The SINCE fallback's date: a day before the run's earliest attempt, since INTERNALDATE dates
/// are in the server's time zone.
fn since_date(attempts: &[AttemptRecord], run_id: &str) -> NaiveDate {
    attempts
        .iter()
        .filter(|a| a.run_id == run_id)
        .map(|a| a.started_at)
        .min()
        .unwrap_or_else(Utc::now)
        .date_naive()
        .pred_opt()
        .unwrap_or(NaiveDate::MIN)
}

/// What every poll of one observation shares.
struct Poll<'a> {
    target: &'a ImapTarget,
    run_id: &'a str,
    since: NaiveDate,
    opts: &'a ObserveOptions,
    summary: ObserveSummary,
}

impl Poll<'_> {
    /// Polls, round after round, the mailboxes still missing a copy (all of them the first time),
    /// until every copy is found or `deadline` passes. A permanent error ends it at once; so does
    /// a mailbox that could never be read, since it cannot support "missing". The caller closes
    /// the sessions after an error.
    async fn until_found(
        &mut self,
        expects: &[Expect],
        attempts: &[AttemptRecord],
        sessions: &mut [Session],
        deadline: Instant,
    ) -> Result<Matching, ObserveError> {
        let matching = loop {
            self.summary.polls += 1;
            let pending: HashSet<usize> = if self.summary.polls == 1 {
                (0..sessions.len()).collect()
            } else {
                let m = match_found(expects, attempts, sessions);
                expects
                    .iter()
                    .zip(&m.expect_found)
                    .filter(|(_, f)| f.is_none())
                    .map(|(e, _)| e.mailbox)
                    .collect()
            };
            for sess in sessions.iter_mut().filter(|s| pending.contains(&s.index)) {
                self.poll_once(sess).await?;
            }
            let matching = match_found(expects, attempts, sessions);
            let all_found = matching.expect_found.iter().all(Option::is_some);
            let now = Instant::now();
            if all_found || now >= deadline {
                break matching;
            }
            tokio::time::sleep(self.opts.poll_interval.min(deadline - now)).await;
        };
        for sess in sessions.iter_mut() {
            if !sess.polled_ok {
                if let Some(e) = sess.last_error.take() {
                    return Err(e);
                }
            }
        }
        Ok(matching)
    }

    /// Polls one mailbox; a passing failure is kept for later and retried next round.
    async fn poll_once(&mut self, sess: &mut Session) -> Result<(), ObserveError> {
        match poll_session(
            self.target,
            sess,
            self.run_id,
            self.since,
            self.opts,
            &mut self.summary,
        )
        .await
        {
            Ok(()) => {
                sess.polled_ok = true;
                sess.last_error = None;
            }
            Err(e) if e.is_permanent() => return Err(e),
            Err(e) => {
                tracing::warn!(mailbox = %self.target.mailboxes[sess.index].address, error = %e, "poll failed; retrying next round");
                // The connection may be in any state: start over next round.
                sess.client = None;
                sess.last_error = Some(e);
            }
        }
        Ok(())
    }
}

async fn close_all(sessions: &mut [Session]) {
    for s in sessions {
        if let Some(c) = s.client.take() {
            c.logout().await;
        }
    }
}

/// One poll of one mailbox: (re)connect, find folders, search, fetch new UIDs.
async fn poll_session(
    target: &ImapTarget,
    sess: &mut Session,
    run_id: &str,
    since: NaiveDate,
    opts: &ObserveOptions,
    summary: &mut ObserveSummary,
) -> Result<(), ObserveError> {
    let mailbox = &target.mailboxes[sess.index];
    if sess.client.is_none() {
        sess.client = Some(target.open(mailbox).await?);
    }
    let Some(client) = sess.client.as_mut() else {
        return Err(ObserveError::Protocol("no IMAP session".into()));
    };
    if sess.folders.is_none() {
        sess.folders = Some(watched_folders(client, mailbox, summary).await?);
    }
    let folders = sess
        .folders
        .as_mut()
        .ok_or_else(|| ObserveError::Protocol("folder list missing".into()))?;
    for (fi, folder) in folders.iter_mut().enumerate() {
        let status = client.examine(&folder.name).await?;
        if status.uidvalidity != folder.uidvalidity {
            // New UIDVALIDITY: every UID seen before is meaningless now.
            folder.uidvalidity = status.uidvalidity;
            folder.seen.clear();
            sess.found.retain(|m| m.folder != fi);
        }
        if status.exists == 0 {
            continue;
        }
        let uids = if sess.since_mode {
            search_since(client, since).await?
        } else {
            match client.uid_search_header(RUN_HEADER, run_id).await? {
                Ok(u) => u,
                Err(done) if opts.search == SearchMode::Auto => {
                    tracing::info!(mailbox = %mailbox.address, reply = %done.text, "SEARCH HEADER refused; falling back to SINCE");
                    sess.since_mode = true;
                    summary.since_fallback.push(mailbox.address.clone());
                    search_since(client, since).await?
                }
                Err(done) => {
                    return Err(ObserveError::Command {
                        server: client.server().to_string(),
                        command: "UID SEARCH HEADER".into(),
                        status: done.status,
                        text: done.text,
                    })
                }
            }
        };
        let new: Vec<u32> = uids
            .into_iter()
            .filter(|u| !folder.seen.contains(u))
            .collect();
        if !new.is_empty() {
            let at = FolderAt {
                mailbox: sess.index,
                folder: fi,
            };
            fetch_run_messages(client, &new, run_id, at, folder, &mut sess.found).await?;
        }
    }
    Ok(())
}

/// The folders to watch in a mailbox: INBOX, and every selectable folder with the SPECIAL-USE
/// `\Junk` flag (a warning when there is none).
async fn watched_folders(
    client: &mut ImapClient,
    mailbox: &MailboxAccess,
    summary: &mut ObserveSummary,
) -> Result<Vec<FolderState>, ObserveError> {
    let list = client.list().await?;
    let mut folders = Vec::new();
    if let Some(inbox) = list.iter().find(|f| f.name.eq_ignore_ascii_case("INBOX")) {
        folders.push(new_folder(&inbox.name, FolderKind::Inbox));
    } else {
        // INBOX always exists (RFC 3501 §5.1) even if LIST omits it.
        folders.push(new_folder("INBOX", FolderKind::Inbox));
    }
    let junk: Vec<&Folder> = list
        .iter()
        .filter(|f| f.has_flag("\\Junk") && !f.has_flag("\\Noselect"))
        .collect();
    if junk.is_empty() {
        summary.warnings.push(format!(
            "mailbox {}: no folder carries the SPECIAL-USE \\Junk flag; only INBOX is searched",
            mailbox.address
        ));
    }
    for f in junk {
        if !f.name.eq_ignore_ascii_case("INBOX") {
            folders.push(new_folder(&f.name, FolderKind::Junk));
        }
    }
    Ok(folders)
}

/// Which session and which of its folders a message was found in.
#[derive(Debug, Clone, Copy)]
struct FolderAt {
    mailbox: usize,
    folder: usize,
}

/// Fetches the headers of `uids` in the folder open on `client`, marks them seen, and adds the
/// run's messages among them to `found`.
async fn fetch_run_messages(
    client: &mut ImapClient,
    uids: &[u32],
    run_id: &str,
    at: FolderAt,
    folder: &mut FolderState,
    found: &mut Vec<FoundMsg>,
) -> Result<(), ObserveError> {
    let seen = &mut folder.seen;
    let uidvalidity = folder.uidvalidity;
    client
        .uid_fetch_headers(uids, headers::FETCH_FIELDS, |m| {
            seen.insert(m.uid);
            let fields = headers::Fields::parse(m.header);
            // SEARCH HEADER is a substring match, and SINCE matches everything: compare exactly.
            if fields.get(RUN_HEADER).map(str::trim) != Some(run_id) {
                return Ok(());
            }
            let evidence = headers::evidence(&fields);
            found.push(FoundMsg {
                mailbox: at.mailbox,
                folder: at.folder,
                uidvalidity,
                uid: m.uid,
                internal_date: m.internal_date,
                received_date: evidence
                    .received
                    .as_deref()
                    .and_then(headers::received_date),
                seq: fields.get(SEQ_HEADER).map(|s| s.trim().to_string()),
                message_id: fields.get("Message-ID").map(headers::normalize_message_id),
                evidence,
            });
            Ok(())
        })
        .await
}

fn new_folder(name: &str, kind: FolderKind) -> FolderState {
    FolderState {
        name: name.to_string(),
        kind,
        uidvalidity: None,
        seen: HashSet::new(),
    }
}

async fn search_since(client: &mut ImapClient, since: NaiveDate) -> Result<Vec<u32>, ObserveError> {
    match client.uid_search_since(since).await? {
        Ok(u) => Ok(u),
        Err(done) => Err(ObserveError::Command {
            server: client.server().to_string(),
            command: "UID SEARCH SINCE".into(),
            status: done.status,
            text: done.text,
        }),
    }
}

/// The matching of found messages to expected copies.
struct Matching {
    /// For each expectation, the (session, found index) that satisfies it.
    expect_found: Vec<Option<(usize, usize)>>,
    /// Found messages nothing explains: (session, found index, attempt index if a duplicate).
    anomalies: Vec<(usize, usize, Option<usize>)>,
}

fn match_found(expects: &[Expect], attempts: &[AttemptRecord], sessions: &[Session]) -> Matching {
    let mut by_mid: HashMap<(usize, String), Vec<usize>> = HashMap::new();
    let mut by_seq: HashMap<(usize, &str), Vec<usize>> = HashMap::new();
    for (ei, e) in expects.iter().enumerate() {
        let a = &attempts[e.attempt];
        by_mid
            .entry((e.mailbox, headers::normalize_message_id(&a.message_id)))
            .or_default()
            .push(ei);
        by_seq
            .entry((e.mailbox, a.seq.as_str()))
            .or_default()
            .push(ei);
    }
    let mut expect_found = vec![None; expects.len()];
    let mut anomalies = Vec::new();
    for (si, sess) in sessions.iter().enumerate() {
        // UID order within folder order: the first copy wins, later ones are duplicates.
        let mut order: Vec<usize> = (0..sess.found.len()).collect();
        order.sort_by_key(|&i| (sess.found[i].folder, sess.found[i].uid));
        for fi in order {
            let m = &sess.found[fi];
            let candidates = match &m.message_id {
                Some(mid) => by_mid.get(&(m.mailbox, mid.clone())),
                // No Message-ID on the copy: fall back to the sequence header.
                None => m.seq.as_deref().and_then(|s| by_seq.get(&(m.mailbox, s))),
            };
            let Some(candidates) = candidates else {
                anomalies.push((si, fi, None));
                continue;
            };
            if let Some(&ei) = candidates.iter().find(|&&ei| expect_found[ei].is_none()) {
                expect_found[ei] = Some((si, fi));
            } else {
                anomalies.push((si, fi, candidates.first().map(|&ei| expects[ei].attempt)));
            }
        }
    }
    Matching {
        expect_found,
        anomalies,
    }
}

/// Arrival time: INTERNALDATE (one-second resolution), unless the Received date is finer.
fn arrival(m: &FoundMsg) -> Option<DateTime<FixedOffset>> {
    let t = match (m.internal_date, m.received_date) {
        (Some(i), Some(r))
            if r.timestamp_subsec_nanos() != 0 && i.timestamp_subsec_nanos() == 0 =>
        {
            Some(r)
        }
        (Some(i), _) => Some(i),
        (None, r) => r,
    }?;
    // INTERNALDATE and RFC 5322 dates have whole seconds: the message arrived somewhere in
    // [t, t + 1s). Taking the end of that second makes the latency an upper bound, never
    // negative, which is the safe side for `latency_p95 <= …` checks.
    Some(if t.timestamp_subsec_nanos() == 0 {
        t + chrono::Duration::seconds(1)
    } else {
        t
    })
}

fn folder_kind_name(k: FolderKind) -> &'static str {
    match k {
        FolderKind::Inbox => "inbox",
        FolderKind::Junk => "junk",
        FolderKind::Other => "other",
    }
}

/// One record per expected copy (found or missing), then one per anomaly; counts them into
/// `summary`.
fn build_records(
    target: &ImapTarget,
    run_id: &str,
    attempts: &[AttemptRecord],
    expects: &[Expect],
    sessions: &[Session],
    matching: &Matching,
    summary: &mut ObserveSummary,
) -> Vec<ObservationRecord> {
    let now = Utc::now();
    let mut records = Vec::with_capacity(expects.len() + matching.anomalies.len());
    let record_of = |m: &FoundMsg, status, attempt: Option<&AttemptRecord>| {
        let folder = sessions[m.mailbox]
            .folders
            .as_ref()
            .and_then(|f| f.get(m.folder));
        let mailbox = &target.mailboxes[m.mailbox].address;
        found_record(run_id, mailbox, folder, m, status, attempt, now)
    };
    for (ei, e) in expects.iter().enumerate() {
        let a = &attempts[e.attempt];
        match matching.expect_found[ei] {
            Some((si, fi)) => {
                let m = &sessions[si].found[fi];
                let rec = record_of(m, ObservationStatus::Found, Some(a));
                if let Some(k) = rec.folder {
                    summary.folder_counts(k).found += 1;
                }
                summary.found += 1;
                records.push(rec);
            }
            None => {
                summary.missing += 1;
                let mailbox = &target.mailboxes[e.mailbox].address;
                records.push(missing_record(run_id, mailbox, a, now));
            }
        }
    }
    for &(si, fi, attempt) in &matching.anomalies {
        let m = &sessions[si].found[fi];
        let rec = record_of(m, ObservationStatus::Anomaly, attempt.map(|i| &attempts[i]));
        if let Some(k) = rec.folder {
            summary.folder_counts(k).anomaly += 1;
        }
        summary.anomalies += 1;
        records.push(rec);
    }
    records
}

impl ObserveSummary {
    /// The counts of one folder kind, started at zero.
    fn folder_counts(&mut self, k: FolderKind) -> &mut FolderCounts {
        self.by_folder
            .entry(folder_kind_name(k).to_string())
            .or_default()
    }
}

/// The record of a message found in `folder` of `mailbox`, with the attempt it is a copy of
/// (when known) for the latency.
fn found_record(
    run_id: &str,
    mailbox: &str,
    folder: Option<&FolderState>,
    m: &FoundMsg,
    status: ObservationStatus,
    attempt: Option<&AttemptRecord>,
    now: DateTime<Utc>,
) -> ObservationRecord {
    let accepted_at = attempt.map(|a| a.finished_at);
    let latency_ms = match (arrival(m), accepted_at) {
        (Some(arr), Some(acc)) => Some(
            (arr.with_timezone(&Utc) - acc)
                .num_microseconds()
                .map(|us| us as f64 / 1000.0)
                .unwrap_or(f64::NAN),
        )
        .filter(|v| v.is_finite()),
        _ => None,
    };
    ObservationRecord {
        schema: RECORD_SCHEMA,
        run_id: run_id.to_string(),
        seq: attempt.map(|a| a.seq.clone()).or_else(|| m.seq.clone()),
        attempt_id: attempt.map(|a| a.attempt_id.clone()),
        message_id: m.message_id.clone(),
        mailbox: mailbox.to_string(),
        status,
        folder: folder.map(|f| f.kind),
        folder_name: folder.map(|f| f.name.clone()),
        uidvalidity: m.uidvalidity,
        uid: Some(m.uid),
        internal_date: m.internal_date.map(|d| d.with_timezone(&Utc)),
        accepted_at,
        latency_ms,
        evidence: m.evidence.clone(),
        observed_at: now,
    }
}

/// The record of an expected copy not found in `mailbox` by the deadline.
fn missing_record(
    run_id: &str,
    mailbox: &str,
    a: &AttemptRecord,
    now: DateTime<Utc>,
) -> ObservationRecord {
    ObservationRecord {
        schema: RECORD_SCHEMA,
        run_id: run_id.to_string(),
        seq: Some(a.seq.clone()),
        attempt_id: Some(a.attempt_id.clone()),
        message_id: Some(a.message_id.clone()),
        mailbox: mailbox.to_string(),
        status: ObservationStatus::Missing,
        folder: None,
        folder_name: None,
        uidvalidity: None,
        uid: None,
        internal_date: None,
        accepted_at: Some(a.finished_at),
        latency_ms: None,
        evidence: Evidence::default(),
        observed_at: now,
    }
}

/// Deletes exactly the run's messages (found and anomalies) from each watched folder.
async fn cleanup(target: &ImapTarget, sessions: &mut [Session], run_id: &str) -> CleanupSummary {
    let mut out = CleanupSummary::default();
    for sess in sessions.iter_mut() {
        let address = target.mailboxes[sess.index].address.clone();
        let Some(folders) = sess.folders.as_ref() else {
            continue;
        };
        let mut per_folder: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for m in &sess.found {
            per_folder.entry(m.folder).or_default().push(m.uid);
        }
        if per_folder.is_empty() {
            continue;
        }
        if sess.client.is_none() {
            match target.open(&target.mailboxes[sess.index]).await {
                Ok(c) => sess.client = Some(c),
                Err(e) => {
                    out.errors.push(format!("{address}: {e}"));
                    continue;
                }
            }
        }
        let Some(client) = sess.client.as_mut() else {
            continue;
        };
        for (fi, uids) in per_folder {
            let Some(folder) = folders.get(fi) else {
                continue;
            };
            let result: Result<usize, ObserveError> = async {
                let status = client.select(&folder.name).await?;
                if status.uidvalidity != folder.uidvalidity {
                    return Err(ObserveError::Protocol(format!(
                        "UIDVALIDITY of {} changed since the search; not deleting anything",
                        folder.name
                    )));
                }
                // Re-check the run header on the server right before deleting, so a UID
                // reused or mis-tracked can never delete somebody else's mail.
                let mut confirmed = Vec::with_capacity(uids.len());
                client
                    .uid_fetch_headers(&uids, &[RUN_HEADER], |m| {
                        let f = headers::Fields::parse(m.header);
                        if f.get(RUN_HEADER).map(str::trim) == Some(run_id) {
                            confirmed.push(m.uid);
                        }
                        Ok(())
                    })
                    .await?;
                if confirmed.is_empty() {
                    return Ok(0);
                }
                client.uid_store_deleted(&confirmed).await?;
                client.uid_expunge(&confirmed).await?;
                Ok(confirmed.len())
            }
            .await;
            match result {
                Ok(n) => out.deleted += n,
                Err(e) => out
                    .errors
                    .push(format!("{address} folder {}: {e}", folder.name)),
            }
        }
    }
    out
}

/// How `write_observations` treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Append records (the run orchestrator, as observation completes).
    Append,
    /// Replace the file atomically (re-observation).
    Replace,
}

/// Writes records as JSON lines to `path`, appending or replacing atomically.
pub fn write_observations(
    path: &Path,
    records: &[ObservationRecord],
    mode: WriteMode,
) -> Result<(), ObserveError> {
    let io = |what: &str, p: &Path| {
        let ctx = format!("{what} {}", p.display());
        move |e| ObserveError::Io {
            context: ctx,
            source: e,
        }
    };
    // Stream through a buffer instead of building the whole file in memory: 10,000 records
    // with their evidence would otherwise cost ~15 MiB at once.
    let write_all = |f: std::fs::File, p: &Path| -> Result<(), ObserveError> {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        for r in records {
            serde_json::to_writer(&mut w, r).map_err(|e| ObserveError::Io {
                context: format!("cannot write {}", p.display()),
                source: std::io::Error::other(e),
            })?;
            w.write_all(b"\n").map_err(io("cannot write", p))?;
        }
        let f = w.into_inner().map_err(|e| ObserveError::Io {
            context: format!("cannot write {}", p.display()),
            source: e.into_error(),
        })?;
        f.sync_data().map_err(io("cannot sync", p))
    };
    match mode {
        WriteMode::Append => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io("cannot open", path))?;
            write_all(f, path)?;
        }
        WriteMode::Replace => {
            let tmp = path.with_extension("jsonl.tmp");
            let f = std::fs::File::create(&tmp).map_err(io("cannot create", &tmp))?;
            write_all(f, &tmp)?;
            std::fs::rename(&tmp, path).map_err(io("cannot replace", path))?;
        }
    }
    Ok(())
}

/// Reads `attempts.jsonl`. A torn last line (an interrupted write) is skipped; any other bad
/// line is an error naming its line number.
pub fn read_attempts(path: &Path) -> Result<Vec<AttemptRecord>, ObserveError> {
    crate::record::read_jsonl(path).map_err(|e| ObserveError::Config(e.to_string()))
}

/// The run id all attempts share (or the run directory's name when there are none).
fn run_id_of(run_dir: &Path, attempts: &[AttemptRecord]) -> Result<String, ObserveError> {
    let mut ids: Vec<&str> = attempts.iter().map(|a| a.run_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    match ids.as_slice() {
        [one] => Ok(one.to_string()),
        [] => run_dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| ObserveError::Config(format!("no run id for {}", run_dir.display()))),
        many => Err(ObserveError::Config(format!(
            "attempts of several runs ({}) in one run directory",
            many.join(", ")
        ))),
    }
}

/// Observes a run and appends its records to `<run_dir>/observations.jsonl` (orchestrator use).
pub async fn observe_run(
    target: &ImapTarget,
    run_dir: &Path,
    attempts: &[AttemptRecord],
    opts: &ObserveOptions,
) -> Result<ObserveSummary, ObserveError> {
    let run_id = run_id_of(run_dir, attempts)?;
    let obs = observe(target, &run_id, attempts, opts).await?;
    write_observations(
        &run_dir.join("observations.jsonl"),
        &obs.records,
        WriteMode::Append,
    )?;
    Ok(obs.summary)
}

/// Re-observes a finished run from `<run_dir>/attempts.jsonl` and replaces
/// `<run_dir>/observations.jsonl` atomically (for mail that arrived late).
pub async fn reobserve_run(
    target: &ImapTarget,
    run_dir: &Path,
    opts: &ObserveOptions,
) -> Result<ObserveSummary, ObserveError> {
    let attempts = read_attempts(&run_dir.join("attempts.jsonl"))?;
    let run_id = run_id_of(run_dir, &attempts)?;
    let obs = observe(target, &run_id, &attempts, opts).await?;
    write_observations(
        &run_dir.join("observations.jsonl"),
        &obs.records,
        WriteMode::Replace,
    )?;
    Ok(obs.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::TlsMode;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn attempt(run: &str, seq: &str, to: &[&str], outcome: OutcomeClass) -> AttemptRecord {
        let t = at("2025-03-02T00:30:00Z");
        AttemptRecord {
            schema: RECORD_SCHEMA,
            run_id: run.into(),
            seq: seq.into(),
            attempt_id: format!("{seq}#1"),
            attempt: 1,
            retry_of: None,
            phase: "p".into(),
            burst: "b".into(),
            index: 0,
            sender: "primary".into(),
            source_ip: "127.0.0.2".parse().expect("ip"),
            destination: "127.0.0.1:25".into(),
            tls_mode: TlsMode::None,
            tls: None,
            message_id: format!("<{seq}@x>"),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            size: 1,
            connection: 1,
            connection_seq: 1,
            scheduled_at: t,
            scheduled_ms: 0.0,
            started_at: t,
            started_ms: 0.0,
            finished_at: t,
            finished_ms: 0.0,
            transcript: vec![],
            outcome,
            reply: None,
            token: None,
            queue_id: None,
            error: None,
        }
    }

    fn target(addresses: &[&str]) -> ImapTarget {
        ImapTarget {
            connect: ConnectOptions {
                host: "127.0.0.1".into(),
                port: 143,
                tls: ImapTls::Plain,
                tls_config: None,
                timeout: DEFAULT_COMMAND_TIMEOUT,
            },
            auth: AuthMethod::Login,
            mailboxes: addresses
                .iter()
                .map(|a| MailboxAccess {
                    address: a.to_string(),
                    login: a.to_string(),
                    password: None,
                })
                .collect(),
        }
    }

    #[test]
    fn expected_copies_are_accepted_attempts_of_the_run_in_test_mailboxes() {
        let t = target(&["qa1@x.example", "qa2@x.example"]);
        let attempts = vec![
            attempt(
                "r",
                "s0",
                &["QA2@x.example ", "qa1@x.example"],
                OutcomeClass::Accepted,
            ),
            attempt("r", "s1", &["qa1@x.example"], OutcomeClass::Throttled),
            attempt("other", "s2", &["qa1@x.example"], OutcomeClass::Accepted),
            attempt("r", "s3", &["someone@else.example"], OutcomeClass::Accepted),
        ];
        let mut unobservable = Vec::new();
        let e = expected_copies(&t, "r", &attempts, &mut unobservable);
        let got: Vec<(usize, usize)> = e.iter().map(|e| (e.attempt, e.mailbox)).collect();
        assert_eq!(got, vec![(0, 0), (0, 1)]);
        assert_eq!(unobservable, vec!["s3#1"]);
    }

    #[test]
    fn the_since_date_is_the_day_before_the_runs_first_attempt() {
        let mut a = attempt("r", "s0", &[], OutcomeClass::Accepted);
        let mut early = attempt("other", "s1", &[], OutcomeClass::Accepted);
        early.started_at = at("2025-01-01T00:00:00Z");
        a.started_at = at("2025-03-02T00:30:00Z");
        assert_eq!(
            since_date(&[early, a], "r"),
            NaiveDate::from_ymd_opt(2025, 3, 1).expect("date")
        );
    }

    fn found(mailbox: usize, folder: usize, uid: u32, mid: &str) -> FoundMsg {
        FoundMsg {
            mailbox,
            folder,
            uidvalidity: Some(7),
            uid,
            internal_date: Some(
                DateTime::parse_from_rfc3339("2025-03-02T00:30:02Z").expect("time"),
            ),
            received_date: None,
            seq: None,
            message_id: Some(mid.into()),
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn records_count_found_missing_and_anomalies_by_folder() {
        let t = target(&["qa1@x.example"]);
        let attempts = vec![
            attempt("r", "s0", &["qa1@x.example"], OutcomeClass::Accepted),
            attempt("r", "s1", &["qa1@x.example"], OutcomeClass::Accepted),
        ];
        let mut unobservable = Vec::new();
        let expects = expected_copies(&t, "r", &attempts, &mut unobservable);
        let sessions = vec![Session {
            index: 0,
            client: None,
            folders: Some(vec![
                new_folder("INBOX", FolderKind::Inbox),
                new_folder("Junk Email", FolderKind::Junk),
            ]),
            since_mode: false,
            // s0 in Junk, and a second copy of it in INBOX; s1 never arrived.
            found: vec![found(0, 1, 3, "<s0@x>"), found(0, 0, 9, "<s0@x>")],
            polled_ok: true,
            last_error: None,
        }];
        let matching = match_found(&expects, &attempts, &sessions);
        let mut summary = ObserveSummary::empty("r");
        let recs = build_records(
            &t,
            "r",
            &attempts,
            &expects,
            &sessions,
            &matching,
            &mut summary,
        );
        let got: Vec<(ObservationStatus, Option<&str>, Option<u32>)> = recs
            .iter()
            .map(|r| (r.status, r.folder_name.as_deref(), r.uid))
            .collect();
        assert_eq!(
            got,
            vec![
                (ObservationStatus::Found, Some("INBOX"), Some(9)),
                (ObservationStatus::Missing, None, None),
                (ObservationStatus::Anomaly, Some("Junk Email"), Some(3)),
            ]
        );
        // Arrival is the end of INTERNALDATE's second: 3s after acceptance.
        assert_eq!(recs[0].latency_ms, Some(3000.0));
        assert_eq!(recs[1].attempt_id.as_deref(), Some("s1#1"));
        assert_eq!(
            (summary.found, summary.missing, summary.anomalies),
            (1, 1, 1)
        );
        assert_eq!(
            summary.by_folder["inbox"],
            FolderCounts {
                found: 1,
                anomaly: 0
            }
        );
        assert_eq!(
            summary.by_folder["junk"],
            FolderCounts {
                found: 0,
                anomaly: 1
            }
        );
    }
}
