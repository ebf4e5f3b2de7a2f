//! The command line's surface: every command's `--help` shows examples and exit codes, the
//! completion script and man page are generated from the same definitions, a reader that closes
//! stdout early ends the command quietly, and the old output-directory flags still work.

use std::process::{Command, Stdio};

fn mh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailharness"))
}

/// The subcommands `mailharness --help` lists.
fn subcommands() -> Vec<String> {
    let out = mh().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let list = text
        .split("Commands:")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("a Commands: section")
        .to_string();
    list.lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_command_help_has_examples_and_exit_codes() {
    let cmds = subcommands();
    for want in [
        "plan",
        "run",
        "report",
        "observe",
        "send",
        "sim",
        "verify",
        "confirm",
        "explain",
        "connector",
        "completions",
        "man",
    ] {
        assert!(
            cmds.iter().any(|c| c == want),
            "{want} missing from {cmds:?}"
        );
    }
    let mut all = vec![vec!["--help".to_string()]];
    all.extend(cmds.iter().map(|c| vec![c.clone(), "--help".into()]));
    for args in all {
        let out = mh().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            text.contains("\nExamples:\n  mailharness"),
            "{args:?}:\n{text}"
        );
        assert!(text.contains("\nExit codes"), "{args:?}:\n{text}");
        assert!(
            text.contains("  0  ") || text.contains("  0   "),
            "{args:?}:\n{text}"
        );
    }
}

#[test]
fn bash_completion_parses_and_the_man_page_is_roff() {
    let out = mh().args(["completions", "bash"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &out.stdout).unwrap();
    let n = Command::new("bash")
        .arg("-n")
        .arg(script.path())
        .status()
        .unwrap();
    assert!(n.success(), "bash -n rejects the completion script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verify") && text.contains("--transcript"),
        "{text}"
    );

    let out = mh().arg("man").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let roff = String::from_utf8_lossy(&out.stdout);
    assert!(roff.contains(".TH mailharness 1"), "{roff}");
    assert!(
        roff.contains(".TH mailharness-send 1"),
        "every command has its page"
    );
    assert!(
        roff.contains("Exit codes"),
        "the exit codes are in the man page"
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in [
        &["plan", "scenarios/connector-before-after.toml"][..],
        &["man"][..],
    ] {
        let mut child = mh()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes (`mailharness plan x.toml | head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_the_old_directory_flags_still_parse() {
    let out = mh().args(["run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = mh().args(["plan", "--nope", "x.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // `--reports` (run) and `--report-dir` (confirm) are hidden aliases of `--out`.
    for args in [
        &["run", "--reports", "r", "--help"][..],
        &["confirm", "--report-dir", "r", "--help"][..],
    ] {
        let out = mh().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("--reports <"));
    }
}

#[test]
fn a_missing_scenario_names_the_file_and_exits_2() {
    let out = mh()
        .args(["plan", "no/such/scenario.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no/such/scenario.toml"), "{err}");
}
