//! JUnit XML: the run itself, one test case per expectation, and the trace cross-check; failures
//! quote the numbers.

use std::fmt::Write as _;

use super::model::ReportModel;
use super::xml_escape as esc;

/// A failed test case's failure: its one-line message and its body.
struct Failure {
    message: String,
    body: String,
}

/// Renders `junit.xml`.
pub fn render_junit(m: &ReportModel) -> String {
    let scenario = &m.headline.scenario;
    let trace_fail = m.trace.as_ref().is_some_and(|t| !t.agreed);
    let failures = m.expectations.iter().filter(|v| !v.passed).count()
        + usize::from(!m.run_faults.is_empty())
        + usize::from(trace_fail);
    let tests = m.expectations.len() + usize::from(m.trace.is_some()) + 1;
    let mut o = String::new();
    suite_header(&mut o, m, tests, failures);
    // The run itself is a test case: an interrupted run, one that could not finish, or one with
    // damaged records must not look green in CI because its expectations happened to hold.
    let run_failure = m.run_faults.first().map(|first| Failure {
        message: first.clone(),
        body: m.run_faults.join("\n"),
    });
    testcase(
        &mut o,
        &format!("{}.run", esc(scenario)),
        "the run completed with intact records",
        run_failure,
    );
    for v in &m.expectations {
        let failure = (!v.passed).then(|| Failure {
            message: format!("{} failed: actual {}", v.check, v.actual),
            body: format!("{}: {} — {}", v.cell, v.check, v.detail),
        });
        let class = format!("{scenario}.{}.{}.{}", v.phase, v.sender, v.tls);
        testcase(&mut o, &esc(&class), &esc(&v.check), failure);
    }
    if let Some(t) = &m.trace {
        let failure = (!t.agreed).then(|| Failure {
            message: format!("{} mismatches", t.mismatches.len()),
            body: t.mismatches.join("\n"),
        });
        testcase(
            &mut o,
            &format!("{}.trace", esc(scenario)),
            "attempts agree with the simulator's message trace",
            failure,
        );
    }
    let _ = writeln!(o, "  </testsuite>");
    let _ = writeln!(o, "</testsuites>");
    o
}

/// The XML declaration, the suite's opening tags and its properties.
fn suite_header(o: &mut String, m: &ReportModel, tests: usize, failures: usize) {
    let h = &m.headline;
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        o,
        "<testsuites name=\"mailharness\" tests=\"{tests}\" failures=\"{failures}\">"
    );
    let _ = writeln!(
        o,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" timestamp=\"{}\">",
        esc(&h.scenario),
        esc(&h.started_at)
    );
    let _ = writeln!(o, "    <properties>");
    for (k, v) in [
        ("run_id", h.run_id.as_str()),
        ("target", h.target.as_str()),
        ("target_kind", h.target_kind.as_str()),
    ] {
        let _ = writeln!(o, "      <property name=\"{k}\" value=\"{}\"/>", esc(v));
    }
    let _ = writeln!(o, "    </properties>");
}

/// One test case, self-closing when it passed. `class` and `name` are attribute text, already
/// escaped (the fixed names are written as they always were, apostrophe and all); the failure is
/// escaped here.
fn testcase(o: &mut String, class: &str, name: &str, failure: Option<Failure>) {
    let _ = write!(o, "    <testcase classname=\"{class}\" name=\"{name}\"");
    match failure {
        None => {
            let _ = writeln!(o, "/>");
        }
        Some(f) => {
            let _ = writeln!(o, ">");
            let _ = writeln!(
                o,
                "      <failure message=\"{}\">{}</failure>",
                esc(&f.message),
                esc(&f.body)
            );
            let _ = writeln!(o, "    </testcase>");
        }
    }
}

/// One JUnit file for a whole suite: one `<testsuites>` holding each run's `<testsuite>` exactly
/// as [`render_junit`] writes it, and one failing suite per scenario that could not run (`not_run`:
/// scenario name, why). A thin wrapper, so the per-run content is defined in one place.
pub fn render_junit_suite(runs: &[ReportModel], not_run: &[(String, String)]) -> String {
    let mut tests = 0usize;
    let mut failures = 0usize;
    let mut body = String::new();
    for m in runs {
        let one = render_junit(m);
        tests += count_attr(&one, "tests");
        failures += count_attr(&one, "failures");
        // The run's own <testsuite> element: everything inside its <testsuites> wrapper.
        let start = one.find("  <testsuite ").unwrap_or(0);
        let end = one.rfind("</testsuites>").unwrap_or(one.len());
        body.push_str(&one[start..end]);
    }
    for (scenario, why) in not_run {
        tests += 1;
        failures += 1;
        let _ = writeln!(
            body,
            "  <testsuite name=\"{0}\" tests=\"1\" failures=\"1\">\n    <testcase classname=\"{0}.run\" name=\"the run completed with intact records\">\n      <failure message=\"{1}\">{1}</failure>\n    </testcase>\n  </testsuite>",
            esc(scenario),
            esc(why)
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"mailharness\" tests=\"{tests}\" failures=\"{failures}\">\n{body}</testsuites>\n"
    )
}

/// The number in the first `name="…"` attribute of a rendered file (its `<testsuites>` totals).
fn count_attr(xml: &str, name: &str) -> usize {
    let key = format!(" {name}=\"");
    xml.find(&key)
        .and_then(|i| {
            let rest = &xml[i + key.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::tests::golden;

    #[test]
    fn a_passing_run_has_a_case_per_expectation_plus_the_run_and_the_trace() {
        let x = render_junit(&ReportModel::from(&golden()));
        assert!(
            x.contains("<testsuites name=\"mailharness\" tests=\"20\" failures=\"0\">"),
            "{x}"
        );
        assert_eq!(x.matches("<testcase ").count(), 20);
        assert!(!x.contains("<failure"));
        assert!(x.contains("<testcase classname=\"connector-before-after.trace\" name=\"attempts agree with the simulator's message trace\"/>"));
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
        assert!(x.contains("tests=\"20\" failures=\"3\""), "{x}");
        assert!(x.contains("<testcase classname=\"a&quot;b&amp;c.run\" name=\"the run completed with intact records\">\n      <failure message=\"the run was interrupted\">the run was interrupted\nattempts.jsonl:9: &lt;cut&gt; short</failure>\n    </testcase>\n"), "{x}");
        let v = &s.expectations[0];
        assert!(
            x.contains(&format!(
                "<failure message=\"{} failed: actual {}\">{}/{}/{}: {} — {}</failure>",
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
        assert!(x.contains("<failure message=\"2 mismatches\">x\ny</failure>"));
        assert_eq!(x.matches("<failure").count(), 3);
    }

    #[test]
    fn a_suite_file_holds_each_run_suite_and_the_runs_that_could_not_run() {
        let mut failing = golden();
        failing.expectations[0].passed = false;
        let runs = [ReportModel::from(&golden()), ReportModel::from(&failing)];
        let x = render_junit_suite(&runs, &[("smoke".into(), "cannot start <sim>".into())]);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"mailharness\" tests=\"41\" failures=\"2\">\n  <testsuite "), "{x}");
        assert_eq!(x.matches("<testsuite ").count(), 3);
        assert_eq!(x.matches("</testsuite>").count(), 3);
        assert_eq!(x.matches("<testsuites").count(), 1);
        assert!(
            x.contains("<failure message=\"cannot start &lt;sim&gt;\">"),
            "{x}"
        );
        assert!(x.ends_with("  </testsuite>\n</testsuites>\n"), "{x}");
    }
}
