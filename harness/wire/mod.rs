//! The one wire layer under every protocol speaker of the harness: the SMTP client (`send`), the
//! IMAP client (`observe`), and the simulator's SMTP and IMAP servers (`sim`).
//!
//! - [`frame`]: a buffered framer that splits received bytes into lines and literals with size
//!   caps. It does no I/O itself, so each speaker keeps its own timeouts, errors and replies, and
//!   every framing rule (line end, over-long lines, literal octets) is written and tested once.
//! - [`stream`]: the plain-or-TLS client stream that STARTTLS upgrades in place.
//! - [`imap`]: the IMAP grammar (RFC 3501 §9) that the simulator's server parses commands with
//!   and the observer's client parses responses with, so the two cannot disagree.

pub mod frame;
pub mod imap;
pub mod stream;

pub use frame::{Framer, Scan};
pub use stream::Stream;
