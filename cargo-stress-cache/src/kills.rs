//! Which seeded bug was killed where, from the records alone.
//!
//! A violation in a mutant run is a kill of that mutant in scenario S only when it is evidence against
//! the mutant and nothing else:
//! - the mutant was confirmed active in S: some record of S in the mutant run says `mutant_active`
//!   (the target printed its declared marker) — a build without the mutants feature, or a name the
//!   target ignores, proves nothing;
//! - the violated invariant was `held` in the clean run's record of S — not violated there (the
//!   scenario fails anyway), not skipped (nothing was observed);
//! - the record's outcome is not `error`: a scenario that could not set up its situation judged
//!   nothing.
//!
//! With nextest's retry a failed scenario runs again, so S may have several records (attempts) in one
//! run: a kill reproduced in every attempt counts, a kill in some attempts only is a flaky kill.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};

/// What one mutant run proved about the mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MutantClass {
    /// An attributed kill in one of the scenarios declared to kill it (`killed-by`).
    KilledWhereExpected,
    /// Attributed kills, but none where expected.
    KilledElsewhereOnly,
    /// Kills that did not reproduce in every attempt, and no reproducible one.
    FlakyKill,
    /// Active, and no invariant caught it.
    Survived,
    /// No record confirmed the mutant active: it may never have run.
    NotRun,
}

impl MutantClass {
    /// As shown in the matrix.
    pub fn as_str(self) -> &'static str {
        match self {
            MutantClass::KilledWhereExpected => "killed where expected",
            MutantClass::KilledElsewhereOnly => "killed elsewhere only",
            MutantClass::FlakyKill => "flaky-kill",
            MutantClass::Survived => "survived",
            MutantClass::NotRun => "not run",
        }
    }
}

/// What one scenario did to one mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellStatus {
    /// Every attempt killed it.
    Killed,
    /// Some attempts killed it, some did not.
    FlakyKill,
    /// Active, nothing attributable.
    Survived,
    /// No record of the scenario confirmed the mutant active (its violations, if any, count for nothing).
    NotActive,
    /// Every attempt was a setup error (or not applicable).
    Error,
}

/// One mutant × scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// What happened.
    pub status: CellStatus,
    /// The invariants whose violations were kills (over all attempts).
    pub invariants: Vec<String>,
    /// Records of the scenario in the mutant run (1 + nextest retries).
    pub attempts: usize,
    /// Attempts that killed the mutant.
    pub killing_attempts: usize,
    /// Whether the scenario is one of the mutant's declared killers.
    pub expected: bool,
}

/// One mutant's row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutantRow {
    /// Mutant name.
    pub mutant: String,
    /// What its run proved.
    pub class: MutantClass,
    /// The scenarios declared to kill it.
    pub expected: Vec<String>,
    /// Every scenario that has records in its run.
    pub cells: BTreeMap<String, Cell>,
}

impl MutantRow {
    /// The scenarios where it was killed (every attempt), with their invariants.
    pub fn kills(&self) -> Vec<(&str, &[String])> {
        self.cells
            .iter()
            .filter(|(_, c)| c.status == CellStatus::Killed)
            .map(|(s, c)| (s.as_str(), c.invariants.as_slice()))
            .collect()
    }
}

/// Invariants held in every clean record of each scenario that judged anything (passed or failed).
pub fn clean_held(clean: &[&ScenarioRecord]) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_scenario: BTreeMap<String, Vec<&ScenarioRecord>> = BTreeMap::new();
    for record in clean.iter().filter(|r| judged(r)) {
        by_scenario.entry(record.scenario.clone()).or_default().push(record);
    }
    by_scenario
        .into_iter()
        .map(|(scenario, records)| {
            let mut held: BTreeSet<String> = records[0].held().into_iter().map(str::to_string).collect();
            for record in &records[1..] {
                let here: BTreeSet<&str> = record.held().into_iter().collect();
                held.retain(|inv| here.contains(inv.as_str()));
            }
            (scenario, held)
        })
        .collect()
}

fn judged(record: &ScenarioRecord) -> bool {
    matches!(record.outcome(), ScenarioOutcome::Passed | ScenarioOutcome::Failed)
}

