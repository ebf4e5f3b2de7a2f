//! The `mailharness` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mailharness::scenario::{self, Diagnostics};

/// Exit code: usage or configuration error.
const EXIT_CONFIG: u8 = 2;
/// Exit code: could not run (infrastructure).
const EXIT_INFRA: u8 = 3;

/// End-to-end delivery tests for mail into Microsoft 365, with an embedded simulated tenant.
#[derive(Parser)]
#[command(name = "mailharness", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    /// Run the simulated Microsoft 365 tenant standalone (loopback SMTP, SMTPS, admin API) until Ctrl-C.
    Sim(mailharness::sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Plan {
            scenario,
            target,
            json,
        } => plan(&scenario, target.as_deref(), json),
        Command::Sim(args) => sim(args),
    }
}

/// `mailharness sim`: runs the embedded tenant until Ctrl-C or SIGTERM.
fn sim(args: mailharness::sim::SimArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(mailharness::sim::run_cli(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ mailharness::sim::SimError::Config(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sim(args: mailharness::sim::SimArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INFRA);
        }
    };
    match rt.block_on(mailharness::sim::run_cli(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.is_config() { EXIT_CONFIG } else { EXIT_INFRA })
        }
    }
}

fn plan(
    scenario_path: &std::path::Path,
    target_path: Option<&std::path::Path>,
    json: bool,
) -> ExitCode {
    let result = (|| -> Result<scenario::Plan, Diagnostics> {
        let scn = scenario::load_scenario(scenario_path);
        let tgt = scenario::load_target(target_path);
        let (scn, tgt) = match (scn, tgt) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(a), Err(b)) => return Err(Diagnostics(a.0.into_iter().chain(b.0).collect())),
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        scenario::build_plan(&scn, &tgt)
    })();
    match result {
        Ok(plan) => {
            if json {
                match serde_json::to_string_pretty(&plan) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: cannot encode the plan as JSON: {e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            } else {
                print!("{}", plan.render_text());
            }
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprintln!("{d}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
