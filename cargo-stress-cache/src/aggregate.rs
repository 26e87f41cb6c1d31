//! Turning scenario records and JUnit reports into the result tables (invariants, setup errors,
//! not-applicable scenarios, benchmarks, flakes) and the run's verdict, and comparing benchmarks with a
//! baseline. The [`Aggregate`] is `report.json`, defined in
//! `stress_cache_metadata::report`.
//!
//! Only scenario runs that passed or failed count in the invariants and benchmarks tables: a run whose
//! setup failed never produced the situation its invariants are about (its "held" would claim what was
//! never observed), and a not-applicable scenario checked nothing.

use std::path::Path;

pub use stress_cache_metadata::report::{Aggregate, InvariantRow, REPORT_SCHEMA_VERSION};
use stress_cache_metadata::report::{OutcomeCounts, SelfCheck};
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};

use crate::benchmarks;
use crate::errors::{Error, Result, one_line, verdict_result};
use crate::flakes;
use crate::inputs::Inputs;
use crate::junit::Observation;
use crate::outcomes;
use crate::rundir::RunState;

/// Builds the tables from everything read.
pub fn from_inputs(inputs: &Inputs) -> Aggregate {
    let records: Vec<(&Path, &ScenarioRecord)> =
        inputs.records.iter().map(|(p, r)| (p.as_path(), r)).collect();
    let observations: Vec<&Observation> = inputs.junit.iter().flat_map(|(_, o)| o).collect();
    let evidence: Vec<&ScenarioRecord> = records
        .iter()
        .map(|(_, r)| *r)
        .filter(|r| matches!(r.outcome(), ScenarioOutcome::Passed | ScenarioOutcome::Failed))
        .collect();
    Aggregate {
        schema_version: REPORT_SCHEMA_VERSION,
        records: records.len(),
        outcomes: OutcomeCounts::of(records.iter().map(|(_, r)| *r)),
        junit_reports: inputs.junit.len(),
        scenarios: crate::overview::lines(records.iter().map(|(_, r)| *r)),
        invariants: invariant_rows(&evidence),
        setup_errors: outcomes::setup_error_rows(&records),
        not_applicable: outcomes::not_applicable_rows(&records),
        findings: outcomes::finding_rows(&records),
        benchmarks: benchmarks::rows(&evidence),
        flakes: flakes::rows(&observations),
        regressions: Vec::new(),
        regressions_fail: false,
        kept_dirs: records.iter().filter_map(|(_, r)| r.kept_dir.clone()).collect(),
        self_check_records: inputs.self_checks,
        self_check: merged_self_check(inputs),
        interrupted: incomplete_runs(inputs),
        harness_leaks: Vec::new(),
        aborted: inputs
            .runs
            .iter()
            .filter(|(_, info)| info.state == RunState::Aborted)
            .map(|(path, info)| {
                let error = info.error.as_deref().unwrap_or("unknown");
                format!("ABORTED on an error: {error} ({})", run_dir_of(path))
            })
            .collect(),
    }
}

/// [`Aggregate::verdict`] as the invocation's result (a pass is `Ok`).
pub fn outcome(agg: &Aggregate) -> Result<()> {
    verdict_result(agg.verdict(), crate::report::summary_line(agg))
}

/// Flags benchmarks that got worse than `baseline` by more than `threshold_pct` percent; with
/// `fail`, they fail the run.
pub fn compare_with(agg: &mut Aggregate, baseline: &Aggregate, threshold_pct: f64, fail: bool) {
    agg.regressions_fail = fail;
    agg.regressions = benchmarks::regressions(&agg.benchmarks, &baseline.benchmarks, threshold_pct);
}

/// Reads a previous `report.json`.
pub fn read(path: &Path) -> Result<Aggregate> {
    let text =
        std::fs::read_to_string(path).map_err(|source| Error::io("cannot read baseline", path, source))?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        what: "baseline report",
        path: path.to_path_buf(),
        message: one_line(&e.to_string()),
    })
}

/// The self-checks of every run read, as one.
fn merged_self_check(inputs: &Inputs) -> Option<SelfCheck> {
    let mut checks = inputs.runs.iter().filter_map(|(_, info)| info.self_check.as_ref());
    let mut merged = checks.next()?.clone();
    for check in checks {
        merged.merge(check);
    }
    Some(merged)
}

