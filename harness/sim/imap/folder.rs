//! One Maildir folder as IMAP sees it: UIDs, flags, internal dates, cached headers.
//!
//! The store writes into `new/`; this index names every file it finds with a UID, in delivery
//! order, and keeps the map in `<folder>/mailharness-uidlist` (written to a temporary file and
//! renamed), so UIDVALIDITY and UIDs survive a simulator restart. The file is our own rather than
//! `dovecot-uidlist`, so a Dovecot reading the same tree never competes for its lock.
//! Flags live in the Maildir file name (`:2,FRST`), where Dovecot and other Maildir readers see
//! them too. INTERNALDATE is the file's mtime, as Dovecot uses it.
//!
//! Each folder's index is shared by every session (one [`FolderIndex`] behind a mutex, kept by
//! the [`Registry`]); a rescan only happens when `new/` or `cur/` changed, so polling a
//! 10,000-message folder costs two `stat` calls.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::parse::flag;
use crate::sim::SimError;

/// The UID map file in each folder directory.
pub const UIDLIST_FILE: &str = "mailharness-uidlist";
/// First line of the UID map: format name and version.
const UIDLIST_MAGIC: &str = "mailharness-uidlist 1";
/// The Maildir info separator and version (`<base>:2,<flags>`).
const MAILDIR_INFO: &str = ":2,";
/// Directory mtimes this recent may still change within the same timestamp tick: rescan.
const MTIME_SETTLE: Duration = Duration::from_secs(1);
/// How much of a file is read first when looking for the end of its header.
const HEADER_PROBE: usize = 16 * 1024;

/// Maildir info letters of the IMAP system flags (Maildir spec: D F P R S T, ASCII order).
const FLAG_LETTERS: [(u8, char); 5] = [
    (flag::DRAFT, 'D'),
    (flag::FLAGGED, 'F'),
    (flag::ANSWERED, 'R'),
    (flag::SEEN, 'S'),
    (flag::DELETED, 'T'),
];

/// One message file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The UID.
    pub uid: u32,
    /// The unique part of the file name (before `:2,`).
    pub base: String,
    /// In `cur/` (else `new/`).
    pub in_cur: bool,
    /// The full file name.
    pub name: String,
    /// System flags.
    pub flags: u8,
    /// Info letters this server does not map (`P`, Dovecot keyword letters): kept on rename.
    pub other_info: String,
    /// INTERNALDATE, Unix seconds.
    pub internal: i64,
    /// RFC822.SIZE, once known (from `,W=` in the name or by reading the file).
    pub size: Option<u64>,
    /// The header section with CRLF line ends, once read.
    pub header: Option<Arc<[u8]>>,
    /// Not yet reported as `\Recent` to any session.
    pub recent: bool,
}

impl Entry {
    /// Where the file is now.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(if self.in_cur { "cur" } else { "new" })
            .join(&self.name)
    }
}

/// Splits a Maildir file name into base, system flags and other info letters.
fn split_name(name: &str) -> (String, u8, String) {
    match name.split_once(MAILDIR_INFO) {
        None => (
            name.split_once(':').map_or(name, |(b, _)| b).to_string(),
            0,
            String::new(),
        ),
        Some((base, info)) => {
            let mut flags = 0;
            let mut other = String::new();
            for c in info.chars() {
                match FLAG_LETTERS.iter().find(|(_, l)| *l == c) {
                    Some(&(b, _)) => flags |= b,
                    None => other.push(c),
                }
            }
            (base.to_string(), flags, other)
        }
    }
}

/// `<base>:2,<letters in ASCII order>`.
fn join_name(base: &str, flags: u8, other: &str) -> String {
    let mut letters: Vec<char> = FLAG_LETTERS
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|&(_, l)| l)
        .chain(other.chars())
        .collect();
    letters.sort_unstable();
    letters.dedup();
    let mut n = String::with_capacity(base.len() + 3 + letters.len());
    n.push_str(base);
    n.push_str(MAILDIR_INFO);
    n.extend(letters);
    n
}