/// Classifies `mutant` from its run's records (`runs`), the clean run's held invariants per scenario
/// and the scenarios declared to kill it.
pub fn classify(
    mutant: &str,
    expected: &[String],
    clean_held: &BTreeMap<String, BTreeSet<String>>,
    runs: &[&ScenarioRecord],
) -> MutantRow {
    let mut attempts: BTreeMap<&str, Vec<&ScenarioRecord>> = BTreeMap::new();
    for record in runs.iter().filter(|r| r.mutant.as_deref() == Some(mutant)) {
        attempts.entry(record.scenario.as_str()).or_default().push(record);
    }
    let none = BTreeSet::new();
    let mut cells = BTreeMap::new();
    for (scenario, records) in attempts {
        let held = clean_held.get(scenario).unwrap_or(&none);
        let active = records.iter().any(|r| r.mutant_active == Some(true));
        let kills: Vec<BTreeSet<&str>> = records
            .iter()
            .map(|r| {
                if !judged(r) {
                    return BTreeSet::new();
                }
                r.invariants
                    .iter()
                    .filter(|i| i.status == Status::Violated && held.contains(i.name.as_str()))
                    .map(|i| i.name.as_str())
                    .collect()
            })
            .collect();
        let killing_attempts = kills.iter().filter(|k| !k.is_empty()).count();
        let status = if !active {
            CellStatus::NotActive
        } else if killing_attempts == records.len() {
            CellStatus::Killed
        } else if killing_attempts > 0 {
            CellStatus::FlakyKill
        } else if records.iter().all(|r| !judged(r)) {
            CellStatus::Error
        } else {
            CellStatus::Survived
        };
        let invariants: BTreeSet<&str> =
            if active { kills.iter().flatten().copied().collect() } else { BTreeSet::new() };
        cells.insert(
            scenario.to_string(),
            Cell {
                status,
                invariants: invariants.into_iter().map(str::to_string).collect(),
                attempts: records.len(),
                killing_attempts: if active { killing_attempts } else { 0 },
                expected: expected.iter().any(|e| e == scenario),
            },
        );
    }
    let has = |status: CellStatus, expected: Option<bool>| {
        cells.values().any(|c: &Cell| c.status == status && expected.is_none_or(|e| c.expected == e))
    };
    let class = if cells.values().all(|c| c.status == CellStatus::NotActive) {
        MutantClass::NotRun
    } else if has(CellStatus::Killed, Some(true)) {
        MutantClass::KilledWhereExpected
    } else if has(CellStatus::Killed, None) {
        MutantClass::KilledElsewhereOnly
    } else if has(CellStatus::FlakyKill, None) {
        MutantClass::FlakyKill
    } else {
        MutantClass::Survived
    };
    MutantRow { mutant: mutant.to_string(), class, expected: expected.to_vec(), cells }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use stress_cache_metadata::InvariantResult;

    use super::*;

    const INVARIANTS: [&str; 3] = ["single_download", "no_partial_content", "all_processes_ok"];

    /// A record of `scenario`: `violated` invariants violated, the others held; `skipped` skipped.
    fn record(scenario: &str, mutant: Option<&str>, violated: &[&str], skipped: &[&str]) -> ScenarioRecord {
        let invariants = INVARIANTS
            .iter()
            .map(|name| {
                if skipped.contains(name) {
                    InvariantResult::skipped(name, "not observable")
                } else {
                    let evidence =
                        if violated.contains(name) { vec![format!("{name} broke")] } else { vec![] };
                    InvariantResult::checked(name, evidence)
                }
            })
            .collect();
        ScenarioRecord {
            scenario: scenario.to_string(),
            tier: "pr".into(),
            seed: 1,
            mutant: mutant.map(str::to_string),
            target: "beaker".into(),
            processes: 16,
            outcomes: BTreeMap::from([("ok".to_string(), 16)]),
            invariants,
            mutant_active: mutant.map(|_| true),
            ..Default::default()
        }
    }

    fn held_in_clean(scenarios: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        let clean: Vec<ScenarioRecord> = scenarios.iter().map(|s| record(s, None, &[], &[])).collect();
        clean_held(&clean.iter().collect::<Vec<_>>())
    }

    fn classify_runs(
        expected: &[&str],
        clean: &BTreeMap<String, BTreeSet<String>>,
        runs: &[ScenarioRecord],
    ) -> MutantRow {
        let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        classify("no-lock", &expected, clean, &runs.iter().collect::<Vec<_>>())
    }

    #[test]
    fn a_kill_in_a_declared_scenario_is_killed_where_expected() {
        let clean = held_in_clean(&["same_model", "warm_hits"]);
        let runs = [
            record("same_model", Some("no-lock"), &["single_download"], &[]),
            record("warm_hits", Some("no-lock"), &[], &[]),
        ];
        let row = classify_runs(&["same_model"], &clean, &runs);
        assert_eq!(row.class, MutantClass::KilledWhereExpected);
        assert_eq!(row.kills(), vec![("same_model", ["single_download".to_string()].as_slice())]);
        assert_eq!(row.cells["warm_hits"].status, CellStatus::Survived);
    }

    #[test]
    fn a_kill_only_in_undeclared_scenarios_is_killed_elsewhere_only() {
        let clean = held_in_clean(&["same_model", "warm_hits"]);
        let runs = [
            record("same_model", Some("no-lock"), &[], &[]),
            record("warm_hits", Some("no-lock"), &["no_partial_content"], &[]),
        ];
        let row = classify_runs(&["same_model"], &clean, &runs);
        assert_eq!(row.class, MutantClass::KilledElsewhereOnly);
        assert_eq!(row.cells["same_model"].status, CellStatus::Survived);
        assert!(row.cells["same_model"].expected);
    }

    #[test]
    fn a_kill_in_every_attempt_counts_and_in_some_attempts_only_is_a_flaky_kill() {
        let clean = held_in_clean(&["same_model"]);
        let reproduced = [
            record("same_model", Some("no-lock"), &["single_download"], &[]),
            record("same_model", Some("no-lock"), &["single_download", "no_partial_content"], &[]),
        ];
        let row = classify_runs(&["same_model"], &clean, &reproduced);
        assert_eq!(row.class, MutantClass::KilledWhereExpected);
        assert_eq!(row.cells["same_model"].invariants, vec!["no_partial_content", "single_download"]);
        assert_eq!((row.cells["same_model"].attempts, row.cells["same_model"].killing_attempts), (2, 2));

        // Failed, then passed on nextest's retry.
        let once = [
            record("same_model", Some("no-lock"), &["single_download"], &[]),
            record("same_model", Some("no-lock"), &[], &[]),
        ];
        let row = classify_runs(&["same_model"], &clean, &once);
        assert_eq!(row.class, MutantClass::FlakyKill);
        assert_eq!(row.cells["same_model"].status, CellStatus::FlakyKill);
        assert_eq!(row.cells["same_model"].killing_attempts, 1);
    }

    #[test]
    fn a_violation_of_an_invariant_the_clean_run_did_not_hold_is_no_kill() {
        // Clean: single_download violated (the scenario is broken anyway), no_partial_content skipped.
        let clean_records = [record("same_model", None, &["single_download"], &["no_partial_content"])];
        let clean = clean_held(&clean_records.iter().collect::<Vec<_>>());
        let runs = [record("same_model", Some("no-lock"), &["single_download", "no_partial_content"], &[])];
        let row = classify_runs(&["same_model"], &clean, &runs);
        assert_eq!(row.class, MutantClass::Survived);
        assert!(row.cells["same_model"].invariants.is_empty());
        // No clean record of the scenario at all: nothing is attributable either.
        let row = classify_runs(&["same_model"], &BTreeMap::new(), &runs);
        assert_eq!(row.class, MutantClass::Survived);
    }

    #[test]
    fn a_mutant_the_binary_lacks_is_not_run_however_much_fails() {
        // Built without the mutants feature: every process exits with a usage error, the marker is
        // never printed, and invariants about the processes are violated.
        let clean = held_in_clean(&["same_model", "warm_hits"]);
        let runs: Vec<ScenarioRecord> = ["same_model", "warm_hits"]
            .into_iter()
            .map(|s| {
                let mut r = record(s, Some("no-lock"), &["all_processes_ok", "single_download"], &[]);
                r.outcomes = BTreeMap::from([("usage".to_string(), 16)]);
                r.mutant_active = Some(false);
                r
            })
            .collect();
        let row = classify_runs(&["same_model"], &clean, &runs);
        assert_eq!(row.class, MutantClass::NotRun);
        assert!(row.cells.values().all(|c| c.status == CellStatus::NotActive && c.invariants.is_empty()));
    }

    #[test]
    fn error_records_are_never_kills() {
        let clean = held_in_clean(&["same_model", "crash"]);
        let mut broken = record("same_model", Some("no-lock"), &["single_download"], &[]);
        broken.setup_errors = vec!["the overlap was never forced".into()];
        let survived = record("crash", Some("no-lock"), &[], &[]);
        let row = classify_runs(&["same_model"], &clean, &[broken.clone(), survived]);
        assert_eq!(row.class, MutantClass::Survived);
        assert_eq!(row.cells["same_model"].status, CellStatus::Error);
        assert!(row.cells["same_model"].invariants.is_empty());
        // An error attempt next to a killing one: the kill did not reproduce.
        let killing = record("same_model", Some("no-lock"), &["single_download"], &[]);
        let row = classify_runs(&["same_model"], &clean, &[killing, broken]);
        assert_eq!(row.class, MutantClass::FlakyKill);
    }

    #[test]
    fn not_applicable_records_are_never_kills() {
        let clean = held_in_clean(&["compiled"]);
        let mut na = record("compiled", Some("no-lock"), &["single_download"], &[]);
        na.not_applicable = Some("the target declares no compiled cache".into());
        let row = classify_runs(&["compiled"], &clean, &[na]);
        assert_eq!((row.class, row.cells["compiled"].status), (MutantClass::Survived, CellStatus::Error));
    }

    #[test]
    fn activity_is_per_scenario() {
        let clean = held_in_clean(&["same_model", "warm_hits"]);
        let mut inactive = record("same_model", Some("no-lock"), &["single_download"], &[]);
        inactive.mutant_active = Some(false);
        let runs = [inactive, record("warm_hits", Some("no-lock"), &[], &[])];
        let row = classify_runs(&["same_model"], &clean, &runs);
        assert_eq!(row.cells["same_model"].status, CellStatus::NotActive);
        assert_eq!(row.class, MutantClass::Survived, "active elsewhere, killed nowhere");
    }
}
