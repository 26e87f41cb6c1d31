//! Turning scenario records and JUnit reports into the three result tables (invariants, benchmarks,
//! flakes), and comparing benchmarks with a baseline. The [`Aggregate`] is also `report.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stress_cache_metadata::{RECORD_SCHEMA_VERSION, ScenarioRecord};

use crate::errors::{EXIT_FAILED, EXIT_OK, Error, Result, one_line};
use crate::junit::{self, Observation, Outcome};

/// Version of the `report.json` layout.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// How deep [`collect`] descends below a given directory (run dir → repeat → records → scenario files).
const MAX_DEPTH: usize = 8;

/// Everything read from run directories.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Scenario records with their files.
    pub records: Vec<(PathBuf, ScenarioRecord)>,
    /// JUnit reports, one per nextest run.
    pub junit: Vec<(PathBuf, Vec<Observation>)>,
    /// Records whose seeded bug is not the one their run was started with: the suite's own
    /// mutant self-checks (a test that runs scenarios against seeded bugs and passes when they are
    /// killed). Their violations are expected, so they are counted but kept out of the verdict.
    pub self_checks: usize,
}

/// `run.json` at the top of every run directory: what the run was started with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// Tier (`pr`, `nightly`).
    pub tier: String,
    /// The seeded bug every process ran with (`--mutant`, or one row of the mutants matrix).
    pub mutant: Option<String>,
    /// Repeats.
    pub repeat: u32,
    /// `--partition`, if any.
    pub partition: Option<String>,
    /// `-E` filtersets given.
    pub filtersets: Vec<String>,
}

/// Name of the [`RunInfo`] file.
pub const RUN_INFO: &str = "run.json";

/// Which records belong to the run: `None` = unknown (no `run.json`), all of them.
type Scope = Option<Option<String>>;

/// Reads every record (`*.json` below a `records` directory) and JUnit report (`junit*.xml`) under `dirs`.
pub fn collect(dirs: &[PathBuf]) -> Result<Inputs> {
    let mut inputs = Inputs::default();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(Error::io(
                "cannot read run directory",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            ));
        }
        walk(dir, 0, false, &None, &mut inputs)?;
    }
    // Directory order is arbitrary; a stable order keeps reports reproducible.
    inputs.records.sort_by(|a, b| a.0.cmp(&b.0));
    inputs.junit.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(inputs)
}

fn walk(dir: &Path, depth: usize, in_records: bool, scope: &Scope, inputs: &mut Inputs) -> Result<()> {
    let info_path = dir.join(RUN_INFO);
    let own_scope;
    let scope = if info_path.is_file() {
        let text = std::fs::read_to_string(&info_path)
            .map_err(|source| Error::io("cannot read", &info_path, source))?;
        let info: RunInfo = serde_json::from_str(&text).map_err(|e| Error::Parse {
            what: "run info",
            path: info_path.clone(),
            message: one_line(&e.to_string()),
        })?;
        own_scope = Some(info.mutant);
        &own_scope
    } else {
        scope
    };
    let entries = std::fs::read_dir(dir).map_err(|source| Error::io("cannot read directory", dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::io("cannot read directory", dir, source))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| Error::io("cannot stat", &path, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_dir() {
            // Kept temp dirs of failed scenarios hold the target's files, not results.
            if depth < MAX_DEPTH && name != "kept" {
                walk(&path, depth + 1, in_records || name == "records", scope, inputs)?;
            }
        } else if file_type.is_file() {
            if in_records && name.ends_with(".json") {
                let record = read_record(&path)?;
                match scope {
                    Some(expected) if *expected != record.mutant => inputs.self_checks += 1,
                    _ => inputs.records.push((path.clone(), record)),
                }
            } else if name.starts_with("junit") && name.ends_with(".xml") {
                inputs.junit.push((path.clone(), junit::read(&path)?));
            }
        }
    }
    Ok(())
}

/// Reads one scenario record, rejecting unknown schema versions.
pub fn read_record(path: &Path) -> Result<ScenarioRecord> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io("cannot read", path, source))?;
    let parse_error =
        |message: String| Error::Parse { what: "scenario record", path: path.to_path_buf(), message };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| parse_error(one_line(&e.to_string())))?;
    let version = value.get("schema_version").and_then(|v| v.as_u64());
    if version != Some(u64::from(RECORD_SCHEMA_VERSION)) {
        return Err(parse_error(format!(
            "schema_version {version:?} is not the supported {RECORD_SCHEMA_VERSION}"
        )));
    }
    serde_json::from_value(value).map_err(|e| parse_error(one_line(&e.to_string())))
}

