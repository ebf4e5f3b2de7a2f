//! JUnit XML: the run itself, one test case per expectation, and the trace cross-check; failures
//! quote the numbers, expectations the run never got to are skipped, and every case has its time.
//! It validates against the Jenkins xUnit plugin's JUnit schema (tests/data/junit/junit-10.xsd).
//!
//! One run is one `<testsuite>` ([`junit_testsuite`]), renderable on its own so that several runs
//! can share one `<testsuites>` ([`render_testsuites`]).

use std::fmt::Write as _;

use super::model::{CheckStatus, ReportModel};
use super::xml_escape as esc;

/// What a test case reports besides passing.
enum Outcome {
    /// It passed.
    Pass,
    /// A check did not hold: its type, one-line message and body.
    Failure(&'static str, String, String),
    /// The run could not be carried out: one-line message and body.
    Error(String, String),
    /// Not measured, and why.
    Skipped(String),
}

/// One run's `<testsuite>` element and its counts, for the `<testsuites>` around it.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitSuite {
    /// The `<testsuite>` element, indented two spaces, each line ending in a newline.
    pub xml: String,
    /// Test cases.
    pub tests: usize,
    /// Test cases that failed.
    pub failures: usize,
    /// Test cases that could not be carried out.
    pub errors: usize,
    /// Test cases not measured.
    pub skipped: usize,
    /// Seconds the run took.
    pub time_s: f64,
}

/// Renders `junit.xml` for one run.
pub fn render_junit(m: &ReportModel) -> String {
    render_testsuites(&[junit_testsuite(m)])
}

/// The XML declaration and one `<testsuites>` around `suites`, with their summed counts (the
/// schema has no `skipped` there: each suite carries its own).
pub fn render_testsuites(suites: &[JunitSuite]) -> String {
    let sum = |f: fn(&JunitSuite) -> usize| suites.iter().map(f).sum::<usize>();
    let time: f64 = suites.iter().map(|s| s.time_s).sum();
    let mut o = String::new();
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        o,
        "<testsuites name=\"mailharness\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{time:.3}\">",
        sum(|s| s.tests),
        sum(|s| s.failures),
        sum(|s| s.errors)
    );
    for s in suites {
        o.push_str(&s.xml);
    }
    let _ = writeln!(o, "</testsuites>");
    o
}

/// One run's `<testsuite>`: properties, the run itself, each expectation, the trace check.
pub fn junit_testsuite(m: &ReportModel) -> JunitSuite {
    let scenario = &m.headline.scenario;
    let mut cases = Vec::new();
    // The run itself is a test case: an interrupted run, one that could not finish, or one with
    // damaged records must not look green in CI because its expectations happened to hold.
    let run = match (&m.headline.error, m.run_faults.first()) {
        (Some(e), _) => Outcome::Error(e.clone(), m.run_faults.join("\n")),
        (None, Some(first)) => Outcome::Failure("run", first.clone(), m.run_faults.join("\n")),
        (None, None) => Outcome::Pass,
    };
    cases.push(case(
        &format!("{scenario}.run"),
        "the run completed with intact records",
        m.headline.duration_s,
        run,
    ));
    for v in &m.expectations {
        let outcome = match v.status {
            CheckStatus::Pass => Outcome::Pass,
            CheckStatus::Fail => Outcome::Failure(
                "expectation",
                format!("{} failed: actual {}", v.check, v.actual),
                format!("{}: {} — {}", v.cell, v.check, v.detail),
            ),
            CheckStatus::Skipped => Outcome::Skipped(v.detail.clone()),
        };
        let class = format!("{scenario}.{}.{}.{}", v.phase, v.sender, v.tls);
        cases.push(case(&class, &v.check, v.time_s, outcome));
    }
    if let Some(t) = &m.trace {
        let outcome = if t.agreed {
            Outcome::Pass
        } else {
            Outcome::Failure(
                "trace",
                format!("{} mismatches", t.mismatches.len()),
                t.mismatches.join("\n"),
            )
        };
        cases.push(case(
            &format!("{scenario}.trace"),
            "attempts agree with the simulator's message trace",
            0.0,
            outcome,
        ));
    }
    let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|(_, o)| f(o)).count();
    let mut suite = JunitSuite {
        xml: String::new(),
        tests: cases.len(),
        failures: count(|o| matches!(o, Outcome::Failure(..))),
        errors: count(|o| matches!(o, Outcome::Error(..))),
        skipped: count(|o| matches!(o, Outcome::Skipped(_))),
        time_s: m.headline.duration_s,
    };
    suite_header(&mut suite, m);
    for (open, outcome) in &cases {
        testcase(&mut suite.xml, open, outcome);
    }
    let _ = writeln!(suite.xml, "  </testsuite>");
    suite
}

