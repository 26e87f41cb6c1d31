//! Scenario runs that gave no verdict about the target: those whose setup failed (outcome `error`:
//! the scenario could not produce the situation it checks) and those that do not apply to it. Both are
//! listed with their reasons instead of being counted in the invariants table.

use std::path::Path;

use serde::{Deserialize, Serialize};
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord};

use crate::errors::one_line;

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
