//! The `mailharness` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mailharness::scenario::{self, Diagnostics};
use mailharness::vocab::{ErrorClass, RunVerdict};

/// Exit code: usage or configuration error.
const EXIT_CONFIG: u8 = 2;
/// Exit code: could not run (infrastructure).
const EXIT_INFRA: u8 = 3;

/// The process allocator. glibc's malloc serialises the simulator's SMTP and delivery threads on
/// arena locks (every accepted message is allocated on one and freed on the other); mimalloc's
/// per-thread free lists do not (see benches/README.md, simulator acceptance throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// End-to-end delivery tests for mail into Microsoft 365, with an embedded simulated tenant.
#[derive(Parser)]
#[command(name = "mailharness", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Show exactly what a scenario would send, and check it against the target's guard rails. Sends nothing.
    Plan {
        /// The scenario file.
        scenario: PathBuf,
        /// The target file (default: the embedded simulator, scenarios/targets/sim.toml).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run scenarios (a suite, in order) and write records and reports under reports/<run-id>/.
    Run {
        /// Scenario files, run in order.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// The target file (default: the embedded simulator, scenarios/targets/sim.toml).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Where run directories are created.
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
        /// No progress bars even on a terminal.
        #[arg(long)]
        no_progress: bool,
    },
    /// Re-render a run's reports (summary.json, report.md, report.html, junit.xml) from its records.
    Report {
        /// The run directory, e.g. reports/<run-id>.
        run_dir: PathBuf,
    },
    /// Run the simulated Microsoft 365 tenant standalone (loopback SMTP, SMTPS, admin API) until Ctrl-C, SIGTERM or SIGHUP.
    Sim(mailharness::sim::SimArgs),
    /// Send one scripted burst (source IP, TLS mode, pace, connection reuse) and record every reply.
    /// Writes OUT/attempts.jsonl and prints a summary. Exit 0: sent; 2: configuration; 3: infrastructure, or stopped by Ctrl-C/SIGTERM.
    Send(Box<mailharness::send::SendArgs>),
    /// Re-observe a finished run over IMAP (for late mail); rewrites <run-dir>/observations.jsonl.
    /// Exit 0: all accepted messages found; 1: some missing; 2: configuration; 3: infrastructure.
    Observe {
        /// The run directory holding attempts.jsonl, e.g. reports/<run-id>.
        run_dir: PathBuf,
        /// The target file with [imap] and [[mailboxes]] (default: the embedded simulator).
        #[arg(long)]
        target: Option<PathBuf>,
        /// How long to keep polling for missing mail (default: one pass).
        #[arg(long, value_parser = mailharness::vocab::parse_duration_arg)]
        deadline: Option<std::time::Duration>,
        /// Pause between polls (default: the target's [observe] poll_interval).
        #[arg(long, value_parser = mailharness::vocab::parse_duration_arg)]
        poll_interval: Option<std::time::Duration>,
        /// Delete this run's messages afterwards (only this run's; nothing else is touched).
        #[arg(long)]
        cleanup: bool,
        /// auto (SEARCH HEADER, falling back to SINCE), header, or since.
        #[arg(long, default_value = "auto")]
        search: mailharness::observe::SearchMode,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Per sending IP: bound here, MX, STARTTLS and certificate, one message with and one without
    /// TLS, classified and observed. Exit 0: every IP can deliver; 1: some cannot; 2: configuration; 3: infrastructure.
    Verify {
        /// The target file (default: the embedded simulator).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Nameserver for the MX lookup, `ip:port` (default: the target's [smtp] dns, else the system's).
        #[arg(long)]
        dns: Option<String>,
        /// Print the report as JSON instead of the table (the input of a later --previous).
        #[arg(long)]
        json: bool,
        /// A previous `verify --json` output: show what changed.
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Do not read the mailboxes over IMAP.
        #[arg(long)]
        no_observe: bool,
    },
    /// Send one labelled test message to a customer and print the verdict in plain words.
    /// Exit 0: accepted; 1: not delivered; 2: configuration; 3: infrastructure.
    Confirm {
        /// The customer's address.
        #[arg(long)]
        to: String,
        /// The sending IP (default: the target's first sender role).
        #[arg(long)]
        from_ip: Option<std::net::Ipv4Addr>,
        /// The target file (default: the embedded simulator).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Nameserver for the MX lookup, `ip:port`.
        #[arg(long)]
        dns: Option<String>,
        /// Where to write the shareable report (confirm-<reference>.md and .json).
        #[arg(long, default_value = "reports")]
        report_dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The subject the customer sees (default "Mail delivery test"); the reference id is added.
        #[arg(long)]
        subject: Option<String>,
        /// A UTF-8 text file ("-" for stdin) with the body the customer reads (default: a short
        /// note that this is a delivery test and needs no action); the reference id is added.
        #[arg(long)]
        text_file: Option<PathBuf>,
    },
    /// Explain an SMTP reply, a bounce or DSN file, or stdin: code family, meaning, whether a
    /// connector helps, what to do. Exit 0: explained; 2: nothing to explain.
    Explain {
        /// The reply line, e.g. "451 4.7.500 Server busy ... (AS761)" (omit to read --file or stdin).
        reply: Vec<String>,
        /// A bounce message or RFC 3464 DSN file ("-" for stdin).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The host that sent the reply, when the text does not name it (for example the
        /// recipient's MX: a tenant's `*.mail.protection.outlook.com` or consumer Outlook.com).
        #[arg(long)]
        host: Option<String>,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the Exchange admin center steps and PowerShell for the inbound connector of the
    /// target's sender IPs; with --current, the change needed after an IP change. Exit 2 on a broken rule.
    Connector {
        /// The target file (default: the embedded simulator).
        #[arg(long)]
        target: Option<PathBuf>,
        /// The IPs the connector lists now, comma-separated.
        #[arg(long)]
        current: Option<String>,
        /// The connector name.
        #[arg(long, default_value = mailharness::connector::DEFAULT_CONNECTOR_NAME)]
        name: String,
        /// Also reject mail for the tenant from any other IP (-RestrictDomainsToIPAddresses $true).
        #[arg(long)]
        restrict_to_ips: bool,
        /// A TLS certificate name to restrict to (refused: IP and certificate restrictions must not mix).
        #[arg(long)]
        certificate_name: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Plan {
            scenario,
            target,
            json,
        } => plan(&scenario, target.as_deref(), json),
        Command::Sim(args) => sim(args),
        Command::Send(args) => send(*args),
        Command::Observe {
            run_dir,
            target,
            deadline,
            poll_interval,
            cleanup,
            search,
            json,
        } => observe(
            &run_dir,
            target.as_deref(),
            deadline,
            poll_interval,
            cleanup,
            search,
            json,
        ),
        Command::Report { run_dir } => report(&run_dir),
        Command::Run {
            scenarios,
            target,
            reports,
            no_progress,
        } => run(&scenarios, target.as_deref(), &reports, !no_progress),
        Command::Verify {
            target,
            dns,
            json,
            previous,
            no_observe,
        } => ops_verify(
            target.as_deref(),
            dns.as_deref(),
            json,
            previous.as_deref(),
            no_observe,
        ),
        Command::Confirm {
            to,
            from_ip,
            target,
            dns,
            report_dir,
            json,
            subject,
            text_file,
        } => match confirm_text(subject, text_file.as_deref()) {
            Ok(text) => ops_confirm(
                &to,
                from_ip,
                target.as_deref(),
                dns.as_deref(),
                &report_dir,
                json,
                text,
            ),
            Err(code) => code,
        },
        Command::Explain {
            reply,
            file,
            host,
            json,
        } => ops_explain(&reply, file.as_deref(), host.as_deref(), json),
        Command::Connector {
            target,
            current,
            name,
            restrict_to_ips,
            certificate_name,
        } => ops_connector(
            target.as_deref(),
            current.as_deref(),
            &name,
            restrict_to_ips,
            certificate_name,
        ),
    }
}

/// `mailharness observe`: re-observes a finished run and prints what was found where.
fn observe(
    run_dir: &Path,
    target_path: Option<&Path>,
    deadline: Option<std::time::Duration>,
    poll_interval: Option<std::time::Duration>,
    cleanup: bool,
    search: mailharness::observe::SearchMode,
    json: bool,
) -> ExitCode {
    use mailharness::observe::{reobserve_run, ImapTarget, ObserveOptions};
    let target = match load_target(target_path) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let file = &target.file;
    let imap = match ImapTarget::from_target(file) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut opts = ObserveOptions::from_target(file);
    // Re-observation looks once unless told to wait: the run already waited its deadline.
    opts.deadline = deadline.unwrap_or_default();
    if let Some(p) = poll_interval {
        opts.poll_interval = p;
    }
    opts.cleanup = cleanup;
    opts.search = search;
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(reobserve_run(&imap, run_dir, &opts)) {
        Ok(summary) => {
            let code = if summary.all_found() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
            emit(json, &summary, || summary.render_text(), code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_config() {
                EXIT_CONFIG
            } else {
                EXIT_INFRA
            })
        }
    }
}

/// `mailharness send`: one burst, recorded; Ctrl-C stops it and leaves a consistent file.
fn send(args: mailharness::send::SendArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(mailharness::send::run_cli(args)) {
        // As for `run`: an interrupted burst did not do what was asked.
        Ok((summary, _)) if summary.interrupted => ExitCode::from(EXIT_INFRA),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                mailharness::send::SendError::Config(_)
                | mailharness::send::SendError::SourceIpNotLocal(_) => EXIT_CONFIG,
                _ => EXIT_INFRA,
            })
        }
    }
}

