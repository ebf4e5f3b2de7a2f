//! Mailbox storage (Maildir++) and the headers EOP stamps on the delivered copy.
//!
//! Layout, chosen so that Dovecot with `mail_location = maildir:<root>/%d/%n` (its default
//! Maildir++ layout, separator `.`) reads the same tree:
//! ```text
//! <state>/maildir/<domain>/<local>/{cur,new,tmp}/                 INBOX
//! <state>/maildir/<domain>/<local>/.Junk Email/{cur,new,tmp}/     folder "Junk Email"
//! <state>/maildir/<domain>/<local>/.Junk Email/maildirfolder      Maildir++ folder marker
//! <state>/maildir/<domain>/<local>/subscriptions                  "Junk Email" subscribed
//! ```
//! Each message is written as an unnamed `O_TMPFILE` in `tmp/` and linked into `new/` complete
//! (where the file system or privileges do not allow that: written to `tmp/` and renamed), named
//! `<secs>.M<usecs, 6 digits>P<pid>Q<n>.mailharness,S=<size>,W=<size>` (Dovecot reads `S=`/`W=` as sizes;
//! files keep the CRLF line ends received over SMTP, so both sizes are equal).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use chrono::{DateTime, Utc};
use rustix::fs::{AtFlags, Mode, OFlags};

use super::config::JunkConfig;
use super::trace::TlsInfo;
use super::SimError;

/// The Exchange build in EOP's `Received:` line (reference sample).
pub const EOP_BUILD: &str = "15.20.7897.13";
/// The internal front-end address in the `Received:` line (reference sample).
pub const FRONT_END_INTERNAL_IP: &str = "10.167.244.1";
/// The header prefix senders cannot inject (reference: "EOP strips or overwrites it").
pub const ORG_HEADER_PREFIX: &[u8] = b"x-ms-exchange-organization-";

/// A mailbox folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// INBOX, the Maildir root.
    Inbox,
    /// `Junk Email` (SPECIAL-USE `\Junk` on Exchange Online).
    Junk,
}

impl Folder {
    /// The folder's display name.
    pub fn name(self) -> &'static str {
        match self {
            Folder::Inbox => "Inbox",
            Folder::Junk => "Junk Email",
        }
    }

    /// The Maildir++ sub-directory, empty for INBOX.
    pub fn dir(self) -> &'static str {
        match self {
            Folder::Inbox => "",
            Folder::Junk => ".Junk Email",
        }
    }
}

/// Open directory handles of one folder: `tmp/` and `new/`.
#[derive(Debug)]
struct FolderDirs {
    tmp: OwnedFd,
    new: OwnedFd,
    new_path: PathBuf,
}

/// The Maildir tree of every mailbox.
///
/// Files are created relative to directory handles opened once, so storing a message costs no
/// path walks.
#[derive(Debug)]
pub struct MaildirStore {
    root: PathBuf,
    /// Lower-cased address → [Inbox, Junk Email] directory handles.
    dirs: HashMap<String, [FolderDirs; 2]>,
    fsync: bool,
    seq: AtomicU64,
    pid: u32,
    /// How finished files get their name in `new/`: one of the `LINK_*` constants.
    link: AtomicU8,
}

/// `O_TMPFILE`, then `linkat(fd, "", AT_EMPTY_PATH)`.
const LINK_EMPTY_PATH: u8 = 0;
/// `O_TMPFILE`, then `linkat("/proc/self/fd/N", AT_SYMLINK_FOLLOW)` (no capability needed).
const LINK_PROC_FD: u8 = 1;
/// `tmp/<name>`, then `renameat` into `new/`.
const LINK_RENAME: u8 = 2;

fn open_dir(path: &Path) -> Result<OwnedFd, SimError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SimError::io(format!("opening {}", path.display()), e.into()))
}

