//! The IMAP server's responses in one place: status responses with fixed text (tagged or
//! untagged), the constructors for those built from data, and the simple server data responses.
//! Modelled on mox's `smtp/codes.go`, like the SMTP table in `sim/reply.rs`.
//!
//! Wording: Exchange Online's where it is public (reference "Reading the test mailboxes":
//! `NO AUTHENTICATE failed.`; `LOGIN completed.` and the greeting from public transcripts),
//! otherwise the RFC's examples or the simulator's own. Sections cite RFC 3501 (IMAP4rev1, what
//! Exchange speaks) and RFC 9051 (IMAP4rev2) where they agree; response codes RFC 5530.
//! Message data (`* n FETCH`, `* SEARCH`) is built where it is read, in `session.rs`.

use base64::Engine as _;

/// The hierarchy delimiter Exchange uses.
pub const DELIMITER: &str = "/";

/// The status word of a status response (RFC 3501 §7.1, RFC 9051 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `OK`: success, or information when untagged.
    Ok,
    /// `NO`: the command failed.
    No,
    /// `BAD`: the command was not understood or not allowed now.
    Bad,
    /// `BYE`: the server is closing the connection.
    Bye,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
            Status::Bye => "BYE",
        }
    }
}

/// A status response with fixed text, and where its wording comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// OK, NO, BAD or BYE.
    pub status: Status,
    /// The response code in brackets (RFC 5530), if any.
    pub code: Option<&'static str>,
    /// The human-readable text.
    pub text: &'static str,
    /// The RFC section or reference the response follows.
    pub source: &'static str,
}

impl Fixed {
    /// `<tag> <status> [<code>] <text>`, without CRLF.
    pub fn tagged(&self, tag: &str) -> String {
        self.line(tag)
    }

    /// `* <status> [<code>] <text>`, without CRLF.
    pub fn untagged(&self) -> String {
        self.line("*")
    }

    fn line(&self, tag: &str) -> String {
        match self.code {
            Some(c) => format!("{tag} {} [{c}] {}", self.status.word(), self.text),
            None => format!("{tag} {} {}", self.status.word(), self.text),
        }
    }
}

const fn fixed(
    status: Status,
    code: Option<&'static str>,
    text: &'static str,
    source: &'static str,
) -> Fixed {
    Fixed {
        status,
        code,
        text,
        source,
    }
}

// ---- Tagged status responses -------------------------------------------------------------------

/// `BAD Command received in Invalid state.`: a command not allowed in this state (Exchange's words).
pub const INVALID_STATE: Fixed = fixed(
    Status::Bad,
    None,
    "Command received in Invalid state.",
    "RFC 3501 §6 (commands per state); Exchange's wording",
);
/// `BAD STARTTLS is not available here.`: already TLS, or no certificate.
pub const STARTTLS_UNAVAILABLE: Fixed = fixed(
    Status::Bad,
    None,
    "STARTTLS is not available here.",
    "RFC 3501 §6.2.1",
);
/// `OK Begin TLS negotiation now.`: the RFC's own example text.
pub const BEGIN_TLS: Fixed = fixed(
    Status::Ok,
    None,
    "Begin TLS negotiation now.",
    "RFC 3501 §6.2.1",
);
/// `BAD AUTHENTICATE aborted.`: the client cancelled the exchange with `*`.
pub const AUTHENTICATE_ABORTED: Fixed = fixed(
    Status::Bad,
    None,
    "AUTHENTICATE aborted.",
    "RFC 3501 §6.2.2",
);
/// `NO The requested item could not be found.`: no such folder (Exchange's words).
pub const NOT_FOUND: Fixed = fixed(
    Status::No,
    None,
    "The requested item could not be found.",
    "RFC 3501 §6.3.1; Exchange's wording",
);
/// `NO [READ-ONLY] The folder is read-only.`: a change to an EXAMINEd folder.
pub const READ_ONLY: Fixed = fixed(
    Status::No,
    Some("READ-ONLY"),
    "The folder is read-only.",
    "RFC 3501 §7.1 (READ-ONLY)",
);
/// `NO [SERVERBUG] Cannot prepare the mailbox's folders.`: creating the Maildir++ folders failed.
pub const PREPARE_FAILED: Fixed = fixed(
    Status::No,
    Some("SERVERBUG"),
    "Cannot prepare the mailbox's folders.",
    "RFC 5530 §3 (SERVERBUG)",
);
/// `BAD Expected DONE.`: anything but DONE during IDLE.
pub const EXPECTED_DONE: Fixed = fixed(Status::Bad, None, "Expected DONE.", "RFC 2177 §3");