/// `mailharness sim`: runs the embedded tenant until asked to stop.
fn sim(args: mailharness::sim::SimArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(mailharness::sim::run_cli(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                mailharness::sim::SimError::Config(_) => EXIT_CONFIG,
                _ => EXIT_INFRA,
            })
        }
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

/// Exit code: every expectation held.
const EXIT_PASS: u8 = 0;
/// Exit code: some expectation failed.
const EXIT_FAIL: u8 = 1;

/// `mailharness run`: every file is checked before anything is sent; then each scenario runs.
fn run(scenarios: &[PathBuf], target: Option<&Path>, reports: &Path, progress: bool) -> ExitCode {
    let tgt = match load_target(target) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    for path in scenarios {
        match scenario::load_scenario(path).and_then(|s| scenario::build_plan(&s, &tgt).map(|_| s))
        {
            Ok(s) => loaded.push(s),
            Err(d) => errors.extend(d.0),
        }
    }
    if !errors.is_empty() {
        eprintln!("{}", Diagnostics(errors));
        return ExitCode::from(EXIT_CONFIG);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let opts = mailharness::run::RunOptions {
        reports_root: reports.to_path_buf(),
        progress,
    };
    rt.block_on(async {
        let cancel = mailharness::send::CancelToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            mailharness::signal::stop_requested().await;
            eprintln!(
                "interrupted: finishing in-flight messages, recording the rest as interrupted"
            );
            c.cancel();
        });
        let mut worst = EXIT_PASS;
        for s in &loaded {
            if cancel.is_cancelled() {
                break;
            }
            let code = match mailharness::run::run_scenario(s, &tgt, &opts, cancel.clone()).await {
                Ok(out) => {
                    print_verdict(&out.summary, &out.run_dir);
                    if out.summary.error.is_some() || out.summary.interrupted {
                        EXIT_INFRA
                    } else if out.summary.verdict == RunVerdict::Pass {
                        EXIT_PASS
                    } else {
                        EXIT_FAIL
                    }
                }
                Err(e) if e.class() == ErrorClass::Config => {
                    eprintln!("error: {e}");
                    EXIT_CONFIG
                }
                Err(e) => {
                    eprintln!("error: could not run {}: {e}", s.src.path.display());
                    EXIT_INFRA
                }
            };
            worst = worst.max(code);
        }
        ExitCode::from(worst)
    })
}

