//! One line per scenario (× mutant): how its runs ended, its invariants' counts, and its slowest
//! process. The compact terminal output ([`crate::terminal`]) is these lines; the full tables stay in
//! `report.txt` and behind `--verbose`.

pub use stress_cache_metadata::report::ScenarioLine;
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};

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
