//! The observer's IMAP response parsers (LIST, FETCH, tagged completions, capabilities,
//! AUTHENTICATE challenges) on every line of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b"* ").unwrap_or(line);
        mailharness::observe::imap::parse_any_response(line);
    }
});