/// The aggregate of one or more runs; serialised as `report.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Aggregate {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario records read.
    pub records: usize,
    /// JUnit reports read (one per nextest run: repeats × partitions).
    pub junit_reports: usize,
    /// Scenario × invariant verdict counts.
    pub invariants: Vec<InvariantRow>,
    /// Per-scenario figures (clean runs only: mutant runs measure a bug).
    pub benchmarks: Vec<BenchmarkRow>,
    /// Per-test stability across runs.
    pub flakes: Vec<FlakeRow>,
    /// Benchmarks that regressed against the baseline.
    #[serde(default)]
    pub regressions: Vec<Regression>,
    /// Temp dirs of failed scenario runs, kept for debugging.
    #[serde(default)]
    pub kept_dirs: Vec<String>,
    /// Records of the suite's own mutant self-checks, left out of the tables (see [`Inputs::self_checks`]).
    #[serde(default)]
    pub self_check_records: usize,
}

/// One scenario × invariant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvariantRow {
    /// Scenario.
    pub scenario: String,
    /// The seeded bug active in those runs, if any.
    pub mutant: Option<String>,
    /// Invariant name.
    pub invariant: String,
    /// Runs in which it held.
    pub held: usize,
    /// Runs in which it was violated.
    pub violated: usize,
    /// First evidence line of a violation.
    pub evidence: Option<String>,
}

/// One scenario's figures: medians over its clean runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchmarkRow {
    /// Scenario.
    pub scenario: String,
    /// Clean runs measured.
    pub runs: usize,
    /// Processes finished per second.
    pub processes_per_sec: f64,
    /// Median process latency (ms).
    pub latency_p50_ms: f64,
    /// 95th percentile process latency (ms).
    pub latency_p95_ms: f64,
    /// Download-cache hit ratio, when the target reports hits.
    pub cache_hit_ratio: Option<f64>,
    /// Complete bodies served per model (1 = no download amplification).
    pub bodies_per_model: BTreeMap<String, f64>,
    /// Megabytes served per second.
    pub mb_per_sec: f64,
}

/// A test's stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Passed first time in every run.
    Stable,
    /// Failed in some run (or passed only on retry) but passed in another.
    Flaky,
    /// Never passed.
    Broken,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Stable => "stable",
            Verdict::Flaky => "flaky",
            Verdict::Broken => "broken",
        }
    }
}

/// Classifies a test from its outcome counts across runs.
pub fn classify(passed: usize, flaky_on_retry: usize, failed: usize) -> Verdict {
    if flaky_on_retry == 0 && failed == 0 {
        Verdict::Stable
    } else if passed == 0 && flaky_on_retry == 0 {
        Verdict::Broken
    } else {
        Verdict::Flaky
    }
}

/// One test across runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlakeRow {
    /// `<binary id> <test name>`.
    pub test: String,
    /// Runs where it passed first time.
    pub passed: usize,
    /// Runs where it passed only on retry.
    pub flaky_on_retry: usize,
    /// Runs where it failed every attempt.
    pub failed: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// A benchmark that got worse than the baseline by more than the threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Regression {
    /// Scenario.
    pub scenario: String,
    /// Figure (`processes_per_sec`, `latency_p50_ms`, ...).
    pub metric: String,
    /// Baseline value.
    pub baseline: f64,
    /// Current value.
    pub current: f64,
    /// Relative change in percent (signed).
    pub change_pct: f64,
}