// ---- Untagged status responses -----------------------------------------------------------------

/// `* BAD Command Error: missing or invalid tag`: a line without a usable tag.
pub const MISSING_TAG: Fixed = fixed(
    Status::Bad,
    None,
    "Command Error: missing or invalid tag",
    "RFC 3501 §7.1.3 (untagged BAD)",
);
/// `* BYE Server shutting down.`: the simulator stops.
pub const BYE_SHUTDOWN: Fixed = fixed(
    Status::Bye,
    None,
    "Server shutting down.",
    "RFC 3501 §7.1.5",
);
/// `* BYE Connection is closed. 13`: the autologout timer ran out (Exchange's words).
pub const BYE_AUTOLOGOUT: Fixed = fixed(
    Status::Bye,
    None,
    "Connection is closed. 13",
    "RFC 3501 §5.4 (autologout); Exchange's wording",
);
/// `* BYE Microsoft Exchange Server IMAP4 server signing off.`: before LOGOUT's OK.
pub const BYE_LOGOUT: Fixed = fixed(
    Status::Bye,
    None,
    "Microsoft Exchange Server IMAP4 server signing off.",
    "RFC 3501 §6.1.3; Exchange's wording",
);
/// `* OK [PERMANENTFLAGS ()] No permanent flags permitted`: EXAMINE.
pub const NO_PERMANENT_FLAGS: Fixed = fixed(
    Status::Ok,
    Some("PERMANENTFLAGS ()"),
    "No permanent flags permitted",
    "RFC 3501 §6.3.2 and §7.1 (PERMANENTFLAGS)",
);

/// Every fixed status response, for tests and for reading the table as one list.
pub const TABLE: &[(&str, Fixed)] = &[
    ("INVALID_STATE", INVALID_STATE),
    ("STARTTLS_UNAVAILABLE", STARTTLS_UNAVAILABLE),
    ("BEGIN_TLS", BEGIN_TLS),
    ("AUTHENTICATE_ABORTED", AUTHENTICATE_ABORTED),
    ("NOT_FOUND", NOT_FOUND),
    ("READ_ONLY", READ_ONLY),
    ("PREPARE_FAILED", PREPARE_FAILED),
    ("EXPECTED_DONE", EXPECTED_DONE),
    ("MISSING_TAG", MISSING_TAG),
    ("BYE_SHUTDOWN", BYE_SHUTDOWN),
    ("BYE_AUTOLOGOUT", BYE_AUTOLOGOUT),
    ("BYE_LOGOUT", BYE_LOGOUT),
    ("NO_PERMANENT_FLAGS", NO_PERMANENT_FLAGS),
];

// ---- Status responses built from data ----------------------------------------------------------

/// `<tag> OK <verb> completed.`: Exchange's completion for every command (`LOGIN completed.`).
pub fn completed(tag: &str, verb: &str) -> String {
    format!("{tag} OK {verb} completed.")
}

/// `<tag> OK [<code>] <verb> completed.`: SELECT/EXAMINE with READ-WRITE or READ-ONLY
/// (RFC 3501 §6.3.1).
pub fn completed_with(tag: &str, code: &str, verb: &str) -> String {
    format!("{tag} OK [{code}] {verb} completed.")
}

/// `<tag> NO <verb> failed.`: LOGIN or AUTHENTICATE refused (reference, "Reading the test
/// mailboxes": `NO AUTHENTICATE failed.`).
pub fn failed(tag: &str, verb: &str) -> String {
    format!("{tag} NO {verb} failed.")
}