/// A test case: its opening tag's text (escaped here) and its outcome.
fn case(class: &str, name: &str, time_s: f64, outcome: Outcome) -> (String, Outcome) {
    (
        format!(
            "<testcase classname=\"{}\" name=\"{}\" time=\"{time_s:.3}\"",
            esc(class),
            esc(name)
        ),
        outcome,
    )
}

/// The suite's opening tag and its properties: which run, scenario and target.
fn suite_header(s: &mut JunitSuite, m: &ReportModel) {
    let h = &m.headline;
    let _ = writeln!(
        s.xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
        esc(&h.scenario),
        s.tests,
        s.failures,
        s.errors,
        s.skipped,
        s.time_s,
        esc(&h.started_at)
    );
    let _ = writeln!(s.xml, "    <properties>");
    for (k, v) in [
        ("run_id", h.run_id.as_str()),
        ("scenario", h.scenario.as_str()),
        ("target", h.target.as_str()),
        ("target_kind", h.target_kind.as_str()),
        ("verdict", h.verdict.as_str()),
    ] {
        let _ = writeln!(s.xml, "      <property name=\"{k}\" value=\"{}\"/>", esc(v));
    }
    let _ = writeln!(s.xml, "    </properties>");
}

/// One test case, self-closing when it passed.
fn testcase(o: &mut String, open: &str, outcome: &Outcome) {
    let _ = write!(o, "    {open}");
    let inner = match outcome {
        Outcome::Pass => {
            let _ = writeln!(o, "/>");
            return;
        }
        Outcome::Failure(kind, message, body) => format!(
            "<failure message=\"{}\" type=\"{kind}\">{}</failure>",
            esc(message),
            esc(body)
        ),
        Outcome::Error(message, body) => format!(
            "<error message=\"{}\" type=\"run\">{}</error>",
            esc(message),
            esc(body)
        ),
        Outcome::Skipped(why) => format!("<skipped message=\"{}\"/>", esc(why)),
    };
    let _ = writeln!(o, ">\n      {inner}\n    </testcase>");
}

