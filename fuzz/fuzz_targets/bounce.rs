//! Whole inputs as `explain` gets them: MIME messages, RFC 3464 DSNs, HTML NDRs, pasted text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mailharness::reply::dsn::parse_dsn(data);
    if let Ok(r) = mailharness::reply::explain_input(data, "fuzz") {
        let _ = r.render_text();
        let _ = serde_json::to_string(&r);
    }
});
