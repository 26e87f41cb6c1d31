//! `report.json`: the aggregate of one or more stress runs, as the CLI writes it and reads it back
//! (`--baseline`, `report DIR`, the HTML report of earlier runs), with its row types and the run's
//! verdict. Defined here, like `nextest-metadata`'s report types, so that the file's readers need not
//! link the CLI; building the tables from records and JUnit reports stays in `cargo-stress-cache`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ScenarioOutcome, ScenarioRecord};

/// Version of the `report.json` layout. 2: invariants count held / violated / skipped; setup errors
/// and not-applicable scenarios are their own tables.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// The aggregate of one or more runs; serialised as `report.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Aggregate {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario records read.
    pub records: usize,
    /// Those records by outcome.
    #[serde(default)]
    pub outcomes: OutcomeCounts,
    /// JUnit reports read (one per nextest run: repeats × partitions).
    pub junit_reports: usize,
    /// One line per scenario (× mutant): outcomes, invariant counts, slowest process.
    #[serde(default)]
    pub scenarios: Vec<ScenarioLine>,
    /// Scenario × invariant status counts, over the scenario runs that passed or failed.
    pub invariants: Vec<InvariantRow>,
    /// Scenario runs whose setup failed (outcome `error`).
    #[serde(default)]
    pub setup_errors: Vec<SetupErrorRow>,
    /// Scenarios that do not apply to the target.
    #[serde(default)]
    pub not_applicable: Vec<NotApplicableRow>,
    /// Findings (not failures): what a target cannot do by design, and what it costs.
    #[serde(default)]
    pub findings: Vec<FindingRow>,
    /// Per-scenario figures (clean runs that passed or failed: mutant runs measure a bug).
    pub benchmarks: Vec<BenchmarkRow>,
    /// Per-test stability across runs.
    pub flakes: Vec<FlakeRow>,
    /// Benchmarks that regressed against the baseline.
    #[serde(default)]
    pub regressions: Vec<Regression>,
    /// Whether those regressions fail the run (`--fail-on-regression`); otherwise they are only flagged.
    #[serde(default)]
    pub regressions_fail: bool,
    /// Temp dirs of failed scenario runs, kept for debugging.
    #[serde(default)]
    pub kept_dirs: Vec<String>,
    /// Records of the suite's own mutant self-checks, left out of the tables (see the CLI's inputs).
    #[serde(default)]
    pub self_check_records: usize,
    /// Runs that did not complete: interrupted, or never marked as ended (their `run.json` still says
    /// `running`). Any makes the verdict `interrupted`: a partial run never passes.
    #[serde(default)]
    pub interrupted: Vec<String>,
    /// Runs that stopped on an error.
    #[serde(default)]
    pub aborted: Vec<String>,
    /// What the harness left behind after a nightly tier run (processes, zombies, descriptors, temp
    /// dirs, mounts, listening sockets), one line each; any makes the verdict `error`.
    #[serde(default)]
    pub harness_leaks: Vec<String>,
    /// The checker's self-check(s) of the runs read, merged; a failed one makes the verdict `error`.
    #[serde(default)]
    pub self_check: Option<SelfCheck>,
}

impl Aggregate {
    /// Total violated (scenario run × invariant) verdicts.
    pub fn violations(&self) -> usize {
        self.invariants.iter().map(|r| r.violated).sum()
    }

    /// Tests that are flaky or broken.
    pub fn unstable_tests(&self) -> Vec<&FlakeRow> {
        self.flakes.iter().filter(|f| f.verdict != TestStability::Stable).collect()
    }

    /// `scenario: invariant` for every invariant violated at least once.
    pub fn violated_names(&self) -> Vec<String> {
        self.invariants
            .iter()
            .filter(|r| r.violated > 0)
            .map(|r| format!("{}: {}", r.scenario, r.invariant))
            .collect()
    }

    /// Whether the checker's self-check ran and failed.
    pub fn self_check_failed(&self) -> bool {
        self.self_check.as_ref().is_some_and(|c| !c.ok())
    }

    /// The run's verdict: interrupted (it did not complete) before error (the checker's self-check
    /// failed, the run stopped on an error, or a scenario's setup failed) before fail (a violation, an
    /// unstable test, or a regressed benchmark when [`Aggregate::regressions_fail`]) before pass.
    pub fn verdict(&self) -> RunVerdict {
        if !self.interrupted.is_empty() {
            RunVerdict::Interrupted
        } else if self.self_check_failed()
            || !self.setup_errors.is_empty()
            || !self.aborted.is_empty()
            || !self.harness_leaks.is_empty()
        {
            RunVerdict::Error
        } else if self.violations() > 0
            || !self.unstable_tests().is_empty()
            || (self.regressions_fail && !self.regressions.is_empty())
        {
            RunVerdict::Fail
        } else {
            RunVerdict::Pass
        }
    }
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
    /// Runs in which it was checked and held.
    pub held: usize,
    /// Runs in which it was violated.
    pub violated: usize,
    /// Runs in which it was not checked ("not observed" is never "held").
    #[serde(default)]
    pub skipped: usize,
    /// First evidence line of a violation.
    pub evidence: Option<String>,
    /// Why it was skipped (the first reason given).
    #[serde(default)]
    pub skip_reason: Option<String>,
}

