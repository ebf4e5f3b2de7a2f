//! The simulator's IMAP command reading: the framer fed in pieces of varying size (the first
//! byte picks the piece size), literals announced by each line taken as the server takes them,
//! and every complete command through the command parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailharness::sim::imap::parse::parse_command;
use mailharness::wire::imap::literal_marker;
use mailharness::wire::{Framer, Scan};

/// The server's line cap is larger; a small one reaches the too-long paths on small inputs.
const MAX_LINE: usize = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first % 64) + 1;
    let mut f = Framer::new(64);
    let mut want_literal: Option<usize> = None;
    for chunk in rest.chunks(piece) {
        f.unfilled().extend_from_slice(chunk);
        loop {
            if let Some(n) = want_literal {
                if f.literal(n).is_none() {
                    break;
                }
                want_literal = None;
            }
            match f.line(MAX_LINE) {
                None => break,
                Some(Scan::TooLong(_)) => continue,
                Some(Scan::Line) => match literal_marker(f.last_line()) {
                    Some(Ok(l)) if (l.len as usize) <= MAX_LINE => {
                        want_literal = Some(l.len as usize)
                    }
                    Some(_) => {
                        f.release();
                    }
                    None => {
                        let _ = parse_command(f.message());
                        f.release();
                    }
                },
            }
        }
    }
});
