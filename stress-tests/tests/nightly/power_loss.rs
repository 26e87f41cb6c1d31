//! Power loss, not just SIGKILL (`stress_tests::scenarios::nightly::power_loss`): the crash states of a
//! clean cold run pass on the correct target, and a target that renames without fsyncing is flagged —
//! beaker's seeded bug `no-fsync`. (The same on tiny-cache, a target without failpoints, is in
//! `tests/tiny_cache_faults.rs`: its bug switch is not a declared mutant, so its red records stay out of
//! the tiers.)

use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};
use stress_tests::scenarios::nightly::power_loss::{NAME, POWER_LOSS_STATES_RECOVER};
use stress_tests::scenarios::{self, ScenarioOptions, run_and_assert};

fn status(record: &ScenarioRecord, invariant: &str) -> Status {
    record
        .invariants
        .iter()
        .find(|r| r.name == invariant)
        .map(|r| r.status)
        .unwrap_or_else(|| panic!("{invariant} not reported: {:#?}", record.invariants))
}

fn evidence<'r>(record: &'r ScenarioRecord, invariant: &str) -> &'r [String] {
    record.invariants.iter().find(|r| r.name == invariant).map_or(&[], |r| r.evidence.as_slice())
}

/// A flagged run: no setup error, the named invariants violated in a power-loss state (not by another
/// check of the run), and the broken states counted.
fn assert_flagged(record: &ScenarioRecord, invariant: &str) {
    assert!(record.setup_errors.is_empty(), "setup errors: {:?}", record.setup_errors);
    assert_eq!(status(record, invariant), Status::Violated, "{:#?}", record.invariants);
    assert!(
        evidence(record, invariant).iter().any(|e| e.starts_with("[power loss state ")),
        "{invariant} must be violated in a power-loss state: {:#?}",
        evidence(record, invariant)
    );
    assert_eq!(status(record, POWER_LOSS_STATES_RECOVER), Status::Violated);
    let counts = record.crash_states.expect("crash-state counts in the record");
    assert!(counts.broken > 0 && counts.broken <= counts.explored, "{counts:?}");
    println!("{}: {counts:?}", record.scenario);
    for line in evidence(record, POWER_LOSS_STATES_RECOVER) {
        println!("  {line}");
    }
}

fn assert_explored_all(record: &ScenarioRecord) {
    let counts = record.crash_states.expect("crash-state counts in the record");
    println!("{}: {counts:?}", record.scenario);
    assert!(counts.explored > 0, "{counts:?}");
    assert_eq!(counts.over_bound, 0, "every distinct state within the bound: {counts:?}");
    assert_eq!(counts.broken, 0, "{counts:?}");
}

#[test]
fn power_loss_at_any_point_of_a_cold_run_leaves_a_recoverable_cache() {
    let record = run_and_assert(NAME);
    if record.outcome() == ScenarioOutcome::Passed {
        assert_explored_all(&record);
    }
}

#[test]
fn a_rename_without_fsync_leaves_a_broken_final_after_power_loss() {
    let record = scenarios::run(NAME, &ScenarioOptions::with_mutant("no-fsync"));
    assert_eq!(record.mutant_active, Some(true), "the seeded bug never became active");
    assert_flagged(&record, "final_artifacts_match_checksum");
}
