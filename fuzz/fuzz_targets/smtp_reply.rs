//! SMTP replies as read off the wire and as pasted: the wire parser on every line group, the
//! tolerant reader on the whole text, and the knowledge base on every reply found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailharness::reply::{self, read, Context, Status};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.lines().collect();
    if let Ok(r) = reply::parse_reply_lines(&lines) {
        let _ = reply::classify(&r, &Context::default());
        let _ = r.to_string();
    }
    for f in read::find_in_text(&text) {
        let e = reply::explain(&f.status, &Context::default());
        let _ = e.render_text();
    }
    let _ = reply::read_status(
        &Status {
            code: None,
            enhanced: None,
            text: text.into_owned(),
        },
        &Context::default(),
    );
});
