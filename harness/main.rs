//! The `mailharness` command line (its modules are under harness/cli/).

mod cli;

use std::process::ExitCode;

/// The process allocator. glibc's malloc serialises the simulator's SMTP and delivery threads on
/// arena locks (every accepted message is allocated on one and freed on the other); mimalloc's
/// per-thread free lists do not (see benches/README.md, simulator acceptance throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // First, while the process has one thread: the simulated mailboxes' generated password goes
    // into the environment (never a file), and setting the environment is not thread-safe.
    mailharness::observe::sim::install_sim_password();
    cli::main()
}
