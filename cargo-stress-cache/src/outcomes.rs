//! Scenario runs that gave no verdict about the target: those whose setup failed (outcome `error`:
//! the scenario could not produce the situation it checks) and those that do not apply to it. Both are
//! listed with their reasons instead of being counted in the invariants table.

use std::path::Path;

pub use stress_cache_metadata::report::{FindingRow, NotApplicableRow, OutcomeCounts, SetupErrorRow};
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord};

use crate::errors::one_line;

/// One row per scenario, mutant and finding.
pub fn finding_rows(records: &[(&Path, &ScenarioRecord)]) -> Vec<FindingRow> {
    let mut rows: Vec<FindingRow> = Vec::new();
    for (_, record) in records {
        for f in &record.findings {
            let same = |r: &&mut FindingRow| {
                r.scenario == record.scenario && r.mutant == record.mutant && r.finding == f.name
            };
            match rows.iter_mut().find(same) {
                Some(row) => row.runs += 1,
                None => rows.push(FindingRow {
                    scenario: record.scenario.clone(),
                    mutant: record.mutant.clone(),
                    finding: f.name.clone(),
                    runs: 1,
                    evidence: f.evidence.first().map(|e| one_line(e)).unwrap_or_default(),
                }),
            }
        }
    }
    rows.sort_by(|a, b| (&a.scenario, &a.mutant, &a.finding).cmp(&(&b.scenario, &b.mutant, &b.finding)));
    rows
}

/// One row per scenario run whose setup failed.
pub fn setup_error_rows(records: &[(&Path, &ScenarioRecord)]) -> Vec<SetupErrorRow> {
    records
        .iter()
        .filter(|(_, r)| r.outcome() == ScenarioOutcome::Error)
        .map(|(path, r)| SetupErrorRow {
            scenario: r.scenario.clone(),
            mutant: r.mutant.clone(),
            record: path.display().to_string(),
            setup_errors: r.setup_errors.iter().map(|e| one_line(e)).collect(),
            violated_uncounted: r.violated().into_iter().map(str::to_string).collect(),
        })
        .collect()
}

/// One row per scenario (and mutant) that does not apply to the target.
pub fn not_applicable_rows(records: &[(&Path, &ScenarioRecord)]) -> Vec<NotApplicableRow> {
    let mut rows: Vec<NotApplicableRow> = Vec::new();
    for (_, record) in records {
        let Some(reason) = record.not_applicable.as_deref().filter(|_| record.setup_errors.is_empty()) else {
            continue;
        };
        match rows.iter_mut().find(|r| r.scenario == record.scenario && r.mutant == record.mutant) {
            Some(row) => row.runs += 1,
            None => rows.push(NotApplicableRow {
                scenario: record.scenario.clone(),
                mutant: record.mutant.clone(),
                runs: 1,
                reason: one_line(reason),
            }),
        }
    }
    rows.sort_by(|a, b| (&a.scenario, &a.mutant).cmp(&(&b.scenario, &b.mutant)));
    rows
}