/// One line per run that did not complete.
fn incomplete_runs(inputs: &Inputs) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, info) in &inputs.runs {
        let dir = run_dir_of(path);
        match (info.state, &info.interruption) {
            (RunState::Interrupted, Some(interruption)) => lines.push(format!("{interruption} ({dir})")),
            (RunState::Interrupted, None) => lines.push(format!("INTERRUPTED ({dir})")),
            (RunState::Running, _) => lines.push(format!(
                "INTERRUPTED: the run never ended ({dir}/run.json still says `running`: the CLI was killed, \
                 or the run is still going)"
            )),
            (RunState::Finished | RunState::Aborted, _) => {}
        }
    }
    lines
}

/// The run directory of a `run.json`, for messages.
fn run_dir_of(run_json: &Path) -> String {
    run_json.parent().unwrap_or(run_json).display().to_string()
}

fn invariant_rows(records: &[&ScenarioRecord]) -> Vec<InvariantRow> {
    let mut rows: Vec<InvariantRow> = Vec::new();
    for record in records {
        for inv in &record.invariants {
            let existing = rows.iter_mut().find(|r| {
                r.scenario == record.scenario && r.mutant == record.mutant && r.invariant == inv.name
            });
            let row = match existing {
                Some(row) => row,
                None => {
                    rows.push(InvariantRow {
                        scenario: record.scenario.clone(),
                        mutant: record.mutant.clone(),
                        invariant: inv.name.to_string(),
                        held: 0,
                        violated: 0,
                        skipped: 0,
                        evidence: None,
                        skip_reason: None,
                    });
                    let last = rows.len() - 1;
                    &mut rows[last]
                }
            };
            match inv.status {
                Status::Held => row.held += 1,
                Status::Violated => {
                    row.violated += 1;
                    if row.evidence.is_none() {
                        row.evidence = inv.evidence.first().map(|e| one_line(e));
                    }
                }
                Status::Skipped => {
                    row.skipped += 1;
                    if row.skip_reason.is_none() {
                        row.skip_reason = inv.reason.as_deref().map(one_line);
                    }
                }
            }
        }
    }
    // Group by scenario (then mutant), keeping each scenario's invariants in check order.
    rows.sort_by(|a, b| (&a.scenario, &a.mutant).cmp(&(&b.scenario, &b.mutant)));
    rows
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use stress_cache_metadata::{Figures, InvariantResult};

    use super::*;
    use crate::errors::{EXIT_FAILED, EXIT_OK, exit_code_of};
    use crate::flakes::TestStability;
    use crate::junit::{self, Outcome};
    use stress_cache_metadata::report::RunVerdict;

    fn record(scenario: &str, invariants: Vec<InvariantResult>) -> ScenarioRecord {
        ScenarioRecord {
            scenario: scenario.to_string(),
            tier: "pr".into(),
            seed: 1,
            target: "beaker".into(),
            processes: 4,
            outcomes: BTreeMap::from([("ok".to_string(), 4)]),
            invariants,
            figures: Figures { processes_per_sec: 10.0, ..Figures::default() },
            ..Default::default()
        }
    }

    fn inputs(records: Vec<ScenarioRecord>) -> Inputs {
        let records =
            records.into_iter().enumerate().map(|(i, r)| (PathBuf::from(format!("records/{i}.json")), r));
        Inputs { records: records.collect(), ..Inputs::default() }
    }

    #[test]
    fn held_violated_and_skipped_are_counted_apart() {
        let agg = from_inputs(&inputs(vec![
            record(
                "crash",
                vec![
                    InvariantResult::checked("no_partial_content", vec![]),
                    InvariantResult::skipped("published_durably", "the target does not promise durability"),
                ],
            ),
            record(
                "crash",
                vec![
                    InvariantResult::checked("no_partial_content", vec!["x.onnx is a prefix".into()]),
                    InvariantResult::skipped("published_durably", "the target does not promise durability"),
                ],
            ),
        ]));
        let counts: Vec<(&str, usize, usize, usize)> =
            agg.invariants.iter().map(|r| (r.invariant.as_str(), r.held, r.violated, r.skipped)).collect();
        assert_eq!(counts, vec![("no_partial_content", 1, 1, 0), ("published_durably", 0, 0, 2)]);
        assert_eq!(agg.invariants[0].evidence.as_deref(), Some("x.onnx is a prefix"));
        assert_eq!(agg.invariants[1].skip_reason.as_deref(), Some("the target does not promise durability"));
        assert_eq!(agg.verdict(), RunVerdict::Fail);
    }

    #[test]
    fn a_setup_error_is_listed_counts_no_invariant_and_makes_the_verdict_error() {
        let mut broken = record(
            "crash_at_cache.after_lock",
            vec![
                InvariantResult::checked("no_partial_content", vec![]),
                InvariantResult::checked("all_processes_ok", vec!["pid 7 exited 2".into()]),
            ],
        );
        broken.setup_errors = vec!["failpoint cache.after_lock was never reached".into()];
        let agg = from_inputs(&inputs(vec![broken]));
        assert!(agg.invariants.is_empty(), "an error run's held is no evidence: {:?}", agg.invariants);
        assert!(agg.benchmarks.is_empty());
        assert_eq!(agg.setup_errors.len(), 1);
        assert_eq!(agg.setup_errors[0].setup_errors, vec!["failpoint cache.after_lock was never reached"]);
        assert_eq!(agg.setup_errors[0].violated_uncounted, vec!["all_processes_ok"]);
        assert_eq!(agg.outcomes.error, 1);
        assert_eq!(agg.verdict(), RunVerdict::Error);
        assert_eq!(exit_code_of(&outcome(&agg)), EXIT_FAILED);
    }

    #[test]
    fn a_not_applicable_scenario_is_neither_a_pass_nor_a_failure() {
        let mut na = record("compiled_cache_concurrency", vec![]);
        na.not_applicable = Some("the target declares no compiled cache".into());
        let passed = record("warm_hits", vec![InvariantResult::checked("single_download", vec![])]);
        let agg = from_inputs(&inputs(vec![na.clone(), na, passed]));
        assert_eq!(agg.not_applicable.len(), 1);
        assert_eq!(agg.not_applicable[0].runs, 2);
        assert_eq!(agg.not_applicable[0].reason, "the target declares no compiled cache");
        assert!(agg.invariants.iter().all(|r| r.scenario == "warm_hits"));
        assert_eq!(agg.benchmarks.len(), 1, "only the scenario that ran is measured");
        assert_eq!((agg.outcomes.passed, agg.outcomes.not_applicable), (1, 2));
        assert_eq!(agg.verdict(), RunVerdict::Pass);
    }

    #[test]
    fn flakes_across_repeats_from_junit_samples() {
        let repeat = |crash: Outcome, gc: Outcome| {
            format!(
                r#"<testsuites name="r" tests="3" failures="0" errors="0">
<testsuite name="stress-tests::scenarios" tests="3" errors="0" failures="0">
<testcase name="steady" classname="stress-tests::scenarios"/>
<testcase name="crash" classname="stress-tests::scenarios">{}</testcase>
<testcase name="gc" classname="stress-tests::scenarios">{}</testcase>
</testsuite></testsuites>"#,
                body(crash),
                body(gc)
            )
        };
        fn body(o: Outcome) -> &'static str {
            match o {
                Outcome::Passed => "",
                Outcome::FlakyOnRetry => r#"<flakyFailure message="x" type="test failure">x</flakyFailure>"#,
                Outcome::Failed => r#"<failure message="x" type="test failure">x</failure>"#,
            }
        }
        let mut inputs = Inputs::default();
        for (i, (crash, gc)) in [(Outcome::Passed, Outcome::Failed), (Outcome::FlakyOnRetry, Outcome::Failed)]
            .into_iter()
            .enumerate()
        {
            let path = PathBuf::from(format!("repeat-{i}/junit.xml"));
            inputs.junit.push((path.clone(), junit::parse(&repeat(crash, gc), &path).expect("parses")));
        }
        let agg = from_inputs(&inputs);
        let verdicts: Vec<(&str, TestStability)> =
            agg.flakes.iter().map(|f| (f.test.as_str(), f.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("stress-tests::scenarios crash", TestStability::Flaky),
                ("stress-tests::scenarios gc", TestStability::Broken),
                ("stress-tests::scenarios steady", TestStability::Stable),
            ]
        );
        assert_eq!(exit_code_of(&outcome(&agg)), EXIT_FAILED);
    }

    #[test]
    fn a_regression_fails_the_run_only_when_asked_to() {
        let row = crate::benchmarks::tests::warm_hits_row;
        let baseline = Aggregate { benchmarks: vec![row(100.0, 50.0)], ..Default::default() };
        let mut current = Aggregate { benchmarks: vec![row(85.0, 70.0)], ..Default::default() };
        compare_with(&mut current, &baseline, 20.0, false);
        let metrics: Vec<&str> = current.regressions.iter().map(|r| r.metric.as_str()).collect();
        // -15% throughput is within 20%; +40% p95 latency is not.
        assert_eq!(metrics, vec!["latency_p95_ms"]);
        assert_eq!(exit_code_of(&outcome(&current)), EXIT_OK);
        compare_with(&mut current, &baseline, 20.0, true);
        assert_eq!(exit_code_of(&outcome(&current)), EXIT_FAILED);
    }
}
