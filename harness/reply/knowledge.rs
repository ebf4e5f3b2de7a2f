//! The reply knowledge base: data in `knowledge/*.toml`, compiled into the binary and read once.
//!
//! - `families.toml`: what a kind of reply means in general, and the default advice.
//! - `origins.toml`: how to tell who wrote a reply (its host, its recipient's domain, its wording).
//! - `microsoft.toml`, `servers.toml`, `rfc.toml`: one entry per code, or code + token/text
//!   pattern, each with its public source. Entries are tried in that order, first match wins, so
//!   the narrow entries of a file come before its broad ones.
//!
//! The send engine's classifier and `explain` both read entries through [`lookup`], so an attempt
//! record and an explanation of the same reply never disagree.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::EnhancedCode;

/// The knowledge files, in match order (families and origins are not matched against replies).
const FAMILIES: &str = include_str!("knowledge/families.toml");
const ORIGINS: &str = include_str!("knowledge/origins.toml");
const ENTRY_FILES: [(&str, &str); 3] = [
    ("microsoft.toml", include_str!("knowledge/microsoft.toml")),
    ("servers.toml", include_str!("knowledge/servers.toml")),
    ("rfc.toml", include_str!("knowledge/rfc.toml")),
];

/// Who wrote a reply. Advice about Microsoft 365 connectors only ever applies to [`Origin::Microsoft`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Exchange Online / EOP: a tenant's MX.
    Microsoft,
    /// Outlook.com, Hotmail, Live: Microsoft's consumer mail, where there is no tenant.
    MicrosoftConsumer,
    /// Exchange Server on-premises.
    Exchange,
    /// Postfix.
    Postfix,
    /// Exim.
    Exim,
    /// Sendmail.
    Sendmail,
    /// Gmail and Google Workspace.
    Google,
    /// Yahoo and AOL.
    Yahoo,
    /// Another identified server.
    Other,
    /// Nothing says who wrote it.
    Unknown,
}

impl Origin {
    /// The kebab-case name used in files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Microsoft => "microsoft",
            Origin::MicrosoftConsumer => "microsoft-consumer",
            Origin::Exchange => "exchange",
            Origin::Postfix => "postfix",
            Origin::Exim => "exim",
            Origin::Sendmail => "sendmail",
            Origin::Google => "google",
            Origin::Yahoo => "yahoo",
            Origin::Other => "other",
            Origin::Unknown => "unknown",
        }
    }

    /// Whether Microsoft 365 (a tenant or consumer Outlook.com) wrote it.
    pub fn is_microsoft_365(self) -> bool {
        matches!(self, Origin::Microsoft | Origin::MicrosoftConsumer)
    }

    /// Whether an entry written for `self` may read a reply whose origin is `seen`. A reply
    /// whose origin is unknown is read only by entries for any server: what one server means by
    /// a code is not put into another's mouth.
    fn covers(self, seen: Origin) -> bool {
        use Origin::*;
        (self == seen && seen != Unknown)
            // One front end serves tenants and consumers alike; Exchange Online runs Exchange, so
            // Exchange Server's documented replies are also Exchange Online's, and hybrid
            // on-premises servers repeat Exchange Online's codes.
            || matches!(
                (self, seen),
                (Microsoft, MicrosoftConsumer | Exchange) | (Exchange, Microsoft | MicrosoftConsumer)
            )
    }
}

/// Whether an inbound connector (Partner organization → Office 365, by the sending IPs) is the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectorAnswer {
    /// Creating such a connector fixes it.
    Helps,
    /// A connector exists and is wrong; fixing it fixes this.
    FixExisting,
    /// A connector's own restriction produced this, as designed.
    Cause,
    /// Not a connector matter (or not Microsoft 365 at all).
    No,
    /// Consumer Outlook.com: there is no tenant, so there is no connector to make.
    NotATenant,
}

impl ConnectorAnswer {
    /// The kebab-case name used in files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorAnswer::Helps => "helps",
            ConnectorAnswer::FixExisting => "fix-existing",
            ConnectorAnswer::Cause => "cause",
            ConnectorAnswer::No => "no",
            ConnectorAnswer::NotATenant => "not-a-tenant",
        }
    }
}

/// How sure a reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// The matched entry's source documents this reply (or its code) for this kind of server.
    Documented,
    /// Read from a generic entry (RFC 3463's general meaning, or a wording shared by many servers).
    Inferred,
    /// Nothing in the knowledge base matched.
    Unknown,
}

/// How a family's replies become an attempt's outcome class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FamilyOutcome {
    /// `deferred` for a temporary reply, `rejected` for a permanent one.
    ByClass,
    /// `throttled`.
    Throttled,
    /// `rate-limited`.
    RateLimited,
    /// `tls-required` (only for a session without TLS).
    TlsRequired,
}

