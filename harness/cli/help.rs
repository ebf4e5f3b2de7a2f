//! The `Examples:` and `Exit codes:` sections of every command's `--help` (and so of the man page).

/// The top level.
pub const TOP: &str = "\
Examples:
  mailharness plan scenarios/connector-before-after.toml
  mailharness run scenarios/connector-before-after.toml
  mailharness run scenarios/*.toml --junit reports/junit.xml --json
  mailharness send --server 127.0.0.1:2525 --to qa1@contoso.example --transcript
  mailharness explain '451 4.7.500 Server busy. Please try again later from [203.0.113.10]. (AS761)'

Exit codes:
  0  pass / ok
  1  a negative result (failed expectations, missing mail, an IP that cannot deliver)
  2  usage or configuration (bad file, flag or target; the error names file:line:col or the field)
  3  infrastructure (a server, file or socket failed), or interrupted by Ctrl-C/SIGTERM/SIGHUP
  `send` adds codes 20-32 for the SMTP stage a message failed at: see `mailharness send --help`.";

/// `plan`.
pub const PLAN: &str = "\
Examples:
  mailharness plan scenarios/connector-before-after.toml
  mailharness plan scenarios/smoke.toml --target scenarios/targets/m365-example.toml
  mailharness plan scenarios/smoke.toml --json | jq .total_messages

Exit codes:
  0  the plan is valid and within the guard rails (it is printed)
  2  a file, the guard rails or a sender IP not on this machine refuse it (errors name file:line:col)";

/// `run`.
pub const RUN: &str = "\
Examples:
  mailharness run scenarios/connector-before-after.toml
  mailharness run scenarios/tls-enforcement.toml scenarios/smoke.toml --junit reports/junit.xml
  mailharness run scenarios/smoke.toml --target my-tenant.toml --out /tmp/runs --json

Exit codes (the worst over the suite):
  0  every expectation of every scenario held
  1  some expectation failed
  2  usage or configuration (nothing is sent: every file is checked first)
  3  a run could not run or finish (simulator, IMAP, files), or Ctrl-C/SIGTERM/SIGHUP stopped it";

/// `report`.
pub const REPORT: &str = "\
Examples:
  mailharness report reports/latest
  mailharness report reports/connector-before-after-20261202T184834Z-1983 --json

Exit codes:
  0  every expectation held
  1  some expectation failed (or the run was interrupted or could not finish)
  2  the run directory or one of its records is missing
  3  the reports could not be written";

/// `observe`.
pub const OBSERVE: &str = "\
Examples:
  mailharness observe reports/latest
  mailharness observe reports/latest --deadline 5m --json
  mailharness observe reports/<run-id> --target my-tenant.toml --cleanup

A run on the embedded simulator keeps its mailboxes under <run-dir>/sim/maildir; observe reads
them through the simulator's IMAP server, started for the occasion with a password that only
lives in memory.

Exit codes:
  0  every accepted message was found
  1  some are missing
  2  usage or configuration (run directory, target, credentials)
  3  infrastructure (the IMAP server failed)";

/// `send`.
pub const SEND: &str = "\
Examples:
  mailharness send --server 127.0.0.1:2525 --from-ip 127.0.0.3 --to qa1@contoso.example --count 8
  mailharness send --server 127.0.0.1:2525 --to qa1@contoso.example --count 1 --tls starttls \\
      --ca-file sim-state/tls/ca.pem --transcript
  mailharness send --server 127.0.0.1:25 --to a@testbed.example --json > send.json

Exit codes (modelled on swaks'; the earliest stage any message failed at wins):
  0   every message was accepted
  2   usage or configuration (flags, --ca-file, a source IP not on this machine)
  3   infrastructure (the attempts file), or interrupted by Ctrl-C/SIGTERM/SIGHUP
  20  could not connect (refused, unreachable, timed out)        [swaks 2]
  21  the greeting was refused or never came                     [swaks 21]
  22  EHLO was refused                                            [swaks 22]
  23  MAIL FROM (or RSET) was refused, e.g. throttled at MAIL     [swaks 23]
  24  no recipient was accepted, e.g. throttled at RCPT           [swaks 24]
  25  DATA was refused                                            [swaks 25]
  26  the message was refused after its data                      [swaks 26]
  29  TLS failed (STARTTLS refused or absent, handshake failed)   [swaks 29]
  32  EHLO after STARTTLS was refused                             [swaks 32]
A timeout or a dropped connection counts at the stage it happened in.";

/// `sim`.
pub const SIM: &str = "\
Examples:
  mailharness sim
  mailharness sim --config scenarios/tenants/default.toml --smtp-port 2525 --admin-port 8025
  mailharness sim --smtp-port 0 --json     # ephemeral ports; the addresses as one JSON object

Exit codes:
  0  stopped by Ctrl-C, SIGTERM or SIGHUP after delivering what was queued
  2  the tenant file or a flag is invalid
  3  a listener could not bind, or the simulator failed";

/// `verify`.
pub const VERIFY: &str = "\
Examples:
  mailharness verify
  mailharness verify --target my-tenant.toml --json > verify-2026-12-02.json
  mailharness verify --target my-tenant.toml --previous verify-2026-12-02.json

Exit codes:
  0  every sending IP can deliver
  1  some cannot
  2  usage or configuration
  3  infrastructure (DNS, the simulator, IMAP)";

/// `confirm`.
pub const CONFIRM: &str = "\
Examples:
  mailharness confirm --to qa1@contoso.example
  mailharness confirm --to alice@customer.example --target my-tenant.toml --out tickets/4711
  mailharness confirm --to alice@customer.example --subject 'Test after setup' --text-file note.txt

Exit codes:
  0  accepted
  1  not delivered (throttled, refused, not found)
  2  usage or configuration (recipient outside the guard rails, --out unusable)
  3  infrastructure";

/// `explain`.
pub const EXPLAIN: &str = "\
Examples:
  mailharness explain '451 4.7.500 Server busy. Please try again later from [203.0.113.10]. (AS761)'
  mailharness explain --file bounce.eml
  mailharness explain --host contoso-com.mail.protection.outlook.com --json < ndr.txt

Exit codes:
  0  explained
  2  nothing to explain (no reply or status code found), or the input cannot be read";

/// `connector`.
pub const CONNECTOR: &str = "\
Examples:
  mailharness connector --target my-tenant.toml
  mailharness connector --target my-tenant.toml --current 192.0.2.10,192.0.2.11
  mailharness connector --json

Exit codes:
  0  the instructions are printed
  2  a connector rule is broken (each error names its field)";

/// `completions`.
pub const COMPLETIONS: &str = "\
Examples:
  mailharness completions bash > /etc/bash_completion.d/mailharness
  mailharness completions zsh > \"${fpath[1]}/_mailharness\"
  mailharness completions fish > ~/.config/fish/completions/mailharness.fish

Exit codes:
  0  the script is printed
  2  unknown shell";

/// `man`.
pub const MAN: &str = "\
Examples:
  mailharness man > /usr/local/share/man/man1/mailharness.1
  mailharness man | man -l -

Exit codes:
  0  the page is printed";
