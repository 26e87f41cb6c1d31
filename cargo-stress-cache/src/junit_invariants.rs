//! `stress-cache.junit.xml`: the scenario records as JUnit (quick-junit), one `<testcase>` per scenario
//! run × invariant, so a CI system's test view names the exact invariant that failed. nextest's own
//! JUnit (one testcase per scenario test) stays as it is, beside it.
//!
//! - held: a passing testcase;
//! - violated: a `<failure>` whose message is the first evidence line, all of it in the body;
//! - skipped: `<skipped>` with the reason (never a pass);
//! - a setup error: one `setup` testcase with an `<error>` (no invariant of that run counts);
//! - a scenario that does not apply: one `not_applicable` testcase, skipped with the reason.
//!
//! One suite per scenario (and mutant); one file per directory holding `records/`, i.e. next to each
//! repeat's `junit.xml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};

use crate::errors::{Error, Result, one_line};
use crate::inputs::Inputs;

/// Name of the file written next to nextest's `junit.xml`.
pub const FILE_NAME: &str = "stress-cache.junit.xml";

/// The JUnit report of `records` (in the order given).
pub fn report(name: &str, records: &[&ScenarioRecord]) -> Report {
    let mut suites: BTreeMap<String, TestSuite> = BTreeMap::new();
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for record in records {
        let suite_name = match &record.mutant {
            Some(m) => format!("{} [mutant {m}]", record.scenario),
            None => record.scenario.clone(),
        };
        // Repeats (and nextest retries) of a scenario are separate runs: their testcases are told apart.
        let run = runs.entry(suite_name.clone()).or_default();
        *run += 1;
        let suffix = if *run > 1 { format!(" (run {run})") } else { String::new() };
        let suite = suites.entry(suite_name.clone()).or_insert_with(|| TestSuite::new(suite_name.clone()));
        let classname = format!("stress-cache.{}", record.scenario);
        let case = |name: &str, status: TestCaseStatus| {
            let mut case = TestCase::new(format!("{name}{suffix}"), status);
            case.set_classname(classname.clone());
            case
        };
        match record.outcome() {
            ScenarioOutcome::NotApplicable => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(record.not_applicable.clone().unwrap_or_default());
                suite.add_test_case(case("not_applicable", status));
                continue;
            }
            ScenarioOutcome::Error => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status
                    .set_type("setup error")
                    .set_message(one_line(&record.setup_errors.join("; ")))
                    .set_description(record.setup_errors.join("\n"));
                suite.add_test_case(case("setup", status));
                continue;
            }
            ScenarioOutcome::Passed | ScenarioOutcome::Failed => {}
        }
        for invariant in &record.invariants {
            let status = match invariant.status {
                Status::Held => TestCaseStatus::success(),
                Status::Violated => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let first = invariant.evidence.first().map(|e| one_line(e)).unwrap_or_default();
                    status
                        .set_type("invariant violated")
                        .set_message(first)
                        .set_description(invariant.evidence.join("\n"));
                    status
                }
                Status::Skipped => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(invariant.reason.clone().unwrap_or_else(|| "not checked".into()));
                    status
                }
            };
            suite.add_test_case(case(&invariant.name, status));
        }
    }
    let mut report = Report::new(name);
    report.add_test_suites(suites.into_values());
    report
}

/// Writes one `stress-cache.junit.xml` per directory holding a `records/` directory (each repeat),
/// from the records read from it. Returns the files written.
pub fn write_all(inputs: &Inputs) -> Result<Vec<PathBuf>> {
    let mut by_dir: BTreeMap<PathBuf, Vec<&ScenarioRecord>> = BTreeMap::new();
    for (path, record) in &inputs.records {
        if let Some(dir) = repeat_dir_of(path) {
            by_dir.entry(dir).or_default().push(record);
        }
    }
    let mut written = Vec::new();
    for (dir, records) in by_dir {
        let path = dir.join(FILE_NAME);
        let xml = report("cargo-stress-cache invariants", &records).to_string().map_err(|e| {
            Error::Render { what: "stress-cache.junit.xml", message: one_line(&e.to_string()) }
        })?;
        crate::rundir::write(&path, &xml)?;
        written.push(path);
    }
    Ok(written)
}

