//! The SMTP client's connection: the shared client stream and framer, and reply assembly.

use std::io;

use tokio::net::TcpStream;

use crate::text::clip;
use crate::wire::{Framer, Scan, Stream};

/// Longest reply line accepted. RFC 5321 says 512 octets, but real servers (EOP's trailers) go
/// past it; anything this long is a broken or hostile peer, and bounding it bounds our memory.
pub const MAX_REPLY_LINE: usize = 16 * 1024;
/// Most lines in one multi-line reply (a long EHLO list has ~20).
pub const MAX_REPLY_LINES: usize = 200;
/// Read chunk size.
const READ_CHUNK: usize = 8 * 1024;

/// Why reading a reply failed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// A socket error.
    Io(io::Error),
    /// The peer sent something that is not an SMTP reply.
    Protocol(String),
}

/// A stream with a read buffer: replies are read line by line without losing pipelined bytes.
pub struct Conn {
    /// The stream.
    pub stream: Stream,
    framer: Framer,
}

impl Conn {
    /// Wraps a stream.
    pub fn new(stream: Stream) -> Self {
        Conn {
            stream,
            framer: Framer::new(READ_CHUNK),
        }
    }

    /// The plain TCP stream back, for the STARTTLS upgrade; `None` if already TLS.
    pub fn into_plain(self) -> Option<TcpStream> {
        self.stream.into_plain()
    }

    /// Whether unread bytes are buffered (after STARTTLS's 220 this means a command injection attempt).
    pub fn has_buffered(&self) -> bool {
        self.framer.has_unframed()
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end of stream. Cancel-safe: bytes are only
    /// appended once read, so a dropped call (a timeout) leaves the buffer intact.
    pub async fn fill(&mut self) -> io::Result<usize> {
        self.framer.read_from(&mut self.stream).await
    }

    /// Reads one line (without CR/LF), bounded by [`MAX_REPLY_LINE`].
    pub async fn read_line(&mut self) -> Result<String, ReadError> {
        self.framer.release();
        match self
            .framer
            .line_from(&mut self.stream, MAX_REPLY_LINE)
            .await
        {
            Ok(Some(Scan::Line)) => {
                Ok(String::from_utf8_lossy(self.framer.last_line()).into_owned())
            }
            Ok(Some(Scan::TooLong(_))) => Err(ReadError::Protocol(format!(
                "reply line longer than {MAX_REPLY_LINE} bytes"
            ))),
            Ok(None) => Err(ReadError::Closed),
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// Reads the raw lines of one (possibly multi-line) reply.
    pub async fn read_reply_lines(&mut self) -> Result<Vec<String>, ReadError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await?;
            let b = line.as_bytes();
            let valid = b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit);
            if !valid {
                return Err(ReadError::Protocol(format!(
                    "`{}` is not an SMTP reply line",
                    clip(&line, 120)
                )));
            }
            let last = b.len() == 3 || b[3] != b'-';
            lines.push(line);
            if last {
                return Ok(lines);
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(ReadError::Protocol(format!(
                    "reply has more than {MAX_REPLY_LINES} lines"
                )));
            }
        }
    }

    /// Writes all bytes and flushes (TLS needs the flush to emit records).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.stream.send(data).await
    }
}

/// Appends `body` to `out` dot-stuffed (RFC 5321 §4.5.2) with bare LFs made CRLF, then the
/// end-of-data marker. Returns nothing: the result is the wire form of the DATA payload.
pub fn dot_stuff_into(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 5);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair() -> (Conn, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        let c = TcpStream::connect(a).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (Conn::new(Stream::Plain(c)), s)
    }

    #[tokio::test]
    async fn multiline_and_pipelined_replies_come_back_in_order() {
        let (mut c, mut s) = pair().await;
        // Three replies in one segment, as a pipelining server sends them, then a split one.
        s.write_all(b"250-mx Hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n250 2.1.0 Ok\r\n451 4.7.500 busy (AS761)\r\n354 go")
            .await
            .unwrap();
        assert_eq!(
            c.read_reply_lines().await.unwrap(),
            vec!["250-mx Hello", "250-PIPELINING", "250 STARTTLS"]
        );
        assert_eq!(c.read_reply_lines().await.unwrap(), vec!["250 2.1.0 Ok"]);
        assert_eq!(
            c.read_reply_lines().await.unwrap(),
            vec!["451 4.7.500 busy (AS761)"]
        );
        s.write_all(b" ahead\r\n221").await.unwrap();
        assert_eq!(c.read_reply_lines().await.unwrap(), vec!["354 go ahead"]);
        drop(s);
        // A bare code at end of stream without CRLF is a closed connection, not a reply.
        assert!(matches!(c.read_reply_lines().await, Err(ReadError::Closed)));
    }

    #[tokio::test]
    async fn garbage_and_endless_lines_are_protocol_errors() {
        let (mut c, mut s) = pair().await;
        s.write_all(b"hello there\r\n").await.unwrap();
        assert!(matches!(
            c.read_reply_lines().await,
            Err(ReadError::Protocol(_))
        ));
        let (mut c, mut s) = pair().await;
        tokio::spawn(async move {
            let chunk = vec![b'2'; 4096];
            for _ in 0..10 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        assert!(matches!(
            c.read_reply_lines().await,
            Err(ReadError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn the_line_cap_holds_however_the_line_arrives() {
        // Whole in one write, its LF included: refused all the same.
        let (mut c, mut s) = pair().await;
        let mut line = vec![b'2'; MAX_REPLY_LINE + 1];
        line.extend_from_slice(b"\r\n250 ok\r\n");
        s.write_all(&line).await.unwrap();
        assert!(matches!(
            c.read_reply_lines().await,
            Err(ReadError::Protocol(m)) if m.contains("longer than")
        ));
        // Exactly at the cap (its CR counted): a reply.
        let (mut c, mut s) = pair().await;
        let mut line = b"250 ".to_vec();
        line.resize(MAX_REPLY_LINE - 1, b'x');
        line.extend_from_slice(b"\r\n");
        s.write_all(&line).await.unwrap();
        let got = c.read_reply_lines().await.unwrap();
        assert_eq!(got[0].len(), MAX_REPLY_LINE - 1);
    }

    #[test]
    fn dot_stuffing_escapes_leading_dots_and_terminates() {
        let mut out = Vec::new();
        dot_stuff_into(b"a\r\n.b\r\n..c\nd", &mut out);
        assert_eq!(out, b"a\r\n..b\r\n...c\r\nd\r\n.\r\n");
        let mut out = Vec::new();
        dot_stuff_into(b".\r\n", &mut out);
        assert_eq!(out, b"..\r\n.\r\n");
    }
}