impl Aggregate {
    /// Builds the tables from everything read.
    pub fn from_inputs(inputs: &Inputs) -> Self {
        let records: Vec<&ScenarioRecord> = inputs.records.iter().map(|(_, r)| r).collect();
        let observations: Vec<&Observation> = inputs.junit.iter().flat_map(|(_, o)| o).collect();
        Self {
            schema_version: REPORT_SCHEMA_VERSION,
            records: records.len(),
            junit_reports: inputs.junit.len(),
            invariants: invariant_rows(&records),
            benchmarks: benchmark_rows(&records),
            flakes: flake_rows(&observations),
            regressions: Vec::new(),
            kept_dirs: records.iter().filter_map(|r| r.kept_dir.clone()).collect(),
            self_check_records: inputs.self_checks,
        }
    }

    /// Total violated (scenario run × invariant) verdicts.
    pub fn violations(&self) -> usize {
        self.invariants.iter().map(|r| r.violated).sum()
    }

    /// Tests that are flaky or broken.
    pub fn unstable_tests(&self) -> Vec<&FlakeRow> {
        self.flakes.iter().filter(|f| f.verdict != Verdict::Stable).collect()
    }

    /// `scenario: invariant` for every invariant violated at least once.
    pub fn violated_names(&self) -> Vec<String> {
        self.invariants
            .iter()
            .filter(|r| r.violated > 0)
            .map(|r| format!("{}: {}", r.scenario, r.invariant))
            .collect()
    }

    /// 0 when everything held and every test was stable (and, if asked, nothing regressed), else 1.
    pub fn exit_code(&self, fail_on_regression: bool) -> i32 {
        let failed = self.violations() > 0
            || !self.unstable_tests().is_empty()
            || (fail_on_regression && !self.regressions.is_empty());
        if failed { EXIT_FAILED } else { EXIT_OK }
    }

    /// Flags benchmarks that got worse than `baseline` by more than `threshold_pct` percent.
    pub fn compare_with(&mut self, baseline: &Aggregate, threshold_pct: f64) {
        let mut regressions = Vec::new();
        for row in &self.benchmarks {
            let Some(base) = baseline.benchmarks.iter().find(|b| b.scenario == row.scenario) else {
                continue;
            };
            // (name, baseline, current, higher is better)
            let metrics = [
                ("processes_per_sec", base.processes_per_sec, row.processes_per_sec, true),
                ("mb_per_sec", base.mb_per_sec, row.mb_per_sec, true),
                ("latency_p50_ms", base.latency_p50_ms, row.latency_p50_ms, false),
                ("latency_p95_ms", base.latency_p95_ms, row.latency_p95_ms, false),
            ];
            for (metric, before, now, higher_is_better) in metrics {
                if before <= 0.0 || !before.is_finite() || !now.is_finite() {
                    continue;
                }
                let change_pct = (now - before) / before * 100.0;
                let worse = if higher_is_better { -change_pct } else { change_pct };
                if worse > threshold_pct {
                    regressions.push(Regression {
                        scenario: row.scenario.clone(),
                        metric: metric.to_string(),
                        baseline: before,
                        current: now,
                        change_pct,
                    });
                }
            }
        }
        self.regressions = regressions;
    }

    /// Reads a previous `report.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::io("cannot read baseline", path, source))?;
        serde_json::from_str(&text).map_err(|e| Error::Parse {
            what: "baseline report",
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })
    }
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
                        invariant: inv.name.clone(),
                        held: 0,
                        violated: 0,
                        evidence: None,
                    });
                    let last = rows.len() - 1;
                    &mut rows[last]
                }
            };
            if inv.held {
                row.held += 1;
            } else {
                row.violated += 1;
                if row.evidence.is_none() {
                    row.evidence = inv.evidence.first().map(|e| one_line(e));
                }
            }
        }
    }
    // Group by scenario (then mutant), keeping each scenario's invariants in check order.
    rows.sort_by(|a, b| (&a.scenario, &a.mutant).cmp(&(&b.scenario, &b.mutant)));
    rows
}

