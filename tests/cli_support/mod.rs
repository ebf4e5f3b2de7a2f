//! Runs the `mailharness` binary for the CLI tests (tests/run_*.rs).

use std::process::Command;

/// Runs `mailharness <args>` and returns its exit code and stdout followed by stderr.
pub fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(args)
        .output()
        .expect("mailharness runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}