impl MaildirStore {
    /// Creates the tree (idempotent) for each mailbox address.
    pub fn create(root: &Path, mailboxes: &[String], fsync: bool) -> Result<Self, SimError> {
        let mut store = MaildirStore {
            root: root.to_path_buf(),
            dirs: HashMap::new(),
            fsync,
            seq: AtomicU64::new(0),
            pid: std::process::id(),
            link: AtomicU8::new(LINK_EMPTY_PATH),
        };
        for m in mailboxes {
            let base = store.mailbox_dir(m)?;
            for folder in [Folder::Inbox, Folder::Junk] {
                let d = base.join(folder.dir());
                for sub in ["cur", "new", "tmp"] {
                    fs::create_dir_all(d.join(sub)).map_err(|e| {
                        SimError::io(format!("creating Maildir {}", d.join(sub).display()), e)
                    })?;
                }
                if folder != Folder::Inbox {
                    let marker = d.join("maildirfolder");
                    if !marker.exists() {
                        File::create(&marker).map_err(|e| {
                            SimError::io(format!("creating {}", marker.display()), e)
                        })?;
                    }
                }
            }
            let handles = |folder: Folder| -> Result<FolderDirs, SimError> {
                let d = base.join(folder.dir());
                Ok(FolderDirs {
                    tmp: open_dir(&d.join("tmp"))?,
                    new: open_dir(&d.join("new"))?,
                    new_path: d.join("new"),
                })
            };
            store.dirs.insert(
                m.to_ascii_lowercase(),
                [handles(Folder::Inbox)?, handles(Folder::Junk)?],
            );
            let subs = base.join("subscriptions");
            if !subs.exists() {
                fs::write(&subs, "Junk Email\n")
                    .map_err(|e| SimError::io(format!("writing {}", subs.display()), e))?;
            }
        }
        Ok(store)
    }

    /// The Maildir root (`<state>/maildir`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<domain>/<local>` for an address.
    pub fn mailbox_dir(&self, address: &str) -> Result<PathBuf, SimError> {
        let a = address.to_ascii_lowercase();
        let (local, domain) = a
            .rsplit_once('@')
            .ok_or_else(|| SimError::Config(format!("mailbox `{address}` has no domain")))?;
        let safe = |s: &str| {
            !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\', '\0']) && s != ".."
        };
        if !safe(local) || !safe(domain) {
            return Err(SimError::Config(format!(
                "mailbox `{address}` cannot be mapped to a Maildir path safely"
            )));
        }
        Ok(self.root.join(domain).join(local))
    }

    /// Stores one message in `new/`, complete or not at all, optionally fsynced.
    ///
    /// `address` must be one of the mailboxes the store was created with (lower-cased).
    pub fn deliver(
        &self,
        address: &str,
        folder: Folder,
        content: &[u8],
        now: DateTime<Utc>,
    ) -> Result<PathBuf, SimError> {
        let dirs = self
            .dirs
            .get(address)
            .or_else(|| self.dirs.get(&address.to_ascii_lowercase()))
            .ok_or_else(|| {
                SimError::Config(format!("`{address}` is not a mailbox of this tenant"))
            })?;
        let d = &dirs[match folder {
            Folder::Inbox => 0,
            Folder::Junk => 1,
        }];
        let size = content.len();
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        // Microseconds zero-padded: readers (our IMAP server) order one second's files by name.
        let name = format!(
            "{}.M{:06}P{}Q{}.mailharness,S={size},W={size}",
            now.timestamp(),
            now.timestamp_subsec_micros(),
            self.pid,
            n
        );
        let new = d.new_path.join(&name);
        let stored = match self.link.load(Ordering::Relaxed) {
            LINK_RENAME => self.store_renamed(d, &name, content),
            _ => self.store_unnamed(d, &name, content).and_then(|linked| {
                if linked {
                    Ok(())
                } else {
                    self.store_renamed(d, &name, content)
                }
            }),
        };
        stored.map_err(|e| SimError::io(format!("storing message in {}", new.display()), e))?;
        if self.fsync {
            rustix::fs::fsync(&d.new)
                .map_err(|e| SimError::io(format!("syncing {}", d.new_path.display()), e.into()))?;
        }
        Ok(new)
    }

