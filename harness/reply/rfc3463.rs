//! RFC 3463 (and IANA registry) names of enhanced status code classes, subjects and details,
//! for the explanation's "Class" line.

/// RFC 3463 §3 subjects.
pub fn subject_name(s: u16) -> Option<&'static str> {
    Some(match s {
        0 => "other or undefined status",
        1 => "addressing status",
        2 => "mailbox status",
        3 => "mail system status",
        4 => "network and routing status",
        5 => "mail delivery protocol status",
        6 => "message content or media status",
        7 => "security or policy status",
        _ => return None,
    })
}

/// RFC 3463 details (and a few later IANA registry entries), by subject and detail.
pub fn detail_name(s: u16, d: u16) -> Option<&'static str> {
    Some(match (s, d) {
        (0, 0) => "Other undefined status",
        (1, 0) => "Other address status",
        (1, 1) => "Bad destination mailbox address",
        (1, 2) => "Bad destination system address",
        (1, 3) => "Bad destination mailbox address syntax",
        (1, 4) => "Destination mailbox address ambiguous",
        (1, 6) => "Destination mailbox has moved",
        (1, 7) => "Bad sender's mailbox address syntax",
        (1, 8) => "Bad sender's system address",
        (1, 10) => "Recipient address has null MX",
        (2, 0) => "Other or undefined mailbox status",
        (2, 1) => "Mailbox disabled, not accepting messages",
        (2, 2) => "Mailbox full",
        (2, 3) => "Message length exceeds administrative limit",
        (2, 4) => "Mailing list expansion problem",
        (3, 0) => "Other or undefined mail system status",
        (3, 1) => "Mail system full",
        (3, 2) => "System not accepting network messages",
        (3, 3) => "System not capable of selected features",
        (3, 4) => "Message too big for system",
        (3, 5) => "System incorrectly configured",
        (4, 0) => "Other or undefined network or routing status",
        (4, 1) => "No answer from host",
        (4, 2) => "Bad connection",
        (4, 3) => "Directory server failure",
        (4, 4) => "Unable to route",
        (4, 5) => "Mail system congestion",
        (4, 6) => "Routing loop detected",
        (4, 7) => "Delivery time expired",
        (5, 0) => "Other or undefined protocol status",
        (5, 1) => "Invalid command",
        (5, 2) => "Syntax error",
        (5, 3) => "Too many recipients",
        (5, 4) => "Invalid command arguments",
        (5, 5) => "Wrong protocol version",
        (6, 0) => "Other or undefined media error",
        (6, 1) => "Media not supported",
        (6, 2) => "Conversion required and prohibited",
        (6, 3) => "Conversion required but not supported",
        (6, 4) => "Conversion with loss performed",
        (6, 5) => "Conversion failed",
        (7, 0) => "Other or undefined security status",
        (7, 1) => "Delivery not authorized, message refused",
        (7, 2) => "Mailing list expansion prohibited",
        (7, 3) => "Security conversion required but not possible",
        (7, 4) => "Security features not supported",
        (7, 5) => "Cryptographic failure",
        (7, 6) => "Cryptographic algorithm not supported",
        (7, 7) => "Message integrity failure",
        (7, 8) => "Authentication credentials invalid",
        (7, 9) => "Authentication mechanism is too weak",
        (7, 10) => "Encryption needed",
        (7, 11) => "Encryption required for requested authentication mechanism",
        (7, 13) => "User account disabled",
        (7, 14) => "Trust relationship required",
        (7, 20) => "No passing DKIM signature found",
        (7, 23) => "SPF validation failed",
        (7, 25) => "Reverse DNS validation failed",
        (7, 26) => "Multiple authentication checks failed",
        (7, 27) => "Sender address has null MX",
        _ => return None,
    })
}

/// The class word for a leading digit (basic or enhanced: both use 2/4/5 the same way).
pub fn class_name(digit: u16) -> &'static str {
    match digit {
        2 => "success",
        3 => "intermediate",
        4 => "temporary failure",
        5 => "permanent failure",
        _ => "unknown",
    }
}