/// The directory above the `records` directory a record is in (`repeat-<n>/`).
fn repeat_dir_of(record: &Path) -> Option<PathBuf> {
    record
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "records"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use quick_junit::Report;
    use stress_cache_metadata::{InvariantResult, ScenarioRecord};

    use super::*;

    fn record(scenario: &str, invariants: Vec<InvariantResult>) -> ScenarioRecord {
        ScenarioRecord {
            scenario: scenario.into(),
            tier: "pr".into(),
            seed: 1,
            target: "beaker".into(),
            processes: 2,
            invariants,
            ..Default::default()
        }
    }

    /// `(suite, testcase, status kind, message)` of every testcase, read back with quick-junit's parser.
    fn cases(xml: &str) -> Vec<(String, String, &'static str, String)> {
        let report = Report::deserialize_from_str(xml).expect("our own JUnit parses");
        let mut out = Vec::new();
        for suite in &report.test_suites {
            for case in &suite.test_cases {
                let (kind, message) = match &case.status {
                    TestCaseStatus::Success { .. } => ("success", String::new()),
                    TestCaseStatus::NonSuccess { kind: NonSuccessKind::Failure, message, .. } => {
                        ("failure", message.as_ref().map(|m| m.to_string()).unwrap_or_default())
                    }
                    TestCaseStatus::NonSuccess { kind: NonSuccessKind::Error, message, .. } => {
                        ("error", message.as_ref().map(|m| m.to_string()).unwrap_or_default())
                    }
                    TestCaseStatus::Skipped { message, .. } => {
                        ("skipped", message.as_ref().map(|m| m.to_string()).unwrap_or_default())
                    }
                };
                out.push((suite.name.to_string(), case.name.to_string(), kind, message));
            }
        }
        out
    }

    #[test]
    fn each_invariant_is_a_testcase_and_a_violation_is_a_failure_with_its_evidence() {
        let mut broken =
            record("crash_at_publish", vec![InvariantResult::checked("no_partial_content", vec![])]);
        broken.setup_errors = vec!["failpoint cache.publish was never reached".into()];
        let mut na = record("compiled_cache_concurrency", vec![]);
        na.not_applicable = Some("the target declares no compiled cache".into());
        let records = [
            record(
                "same_model_shared_cache",
                vec![
                    InvariantResult::checked("single_final_artifact", vec![]),
                    InvariantResult::checked(
                        "no_partial_content",
                        vec![
                            "models/small.onnx is a 65536-byte prefix of the served body".into(),
                            "pid 7".into(),
                        ],
                    ),
                    InvariantResult::skipped("published_durably", "the target does not promise durability"),
                ],
            ),
            record(
                "same_model_shared_cache",
                vec![InvariantResult::checked("single_final_artifact", vec![])],
            ),
            broken,
            na,
        ];
        let refs: Vec<&ScenarioRecord> = records.iter().collect();
        let xml = report("t", &refs).to_string().expect("serialises");
        assert_eq!(
            cases(&xml),
            vec![
                (
                    "compiled_cache_concurrency".into(),
                    "not_applicable".into(),
                    "skipped",
                    "the target declares no compiled cache".into()
                ),
                (
                    "crash_at_publish".into(),
                    "setup".into(),
                    "error",
                    "failpoint cache.publish was never reached".into()
                ),
                ("same_model_shared_cache".into(), "single_final_artifact".into(), "success", String::new()),
                (
                    "same_model_shared_cache".into(),
                    "no_partial_content".into(),
                    "failure",
                    "models/small.onnx is a 65536-byte prefix of the served body".into()
                ),
                (
                    "same_model_shared_cache".into(),
                    "published_durably".into(),
                    "skipped",
                    "the target does not promise durability".into()
                ),
                (
                    "same_model_shared_cache".into(),
                    "single_final_artifact (run 2)".into(),
                    "success",
                    String::new()
                ),
            ]
        );
        assert!(xml.contains("pid 7"), "the whole evidence is in the failure's body:\n{xml}");
    }

    #[test]
    fn one_file_is_written_next_to_each_repeats_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inputs = Inputs {
            records: vec![
                (
                    dir.path().join("repeat-1/records/a.json"),
                    record("a", vec![InvariantResult::checked("x", vec![])]),
                ),
                (
                    dir.path().join("repeat-2/records/a.json"),
                    record("a", vec![InvariantResult::checked("x", vec!["bad".into()])]),
                ),
            ],
            ..Inputs::default()
        };
        std::fs::create_dir_all(dir.path().join("repeat-1")).unwrap();
        std::fs::create_dir_all(dir.path().join("repeat-2")).unwrap();
        let written = write_all(&inputs).expect("written");
        assert_eq!(
            written,
            vec![dir.path().join("repeat-1").join(FILE_NAME), dir.path().join("repeat-2").join(FILE_NAME)]
        );
        let second = std::fs::read_to_string(&written[1]).unwrap();
        assert_eq!(cases(&second), vec![("a".into(), "x".into(), "failure", "bad".into())]);
    }
}
