//! `completions` and `man`: generated from the clap definitions, so they never drift from them.

use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::error::CliError;
use super::{out, Cli};

/// Arguments of `mailharness completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, elvish, fish, powershell or zsh.
    pub shell: Shell,
}

/// Prints the completion script for a shell.
pub fn completions(a: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "mailharness", &mut buf);
    out::print(&String::from_utf8_lossy(&buf))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page (roff): the top level, then every command with its options, examples and
/// exit codes.
pub fn man() -> Result<ExitCode, CliError> {
    let cmd = Cli::command();
    let mut buf = Vec::new();
    let write = |buf: &mut Vec<u8>, c: clap::Command| {
        clap_mangen::Man::new(c)
            .render(buf)
            .map_err(CliError::Stdout)
    };
    write(&mut buf, cmd.clone())?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("mailharness-{}", sub.get_name());
        write(&mut buf, sub.clone().display_name(&name).bin_name(name))?;
    }
    out::print(&String::from_utf8_lossy(&buf))?;
    Ok(ExitCode::SUCCESS)
}