/// `<tag> BAD <reason>`, or `* BAD <reason>` without a tag: a command that does not parse
/// (RFC 3501 §7.1.3).
pub fn bad(tag: Option<&str>, reason: &str) -> String {
    format!("{} BAD {reason}", tag.unwrap_or("*"))
}

/// `<tag> NO <text>`: a refusal whose text was decided elsewhere (opening a folder).
pub fn no(tag: &str, text: &str) -> String {
    format!("{tag} NO {text}")
}

/// `<tag> NO [SERVERBUG] <detail>`: the Maildir could not be read or changed (RFC 5530 §3).
pub fn server_bug(tag: &str, detail: &str) -> String {
    format!("{tag} NO [SERVERBUG] {detail}")
}

/// The text of a folder that exists but cannot be opened, for [`no`] (RFC 5530 §3).
pub fn cannot_open(name: &str, error: &str) -> String {
    format!("[SERVERBUG] Cannot open {name}: {error}")
}

/// `<tag> NO [SERVERBUG] Some messages could not be read: <error>`: a FETCH that read only some.
pub fn unreadable(tag: &str, error: &str) -> String {
    server_bug(tag, &format!("Some messages could not be read: {error}"))
}

/// `<tag> NO Unsupported authentication mechanism <mech>.` (RFC 3501 §6.2.2).
pub fn unsupported_mechanism(tag: &str, mech: &str) -> String {
    format!("{tag} NO Unsupported authentication mechanism {mech}.")
}

/// `<tag> NO [CANNOT] <command> is not supported by the simulator.` (RFC 5530 §3).
pub fn not_supported(tag: &str, command: &str) -> String {
    format!("{tag} NO [CANNOT] {command} is not supported by the simulator.")
}

/// `* OK The Microsoft Exchange IMAP4 service is ready. [<base64 of UTF-16LE server name>]`:
/// Exchange's greeting carries the back-end server name (RFC 3501 §7.1.1).
pub fn greeting(server_name: &str) -> String {
    let utf16: Vec<u8> = server_name
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(utf16);
    format!("* OK The Microsoft Exchange IMAP4 service is ready. [{b64}]")
}

/// `* OK [PERMANENTFLAGS <flags>] Permanent flags`: SELECT (RFC 3501 §7.1).
pub fn permanent_flags(flags: &str) -> String {
    format!("* OK [PERMANENTFLAGS {flags}] Permanent flags")
}

/// `* OK [UNSEEN <n>] Is the first unseen message`: SELECT (RFC 3501 §7.1).
pub fn unseen(seq: usize) -> String {
    format!("* OK [UNSEEN {seq}] Is the first unseen message")
}

/// `* OK [UIDVALIDITY <n>] UIDVALIDITY value`: SELECT (RFC 3501 §7.1).
pub fn uid_validity(v: u32) -> String {
    format!("* OK [UIDVALIDITY {v}] UIDVALIDITY value")
}

/// `* OK [UIDNEXT <n>] The next unique identifier value`: SELECT (RFC 3501 §7.1).
pub fn uid_next(n: u32) -> String {
    format!("* OK [UIDNEXT {n}] The next unique identifier value")
}

/// `+ <text>`: a command continuation request (RFC 3501 §7.5).
pub fn continuation(text: &str) -> String {
    format!("+ {text}")
}

/// The IDLE continuation's text (RFC 2177 §3; Exchange's words).
pub const IDLE_ACCEPTED: &str = "IDLE accepted, awaiting DONE command.";

// ---- Server data responses (RFC 3501 §7.2–7.4) -------------------------------------------------

/// `* CAPABILITY <list>` (§7.2.1).
pub fn capability(list: &str) -> String {
    format!("* CAPABILITY {list}")
}

/// `* ID (...)`: the server's identity (RFC 2971 §3.2).
pub const ID: &str = "* ID (\"name\" \"mailharness simulated Exchange Online\")";

/// `* ENABLED`: nothing this server offers needs enabling (RFC 5161 §3.2).
pub const ENABLED: &str = "* ENABLED";

/// `* NAMESPACE (("" "/")) NIL NIL`: one personal namespace (RFC 2342 §5).
pub fn namespace() -> String {
    format!("* NAMESPACE ((\"\" \"{DELIMITER}\")) NIL NIL")
}

