//! The command line: the clap definitions, one function per command returning its exit code or a
//! [`CliError`], and the single place that prints an error and turns it into an exit code.
//!
//! Layout: `common` (the flags every command spells alike), `error` (CliError and the exit-code
//! mapping), `out` (stdout that survives a closed pipe), `help` (examples and exit codes of every
//! `--help`), `story` (a finished run for terminals and CI logs), and one module per command group.

mod common;
mod error;
mod gen;
mod help;
mod observe;
mod ops;
mod out;
mod plan;
mod run;
mod send;
mod sim;
mod story;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::CliError;

/// End-to-end delivery tests for mail into Microsoft 365, with an embedded simulated tenant.
#[derive(Debug, Parser)]
#[command(name = "mailharness", version, about, propagate_version = true, after_help = help::TOP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Show exactly what a scenario would send, and check it as `run` will (guard rails, sender IPs). Sends nothing.
    #[command(after_help = help::PLAN)]
    Plan(plan::PlanArgs),
    /// Run scenarios (a suite, in order): records and reports under <out>/<run-id>/, a story per run.
    #[command(after_help = help::RUN)]
    Run(run::RunArgs),
    /// Re-render a run's reports (summary.json, report.md, report.html, junit.xml) from its records.
    #[command(after_help = help::REPORT)]
    Report(run::ReportArgs),
    /// Re-observe a finished run over IMAP (for late mail); rewrites <run-dir>/observations.jsonl.
    #[command(after_help = help::OBSERVE)]
    Observe(observe::ObserveArgs),
    /// Send one scripted burst (source IP, TLS mode, pace, connection reuse) and record every reply.
    #[command(after_help = help::SEND)]
    Send(Box<send::SendArgs>),
    /// Run the simulated Microsoft 365 tenant standalone (loopback SMTP, SMTPS, IMAP, admin API) until Ctrl-C.
    #[command(after_help = help::SIM)]
    Sim(sim::SimArgs),
    /// Per sending IP: bound here, MX, STARTTLS and certificate, one message with and one without TLS, observed.
    #[command(after_help = help::VERIFY)]
    Verify(ops::VerifyArgs),
    /// Send one labelled test message to a customer and print the verdict in plain words.
    #[command(after_help = help::CONFIRM)]
    Confirm(ops::ConfirmArgs),
    /// Explain an SMTP reply, a bounce or DSN file, or stdin: meaning, whether a connector helps, what to do.
    #[command(after_help = help::EXPLAIN)]
    Explain(ops::ExplainArgs),
    /// Print the Exchange admin center steps and PowerShell for the inbound connector of the target's sender IPs.
    #[command(after_help = help::CONNECTOR)]
    Connector(ops::ConnectorArgs),
    /// Print a shell completion script.
    #[command(after_help = help::COMPLETIONS)]
    Completions(gen::CompletionsArgs),
    /// Print the man page (roff).
    #[command(after_help = help::MAN)]
    Man,
}

/// Parses the command line, runs the command, and maps its error to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            out::note(&e.report());
            e.exit()
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Plan(a) => plan::plan(a),
        Command::Run(a) => run::run(a),
        Command::Report(a) => run::report(a),
        Command::Observe(a) => observe::observe(a),
        Command::Send(a) => send::send(*a),
        Command::Sim(a) => sim::sim(a),
        Command::Verify(a) => ops::verify(a),
        Command::Confirm(a) => ops::confirm(a),
        Command::Explain(a) => ops::explain(a),
        Command::Connector(a) => ops::connector(a),
        Command::Completions(a) => gen::completions(a),
        Command::Man => gen::man(),
    }
}

/// Sends the library's log lines to stderr: warnings and errors by default (a failed poll, a torn
/// record line, a simulator fault), more with `MAILHARNESS_LOG=info` or `debug`.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("MAILHARNESS_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
