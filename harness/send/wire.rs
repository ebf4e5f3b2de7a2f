//! The byte stream under a session: plain TCP or TLS, a bounded line reader, and reply assembly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::text::clip;

/// Longest reply line accepted. RFC 5321 says 512 octets, but real servers (EOP's trailers) go
/// past it; anything this long is a broken or hostile peer, and bounding it bounds our memory.
pub const MAX_REPLY_LINE: usize = 16 * 1024;
/// Most lines in one multi-line reply (a long EHLO list has ~20).
pub const MAX_REPLY_LINES: usize = 200;
/// Read chunk size.
const READ_CHUNK: usize = 8 * 1024;

/// A plain or TLS stream.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

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
    buf: Vec<u8>,
    pos: usize,
}

impl Conn {
    /// Wraps a stream.
    pub fn new(stream: Stream) -> Self {
        Conn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        }
    }

    /// The plain TCP stream back, for the STARTTLS upgrade; `None` if already TLS.
    pub fn into_plain(self) -> Option<TcpStream> {
        match self.stream {
            Stream::Plain(s) => Some(s),
            Stream::Tls(_) => None,
        }
    }

    /// Whether unread bytes are buffered (after STARTTLS's 220 this means a command injection attempt).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end of stream. Cancel-safe: bytes are only
    /// appended once read, so a dropped call (a timeout) leaves the buffer intact.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads one line (without CR/LF), bounded by [`MAX_REPLY_LINE`].
    pub async fn read_line(&mut self) -> Result<String, ReadError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..]) {
                let mut line = &self.buf[self.pos..self.pos + i];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let s = String::from_utf8_lossy(line).into_owned();
                self.pos += i + 1;
                return Ok(s);
            }
            if self.buf.len() - self.pos > MAX_REPLY_LINE {
                return Err(ReadError::Protocol(format!(
                    "reply line longer than {MAX_REPLY_LINE} bytes"
                )));
            }
            match self.fill().await {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
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
        self.stream.write_all(data).await?;
        self.stream.flush().await
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