/// One scenario (× mutant) over every run of it read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ScenarioLine {
    /// Scenario.
    pub scenario: String,
    /// The seeded bug active in those runs, if any.
    pub mutant: Option<String>,
    /// Scenario runs (records).
    pub runs: usize,
    /// Runs that passed.
    pub passed: usize,
    /// Runs that failed (an invariant violated).
    pub failed: usize,
    /// Runs whose setup failed.
    pub errors: usize,
    /// Runs that did not apply to the target.
    pub not_applicable: usize,
    /// Invariant checks that held, over the runs that passed or failed.
    pub held: usize,
    /// Invariant checks violated.
    pub violated: usize,
    /// Invariants not checked ("not observed" is never "held").
    pub skipped: usize,
    /// The slowest process of any run: its wall time (ms) and role.
    pub slowest: Option<(f64, String)>,
}

impl ScenarioLine {
    /// The line's mark: `✓` only when every run passed, `✗` when one failed or could not set up, `-`
    /// when none applied.
    pub fn mark(&self) -> &'static str {
        if self.failed > 0 || self.errors > 0 {
            "✗"
        } else if self.passed == 0 {
            "-"
        } else {
            "✓"
        }
    }
}

/// Scenario runs by [`ScenarioOutcome`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// Every checked invariant held.
    pub passed: usize,
    /// Some invariant was violated.
    pub failed: usize,
    /// The setup failed: no verdict about the target.
    pub error: usize,
    /// The scenario does not apply to the target.
    pub not_applicable: usize,
}

impl OutcomeCounts {
    /// Counts `records` by outcome.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a ScenarioRecord>) -> Self {
        let mut counts = OutcomeCounts::default();
        for record in records {
            match record.outcome() {
                ScenarioOutcome::Passed => counts.passed += 1,
                ScenarioOutcome::Failed => counts.failed += 1,
                ScenarioOutcome::Error => counts.error += 1,
                ScenarioOutcome::NotApplicable => counts.not_applicable += 1,
            }
        }
        counts
    }
}

/// One scenario run whose setup failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetupErrorRow {
    /// Scenario.
    pub scenario: String,
    /// The seeded bug active in that run, if any.
    pub mutant: Option<String>,
    /// The record file.
    pub record: String,
    /// What could not be set up, as the record says.
    pub setup_errors: Vec<String>,
    /// Invariants the record reports violated anyway; not counted, as the situation they are about was
    /// not produced.
    #[serde(default)]
    pub violated_uncounted: Vec<String>,
}

/// A scenario that does not apply to the target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotApplicableRow {
    /// Scenario.
    pub scenario: String,
    /// The seeded bug of those runs, if any.
    pub mutant: Option<String>,
    /// Runs that said so.
    pub runs: usize,
    /// Why (the first reason given).
    pub reason: String,
}

/// A finding: what the target cannot do by design and what it costs (never a failure).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FindingRow {
    /// Scenario.
    pub scenario: String,
    /// The seeded bug of those runs, if any.
    pub mutant: Option<String>,
    /// The finding's name, e.g. `cached_undetectable_corruption`.
    pub finding: String,
    /// Runs that reported it.
    pub runs: usize,
    /// The first evidence line.
    pub evidence: String,
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

/// A test's stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStability {
    /// Passed first time in every run.
    Stable,
    /// Failed in some run (or passed only on retry) but passed in another.
    Flaky,
    /// Never passed.
    Broken,
}

impl TestStability {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TestStability::Stable => "stable",
            TestStability::Flaky => "flaky",
            TestStability::Broken => "broken",
        }
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
    pub verdict: TestStability,
}

/// What the self-check found; kept in `run.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfCheck {
    /// Checker tests that passed.
    pub passed: usize,
    /// Checker tests that failed (`<binary id> <test name>`).
    pub failed: Vec<String>,
    /// Why it failed without a failing test (none matched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl SelfCheck {
    /// Whether the checker may be trusted: tests ran and none failed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.problem.is_none() && self.passed > 0
    }

    /// Several runs' self-checks (partitions given to `report`) as one.
    pub fn merge(&mut self, other: &SelfCheck) {
        self.passed += other.passed;
        self.failed.extend(other.failed.iter().cloned());
        self.problem = self.problem.take().or_else(|| other.problem.clone());
    }

    /// The one line the output starts with when it failed, e.g. `self-check: 41 checker tests passed`.
    pub fn line(&self) -> String {
        if self.ok() {
            return format!("self-check: {} checker tests passed", self.passed);
        }
        match &self.problem {
            Some(problem) => format!("self-check FAILED: {problem}"),
            None if self.failed.is_empty() => "self-check FAILED: no checker test ran".to_string(),
            None => format!(
                "self-check FAILED: {} of {} checker tests failed ({}); the verdict is ERROR whatever the \
                 scenarios say",
                self.failed.len(),
                self.failed.len() + self.passed,
                self.failed.join(", ")
            ),
        }
    }
}

/// What a run proved, from strongest claim to weakest evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    /// Every check that ran held, every test was stable, and the run was complete.
    Pass,
    /// An invariant was violated or a test was flaky or broken (or, if asked, a benchmark regressed).
    Fail,
    /// The run could not produce the evidence it needed: a scenario's setup failed, the checker's
    /// self-check failed, or the run stopped on an error.
    Error,
    /// The run was stopped before it completed (a signal, or nextest cancelling it): what ran is shown,
    /// but a partial run proves nothing about what did not.
    Interrupted,
}

impl RunVerdict {
    /// The word the summary line starts with.
    pub fn as_str(self) -> &'static str {
        match self {
            RunVerdict::Pass => "PASS",
            RunVerdict::Fail => "FAIL",
            RunVerdict::Error => "ERROR",
            RunVerdict::Interrupted => "INTERRUPTED",
        }
    }
}