/// What a kind of reply means, and the advice that holds unless an entry says more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// Stable id, e.g. `ip-throttling`.
    pub id: String,
    /// Short title.
    pub title: String,
    /// How its replies become an outcome class.
    #[serde(default = "by_class")]
    pub outcome: FamilyOutcome,
    /// The connector answer, unless an entry says otherwise.
    pub connector: ConnectorAnswer,
    /// What it means, in plain words, for any server.
    pub meaning: String,
    /// What Support tells the customer.
    pub support: String,
    /// What Ops does.
    pub ops: String,
}

fn by_class() -> FamilyOutcome {
    FamilyOutcome::ByClass
}

/// What an entry matches. Every given part must hold; at least `enhanced` or `text` is given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Enhanced-code ranges `C.S.D` or `C.S.D-C.S.D` (same class and subject).
    #[serde(default)]
    pub enhanced: Vec<String>,
    /// Basic reply codes. A pasted reply without one passes when the entry also has `text`.
    #[serde(default)]
    pub codes: Vec<u16>,
    /// Microsoft's diagnostic tokens (`AS3130`, `S3150`, `ATTR38`); a trailing `*` is a prefix.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Regular expressions over the reply text, case-insensitive; any one must match.
    #[serde(default)]
    pub text: Vec<String>,
}

/// One entry: a code, or a code with a token or wording, from one kind of server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Stable id, e.g. `eop-ip-throttling`.
    pub id: String,
    /// The family it belongs to.
    pub family: String,
    /// Who writes this reply; `any` for meanings every server shares.
    #[serde(deserialize_with = "origin_or_any")]
    pub origin: Option<Origin>,
    /// What it matches.
    #[serde(rename = "match")]
    pub when: Match,
    /// A more specific title than the family's.
    #[serde(default)]
    pub title: Option<String>,
    /// Where in the SMTP dialogue (or after it) it is seen.
    pub stage: String,
    /// A more specific meaning than the family's.
    #[serde(default)]
    pub meaning: Option<String>,
    /// The connector answer, when it differs from the family's.
    #[serde(default)]
    pub connector: Option<ConnectorAnswer>,
    /// The connector answer when the reply is known to come from a tenant's inbound MX (where
    /// the inbound connectors act), when that differs from `connector`.
    #[serde(default)]
    pub connector_at_mx: Option<ConnectorAnswer>,
    /// Support's action, when it differs from the family's.
    #[serde(default)]
    pub support: Option<String>,
    /// Ops' action, when it differs from the family's.
    #[serde(default)]
    pub ops: Option<String>,
    /// The public source (URL) that documents it.
    pub source: String,
    /// A real sample this entry must read (checked by a test).
    pub sample: String,
    /// A general reading (RFC 3463's meaning of a code, or a wording many servers share): its
    /// confidence is `inferred`, not `documented`.
    #[serde(default)]
    pub generic: bool,
    /// Whether it comes from `rfc.toml`: the RFC's general meaning of a code, so the explanation
    /// may quote the RFC's words for it.
    #[serde(skip)]
    pub rfc: bool,
}

fn origin_or_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Origin>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "any" {
        return Ok(None);
    }
    Origin::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(s)).map(Some)
}

/// An origin's fingerprints (`origins.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginDef {
    /// Which origin.
    origin: Origin,
    /// Its name in prose ("Postfix", "Mimecast").
    name: String,
    /// Host names it answers from (regular expressions).
    #[serde(default)]
    hosts: Vec<String>,
    /// Recipient addresses it serves (regular expressions).
    #[serde(default)]
    recipients: Vec<String>,
    /// Wordings only it uses (regular expressions).
    #[serde(default)]
    text: Vec<String>,
    /// Enhanced codes only it uses (ranges, as in entries).
    #[serde(default)]
    codes: Vec<String>,
    /// Host names of its inbound MX endpoints, where Microsoft 365's inbound connectors act.
    #[serde(default)]
    mx_hosts: Vec<String>,
    /// Where the fingerprints come from.
    source: String,
}

/// A compiled origin fingerprint.
pub(crate) struct OriginRule {
    pub origin: Origin,
    pub name: String,
    hosts: Vec<Regex>,
    recipients: Vec<Regex>,
    text: Vec<Regex>,
    codes: Vec<(EnhancedCode, EnhancedCode)>,
    mx_hosts: Vec<Regex>,
}

/// A compiled entry.
pub(crate) struct Rule {
    pub entry: Entry,
    pub family: usize,
    ranges: Vec<(EnhancedCode, EnhancedCode)>,
    text: Vec<Regex>,
}