/// `* <n> EXISTS` (§7.3.1).
pub fn exists(n: usize) -> String {
    format!("* {n} EXISTS")
}

/// `* <n> RECENT` (§7.3.2).
pub fn recent(n: usize) -> String {
    format!("* {n} RECENT")
}

/// `* <n> EXPUNGE` (§7.4.1).
pub fn expunge(seq: usize) -> String {
    format!("* {seq} EXPUNGE")
}

/// `* FLAGS <flags>` (§7.2.6).
pub fn flags(list: &str) -> String {
    format!("* FLAGS {list}")
}

/// `* LIST (\Noselect) "/" ""`: the hierarchy delimiter and root, for an empty pattern (§6.3.8).
pub fn list_root() -> String {
    format!("* LIST (\\Noselect) \"{DELIMITER}\" \"\"")
}

/// `* LIST|LSUB (<attributes>) "/" <name>` (§7.2.2, §7.2.3; SPECIAL-USE attributes RFC 6154).
pub fn list_item(verb: &str, attributes: &str, quoted_name: &str) -> String {
    format!("* {verb} ({attributes}) \"{DELIMITER}\" {quoted_name}")
}

/// `* STATUS <name> (<items>)` (§7.2.4).
pub fn status(quoted_name: &str, items: &str) -> String {
    format!("* STATUS {quoted_name} ({items})")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fixed response's exact line, as the session wrote it inline before the table.
    #[test]
    fn lines_are_the_inline_ones() {
        let want = [
            "A1 BAD Command received in Invalid state.",
            "A1 BAD STARTTLS is not available here.",
            "A1 OK Begin TLS negotiation now.",
            "A1 BAD AUTHENTICATE aborted.",
            "A1 NO The requested item could not be found.",
            "A1 NO [READ-ONLY] The folder is read-only.",
            "A1 NO [SERVERBUG] Cannot prepare the mailbox's folders.",
            "A1 BAD Expected DONE.",
            "* BAD Command Error: missing or invalid tag",
            "* BYE Server shutting down.",
            "* BYE Connection is closed. 13",
            "* BYE Microsoft Exchange Server IMAP4 server signing off.",
            "* OK [PERMANENTFLAGS ()] No permanent flags permitted",
        ];
        assert_eq!(want.len(), TABLE.len());
        for ((name, f), want) in TABLE.iter().zip(want) {
            let got = if want.starts_with('*') {
                f.untagged()
            } else {
                f.tagged("A1")
            };
            assert_eq!(got, want, "{name}");
            assert!(!f.source.is_empty(), "{name}");
        }
        assert_eq!(completed("a", "UID FETCH"), "a OK UID FETCH completed.");
        assert_eq!(
            completed_with("a", "READ-ONLY", "EXAMINE"),
            "a OK [READ-ONLY] EXAMINE completed."
        );
        assert_eq!(failed("a", "LOGIN"), "a NO LOGIN failed.");
        assert_eq!(bad(None, "x"), "* BAD x");
        assert_eq!(bad(Some("a"), "x"), "a BAD x");
        assert_eq!(
            unreadable("a", "e"),
            "a NO [SERVERBUG] Some messages could not be read: e"
        );
        assert_eq!(
            no("a", &cannot_open("INBOX", "gone")),
            "a NO [SERVERBUG] Cannot open INBOX: gone"
        );
        assert_eq!(
            greeting("AB"),
            "* OK The Microsoft Exchange IMAP4 service is ready. [QQBCAA==]"
        );
        assert_eq!(namespace(), "* NAMESPACE ((\"\" \"/\")) NIL NIL");
        assert_eq!(list_root(), "* LIST (\\Noselect) \"/\" \"\"");
        assert_eq!(
            list_item("LIST", "\\HasNoChildren \\Junk", "\"Junk Email\""),
            "* LIST (\\HasNoChildren \\Junk) \"/\" \"Junk Email\""
        );
        assert_eq!(
            continuation(IDLE_ACCEPTED),
            "+ IDLE accepted, awaiting DONE command."
        );
    }
}