fn benchmark_rows(records: &[&ScenarioRecord]) -> Vec<BenchmarkRow> {
    let mut by_scenario: BTreeMap<&str, Vec<&ScenarioRecord>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.mutant.is_none()) {
        by_scenario.entry(record.scenario.as_str()).or_default().push(record);
    }
    by_scenario
        .into_iter()
        .map(|(scenario, runs)| {
            let figure = |f: fn(&ScenarioRecord) -> f64| median(runs.iter().map(|r| f(r)).collect());
            let hit_ratios: Vec<f64> = runs.iter().filter_map(|r| r.figures.cache_hit_ratio).collect();
            let mut bodies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for run in &runs {
                for (model, count) in &run.figures.complete_bodies_per_model {
                    bodies.entry(model.clone()).or_default().push(*count as f64);
                }
            }
            BenchmarkRow {
                scenario: scenario.to_string(),
                runs: runs.len(),
                processes_per_sec: figure(|r| r.figures.processes_per_sec),
                latency_p50_ms: figure(|r| r.figures.latency_p50_ms),
                latency_p95_ms: figure(|r| r.figures.latency_p95_ms),
                cache_hit_ratio: (!hit_ratios.is_empty()).then(|| median(hit_ratios)),
                bodies_per_model: bodies.into_iter().map(|(m, v)| (m, median(v))).collect(),
                mb_per_sec: figure(|r| r.figures.mb_per_sec),
            }
        })
        .collect()
}

fn flake_rows(observations: &[&Observation]) -> Vec<FlakeRow> {
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for obs in observations {
        let slot = counts.entry(obs.test.as_str()).or_default();
        match obs.outcome {
            Outcome::Passed => slot[0] += 1,
            Outcome::FlakyOnRetry => slot[1] += 1,
            Outcome::Failed => slot[2] += 1,
        }
    }
    counts
        .into_iter()
        .map(|(test, [passed, flaky_on_retry, failed])| FlakeRow {
            test: test.to_string(),
            passed,
            flaky_on_retry,
            failed,
            verdict: classify(passed, flaky_on_retry, failed),
        })
        .collect()
}

/// The median (mean of the two middle values for an even count); 0 for no values.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_stable_flaky_broken() {
        assert_eq!(classify(5, 0, 0), Verdict::Stable);
        assert_eq!(classify(4, 1, 0), Verdict::Flaky);
        assert_eq!(classify(4, 0, 1), Verdict::Flaky);
        assert_eq!(classify(0, 1, 0), Verdict::Flaky);
        assert_eq!(classify(0, 0, 3), Verdict::Broken);
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
        let agg = Aggregate::from_inputs(&inputs);
        let verdicts: Vec<(&str, Verdict)> =
            agg.flakes.iter().map(|f| (f.test.as_str(), f.verdict)).collect();
        assert_eq!(
            verdicts,
            vec![
                ("stress-tests::scenarios crash", Verdict::Flaky),
                ("stress-tests::scenarios gc", Verdict::Broken),
                ("stress-tests::scenarios steady", Verdict::Stable),
            ]
        );
        assert_eq!(agg.exit_code(false), EXIT_FAILED);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn regression_beyond_threshold_is_flagged() {
        let row = |pps: f64, p95: f64| BenchmarkRow {
            scenario: "warm_hits".into(),
            runs: 1,
            processes_per_sec: pps,
            latency_p50_ms: 10.0,
            latency_p95_ms: p95,
            cache_hit_ratio: Some(1.0),
            bodies_per_model: BTreeMap::new(),
            mb_per_sec: 0.0,
        };
        let baseline = Aggregate { benchmarks: vec![row(100.0, 50.0)], ..Default::default() };
        let mut current = Aggregate { benchmarks: vec![row(85.0, 70.0)], ..Default::default() };
        current.compare_with(&baseline, 20.0);
        let metrics: Vec<&str> = current.regressions.iter().map(|r| r.metric.as_str()).collect();
        // -15% throughput is within 20%; +40% p95 latency is not.
        assert_eq!(metrics, vec!["latency_p95_ms"]);
        assert_eq!(current.exit_code(false), EXIT_OK);
        assert_eq!(current.exit_code(true), EXIT_FAILED);
    }
}
