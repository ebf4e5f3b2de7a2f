//! Every malformed scenario or target file under `tests/malformed/` must make `mailharness plan`
//! exit 2 with an error that names the right `file:line:col` and says what is expected.
//!
//! Each case states its expectation in its first lines:
//! `# expect: SELF|TARGET:<line>:<col>: <message fragment>` (or `SELF: field `x`: …`), and
//! optionally `# with-target: <path>` (scenario cases) relative to `tests/malformed/`.

use std::path::{Path, PathBuf};
use std::process::Command;

const BUILTIN_TARGET: &str = "<built-in>/scenarios/targets/sim.toml";
const DIR: &str = "tests/malformed";

struct Case {
    file: PathBuf,
    expect_where: String,
    expect_what: String,
    with_target: Option<PathBuf>,
}

fn cases(sub: &str) -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(DIR).join(sub))
        .expect("tests/malformed exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("readable case");
            let expect = text
                .lines()
                .find_map(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{}: no `# expect:` line", file.display()));
            let with_target = text
                .lines()
                .find_map(|l| l.strip_prefix("# with-target: "))
                .map(|p| Path::new(DIR).join(p.trim()));
            // "SELF:12:3: message" or "SELF: field `guard`: message"
            let (wher, what) = if let Some(rest) = expect.strip_prefix("SELF: field ") {
                let (field, msg) = rest.split_once(": ").expect("field form");
                (format!("SELF: field {field}"), msg.to_string())
            } else {
                let mut parts = expect.splitn(4, ':');
                let who = parts.next().unwrap_or_default();
                let line = parts.next().unwrap_or_default();
                let col = parts.next().unwrap_or_default();
                let msg = parts.next().unwrap_or_default().trim_start();
                (format!("{who}:{line}:{col}"), msg.to_string())
            };
            Case {
                file,
                expect_where: wher,
                expect_what: what,
                with_target,
            }
        })
        .collect()
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailharness"))
        .args(args)
        .output()
        .expect("mailharness runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_case(
    case: &Case,
    scenario: &Path,
    target: Option<&Path>,
    target_label: &str,
) -> Result<(), String> {
    let mut args = vec!["plan", scenario.to_str().expect("utf-8 path")];
    if let Some(t) = target {
        args.push("--target");
        args.push(t.to_str().expect("utf-8 path"));
    }
    let (code, stdout, stderr) = run(&args);
    let self_label = case.file.display().to_string();
    let origin =
        case.expect_where
            .replacen("SELF", &self_label, 1)
            .replacen("TARGET", target_label, 1);
    let wanted = format!("{origin}: error: ");
    let problems: Vec<String> = [
        (code != Some(2)).then(|| format!("exit code {code:?}, expected 2")),
        (!stderr.contains(&wanted)).then(|| format!("stderr lacks `{wanted}`")),
        (!stderr.contains(&case.expect_what))
            .then(|| format!("stderr lacks `{}`", case.expect_what)),
        stderr
            .contains("panicked")
            .then(|| "it panicked".to_string()),
        (!stdout.is_empty()).then(|| "it printed a plan".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}\n--- stderr ---\n{stderr}",
            case.file.display(),
            problems.join("; ")
        ))
    }
}