/// The `,W=<n>` (virtual, CRLF) size Dovecot-style names carry.
fn size_from_name(base: &str) -> Option<u64> {
    base.split(',')
        .skip(1)
        .find_map(|p| p.strip_prefix("W="))
        .and_then(|v| v.parse().ok())
}

fn mtime_secs(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// Converts bare LF line ends to CRLF (IMAP sizes and literals count CRLF).
pub fn to_crlf(raw: Vec<u8>) -> Vec<u8> {
    let bare = raw
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
        .count();
    if bare == 0 {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + bare);
    for (i, &c) in raw.iter().enumerate() {
        if c == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// Where the header section ends, the blank line included (RFC 3501 `BODY[HEADER]`).
pub fn header_len(msg: &[u8]) -> Option<usize> {
    if msg.starts_with(b"\r\n") {
        return Some(2);
    }
    memchr::memmem::find(msg, b"\r\n\r\n").map(|p| p + 4)
}

/// The in-memory index of one folder.
#[derive(Debug)]
pub struct FolderIndex {
    dir: PathBuf,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// The UID the next new message gets.
    pub uidnext: u32,
    /// Messages, ascending UID.
    pub entries: Vec<Entry>,
    /// `(new/ mtime, cur/ mtime, when scanned)` of the last scan.
    scanned: Option<(SystemTime, SystemTime, SystemTime)>,
}

impl FolderIndex {
    /// Loads the UID map (or starts one) and scans the folder.
    pub fn open(dir: &Path) -> Result<Self, SimError> {
        let mut idx = FolderIndex {
            dir: dir.to_path_buf(),
            uidvalidity: 0,
            uidnext: 1,
            entries: Vec::new(),
            scanned: None,
        };
        let map_path = dir.join(UIDLIST_FILE);
        let mut known: HashMap<String, u32> = HashMap::new();
        match fs::read_to_string(&map_path) {
            Ok(text) => {
                let mut lines = text.lines();
                let head = lines.next().unwrap_or_default();
                let fields: Vec<&str> = head.split(' ').collect();
                let parsed = (fields.len() == 4 && head.starts_with(UIDLIST_MAGIC))
                    .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                    .flatten();
                let Some((validity, next)) = parsed else {
                    return Err(SimError::Config(format!(
                        "{}: not a mailharness UID map (first line `{head}`); move it away to start a new UIDVALIDITY",
                        map_path.display()
                    )));
                };
                idx.uidvalidity = validity;
                idx.uidnext = next;
                for l in lines {
                    if let Some((uid, base)) = l.split_once(' ') {
                        if let Ok(uid) = uid.parse::<u32>() {
                            known.insert(base.to_string(), uid);
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A fresh UIDVALIDITY: the creation time, as many servers do.
                idx.uidvalidity = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs() as u32)
                    .max(1);
            }
            Err(e) => {
                return Err(SimError::io(
                    format!("reading UID map {}", map_path.display()),
                    e,
                ))
            }
        }
        idx.scan(Some(known))?;
        Ok(idx)
    }

    /// The folder directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Rescans `new/` and `cur/` if they changed; returns whether anything changed.
    pub fn refresh(&mut self) -> Result<bool, SimError> {
        if !self.stale() {
            return Ok(false);
        }
        self.scan(None)
    }

    /// Whether `new/` or `cur/` may have changed since the last scan (two `stat` calls).
    pub fn stale(&self) -> bool {
        let Some((n, c, at)) = self.scanned else {
            return true;
        };
        let now_n = fs::metadata(self.dir.join("new")).and_then(|m| m.modified());
        let now_c = fs::metadata(self.dir.join("cur")).and_then(|m| m.modified());
        match (now_n, now_c) {
            (Ok(now_n), Ok(now_c)) => {
                let settled = |t: SystemTime| t + MTIME_SETTLE < at;
                !(now_n == n && now_c == c && settled(n) && settled(c))
            }
            _ => true,
        }
    }

    /// Reads both directories and reconciles the entries; `known` seeds UIDs from the map file.
    fn scan(&mut self, known: Option<HashMap<String, u32>>) -> Result<bool, SimError> {
        let at = SystemTime::now();
        let stat = |sub: &str| {
            let p = self.dir.join(sub);
            fs::metadata(&p)
                .and_then(|m| m.modified())
                .map_err(|e| SimError::io(format!("reading {}", p.display()), e))
        };
        let (mn, mc) = (stat("new")?, stat("cur")?);
        let found = self.list()?;
        let (mut changed, fresh) = self.reconcile(found);
        if !fresh.is_empty() {
            self.add_fresh(fresh, known.unwrap_or_default());
            changed = true;
        }
        self.scanned = Some((mn, mc, at));
        if changed || !self.dir.join(UIDLIST_FILE).exists() {
            self.save()?;
        }
        Ok(changed)
    }

    /// `(base, in cur/, file name)` of every message file in `new/` and `cur/`.
    fn list(&self) -> Result<Vec<(String, bool, String)>, SimError> {
        let mut found = Vec::new();
        for (sub, in_cur) in [("new", false), ("cur", true)] {
            let p = self.dir.join(sub);
            let rd = fs::read_dir(&p)
                .map_err(|e| SimError::io(format!("listing {}", p.display()), e))?;
            for de in rd {
                let de = de.map_err(|e| SimError::io(format!("listing {}", p.display()), e))?;
                let Ok(name) = de.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let (base, _, _) = split_name(&name);
                found.push((base, in_cur, name));
            }
        }
        Ok(found)
    }

    /// Updates known entries from a listing (renames, flags), drops vanished ones; returns
    /// whether any vanished and the files not yet indexed.
    fn reconcile(
        &mut self,
        found: Vec<(String, bool, String)>,
    ) -> (bool, Vec<(String, bool, String)>) {
        let by_base: HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.base.clone(), i))
            .collect();
        let mut seen = vec![false; self.entries.len()];
        let mut fresh: Vec<(String, bool, String)> = Vec::new();
        let mut dup = HashSet::new();
        for (base, in_cur, name) in found {
            if !dup.insert(base.clone()) {
                // A file caught twice mid-rename (new/ → cur/): the first sighting counts.
                continue;
            }
            match by_base.get(&base) {
                Some(&i) => {
                    seen[i] = true;
                    let e = &mut self.entries[i];
                    if e.name != name || e.in_cur != in_cur {
                        let (_, flags, other) = split_name(&name);
                        e.name = name;
                        e.in_cur = in_cur;
                        e.flags = flags;
                        e.other_info = other;
                    }
                }
                None => fresh.push((base, in_cur, name)),
            }
        }
        let vanished = seen.iter().any(|s| !s);
        if vanished {
            let mut i = 0;
            self.entries.retain(|_| {
                let keep = seen[i];
                i += 1;
                keep
            });
        }
        (vanished, fresh)
    }

    /// Indexes new files in delivery order: UIDs from `known` (the map file, after a restart)
    /// or the next free ones.
    fn add_fresh(&mut self, fresh: Vec<(String, bool, String)>, known: HashMap<String, u32>) {
        let mut fresh: Vec<(i64, Entry)> = fresh
            .into_iter()
            .filter_map(|(base, in_cur, name)| {
                let path = self
                    .dir
                    .join(if in_cur { "cur" } else { "new" })
                    .join(&name);
                // Gone already (expunged by another reader): skip it.
                let meta = fs::metadata(&path).ok()?;
                let (_, flags, other) = split_name(&name);
                Some((
                    mtime_secs(&meta),
                    Entry {
                        uid: 0,
                        size: size_from_name(&base),
                        base,
                        in_cur,
                        name,
                        flags,
                        other_info: other,
                        internal: mtime_secs(&meta),
                        header: None,
                        recent: true,
                    },
                ))
            })
            .collect();
        // Delivery order: mtime, then name (the store's names start with the time).
        fresh.sort_by(|a, b| (a.0, &a.1.base).cmp(&(b.0, &b.1.base)));
        for (_, mut e) in fresh {
            match known.get(&e.base) {
                Some(&uid) if uid < self.uidnext => {
                    e.uid = uid;
                    // Known from before a restart: not new to this server.
                    e.recent = false;
                }
                _ => {
                    e.uid = self.uidnext;
                    self.uidnext = self.uidnext.saturating_add(1);
                }
            }
            self.entries.push(e);
        }
        self.entries.sort_by_key(|e| e.uid);
        self.entries.dedup_by_key(|e| e.uid);
    }

    /// Writes the UID map atomically (temporary file, then rename).
    fn save(&self) -> Result<(), SimError> {
        let mut text = String::with_capacity(64 + self.entries.len() * 64);
        text.push_str(&format!(
            "{UIDLIST_MAGIC} {} {}\n",
            self.uidvalidity, self.uidnext
        ));
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.uid, e.base));
        }
        let tmp = self
            .dir
            .join(format!("{UIDLIST_FILE}.tmp{}", std::process::id()));
        let target = self.dir.join(UIDLIST_FILE);
        fs::write(&tmp, text)
            .and_then(|_| fs::rename(&tmp, &target))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                SimError::io(format!("writing UID map {}", target.display()), e)
            })
    }

    /// Position of a UID.
    pub fn position(&self, uid: u32) -> Option<usize> {
        self.entries.binary_search_by_key(&uid, |e| e.uid).ok()
    }

    /// The highest UID present (0 when empty).
    pub fn max_uid(&self) -> u32 {
        self.entries.last().map_or(0, |e| e.uid)
    }

    /// Renames the file so its name carries `flags`; moves it to `cur/`.
    pub fn set_flags(&mut self, i: usize, flags: u8) -> Result<(), SimError> {
        let e = &self.entries[i];
        if e.flags == flags && e.in_cur {
            return Ok(());
        }
        let new_name = join_name(&e.base, flags, &e.other_info);
        let from = e.path(&self.dir);
        let to = self.dir.join("cur").join(&new_name);
        fs::rename(&from, &to).map_err(|err| {
            SimError::io(format!("setting flags: renaming {}", from.display()), err)
        })?;
        let e = &mut self.entries[i];
        e.name = new_name;
        e.in_cur = true;
        e.flags = flags;
        Ok(())
    }

    /// Deletes the files of these UIDs; returns the UIDs actually removed.
    pub fn expunge(&mut self, uids: &[u32]) -> Result<Vec<u32>, SimError> {
        let mut removed = Vec::new();
        let mut first_err = None;
        for &uid in uids {
            let Some(i) = self.position(uid) else {
                continue;
            };
            let p = self.entries[i].path(&self.dir);
            match fs::remove_file(&p) {
                Ok(()) => removed.push(uid),
                Err(e) if e.kind() == io::ErrorKind::NotFound => removed.push(uid),
                Err(e) => {
                    first_err.get_or_insert(SimError::io(format!("expunging {}", p.display()), e));
                }
            }
        }
        let gone: HashSet<u32> = removed.iter().copied().collect();
        self.entries.retain(|e| !gone.contains(&e.uid));
        if !removed.is_empty() {
            self.save()?;
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// The header section of entry `i` (read once, then cached).
    pub fn header(&mut self, i: usize) -> io::Result<Arc<[u8]>> {
        if let Some(h) = &self.entries[i].header {
            return Ok(h.clone());
        }
        let path = self.entries[i].path(&self.dir);
        let mut f = fs::File::open(&path)?;
        let mut buf = vec![0u8; HEADER_PROBE];
        let mut n = 0;
        loop {
            let k = f.read(&mut buf[n..])?;
            n += k;
            if k == 0 || n == buf.len() {
                break;
            }
        }
        buf.truncate(n);
        let mut data = to_crlf(buf);
        let end = match header_len(&data) {
            Some(end) => end,
            None if n < HEADER_PROBE => data.len(),
            None => {
                // A header longer than the probe: read it all.
                let all = to_crlf(fs::read(&path)?);
                data = all;
                header_len(&data).unwrap_or(data.len())
            }
        };
        data.truncate(end);
        let h: Arc<[u8]> = data.into();
        self.entries[i].header = Some(h.clone());
        Ok(h)
    }

    /// RFC822.SIZE of entry `i` (from the name, or by reading the file once).
    pub fn size(&mut self, i: usize) -> io::Result<u64> {
        if let Some(s) = self.entries[i].size {
            return Ok(s);
        }
        let s = to_crlf(fs::read(self.entries[i].path(&self.dir))?).len() as u64;
        self.entries[i].size = Some(s);
        Ok(s)
    }
}

/// Reads a whole message with CRLF line ends.
pub fn read_message(path: &Path) -> io::Result<Vec<u8>> {
    fs::read(path).map(to_crlf)
}

/// Every open folder index, by directory, shared by all sessions.
#[derive(Debug, Default)]
pub struct Registry {
    folders: Mutex<HashMap<PathBuf, Arc<Mutex<FolderIndex>>>>,
}

/// Locks a mutex even if a panicking holder poisoned it (the index stays consistent per call).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    /// The index of the folder at `dir` if it is open already, without waiting: `None` also
    /// when another session holds the registry (opening a folder, which may take a while).
    pub fn cached(&self, dir: &Path) -> Option<Arc<Mutex<FolderIndex>>> {
        self.folders.try_lock().ok()?.get(dir).cloned()
    }

    /// The index of the folder at `dir`, opened on first use. Blocking: a first open scans
    /// the whole folder, under the registry's lock so that one UID map is written per folder.
    pub fn open(&self, dir: &Path) -> Result<Arc<Mutex<FolderIndex>>, SimError> {
        let mut map = lock(&self.folders);
        if let Some(f) = map.get(dir) {
            return Ok(f.clone());
        }
        let f = Arc::new(Mutex::new(FolderIndex::open(dir)?));
        map.insert(dir.to_path_buf(), f.clone());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir(root: &Path) {
        for s in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(s)).unwrap();
        }
    }

    #[test]
    fn names_and_flags_round_trip() {
        assert_eq!(
            split_name("1.M2P3Q4.h,S=10,W=12:2,FSa"),
            (
                "1.M2P3Q4.h,S=10,W=12".into(),
                flag::FLAGGED | flag::SEEN,
                "a".into()
            )
        );
        assert_eq!(split_name("x"), ("x".into(), 0, String::new()));
        assert_eq!(
            join_name("b", flag::SEEN | flag::DELETED | flag::DRAFT, "P"),
            "b:2,DPST"
        );
        assert_eq!(size_from_name("1.M2.h,S=10,W=12"), Some(12));
        assert_eq!(to_crlf(b"a\nb\r\nc\n".to_vec()), b"a\r\nb\r\nc\r\n");
        assert_eq!(header_len(b"A: b\r\n\r\nbody"), Some(8));
    }

    #[test]
    fn uids_survive_reopen_and_expunge_never_reuses() {
        let d = tempfile::tempdir().unwrap();
        maildir(d.path());
        for i in 0..3 {
            fs::write(d.path().join(format!("new/{i}.M0P1Q{i}.h")), b"A: b\n\nx\n").unwrap();
        }
        let mut idx = FolderIndex::open(d.path()).unwrap();
        let v = idx.uidvalidity;
        assert_eq!(
            idx.entries.iter().map(|e| e.uid).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(&*idx.header(0).unwrap(), b"A: b\r\n\r\n");
        assert_eq!(idx.size(0).unwrap(), 11);
        idx.set_flags(1, flag::SEEN).unwrap();
        assert!(d.path().join("cur/1.M0P1Q1.h:2,S").exists());
        assert_eq!(idx.expunge(&[3]).unwrap(), vec![3]);
        fs::write(d.path().join("new/9.M0P1Q9.h"), b"A: c\n\nx\n").unwrap();
        drop(idx);
        let mut idx = FolderIndex::open(d.path()).unwrap();
        assert_eq!(idx.uidvalidity, v);
        let uids: Vec<(u32, u8)> = idx.entries.iter().map(|e| (e.uid, e.flags)).collect();
        assert_eq!(uids, [(1, 0), (2, flag::SEEN), (4, 0)]);
        // Another reader expunges a file: the rescan notices.
        fs::remove_file(d.path().join("new/0.M0P1Q0.h")).unwrap();
        idx.scanned = None;
        assert!(idx.refresh().unwrap());
        assert_eq!(idx.entries.len(), 2);
        // An unchanged, settled folder is not rescanned.
        assert!(!idx.refresh().unwrap() || !idx.refresh().unwrap());
    }
}
