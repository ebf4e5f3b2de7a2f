//! Header fields of a delivered copy, and the receiver's evidence decoded from them.
//!
//! Only the fields fetched with `HEADER.FIELDS` are ever seen, so a small RFC 5322 unfolder is
//! enough; values that are not UTF-8 are decoded lossily (they are evidence, not data to re-send).

use chrono::{DateTime, FixedOffset};

use crate::record::Evidence;

/// The header fields observation fetches (`HEADER.FIELDS`), in the order the issue names them.
pub const FETCH_FIELDS: &[&str] = &[
    "Message-ID",
    "X-Harness-Run",
    "X-Harness-Seq",
    "Received",
    "X-Forefront-Antispam-Report",
    "X-MS-Exchange-Organization-AuthAs",
    "Authentication-Results",
    "X-Microsoft-Antispam-Mailbox-Delivery",
    "Date",
];

/// Header fields in message order, names as sent, values unfolded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// Parses a header block (CRLF or LF line ends); stops at the first empty line.
    pub fn parse(block: &[u8]) -> Fields {
        let mut out: Vec<(String, String)> = Vec::new();
        for raw in block.split(|b| *b == b'\n') {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.is_empty() {
                break;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                // A continuation: unfold into the previous field.
                if let Some((_, v)) = out.last_mut() {
                    let more = String::from_utf8_lossy(line);
                    let more = more.trim();
                    if !more.is_empty() {
                        if !v.is_empty() {
                            v.push(' ');
                        }
                        v.push_str(more);
                    }
                }
                continue;
            }
            let Some(colon) = memchr::memchr(b':', line) else {
                continue; // not a field: ignore rather than fail on odd server data
            };
            let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
            let value = String::from_utf8_lossy(&line[colon + 1..])
                .trim()
                .to_string();
            if !name.is_empty() {
                out.push((name, value));
            }
        }
        Fields(out)
    }

    /// The first value of a field (names compare case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver's evidence: the topmost Received line and the Microsoft headers.
pub fn evidence(fields: &Fields) -> Evidence {
    let mut ev = Evidence::default();
    if let Some(received) = fields.get("Received") {
        let (version, cipher) = tls_from_received(received);
        ev.tls_version = Some(version.unwrap_or_else(|| "none".to_string()));
        ev.tls_cipher = cipher;
        ev.received = Some(received.to_string());
    }
    if let Some(report) = fields.get("X-Forefront-Antispam-Report") {
        for (k, v) in key_values(report) {
            let v = (!v.is_empty()).then(|| v.to_string());
            match k.to_ascii_uppercase().as_str() {
                "CIP" => ev.cip = v,
                "SFV" => ev.sfv = v,
                "SCL" => ev.scl = v.and_then(|s| s.parse().ok()),
                "CAT" => ev.cat = v,
                "DIR" => ev.dir = v,
                "IPV" => ev.ipv = v,
                _ => {}
            }
        }
    }
    ev.auth_as = fields
        .get("X-MS-Exchange-Organization-AuthAs")
        .map(str::to_string);
    ev.authentication_results = fields.get("Authentication-Results").map(str::to_string);
    if let Some(d) = fields.get("X-Microsoft-Antispam-Mailbox-Delivery") {
        ev.delivery_dest = key_values(d)
            .find(|(k, _)| k.eq_ignore_ascii_case("dest"))
            .map(|(_, v)| v.to_string());
    }
    ev
}

/// `KEY:VALUE;KEY:VALUE;` pairs; a value may itself hold colons (an IPv6 CIP).
fn key_values(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split(';').filter_map(|kv| {
        let (k, v) = kv.split_once(':')?;
        Some((k.trim(), v.trim()))
    })
}

/// TLS version and cipher from a Received line, in Exchange's form
/// `(version=TLS1_2, cipher=TLS_ECDHE_…)` or Postfix's `(using TLSv1.3 with cipher TLS_AES_…`.
pub fn tls_from_received(line: &str) -> (Option<String>, Option<String>) {
    let token_after = |marker: &str| -> Option<&str> {
        let i = line.find(marker)? + marker.len();
        let rest = &line[i..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',' || c == ')' || c == ';')
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|s| !s.is_empty())
    };
    if let Some(v) = token_after("version=") {
        let version = v
            .strip_prefix("TLS")
            .map(|n| n.trim_start_matches(['v', '_']).replace('_', "."))
            .unwrap_or_else(|| v.to_string());
        return (Some(version), token_after("cipher=").map(str::to_string));
    }
    if let Some(v) = token_after("using TLSv") {
        return (
            Some(v.to_string()),
            token_after("with cipher ").map(str::to_string),
        );
    }
    (None, None)
}