/// `mailharness report`: analysis and reports from the run directory's records alone.
fn report(run_dir: &Path) -> ExitCode {
    let data = match mailharness::analysis::load_run_dir(run_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            let missing = matches!(&e, mailharness::analysis::LoadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound);
            return ExitCode::from(if missing { EXIT_CONFIG } else { EXIT_INFRA });
        }
    };
    let summary = mailharness::analysis::analyse(&data);
    if let Err(e) = mailharness::report::write_all(&summary, run_dir) {
        eprintln!(
            "error: cannot write reports into {}: {e}",
            run_dir.display()
        );
        return ExitCode::from(EXIT_INFRA);
    }
    print_verdict(&summary, run_dir);
    ExitCode::from(if summary.verdict == RunVerdict::Pass {
        EXIT_PASS
    } else {
        EXIT_FAIL
    })
}

/// One closing block for people: the verdict, failed checks, and where the reports are.
fn print_verdict(s: &mailharness::analysis::Summary, run_dir: &Path) {
    let passed = s.expectations.iter().filter(|v| v.passed).count();
    println!(
        "{}: {} of {} expectations held (scenario {}, run {})",
        if s.interrupted {
            "INTERRUPTED".to_string()
        } else {
            s.verdict.as_upper().to_string()
        },
        passed,
        s.expectations.len(),
        s.scenario,
        s.run_id
    );
    let unsent = s.unsent();
    if unsent > 0 {
        println!(
            "  {unsent} planned messages were never sent; expectations on them could not hold"
        );
    }
    for v in s.expectations.iter().filter(|v| !v.passed) {
        println!(
            "  FAIL {}/{}/{}: {} — {}",
            v.phase, v.sender, v.tls, v.check, v.detail
        );
    }
    if let Some(t) = s.trace_check.as_ref().filter(|t| !t.agreed) {
        println!("  FAIL trace cross-check: {}", t.mismatches.join("; "));
    }
    println!(
        "  reports: {}/{{report.html,report.md,junit.xml,summary.json}}",
        run_dir.display()
    );
}