#[test]
fn malformed_scenarios_name_file_line_col() {
    let cases = cases("scenarios");
    assert!(
        cases.len() >= 20,
        "the corpus must keep at least 20 scenario cases"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let label = c
                .with_target
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| BUILTIN_TARGET.to_string());
            check_case(c, &c.file, c.with_target.as_deref(), &label).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn malformed_targets_name_file_line_col() {
    let ok = Path::new(DIR).join("fixtures/ok.scenario.toml");
    let cases = cases("targets");
    assert!(cases.len() >= 8);
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check_case(c, &ok, Some(&c.file), &c.file.display().to_string()).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn shipped_scenarios_plan_cleanly_and_json_parses() {
    for entry in std::fs::read_dir("scenarios").expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let p = path.to_str().expect("utf-8");
        let (code, stdout, stderr) = run(&["plan", p]);
        assert_eq!(code, Some(0), "{p}: {stderr}");
        assert!(stdout.contains("Nothing was sent"), "{p}: {stdout}");
        let (code, stdout, stderr) = run(&["plan", p, "--json"]);
        assert_eq!(code, Some(0), "{p}: {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).expect("plan --json is JSON");
        assert_eq!(v["schema"], 1);
        assert_eq!(v["guard"]["ok"], true);
    }
}

#[test]
fn main_scenario_plan_has_both_ips_both_tls_modes_and_the_connector_step() {
    let (code, stdout, stderr) = run(&["plan", "scenarios/connector-before-after.toml", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let phases = v["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2);
    assert!(phases[0]["change"].is_null());
    assert_eq!(phases[1]["change"]["action"], "create");
    assert_eq!(phases[1]["change"]["require_tls"], true);
    assert_eq!(
        phases[1]["change"]["sender_ips"],
        serde_json::json!(["127.0.0.2", "127.0.0.3"])
    );
    for phase in phases {
        let mut cells: Vec<(String, String)> = phase["bursts"]
            .as_array()
            .expect("bursts")
            .iter()
            .map(|b| {
                (
                    b["source_ip"].as_str().unwrap_or("").to_string(),
                    b["tls"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        cells.sort();
        assert_eq!(
            cells,
            vec![
                ("127.0.0.2".into(), "none".into()),
                ("127.0.0.2".into(), "starttls".into()),
                ("127.0.0.3".into(), "none".into()),
                ("127.0.0.3".into(), "starttls".into()),
            ]
        );
    }
    assert_eq!(v["total_messages"], 84);
    // The poll step (1s interval, 60s deadline) may send 61 rounds of a TLS and a plain-text
    // probe from each of the 2 IPs: the guard rails count them too.
    assert_eq!(v["max_attempts"], 84 + 61 * 2 * 2);
}

#[test]
fn the_real_tenant_template_loads_and_its_guard_rails_refuse_the_simulator_pace() {
    let (code, stdout, stderr) = run(&[
        "plan",
        "tests/malformed/fixtures/ok.scenario.toml",
        "--target",
        "scenarios/targets/m365-example.toml",
    ]);
    // The template loads; its sending IPs (read from it, not repeated here) belong to the
    // platform's hosts, not this one, so `plan` refuses what `run` could not do, at their lines.
    let template = std::fs::read_to_string("scenarios/targets/m365-example.toml").unwrap();
    let primary: toml::Value = toml::from_str(&template).unwrap();
    let primary = primary["senders"]["primary"].as_str().unwrap();
    let line = template
        .lines()
        .position(|l| l.starts_with("primary ="))
        .unwrap()
        + 1;
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "scenarios/targets/m365-example.toml:{line}:11: error: sender `primary` = {primary} is not assigned to any interface on this machine"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("run mailharness on the host that owns"),
        "{stderr}"
    );
    // The main scenario's 600/min is ten times the template's 60/min guard rail.
    let (code, _, stderr) = run(&[
        "plan",
        "scenarios/connector-before-after.toml",
        "--target",
        "scenarios/targets/m365-example.toml",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("guard.max_rate_per_ip"), "{stderr}");
}

/// A secret written into a target file is refused without being printed: the excerpt masks it.
#[test]
fn a_refused_inline_secret_is_not_echoed() {
    let ok = Path::new(DIR).join("fixtures/ok.scenario.toml");
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(Path::new(DIR).join("targets/31-inline-password.toml"))
        .unwrap()
        .replace("hunter2", "Mailbox-Secret-31");
    let cases = [
        ("password.toml", base.clone(), "Mailbox-Secret-31"),
        (
            "client-secret.toml",
            base.replace("auth = \"login\"", "auth = \"xoauth2\"")
                .replace("password = \"Mailbox-Secret-31\"", "password_env = \"MH_PW\"")
                .replace(
                    "[guard]",
                    "[imap.oauth]\nclient_id = \"cid\"\ntenant_id = \"contoso.example\"\nclient_secret = \"Oauth-Secret-32\"\n\n[guard]",
                ),
            "Oauth-Secret-32",
        ),
    ];
    for (name, text, secret) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, stdout, stderr) = run(&[
            "plan",
            ok.to_str().unwrap(),
            "--target",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{name}: {stdout}{stderr}");
        assert!(
            stderr.contains("secrets never live in target files"),
            "{name}: {stderr}"
        );
        assert!(stderr.contains("<redacted>"), "{name}: {stderr}");
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{name}: the secret was printed: {stderr}"
        );
    }
}
