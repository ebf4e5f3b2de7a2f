//! Watching an SMTP dialogue as it happens: the session reports each connection's steps to a
//! [`TranscriptTap`] the moment they complete, so `mailharness send --transcript` can print the
//! conversation live, the way swaks does, instead of only after the burst.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::record::{AttemptRecord, Exchange, TlsInfo};

/// One step of a connection, as it happens.
#[derive(Debug, Clone, Copy)]
pub enum TapEvent<'a> {
    /// A TCP connect is about to start.
    Connecting {
        /// The bound source address.
        from: Ipv4Addr,
        /// Where to.
        to: SocketAddrV4,
    },
    /// The TCP connection is open.
    Connected,
    /// A command and its reply (or the missing reply, when the connection failed).
    Exchange(&'a Exchange),
    /// The TLS handshake finished; what follows on this connection is encrypted.
    TlsStarted(&'a TlsInfo),
    /// An attempt's record is complete (its outcome, reply or error).
    Finished(&'a AttemptRecord),
}

/// Receives every connection's steps. Called from the send engine's tasks: it must not block long.
pub trait TranscriptTap: Send + Sync + std::fmt::Debug {
    /// `connection` numbers the connection within the run (0 before one was opened).
    fn event(&self, connection: u64, event: TapEvent<'_>);
}
