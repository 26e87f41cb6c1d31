//! One line per scenario (× mutant): how its runs ended, its invariants' counts, and its slowest
//! process. The compact terminal output ([`crate::terminal`]) is these lines; the full tables stay in
//! `report.txt` and behind `--verbose`.

use serde::{Deserialize, Serialize};
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};

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

/// The lines of `records`, in the order scenarios were first read.
pub fn lines<'a>(records: impl IntoIterator<Item = &'a ScenarioRecord>) -> Vec<ScenarioLine> {
    let mut lines: Vec<ScenarioLine> = Vec::new();
    for record in records {
        let index =
            match lines.iter().position(|l| l.scenario == record.scenario && l.mutant == record.mutant) {
                Some(i) => i,
                None => {
                    lines.push(ScenarioLine {
                        scenario: record.scenario.clone(),
                        mutant: record.mutant.clone(),
                        ..ScenarioLine::default()
                    });
                    lines.len() - 1
                }
            };
        let line = &mut lines[index];
        line.runs += 1;
        let outcome = record.outcome();
        match outcome {
            ScenarioOutcome::Passed => line.passed += 1,
            ScenarioOutcome::Failed => line.failed += 1,
            ScenarioOutcome::Error => line.errors += 1,
            ScenarioOutcome::NotApplicable => line.not_applicable += 1,
        }
        // As in the invariants table: only runs that passed or failed observed what they check.
        if matches!(outcome, ScenarioOutcome::Passed | ScenarioOutcome::Failed) {
            for inv in &record.invariants {
                match inv.status {
                    Status::Held => line.held += 1,
                    Status::Violated => line.violated += 1,
                    Status::Skipped => line.skipped += 1,
                }
            }
        }
        for run in &record.process_runs {
            if line.slowest.as_ref().is_none_or(|(ms, _)| run.wall_ms > *ms) {
                line.slowest = Some((run.wall_ms, run.role.clone()));
            }
        }
    }
    lines
}