/// `mailharness plan`: loads both files, expands the plan, prints it or every error.
fn plan(scenario_path: &Path, target_path: Option<&Path>, json: bool) -> ExitCode {
    let loaded = match (
        scenario::load_scenario(scenario_path),
        scenario::load_target(target_path),
    ) {
        (Ok(s), Ok(t)) => Ok((s, t)),
        (Err(a), Err(b)) => Err(Diagnostics(a.0.into_iter().chain(b.0).collect())),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let result = loaded.and_then(|(s, t)| scenario::build_plan(&s, &t));
    match result {
        Ok(plan) => emit(json, &plan, || plan.render_text(), ExitCode::SUCCESS),
        Err(d) => {
            eprintln!("{d}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// The async runtime every command uses (multi-threaded: the simulator runs beside the clients).
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_INFRA)
        })
}

/// Loads a target file (or the built-in simulator target), printing its diagnostics on failure.
fn load_target(path: Option<&Path>) -> Result<scenario::LoadedTarget, ExitCode> {
    scenario::load_target(path).map_err(|d| {
        eprintln!("{d}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Prints a command's result (JSON with `--json`, otherwise the text for people) and returns `code`,
/// or exit 3 if the JSON cannot be encoded.
fn emit<T: serde::Serialize>(
    json: bool,
    v: &T,
    text: impl FnOnce() -> String,
    code: ExitCode,
) -> ExitCode {
    if json {
        if let Err(failed) = print_json(v) {
            return failed;
        }
    } else {
        print!("{}", text());
    }
    code
}

/// Prints a value as pretty JSON on stdout (exit 3 if it cannot be encoded).
fn print_json<T: serde::Serialize>(v: &T) -> Result<(), ExitCode> {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            Ok(())
        }
        Err(e) => {
            eprintln!("error: cannot encode the output as JSON: {e}");
            Err(ExitCode::from(EXIT_INFRA))
        }
    }
}

/// Maps an ops error to its message and exit code.
fn ops_fail(e: mailharness::ops::OpsError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(match e.class() {
        ErrorClass::Config => EXIT_CONFIG,
        ErrorClass::Infra => EXIT_INFRA,
    })
}

/// The target and `--dns` server that `verify` and `confirm` share.
fn ops_inputs(
    target: Option<&Path>,
    dns: Option<&str>,
) -> Result<(scenario::LoadedTarget, Option<std::net::SocketAddr>), ExitCode> {
    Ok((load_target(target)?, ops_dns(dns)?))
}

/// Parses `--dns`.
fn ops_dns(dns: Option<&str>) -> Result<Option<std::net::SocketAddr>, ExitCode> {
    dns.map(mailharness::dns::parse_nameserver)
        .transpose()
        .map_err(|e| {
            eprintln!("error: --dns: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
}

/// `mailharness verify`: every sending IP checked end to end.
fn ops_verify(
    target: Option<&Path>,
    dns: Option<&str>,
    json: bool,
    previous: Option<&Path>,
    no_observe: bool,
) -> ExitCode {
    use mailharness::ops::{verify, VerifyOptions};
    let (tgt, dns) = match ops_inputs(target, dns) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let previous = match previous
        .map(mailharness::ops::verify::read_previous)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return ops_fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let opts = VerifyOptions {
        dns,
        no_observe,
        previous,
    };
    match rt.block_on(verify(&tgt, &opts)) {
        Ok(report) => {
            let code = ExitCode::from(if report.passed { EXIT_PASS } else { EXIT_FAIL });
            emit(json, &report, || report.render_text(), code)
        }
        Err(e) => ops_fail(e),
    }
}

/// `mailharness confirm`: one test message for a customer, a verdict and a shareable report.
fn ops_confirm(
    to: &str,
    from_ip: Option<std::net::Ipv4Addr>,
    target: Option<&Path>,
    dns: Option<&str>,
    report_dir: &Path,
    json: bool,
    text: Option<mailharness::send::MessageText>,
) -> ExitCode {
    use mailharness::ops::{confirm, ConfirmOptions};
    let (tgt, dns) = match ops_inputs(target, dns) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let opts = ConfirmOptions {
        to: to.to_string(),
        from_ip,
        report_dir: Some(report_dir.to_path_buf()),
        dns,
        text,
    };
    match rt.block_on(confirm(&tgt, &opts)) {
        Ok(r) => {
            if json {
                if let Err(code) = print_json(&r) {
                    return code;
                }
            } else {
                print!("{}", r.render_markdown());
                println!(
                    "\nShareable report: {}/confirm-{}.md (and .json)",
                    report_dir.display(),
                    r.reference
                );
            }
            ExitCode::from(if r.ok { EXIT_PASS } else { EXIT_FAIL })
        }
        Err(e) => ops_fail(e),
    }
}

/// The customer-facing words of `confirm`: `--subject` and the body from `--text-file`, each
/// falling back to the default wording; None when neither is given.
fn confirm_text(
    subject: Option<String>,
    text_file: Option<&Path>,
) -> Result<Option<mailharness::send::MessageText>, ExitCode> {
    if subject.is_none() && text_file.is_none() {
        return Ok(None);
    }
    let mut text = mailharness::ops::default_text();
    if let Some(s) = subject {
        if s.trim().is_empty() {
            eprintln!("error: --subject is empty; give the subject the customer should see");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
        text.subject = s;
    }
    if let Some(p) = text_file {
        let body = match String::from_utf8(read_input("--text-file", p)?) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "error: --text-file {}: not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                    p.display(),
                    e.utf8_error().valid_up_to()
                );
                return Err(ExitCode::from(EXIT_CONFIG));
            }
        };
        if body.trim().is_empty() {
            eprintln!(
                "error: --text-file {}: is empty; write the text the customer should read",
                p.display()
            );
            return Err(ExitCode::from(EXIT_CONFIG));
        }
        text.body = body;
    }
    Ok(Some(text))
}

/// Reads the file at `path`, or stdin for `-`; a failure is reported naming `flag`, exit 2.
fn read_input(flag: &str, path: &Path) -> Result<Vec<u8>, ExitCode> {
    use std::io::Read as _;
    let read = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b).map(|_| b)
    } else {
        std::fs::read(path)
    };
    read.map_err(|e| {
        if path == Path::new("-") {
            eprintln!("error: cannot read stdin: {e}");
        } else {
            eprintln!("error: {flag} {}: cannot read it: {e}", path.display());
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// `mailharness explain`: a reply argument, a file, or stdin.
fn ops_explain(reply: &[String], file: Option<&Path>, host: Option<&str>, json: bool) -> ExitCode {
    let (input, name): (Vec<u8>, String) = if !reply.is_empty() {
        (reply.join(" ").into_bytes(), "the argument".into())
    } else {
        let path = file.unwrap_or(Path::new("-"));
        let name = if path == Path::new("-") {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        match read_input("--file", path) {
            Ok(b) => (b, name),
            Err(code) => return code,
        }
    };
    match mailharness::reply::explain_input_from(&input, &name, host) {
        Ok(r) => emit(json, &r, || r.render_text(), ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `mailharness connector`: instructions for the tenant admin, checked against the connector rules.
fn ops_connector(
    target: Option<&Path>,
    current: Option<&str>,
    name: &str,
    restrict_to_ips: bool,
    certificate_name: Option<String>,
) -> ExitCode {
    use mailharness::connector::{check_rules, instructions_text, parse_ip_list, ConnectorRequest};
    let tgt = match load_target(target) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let roles: Vec<(String, String)> = mailharness::ops::senders(&tgt)
        .into_iter()
        .map(|(r, ip)| (r, ip.to_string()))
        .collect();
    let req = ConnectorRequest {
        name: name.to_string(),
        sender_ips: roles
            .iter()
            .map(|(r, ip)| {
                (
                    format!("{}: senders.{r}", tgt.src.path.display()),
                    ip.clone(),
                )
            })
            .collect(),
        require_tls: true,
        restrict_domains_to_ips: restrict_to_ips,
        certificate_name,
    };
    let mut errors = Vec::new();
    let params = check_rules(&req).map_err(|e| errors.extend(e)).ok();
    let current = match current.map(|c| parse_ip_list("--current", c)).transpose() {
        Ok(c) => c,
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    match params {
        Some(p) if errors.is_empty() => {
            print!(
                "{}",
                instructions_text(tgt.file.name.get_ref(), &p, &roles, current.as_deref())
            );
            ExitCode::SUCCESS
        }
        _ => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
