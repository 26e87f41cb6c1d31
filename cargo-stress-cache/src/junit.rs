//! Reading nextest's JUnit reports (with quick-junit's deserializer) into per-test outcomes.
//!
//! With `retries` set, nextest writes a test that failed and then passed as a `<testcase>` without
//! `<failure>` but with `<flakyFailure>` children, and a test that failed every attempt as
//! `<failure>` with `<rerunFailure>` children.

use std::path::Path;

use quick_junit::{Report, TestCaseStatus};

use crate::errors::{Error, Result, one_line};

/// The outcome of one test in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Passed on the first attempt.
    Passed,
    /// Failed, then passed on a retry.
    FlakyOnRetry,
    /// Failed every attempt.
    Failed,
}

/// One test's outcome in one JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `<binary id> <test name>`, as nextest displays it.
    pub test: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Its time in seconds (all attempts), when the report gives one.
    pub time_s: Option<f64>,
}

/// Parses a JUnit XML document; skipped tests are left out.
pub fn parse(xml: &str, origin: &Path) -> Result<Vec<Observation>> {
    let report = Report::deserialize_from_str(xml).map_err(|e| Error::Parse {
        what: "JUnit report",
        path: origin.to_path_buf(),
        message: one_line(&e.to_string()),
    })?;
    let mut observations = Vec::new();
    for suite in &report.test_suites {
        for case in &suite.test_cases {
            let outcome = match &case.status {
                TestCaseStatus::Success { flaky_runs } if flaky_runs.is_empty() => Outcome::Passed,
                TestCaseStatus::Success { .. } => Outcome::FlakyOnRetry,
                TestCaseStatus::NonSuccess { .. } => Outcome::Failed,
                TestCaseStatus::Skipped { .. } => continue,
            };
            let test = format!("{} {}", suite.name.as_str(), case.name.as_str());
            observations.push(Observation { test, outcome, time_s: case.time.map(|t| t.as_secs_f64()) });
        }
    }
    Ok(observations)
}

/// Reads and parses a JUnit file.
pub fn read(path: &Path) -> Result<Vec<Observation>> {
    let xml = std::fs::read_to_string(path).map_err(|source| Error::io("cannot read", path, source))?;
    parse(&xml, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="4" failures="1" errors="0">
  <testsuite name="stress-tests::crash" tests="3" disabled="0" errors="0" failures="1">
    <testcase name="crash_before_rename" classname="stress-tests::crash" timestamp="2026-11-22T23:00:00+00:00" time="1.5">
    </testcase>
    <testcase name="crash_mid_download" classname="stress-tests::crash" time="2.0">
      <flakyFailure message="test failed" type="test failure">first attempt failed</flakyFailure>
    </testcase>
    <testcase name="gc_vs_reader" classname="stress-tests::crash" time="3.0">
      <failure message="invariant violated" type="test failure">boom</failure>
      <rerunFailure message="invariant violated" type="test failure">boom again</rerunFailure>
    </testcase>
  </testsuite>
  <testsuite name="stress-tests::bench" tests="1" disabled="0" errors="0" failures="0">
    <testcase name="skipped_one" classname="stress-tests::bench"><skipped/></testcase>
  </testsuite>
</testsuites>"#;

    #[test]
    fn reads_passed_flaky_and_failed_and_drops_skipped() {
        let got = parse(SAMPLE, Path::new("sample.xml")).expect("sample parses");
        let outcomes: Vec<(&str, Outcome)> = got.iter().map(|o| (o.test.as_str(), o.outcome)).collect();
        assert_eq!(
            outcomes,
            vec![
                ("stress-tests::crash crash_before_rename", Outcome::Passed),
                ("stress-tests::crash crash_mid_download", Outcome::FlakyOnRetry),
                ("stress-tests::crash gc_vs_reader", Outcome::Failed),
            ]
        );
    }

    #[test]
    fn malformed_xml_is_a_parse_error() {
        let err = parse("<testsuites><testsuite", Path::new("bad.xml")).unwrap_err();
        assert!(err.to_string().contains("cannot parse JUnit report bad.xml"), "{err}");
    }
}
