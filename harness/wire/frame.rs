//! Framing apart from I/O: received octets go in, lines and literals come out.
//!
//! A *message* is what one exchange carries: an SMTP reply line, or an IMAP command or response
//! (a line and, for each line that announces a literal, the literal's octets and the line after
//! them). The framer keeps the current message in place in its buffer, so a caller parses it
//! without copying, and lets it go when the caller [releases](Framer::release) it.
//!
//! A line ends at LF; a CR just before the LF is not part of its content, so peers that send bare
//! LF are understood. A line longer than the caller's cap is never buffered whole: the framer
//! says so as soon as it knows, keeps the first octets of its message (an IMAP tag), and skips
//! the rest of the line. Which framing a message needs (one line, or lines and literals) is the
//! caller's to decide, from the grammar; which replies and errors follow is the caller's too.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Octets of an over-long line's message kept for the caller: enough for an IMAP tag.
pub const KEPT_PREFIX: usize = 128;
/// An empty buffer with more capacity than this is given back, so that one big literal does not
/// pin its memory for the rest of the connection.
const SHRINK_ABOVE: usize = 1024 * 1024;

/// What [`Framer::line`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// A whole line is framed into the message: see [`Framer::last_line`].
    Line,
    /// A line longer than the cap. Holds the first octets of its message (at most
    /// [`KEPT_PREFIX`]); the message is dropped and the rest of the line is skipped.
    TooLong(Vec<u8>),
}

/// A receive buffer that frames lines and literals, with caps.
///
/// Invariant: `msg <= line <= end <= pos <= buf.len()`.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the current message.
    msg: usize,
    /// Start of the last framed line.
    line: usize,
    /// End of the last framed line's content (CR LF excluded); the message ends here.
    end: usize,
    /// The first octet not framed yet.
    pos: usize,
    /// Unframed octets already searched for LF, so a long line is searched once, not per read.
    scanned: usize,
    /// The rest of an over-long line is being discarded.
    skipping: bool,
    /// How much room each read gets.
    chunk: usize,
}

impl Framer {
    /// An empty framer whose reads get room for `chunk` octets.
    pub fn new(chunk: usize) -> Self {
        Framer {
            buf: Vec::with_capacity(chunk),
            msg: 0,
            line: 0,
            end: 0,
            pos: 0,
            scanned: 0,
            skipping: false,
            chunk: chunk.max(1),
        }
    }

    /// Frames the next line, if a whole one (or too much of one) is buffered; `None` means more
    /// input is needed. A line whose content, CR included, exceeds `max` octets is
    /// [`Scan::TooLong`], whether or not its LF has arrived.
    pub fn line(&mut self, max: usize) -> Option<Scan> {
        if !self.skip_line() {
            return None;
        }
        let pending = &self.buf[self.pos..];
        let lf = memchr::memchr(b'\n', &pending[self.scanned..]).map(|i| self.scanned + i);
        match lf {
            Some(len) if len > max => {
                let prefix = self.prefix(len);
                self.set_pos(self.pos + len + 1);
                self.release();
                Some(Scan::TooLong(prefix))
            }
            Some(len) => {
                let mut content = self.pos + len;
                if len > 0 && self.buf[content - 1] == b'\r' {
                    content -= 1;
                }
                self.line = self.pos;
                self.end = content;
                self.set_pos(self.pos + len + 1);
                Some(Scan::Line)
            }
            None if pending.len() > max => {
                let prefix = self.prefix(pending.len());
                self.set_pos(self.buf.len());
                self.release();
                self.skipping = true;
                Some(Scan::TooLong(prefix))
            }
            None => {
                self.scanned = pending.len();
                None
            }
        }
    }

    /// Frames the next `n` octets (a literal's) into the message, if they are buffered.
    pub fn literal(&mut self, n: usize) -> Option<&[u8]> {
        if self.skipping || self.buf.len() - self.pos < n {
            return None;
        }
        let start = self.pos;
        self.set_pos(start + n);
        Some(&self.buf[start..start + n])
    }

    /// Discards up to `n` octets that are announced but unwanted (a refused literal) without
    /// buffering them; returns how many are still to come. Drops the current message.
    pub fn skip(&mut self, n: u64) -> u64 {
        let take = n.min((self.buf.len() - self.pos) as u64);
        // `take` is at most the buffered length, so it fits in usize.
        self.set_pos(self.pos + take as usize);
        self.release();
        n - take
    }

    /// Finishes skipping an over-long line: true once its LF has gone by (or when no line was
    /// being skipped), false when more input is needed.
    pub fn skip_line(&mut self) -> bool {
        if !self.skipping {
            return true;
        }
        let lf = memchr::memchr(b'\n', &self.buf[self.pos..]);
        match lf {
            Some(i) => {
                self.set_pos(self.pos + i + 1);
                self.skipping = false;
            }
            None => self.set_pos(self.buf.len()),
        }
        self.release();
        !self.skipping
    }