/// The whole knowledge base, compiled.
pub struct Knowledge {
    /// Every family.
    pub families: Vec<Family>,
    pub(crate) origins: Vec<OriginRule>,
    pub(crate) rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamiliesFile {
    family: Vec<Family>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginsFile {
    origin: Vec<OriginDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntriesFile {
    entry: Vec<Entry>,
}

fn regex(file: &str, id: &str, pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map_err(|e| format!("{file}: {id}: bad pattern `{pattern}`: {e}"))
}

fn regexes(file: &str, id: &str, patterns: &[String]) -> Result<Vec<Regex>, String> {
    patterns.iter().map(|p| regex(file, id, p)).collect()
}

/// Parses `C.S.D` or `C.S.D-C.S.D` (same class and subject).
fn parse_range(s: &str) -> Result<(EnhancedCode, EnhancedCode), String> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (a.parse::<EnhancedCode>()?, b.parse::<EnhancedCode>()?),
        None => {
            let c = s.parse::<EnhancedCode>()?;
            (c, c)
        }
    };
    if lo.class != hi.class || lo.subject != hi.subject || lo.detail > hi.detail {
        return Err(format!(
            "`{s}`: a range keeps class and subject and runs upwards"
        ));
    }
    Ok((lo, hi))
}

impl Knowledge {
    /// Parses and checks the shipped files.
    fn load() -> Result<Knowledge, String> {
        let families = toml::from_str::<FamiliesFile>(FAMILIES)
            .map_err(|e| format!("families.toml: {e}"))?
            .family;
        let origins = toml::from_str::<OriginsFile>(ORIGINS)
            .map_err(|e| format!("origins.toml: {e}"))?
            .origin
            .into_iter()
            .map(|o| {
                if !o.source.starts_with("https://") {
                    return Err(format!("origins.toml: {}: source must be a URL", o.name));
                }
                Ok(OriginRule {
                    codes: o
                        .codes
                        .iter()
                        .map(|r| {
                            parse_range(r).map_err(|e| format!("origins.toml: {}: {e}", o.name))
                        })
                        .collect::<Result<_, _>>()?,
                    hosts: regexes("origins.toml", &o.name, &o.hosts)?,
                    mx_hosts: regexes("origins.toml", &o.name, &o.mx_hosts)?,
                    recipients: regexes("origins.toml", &o.name, &o.recipients)?,
                    text: regexes("origins.toml", &o.name, &o.text)?,
                    origin: o.origin,
                    name: o.name,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let mut rules = Vec::new();
        for (file, text) in ENTRY_FILES {
            let entries = toml::from_str::<EntriesFile>(text)
                .map_err(|e| format!("{file}: {e}"))?
                .entry;
            for mut entry in entries {
                entry.rfc = file == "rfc.toml";
                rules.push(compile(file, entry, &families)?);
            }
        }
        Ok(Knowledge {
            families,
            origins,
            rules,
        })
    }

    /// The shipped knowledge base. A broken file is a build defect caught by tests; at run time
    /// it degrades to an empty base (every reply read from its code class alone).
    pub fn get() -> &'static Knowledge {
        static KB: OnceLock<Knowledge> = OnceLock::new();
        KB.get_or_init(|| {
            Knowledge::load().unwrap_or_else(|e| {
                tracing::error!("reply knowledge base: {e}");
                Knowledge {
                    families: Vec::new(),
                    origins: Vec::new(),
                    rules: Vec::new(),
                }
            })
        })
    }

    /// The family with this id.
    pub fn family(&self, id: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.id == id)
    }

    /// Every entry, in match order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.rules.iter().map(|r| &r.entry)
    }
}

fn compile(file: &str, entry: Entry, families: &[Family]) -> Result<Rule, String> {
    let id = entry.id.as_str();
    let family = families
        .iter()
        .position(|f| f.id == entry.family)
        .ok_or_else(|| format!("{file}: {id}: unknown family `{}`", entry.family))?;
    let ranges = entry
        .when
        .enhanced
        .iter()
        .map(|r| parse_range(r).map_err(|e| format!("{file}: {id}: {e}")))
        .collect::<Result<Vec<_>, String>>()?;
    if ranges.is_empty() && entry.when.text.is_empty() {
        return Err(format!("{file}: {id}: match needs `enhanced` or `text`"));
    }
    if !entry.source.starts_with("https://") && !entry.source.starts_with("http://") {
        return Err(format!("{file}: {id}: source must be a URL"));
    }
    let text = regexes(file, id, &entry.when.text)?;
    Ok(Rule {
        entry,
        family,
        ranges,
        text,
    })
}

/// What the knowledge base is asked about: a reply or a bare status, as far as it is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<'a> {
    pub code: Option<u16>,
    pub enhanced: Option<EnhancedCode>,
    pub token: Option<&'a str>,
    pub text: &'a str,
    pub origin: Origin,
    /// Skip TLS-required entries: the session was encrypted, so the reply is about something else.
    pub session_tls: bool,
}

impl Rule {
    fn matches(&self, q: &Query, families: &[Family]) -> bool {
        let m = &self.entry.when;
        if let Some(o) = self.entry.origin {
            if !o.covers(q.origin) {
                return false;
            }
        }
        if q.session_tls && families[self.family].outcome == FamilyOutcome::TlsRequired {
            return false;
        }
        if !self.ranges.is_empty() {
            let Some(e) = q.enhanced else { return false };
            if !in_ranges(&self.ranges, e) {
                return false;
            }
        }
        if !m.codes.is_empty() {
            match q.code {
                Some(c) if m.codes.contains(&c) => {}
                // A pasted reply without its code: the wording decides.
                None if !self.text.is_empty() => {}
                _ => return false,
            }
        }
        if !m.tokens.is_empty() {
            let Some(t) = q.token else { return false };
            if !m.tokens.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => t.starts_with(prefix),
                None => t == p,
            }) {
                return false;
            }
        }
        self.text.is_empty() || self.text.iter().any(|r| r.is_match(q.text))
    }
}