/// One JUnit file for a whole suite: each run's `<testsuite>`, and one failing `<testsuite>` for
/// each scenario that could not run at all (`not_run`: scenario and why), so CI sees it.
pub fn render_junit_suite(runs: &[ReportModel], not_run: &[(String, String)]) -> String {
    let mut suites: Vec<JunitSuite> = runs.iter().map(junit_testsuite).collect();
    for (scenario, why) in not_run {
        let xml = format!(
            "  <testsuite name=\"{0}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0.000\">\n    <testcase classname=\"{0}.run\" name=\"the run completed with intact records\" time=\"0.000\">\n      <error message=\"{1}\" type=\"run\">{1}</error>\n    </testcase>\n  </testsuite>\n",
            esc(scenario),
            esc(why)
        );
        suites.push(JunitSuite {
            xml,
            tests: 1,
            failures: 0,
            errors: 1,
            skipped: 0,
            time_s: 0.0,
        });
    }
    render_testsuites(&suites)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::tests::golden;

    #[test]
    fn a_passing_run_has_a_case_per_expectation_plus_the_run_and_the_trace() {
        let x = render_junit(&ReportModel::from(&golden()));
        assert!(
            x.contains("<testsuites name=\"mailharness\" tests=\"20\" failures=\"0\" errors=\"0\" time=\"10.782\">"),
            "{x}"
        );
        assert!(x.contains("<testsuite name=\"connector-before-after\" tests=\"20\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"10.782\" timestamp=\"2026-12-02T18:48:34.351Z\">"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 20);
        assert_eq!(
            x.matches(" time=\"").count(),
            22,
            "every case, the suite and the suites"
        );
        assert!(!x.contains("<failure") && !x.contains("<skipped"));
        assert!(x.contains("<testcase classname=\"connector-before-after.trace\" name=\"attempts agree with the simulator&apos;s message trace\" time=\"0.000\"/>"));
        // An expectation's time is its cell's sending time.
        assert!(x.contains("<testcase classname=\"connector-before-after.after.primary.none\" name=\"outcome == &quot;tls-required&quot;\" time=\"0.502\"/>"), "{x}");
        for (k, v) in [
            ("run_id", "connector-before-after-20261202T184834Z-1983"),
            ("scenario", "connector-before-after"),
            ("target", "sim"),
        ] {
            assert!(
                x.contains(&format!("<property name=\"{k}\" value=\"{v}\"/>")),
                "{k}"
            );
        }
        assert!(x.ends_with("  </testsuite>\n</testsuites>\n"));
    }

    #[test]
    fn the_run_the_expectations_and_the_trace_each_fail_on_their_own() {
        let mut s = golden();
        s.scenario = "a\"b&c".into();
        s.interrupted = true;
        s.record_problems = vec!["attempts.jsonl:9: <cut> short".into()];
        s.expectations[0].passed = false;
        let t = s.trace_check.as_mut().unwrap();
        t.agreed = false;
        t.mismatches = vec!["x".into(), "y".into()];
        let x = render_junit(&ReportModel::from(&s));
        assert!(
            x.contains("tests=\"20\" failures=\"3\" errors=\"0\" skipped=\"0\""),
            "{x}"
        );
        assert!(x.contains("<testcase classname=\"a&quot;b&amp;c.run\" name=\"the run completed with intact records\" time=\"10.782\">\n      <failure message=\"the run was interrupted\" type=\"run\">the run was interrupted\nattempts.jsonl:9: &lt;cut&gt; short</failure>\n    </testcase>\n"), "{x}");
        let v = &s.expectations[0];
        assert!(
            x.contains(&format!(
                "<failure message=\"{} failed: actual {}\" type=\"expectation\">{}/{}/{}: {} — {}</failure>",
                esc(&v.check),
                esc(&v.actual),
                v.phase,
                v.sender,
                v.tls,
                esc(&v.check),
                esc(&v.detail)
            )),
            "{x}"
        );
        assert!(x.contains("<failure message=\"2 mismatches\" type=\"trace\">x\ny</failure>"));
        assert_eq!(x.matches("<failure").count(), 3);
    }

    #[test]
    fn cells_the_run_never_reached_are_skipped_and_a_run_that_could_not_finish_is_an_error() {
        let mut s = golden();
        s.interrupted = true;
        s.error = Some("the simulator died".into());
        for v in s.expectations.iter_mut().filter(|v| v.phase == "after") {
            (v.passed, v.skipped) = (false, true);
            v.detail = "not measured: the run was interrupted before this cell sent anything (12 planned messages never sent)".into();
        }
        let x = render_junit(&ReportModel::from(&s));
        assert!(
            x.contains("tests=\"20\" failures=\"0\" errors=\"1\" skipped=\"14\""),
            "{x}"
        );
        assert!(x.contains("<testsuites name=\"mailharness\" tests=\"20\" failures=\"0\" errors=\"1\" time=\"10.782\">"), "{x}");
        assert!(x.contains("      <error message=\"the simulator died\" type=\"run\">the run was interrupted\nthe run could not finish: the simulator died</error>\n"), "{x}");
        assert_eq!(x.matches("<skipped message=\"not measured: the run was interrupted before this cell sent anything (12 planned messages never sent)\"/>").count(), 14);
        assert!(!x.contains("<failure"));
    }

    #[test]
    fn a_run_s_testsuite_stands_alone_and_several_share_one_testsuites() {
        let one = junit_testsuite(&ReportModel::from(&golden()));
        assert!(one.xml.starts_with("  <testsuite ") && one.xml.ends_with("  </testsuite>\n"));
        let mut s = golden();
        s.expectations[0].passed = false;
        let two = junit_testsuite(&ReportModel::from(&s));
        let x = render_testsuites(&[one.clone(), two.clone()]);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"mailharness\" tests=\"40\" failures=\"1\" errors=\"0\" time=\"21.564\">\n"), "{x}");
        assert!(x.contains(&one.xml) && x.contains(&two.xml));
        assert_eq!(x.matches("<testsuite ").count(), 2);
    }

    #[test]
    fn a_suite_file_holds_each_run_suite_and_the_runs_that_could_not_run() {
        let mut failing = golden();
        failing.expectations[0].passed = false;
        let runs = [ReportModel::from(&golden()), ReportModel::from(&failing)];
        let x = render_junit_suite(&runs, &[("smoke".into(), "cannot start <sim>".into())]);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"mailharness\" tests=\"41\" failures=\"1\" errors=\"1\""), "{x}");
        assert_eq!(x.matches("<testsuite ").count(), 3);
        assert_eq!(x.matches("</testsuite>").count(), 3);
        assert_eq!(x.matches("<testsuites").count(), 1);
        assert!(
            x.contains("<error message=\"cannot start &lt;sim&gt;\" type=\"run\">"),
            "{x}"
        );
        assert!(x.ends_with("  </testsuite>\n</testsuites>\n"), "{x}");
    }
}