    /// Writes an unnamed file (`O_TMPFILE` in `tmp/`) and links it into `new/` under `name`:
    /// the file appears complete or not at all, as with tmp/ + rename, at about half the
    /// directory work per message. Ok(false) when this file system or these privileges cannot
    /// do it; the store then uses tmp/ + rename from now on.
    fn store_unnamed(&self, d: &FolderDirs, name: &str, content: &[u8]) -> std::io::Result<bool> {
        use rustix::io::Errno;
        let fd = match rustix::fs::openat(
            &d.tmp,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => fd,
            Err(e) if [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL, Errno::NOENT].contains(&e) => {
                self.link.store(LINK_RENAME, Ordering::Relaxed);
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        let mut f = File::from(fd);
        f.write_all(content)?;
        if self.fsync {
            f.sync_all()?;
        }
        if self.link.load(Ordering::Relaxed) == LINK_EMPTY_PATH {
            match rustix::fs::linkat(&f, "", &d.new, name, AtFlags::EMPTY_PATH) {
                Ok(()) => return Ok(true),
                // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels (linkat(2)).
                Err(Errno::NOENT | Errno::PERM) => self.link.store(LINK_PROC_FD, Ordering::Relaxed),
                Err(e) => return Err(e.into()),
            }
        }
        let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
        match rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            &d.new,
            name,
            AtFlags::SYMLINK_FOLLOW,
        ) {
            Ok(()) => Ok(true),
            Err(_) => {
                self.link.store(LINK_RENAME, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// Writes `tmp/<name>` and renames it into `new/` (the classic Maildir delivery).
    fn store_renamed(&self, d: &FolderDirs, name: &str, content: &[u8]) -> std::io::Result<()> {
        let write = || -> std::io::Result<()> {
            let fd = rustix::fs::openat(
                &d.tmp,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            )?;
            let mut f = File::from(fd);
            f.write_all(content)?;
            if self.fsync {
                f.sync_all()?;
            }
            drop(f);
            rustix::fs::renameat(&d.tmp, name, &d.new, name)?;
            Ok(())
        };
        write().inspect_err(|_| {
            let _ = rustix::fs::unlinkat(&d.tmp, name, AtFlags::empty());
        })
    }
}

/// A message as received, split into header facts and the sanitized content.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The content with sender-supplied `X-MS-Exchange-Organization-*` fields removed.
    pub content: Vec<u8>,
    /// The unfolded Subject, if any.
    pub subject: Option<String>,
    /// The Message-ID, if any.
    pub message_id: Option<String>,
    /// How many forbidden header fields were stripped.
    pub stripped: usize,
}

/// Where the header section ends (index of the first body byte), or the content length.
fn header_end(raw: &[u8]) -> usize {
    let mut i = 0;
    while i < raw.len() {
        let line_end = memchr::memchr(b'\n', &raw[i..]).map_or(raw.len(), |p| i + p + 1);
        let line = &raw[i..line_end];
        if line == b"\r\n" || line == b"\n" {
            return i;
        }
        // A line that is not a header field and not a continuation ends the header section.
        let is_cont = matches!(line.first(), Some(b' ' | b'\t'));
        let is_field = line
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|c| c > 0 && line[..c].iter().all(|&b| b > 32 && b < 127));
        if !is_cont && !is_field {
            return i;
        }
        i = line_end;
    }
    raw.len()
}

/// Splits the header section into fields (each with its continuation lines).
fn header_fields(head: &[u8]) -> Vec<(usize, usize)> {
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < head.len() {
        let end = memchr::memchr(b'\n', &head[i..]).map_or(head.len(), |p| i + p + 1);
        if matches!(head[i], b' ' | b'\t') {
            if let Some(last) = fields.last_mut() {
                last.1 = end;
            } else {
                fields.push((i, end));
            }
        } else {
            fields.push((i, end));
        }
        i = end;
    }
    fields
}

fn field_value(field: &[u8]) -> String {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
    let raw = &field[(colon + 1).min(field.len())..];
    // The usual field is one line: no unfolding needed.
    let one_line = raw.trim_ascii_end();
    if !one_line.contains(&b'\n') && !one_line.contains(&b'\r') {
        if let Ok(v) = std::str::from_utf8(one_line.trim_ascii_start()) {
            return v.to_string();
        }
    }
    let v = String::from_utf8_lossy(raw);
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn name_is(field: &[u8], name: &[u8]) -> bool {
    field.len() > name.len()
        && field[..name.len()].eq_ignore_ascii_case(name)
        && field[name.len()] == b':'
}

/// Parses the header section, strips `X-MS-Exchange-Organization-*`, extracts Subject and Message-ID.
pub fn parse(raw: Vec<u8>) -> Parsed {
    let end = header_end(&raw);
    let fields = header_fields(&raw[..end]);
    let mut subject = None;
    let mut message_id = None;
    let mut strip = Vec::new();
    for &(s, e) in &fields {
        let f = &raw[s..e];
        if f.len() >= ORG_HEADER_PREFIX.len()
            && f[..ORG_HEADER_PREFIX.len()].eq_ignore_ascii_case(ORG_HEADER_PREFIX)
        {
            strip.push((s, e));
        } else if subject.is_none() && name_is(f, b"subject") {
            subject = Some(field_value(f));
        } else if message_id.is_none() && name_is(f, b"message-id") {
            let v = field_value(f);
            if !v.is_empty() {
                message_id = Some(v);
            }
        }
    }
    let stripped = strip.len();
    let content = if strip.is_empty() {
        raw
    } else {
        let mut out = Vec::with_capacity(raw.len());
        let mut pos = 0;
        for (s, e) in strip {
            out.extend_from_slice(&raw[pos..s]);
            pos = e;
        }
        out.extend_from_slice(&raw[pos..]);
        out
    };
    Parsed {
        content,
        subject,
        message_id,
        stripped,
    }
}

/// The junk rules of a tenant, compiled once at start: subject markers lower-cased and a
/// substring searcher per body marker (building a searcher costs more than the search).
#[derive(Debug)]
pub struct JunkRules {
    enabled: bool,
    no_spf_sender_domains: Vec<String>,
    /// (as configured, lower-cased)
    subject_markers: Vec<(String, String)>,
    body_markers: Vec<(String, memchr::memmem::Finder<'static>)>,
}

impl JunkRules {
    /// Compiles the `[junk]` table.
    pub fn new(cfg: &JunkConfig) -> Self {
        JunkRules {
            enabled: cfg.enabled,
            no_spf_sender_domains: cfg.no_spf_sender_domains.clone(),
            subject_markers: cfg
                .subject_markers
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| (m.clone(), m.to_lowercase()))
                .collect(),
            body_markers: cfg
                .body_markers
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| {
                    let f = memchr::memmem::Finder::new(m.as_bytes()).into_owned();
                    (m.clone(), f)
                })
                .collect(),
        }
    }

    /// The no-SPF list's entry for the envelope sender's domain, when junk rules are on.
    fn no_spf_entry(&self, sender_domain: &str) -> Option<&String> {
        self.no_spf_sender_domains
            .iter()
            .find(|d| self.enabled && d.eq_ignore_ascii_case(sender_domain))
    }

    /// Whether the envelope sender's domain is on the no-SPF list (and junk rules are on).
    pub fn spf_none(&self, sender_domain: &str) -> bool {
        self.no_spf_entry(sender_domain).is_some()
    }

    /// Which junk rule fired, if any.
    pub fn rule(&self, parsed: &Parsed, sender_domain: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        if let Some(d) = self.no_spf_entry(sender_domain) {
            return Some(format!("sender domain {d} has no SPF"));
        }
        if let (Some(subject), false) = (&parsed.subject, self.subject_markers.is_empty()) {
            let lower = subject.to_lowercase();
            if let Some((m, _)) = self
                .subject_markers
                .iter()
                .find(|(_, l)| lower.contains(l.as_str()))
            {
                return Some(format!("subject marker {m}"));
            }
        }
        if self.body_markers.is_empty() {
            return None;
        }
        let body = &parsed.content[header_end(&parsed.content)..];
        self.body_markers
            .iter()
            .find(|(_, f)| f.find(body).is_some())
            .map(|(m, _)| {
                let short: String = m.chars().take(24).collect();
                format!("body marker {short}")
            })
    }
}

/// The facts the stamped headers are made of.
#[derive(Debug, Clone)]
pub struct StampInput<'a> {
    /// EHLO/HELO name.
    pub helo: &'a str,
    /// Connecting IP, as text.
    pub ip: &'a str,
    /// TLS in effect.
    pub tls: Option<&'a TlsInfo>,
    /// `<host>.mail.protection.outlook.com`.
    pub fqdn: &'a str,
    /// `X-MS-Exchange-Organization-AuthSource` value.
    pub auth_source: &'a str,
    /// When the message was received.
    pub received_at: DateTime<Utc>,
    /// Network-Message-Id.
    pub network_message_id: &'a str,
    /// The tenant GUID.
    pub tenant_id: &'a str,
    /// The envelope sender's domain.
    pub sender_domain: &'a str,
    /// The sender domain is on the no-SPF list.
    pub spf_none: bool,
    /// SCL to stamp.
    pub scl: u8,
    /// Filed into Junk Email.
    pub junk: bool,
    /// A Message-ID to add because the sender gave none.
    pub add_message_id: Option<&'a str>,
}

/// The header block EOP prepends to the delivered copy (reference: "Headers on the delivered copy").
pub fn stamp(s: &StampInput<'_>) -> String {
    let tls = s
        .tls
        .map(|t| format!(" (version={}, cipher={})", t.version, t.cipher))
        .unwrap_or_default();
    let date = s.received_at.to_rfc2822();
    let domain = if s.sender_domain.is_empty() {
        "none"
    } else {
        s.sender_domain
    };
    let (spf, compauth) = if s.spf_none {
        ("none", "fail reason=001")
    } else {
        ("pass", "pass reason=100")
    };
    // Reference "Headers": CAT is HSPM for high-confidence spam (SCL 9), SPM otherwise.
    let (sfv, cat, dest) = if s.junk {
        let cat = if s.scl >= 9 { "HSPM" } else { "SPM" };
        ("SPM", cat, "dest:J;RF:JunkEmail;")
    } else {
        ("NSPM", "NONE", "dest:I;")
    };
    let mut h = String::with_capacity(1400);
    // Writing into a String cannot fail.
    let _ = write!(
        h,
        "Received: from {helo} ({ip}) by {fqdn} ({FRONT_END_INTERNAL_IP})\r\n with Microsoft SMTP Server{tls} id {EOP_BUILD}\r\n via Frontend Transport; {date}\r\n\
         Authentication-Results: spf={spf} (sender IP is {ip}) smtp.mailfrom={domain};\r\n dkim=none (message not signed) header.d=none;dmarc=none action=none\r\n header.from={domain};compauth={compauth}\r\n\
         X-MS-Exchange-Organization-Network-Message-Id: {nmid}\r\n\
         X-MS-Exchange-Organization-MessageDirectionality: Incoming\r\n\
         X-MS-Exchange-Organization-AuthSource: {auth_source}\r\n\
         X-MS-Exchange-Organization-AuthAs: Anonymous\r\n\
         X-MS-Exchange-Organization-SCL: {scl}\r\n\
         X-Forefront-Antispam-Report: CIP:{ip};CTRY:;LANG:en;SCL:{scl};SRV:;IPV:NLI;SFV:{sfv};H:{helo};PTR:;CAT:{cat};SFS:;DIR:INB;\r\n\
         X-EOPTenantAttributedMessage: {tenant}:0\r\n\
         X-Microsoft-Antispam-Mailbox-Delivery: ucf:0;jmr:0;auth:0;{dest}ENG:(910001)(944506478)(944626604)(920097)(930097);\r\n",
        helo = s.helo,
        ip = s.ip,
        fqdn = s.fqdn,
        nmid = s.network_message_id,
        auth_source = s.auth_source,
        scl = s.scl,
        tenant = s.tenant_id,
    );
    if let Some(id) = s.add_message_id {
        let _ = write!(h, "Message-ID: {id}\r\n");
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_confidence_junk_is_categorised_hspm() {
        let at = chrono::Utc::now();
        let input = |scl: u8, junk: bool| StampInput {
            helo: "mta.platform.example",
            ip: "127.0.0.2",
            tls: None,
            fqdn: "BN8NAM12FT033.mail.protection.outlook.com",
            auth_source: "BN8NAM12FT033.eop-nam12.prod.protection.outlook.com",
            received_at: at,
            network_message_id: "00000000-0000-0000-0000-000000000000",
            tenant_id: "00000000-0000-0000-0000-000000000001",
            sender_domain: "platform.example",
            spf_none: false,
            scl,
            junk,
            add_message_id: None,
        };
        assert!(
            stamp(&input(9, true)).contains("SCL:9;")
                && stamp(&input(9, true)).contains("CAT:HSPM;")
        );
        assert!(stamp(&input(5, true)).contains("CAT:SPM;"));
        assert!(stamp(&input(1, false)).contains("CAT:NONE;"));
    }

    #[test]
    fn strips_org_headers_with_continuations_and_finds_fields() {
        let raw = b"Subject: hello\r\n [SIM-JUNK] folded\r\nX-MS-Exchange-Organization-SCL: -1\r\nx-ms-exchange-organization-authas: Internal\r\n\tcontinued\r\nMessage-ID: <a@b>\r\n\r\nbody X-MS-Exchange-Organization-SCL: stays\r\n".to_vec();
        let p = parse(raw);
        assert_eq!(p.stripped, 2);
        assert_eq!(p.subject.as_deref(), Some("hello [SIM-JUNK] folded"));
        assert_eq!(p.message_id.as_deref(), Some("<a@b>"));
        let s = String::from_utf8(p.content.clone()).unwrap();
        assert!(!s.to_lowercase().contains("organization-authas"));
        assert!(s.contains("body X-MS-Exchange-Organization-SCL: stays"));
        assert_eq!(
            JunkRules::new(&JunkConfig::default())
                .rule(&p, "platform.example")
                .as_deref(),
            Some("subject marker [SIM-JUNK]")
        );
    }

    #[test]
    fn junk_rules() {
        let cfg = JunkRules::new(&JunkConfig::default());
        let p =
            parse(format!("Subject: x\r\n\r\n{}\r\n", super::super::config::GTUBE).into_bytes());
        assert!(cfg
            .rule(&p, "a.example")
            .unwrap()
            .starts_with("body marker"));
        let p = parse(b"Subject: x\r\n\r\nclean\r\n".to_vec());
        assert!(cfg.rule(&p, "a.example").is_none());
        assert!(cfg.rule(&p, "NOSPF.example").is_some());
    }

    #[test]
    fn every_link_mode_stores_the_file_complete_and_leaves_tmp_empty() {
        for mode in [LINK_EMPTY_PATH, LINK_PROC_FD, LINK_RENAME] {
            let dir = tempfile::tempdir().unwrap();
            let s =
                MaildirStore::create(dir.path(), &["qa1@contoso.example".into()], true).unwrap();
            s.link.store(mode, Ordering::Relaxed);
            let p = s
                .deliver(
                    "qa1@contoso.example",
                    Folder::Inbox,
                    b"a: b\r\n\r\nx\r\n",
                    Utc::now(),
                )
                .unwrap();
            assert_eq!(
                p.parent().unwrap(),
                dir.path().join("contoso.example/qa1/new")
            );
            assert_eq!(fs::read(&p).unwrap(), b"a: b\r\n\r\nx\r\n", "mode {mode}");
            let tmp = dir.path().join("contoso.example/qa1/tmp");
            assert_eq!(fs::read_dir(tmp).unwrap().count(), 0, "mode {mode}");
            // A mode can only fall back (for example without CAP_DAC_READ_SEARCH), never fail.
            assert!(s.link.load(Ordering::Relaxed) >= mode);
        }
    }

    #[test]
    fn names_sort_in_delivery_order_within_a_second() {
        use chrono::TimeZone;
        let dir = tempfile::tempdir().unwrap();
        let s = MaildirStore::create(dir.path(), &["qa1@contoso.example".into()], false).unwrap();
        let second = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
        let names: Vec<String> = [95_000, 145_000]
            .into_iter()
            .map(|us| {
                let at = second + chrono::Duration::microseconds(us);
                let p = s
                    .deliver(
                        "qa1@contoso.example",
                        Folder::Inbox,
                        b"a: b\r\n\r\nx\r\n",
                        at,
                    )
                    .unwrap();
                p.file_name().unwrap().to_string_lossy().into_owned()
            })
            .collect();
        assert!(names[0] < names[1], "{names:?}");
        assert!(names[0].contains(".M095000P"), "{names:?}");
    }

    #[test]
    fn store_is_maildir_plus_plus() {
        let dir = tempfile::tempdir().unwrap();
        let s = MaildirStore::create(dir.path(), &["qa1@contoso.example".into()], false).unwrap();
        let p = s
            .deliver(
                "QA1@contoso.example",
                Folder::Junk,
                b"a: b\r\n\r\nx\r\n",
                Utc::now(),
            )
            .unwrap();
        assert!(p.starts_with(dir.path().join("contoso.example/qa1/.Junk Email/new")));
        assert_eq!(fs::read(&p).unwrap(), b"a: b\r\n\r\nx\r\n");
        assert!(dir
            .path()
            .join("contoso.example/qa1/.Junk Email/maildirfolder")
            .exists());
        assert!(s.mailbox_dir("../x@contoso.example").is_err());
    }
}