fn in_ranges(ranges: &[(EnhancedCode, EnhancedCode)], e: EnhancedCode) -> bool {
    ranges.iter().any(|(lo, hi)| {
        lo.class == e.class
            && lo.subject == e.subject
            && (lo.detail..=hi.detail).contains(&e.detail)
    })
}

/// The first entry that reads this query.
pub(crate) fn lookup<'k>(kb: &'k Knowledge, q: &Query) -> Option<&'k Rule> {
    kb.rules.iter().find(|r| r.matches(q, &kb.families))
}

/// Who wrote a reply, from its host, its recipient, its wording and its enhanced code, in that
/// order of weight. Returns the origin and the fingerprint's name ("Postfix"), or `Unknown`.
pub(crate) fn detect_origin<'k>(
    kb: &'k Knowledge,
    host: Option<&str>,
    recipient: Option<&str>,
    text: &str,
    enhanced: Option<EnhancedCode>,
) -> (Origin, Option<&'k str>) {
    let host = host.map(|h| h.trim_end_matches('.'));
    let by = |pick: &dyn Fn(&OriginRule) -> bool| {
        kb.origins
            .iter()
            .find(|o| pick(o))
            .map(|o| (o.origin, Some(o.name.as_str())))
    };
    if let Some(h) = host {
        if let Some(found) = by(&|o| o.hosts.iter().any(|r| r.is_match(h))) {
            return found;
        }
    }
    if let Some(rcpt) = recipient {
        if let Some(found) = by(&|o| o.recipients.iter().any(|r| r.is_match(rcpt))) {
            return found;
        }
    }
    if let Some(found) = by(&|o| o.text.iter().any(|r| r.is_match(text))) {
        return found;
    }
    enhanced
        .and_then(|e| by(&|o| in_ranges(&o.codes, e)))
        .unwrap_or((Origin::Unknown, None))
}

/// Whether `host` is a Microsoft 365 tenant's inbound MX.
pub(crate) fn is_tenant_mx(kb: &Knowledge, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    kb.origins
        .iter()
        .any(|o| o.mx_hosts.iter().any(|r| r.is_match(host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_files_load() {
        let kb = Knowledge::load().unwrap();
        assert!(kb.families.len() >= 30);
        assert!(kb.rules.len() >= 100, "{}", kb.rules.len());
        let mut ids: Vec<&str> = kb.entries().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "entry ids are unique");
    }

    #[test]
    fn ranges_keep_class_and_subject() {
        assert!(parse_range("4.7.500-4.7.699").is_ok());
        assert!(parse_range("4.7.500-4.8.699").is_err());
        assert!(parse_range("4.7.600-4.7.500").is_err());
        assert!(parse_range("9.1.1").is_err());
    }

    #[test]
    fn origins_cover_their_neighbours_only() {
        assert!(Origin::Microsoft.covers(Origin::MicrosoftConsumer));
        assert!(Origin::Exchange.covers(Origin::Microsoft));
        assert!(!Origin::Postfix.covers(Origin::Unknown));
        assert!(!Origin::Microsoft.covers(Origin::Postfix));
        assert!(!Origin::Postfix.covers(Origin::Exim));
    }
}