    /// Whether the rest of an over-long line is still being discarded.
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }

    /// The content of the last framed line (without CR LF).
    pub fn last_line(&self) -> &[u8] {
        &self.buf[self.line..self.end]
    }

    /// The last framed line as received, LF (and CR) included.
    pub fn last_line_raw(&self) -> &[u8] {
        &self.buf[self.line..self.pos]
    }

    /// The current message: its lines and literals in place, up to the end of its last line's
    /// content. Complete once the caller has framed a line that announces no literal.
    pub fn message(&self) -> &[u8] {
        &self.buf[self.msg..self.end]
    }

    /// Lets the current message go; what follows starts the next one.
    pub fn release(&mut self) {
        self.msg = self.pos;
        self.line = self.pos;
        self.end = self.pos;
    }

    /// The octets received but not framed yet.
    pub fn unframed(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Whether octets are received but not framed yet.
    pub fn has_unframed(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// Marks `n` unframed octets used by the caller directly (SMTP DATA); drops the message.
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.pos,
            "advance past the received octets"
        );
        self.set_pos(self.pos + n);
        self.release();
    }

    /// Drops every unframed octet and returns how many there were. After STARTTLS, octets sent
    /// in plain text behind the command must not be taken as sent under TLS.
    pub fn discard_unframed(&mut self) -> usize {
        let n = self.buf.len() - self.pos;
        self.buf.truncate(self.pos);
        self.scanned = 0;
        self.skipping = false;
        n
    }

    /// The buffer to read into, with room for a chunk; append only. The current message is kept
    /// (moved to the front when that saves growing the buffer).
    pub fn unfilled(&mut self) -> &mut Vec<u8> {
        if self.msg == self.buf.len() {
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf = Vec::with_capacity(self.chunk);
            }
            self.buf.clear();
            self.msg = 0;
            self.line = 0;
            self.end = 0;
            self.pos = 0;
        } else if self.msg > 0 && self.buf.capacity() - self.buf.len() < self.chunk {
            let gone = self.msg;
            self.buf.drain(..gone);
            self.msg = 0;
            self.line -= gone;
            self.end -= gone;
            self.pos -= gone;
        }
        self.buf.reserve(self.chunk);
        &mut self.buf
    }

    /// Reads once from `io` into the buffer; `Ok(0)` at end of stream. Cancel-safe: octets are
    /// appended only once read, so a dropped call (a timeout) loses nothing.
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> io::Result<usize> {
        io.read_buf(self.unfilled()).await
    }

    /// Frames the next line, reading from `io` as needed; `None` at end of stream. Cancel-safe.
    pub async fn line_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        max: usize,
    ) -> io::Result<Option<Scan>> {
        loop {
            if let Some(scan) = self.line(max) {
                return Ok(Some(scan));
            }
            if self.read_from(io).await? == 0 {
                return Ok(None);
            }
        }
    }

    fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
        self.scanned = 0;
    }

    /// The first octets of the current message, counting `len` unframed octets as part of it.
    fn prefix(&self, len: usize) -> Vec<u8> {
        let end = (self.pos + len).min(self.msg + KEPT_PREFIX);
        self.buf[self.msg..end].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(f: &mut Framer, b: &[u8]) {
        f.unfilled().extend_from_slice(b);
    }

    /// Frames lines until more input is needed, releasing each.
    fn lines(f: &mut Framer, max: usize) -> Vec<Result<String, Vec<u8>>> {
        let mut out = Vec::new();
        while let Some(s) = f.line(max) {
            out.push(match s {
                Scan::Line => Ok(String::from_utf8_lossy(f.last_line()).into_owned()),
                Scan::TooLong(p) => Err(p),
            });
            f.release();
        }
        out
    }

    #[test]
    fn lines_end_at_lf_with_or_without_cr_across_reads() {
        let mut f = Framer::new(4);
        push(&mut f, b"250-one\r\n250 two\n\r\n25");
        assert_eq!(
            lines(&mut f, 100),
            vec![
                Ok("250-one".into()),
                Ok("250 two".into()),
                Ok(String::new())
            ]
        );
        assert!(f.has_unframed());
        push(&mut f, b"0 th");
        assert!(lines(&mut f, 100).is_empty());
        push(&mut f, b"ree\r\n");
        assert_eq!(lines(&mut f, 100), vec![Ok("250 three".into())]);
        assert!(!f.has_unframed());
        // Only the CR right before the LF goes.
        push(&mut f, b"a\rb\r\r\n");
        assert_eq!(lines(&mut f, 100), vec![Ok("a\rb\r".into())]);
    }

    #[test]
    fn the_cap_counts_the_cr_and_holds_whether_or_not_the_lf_came() {
        let mut f = Framer::new(16);
        // Ten octets of content: fits a cap of 10 bare, not with its CR.
        push(&mut f, b"0123456789\n0123456789\r\nok\r\n");
        let got = lines(&mut f, 10);
        assert_eq!(got[0], Ok("0123456789".into()));
        assert_eq!(got[1], Err(b"0123456789\r".to_vec()));
        assert_eq!(got[2], Ok("ok".into()));
        // Without its LF, a line is refused once more than the cap has come, and skipped to its
        // end over later reads; the next line is intact.
        push(&mut f, b"abcdefghijkl");
        assert_eq!(lines(&mut f, 10), vec![Err(b"abcdefghijkl".to_vec())]);
        assert!(f.is_skipping());
        push(&mut f, b"mnop");
        assert!(lines(&mut f, 10).is_empty());
        push(&mut f, b"qrs\r\nnext\r\n");
        assert_eq!(lines(&mut f, 10), vec![Ok("next".into())]);
        assert!(!f.is_skipping());
    }

    #[test]
    fn an_over_long_line_keeps_the_start_of_its_message() {
        let mut f = Framer::new(64);
        let mut long = b"a7 LOGIN ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 1000));
        push(&mut f, &long);
        match f.line(100) {
            Some(Scan::TooLong(p)) => assert_eq!(p, long[..KEPT_PREFIX]),
            other => panic!("{other:?}"),
        }
        // Mid-message, the prefix is the message's start, not the over-long line's.
        let mut f = Framer::new(64);
        push(&mut f, b"t1 LOGIN {2}\r\nab ");
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.literal(2), Some(&b"ab"[..]));
        push(&mut f, &[b'y'; 200]);
        match f.line(100) {
            Some(Scan::TooLong(p)) => assert!(p.starts_with(b"t1 LOGIN {2}\r\nab yyy")),
            other => panic!("{other:?}"),
        }
        assert!(f.message().is_empty());
    }

    #[test]
    fn literals_are_framed_in_place_into_the_message() {
        let mut f = Framer::new(8);
        push(&mut f, b"a1 LOGIN {3}\r\nab");
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.last_line(), b"a1 LOGIN {3}");
        assert_eq!(f.literal(3), None);
        push(&mut f, b"c {2+}\r\nde\r\na2 NOOP\r\n");
        assert_eq!(f.literal(3), Some(&b"abc"[..]));
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.last_line(), b" {2+}");
        assert_eq!(f.literal(2), Some(&b"de"[..]));
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.message(), b"a1 LOGIN {3}\r\nabc {2+}\r\nde");
        f.release();
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.message(), b"a2 NOOP");
        assert_eq!(f.last_line_raw(), b"a2 NOOP\r\n");
    }

    #[test]
    fn reads_keep_the_message_while_the_buffer_moves() {
        let mut f = Framer::new(4);
        push(&mut f, b"x\r\n* 1 FETCH (BODY[] {10}\r\n0123");
        assert_eq!(f.line(100), Some(Scan::Line));
        f.release();
        assert_eq!(f.line(100), Some(Scan::Line));
        for chunk in [&b"45"[..], b"6", b"78", b"9)\r\n"] {
            assert_eq!(f.literal(10), None);
            push(&mut f, chunk);
        }
        assert_eq!(f.literal(10), Some(&b"0123456789"[..]));
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.message(), b"* 1 FETCH (BODY[] {10}\r\n0123456789)");
    }

    #[test]
    fn refused_literals_are_skipped_not_buffered() {
        let mut f = Framer::new(8);
        push(&mut f, b"0123");
        assert_eq!(f.skip(10), 6);
        assert!(!f.has_unframed());
        push(&mut f, b"456789 x\r\n");
        assert_eq!(f.skip(6), 0);
        assert_eq!(lines(&mut f, 100), vec![Ok(" x".into())]);
    }

    #[test]
    fn discarding_and_direct_use_of_unframed_octets() {
        let mut f = Framer::new(8);
        push(&mut f, b"220 go\r\nEHLO injected\r\n");
        assert_eq!(f.line(100), Some(Scan::Line));
        assert_eq!(f.discard_unframed(), 15);
        assert!(!f.has_unframed());
        push(&mut f, b"body\r\n.\r\nQUIT\r\n");
        assert_eq!(f.unframed(), b"body\r\n.\r\nQUIT\r\n");
        f.advance(9);
        assert_eq!(lines(&mut f, 100), vec![Ok("QUIT".into())]);
    }

    #[test]
    fn a_big_buffer_is_given_back_once_empty() {
        let mut f = Framer::new(16);
        push(&mut f, &vec![b'z'; 2 * SHRINK_ABOVE]);
        assert_eq!(f.skip(u64::MAX), u64::MAX - 2 * SHRINK_ABOVE as u64);
        assert!(f.unfilled().capacity() < SHRINK_ABOVE);
    }

    #[tokio::test]
    async fn lines_from_a_stream_and_end_of_stream() {
        let mut input: &[u8] = b"one\r\ntwo\r\nthr";
        let mut f = Framer::new(2);
        assert_eq!(
            f.line_from(&mut input, 100).await.unwrap(),
            Some(Scan::Line)
        );
        assert_eq!(f.last_line(), b"one");
        f.release();
        assert_eq!(
            f.line_from(&mut input, 100).await.unwrap(),
            Some(Scan::Line)
        );
        assert_eq!(f.last_line(), b"two");
        f.release();
        // A line cut off by the end of the stream is no line.
        assert_eq!(f.line_from(&mut input, 100).await.unwrap(), None);
    }
}