/// The date after the last `;` of a Received line.
pub fn received_date(line: &str) -> Option<DateTime<FixedOffset>> {
    let (_, date) = line.rsplit_once(';')?;
    parse_rfc5322_date(date)
}

/// An RFC 5322 date, tolerating a trailing comment such as `(UTC)` and fractional seconds.
pub fn parse_rfc5322_date(s: &str) -> Option<DateTime<FixedOffset>> {
    let mut s = s.trim();
    if let Some(i) = s.find('(') {
        s = s[..i].trim();
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d);
    }
    // Some MTAs stamp fractional seconds: "Wed, 2 Jan 2019 17:40:34.123 +0000".
    let no_day = s.split_once(',').map(|(_, r)| r.trim()).unwrap_or(s);
    DateTime::parse_from_str(no_day, "%d %b %Y %H:%M:%S%.f %z").ok()
}

/// The message id without surrounding whitespace, compared as sent (`<…>` included).
pub fn normalize_message_id(s: &str) -> String {
    let t = s.trim();
    if t.starts_with('<') {
        t.to_string()
    } else {
        format!("<{t}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EOP: &[u8] = b"Received: from mta1.platform.example (192.0.2.1) by\r\n CH3PEPF00000015.mail.protection.outlook.com (10.167.244.1)\r\n with Microsoft SMTP Server (version=TLS1_2,\r\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7897.13\r\n via Frontend Transport; Wed, 2 Jan 2019 17:40:34 +0000\r\nReceived: from inner; Wed, 2 Jan 2019 17:40:30 +0000\r\nX-MS-Exchange-Organization-AuthAs: Anonymous\r\nX-Forefront-Antispam-Report: CIP:192.0.2.1;CTRY:AU;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:mta1.platform.example;PTR:;CAT:NONE;SFS:;DIR:INB;\r\nX-Microsoft-Antispam-Mailbox-Delivery: ucf:0;jmr:0;auth:0;dest:J;ENG:(x);\r\nAuthentication-Results: spf=pass (sender IP is 192.0.2.1)\r\n smtp.mailfrom=platform.example; dkim=none\r\n\r\n";

    #[test]
    fn eop_evidence() {
        let f = Fields::parse(EOP);
        let ev = evidence(&f);
        assert_eq!(ev.tls_version.as_deref(), Some("1.2"));
        assert_eq!(
            ev.tls_cipher.as_deref(),
            Some("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
        );
        assert_eq!(ev.cip.as_deref(), Some("192.0.2.1"));
        assert_eq!(ev.sfv.as_deref(), Some("NSPM"));
        assert_eq!(ev.scl, Some(1));
        assert_eq!(ev.cat.as_deref(), Some("NONE"));
        assert_eq!(ev.dir.as_deref(), Some("INB"));
        assert_eq!(ev.ipv.as_deref(), Some("NLI"));
        assert_eq!(ev.auth_as.as_deref(), Some("Anonymous"));
        assert_eq!(ev.delivery_dest.as_deref(), Some("J"));
        assert_eq!(
            ev.authentication_results.as_deref(),
            Some("spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=platform.example; dkim=none")
        );
        let d = received_date(ev.received.as_deref().unwrap()).unwrap();
        assert_eq!(d.to_rfc3339(), "2019-01-02T17:40:34+00:00");
    }

    #[test]
    fn postfix_received() {
        let line = "from client (unknown [127.0.0.2]) (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519) (No client certificate requested) by mx.testbed.example (Postfix) with ESMTPS id 4Z; Tue, 14 Apr 2026 10:00:01 +0000 (UTC)";
        assert_eq!(
            tls_from_received(line),
            (
                Some("1.3".to_string()),
                Some("TLS_AES_256_GCM_SHA384".to_string())
            )
        );
        assert!(received_date(line).is_some());
        let plain = "from client by mx (Postfix) with ESMTP id 1; Tue, 14 Apr 2026 10:00:01 +0000";
        assert_eq!(tls_from_received(plain), (None, None));
        let ev = evidence(&Fields(vec![("Received".into(), plain.into())]));
        assert_eq!(ev.tls_version.as_deref(), Some("none"));
    }

    #[test]
    fn odd_input_does_not_panic() {
        let f = Fields::parse(b" leading continuation\r\nno colon\r\n\xff\xfe: \xff\r\nX: y");
        assert_eq!(f.0.len(), 2);
        let _ = evidence(&f);
        assert!(parse_rfc5322_date("garbage").is_none());
        assert!(parse_rfc5322_date("Wed, 2 Jan 2019 17:40:34.250 +0000").is_some());
        assert_eq!(tls_from_received("version=").0, None);
    }
}
