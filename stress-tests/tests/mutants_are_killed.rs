//! The proof that the suite catches bugs: every seeded bug the target declares is killed by the scenario
//! its declaration names (`[package.metadata.stress-cache.mutants.killed-by]`), violating the invariants
//! it declares (`mutants.trips`), and a kill counts only as evidence does: the seeded bug was confirmed
//! active in the processes (the target's active marker), the run was not a setup error, and each
//! invariant it violated held on a clean run of the same scenario. And every invariant that applies to
//! the target is tripped by some seeded bug — never only by a state the harness planted itself.
//!
//! A libtest-mimic harness: the target's declaration, not a list written here, decides the tests — one
//! `<mutant>_is_killed_by_<scenario>` per declared seeded bug, plus the checks below.
//!
//! The target is built with its failpoints and mutants features (see `stress_tests::target`).

use std::collections::{BTreeMap, BTreeSet};

mod support;

use libtest_mimic::Arguments;
use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status, TargetSpec};
use stress_tests::invariants::Invariant;
use stress_tests::scenarios::{self, ScenarioOptions};
use stress_tests::target::Target;
use support::trial;

fn main() {
    let args = Arguments::from_args();
    let spec = support::declared_spec();
    let mut trials = vec![
        trial("every_declared_mutant_has_a_killer_scenario_and_expected_trips", {
            let spec = spec.clone();
            move || every_declared_mutant_has_a_killer_scenario_and_expected_trips(&spec)
        }),
        trial("every_applicable_invariant_is_tripped_by_a_seeded_bug", {
            let spec = spec.clone();
            move || every_applicable_invariant_is_tripped_by_a_seeded_bug(&spec)
        }),
        trial(
            "an_inactive_mutant_is_recorded_as_inactive_and_its_usage_errors_as_setup_errors",
            an_inactive_mutant_is_recorded_as_inactive_and_its_usage_errors_as_setup_errors,
        ),
        trial("a_failpoint_never_reached_is_a_setup_error", a_failpoint_never_reached_is_a_setup_error),
    ];
    if let Some(mutants) = &spec.mutants {
        for mutant in &mutants.names {
            let killer = mutants.killed_by.get(mutant).and_then(|s| s.first()).cloned();
            let name = match &killer {
                Some(scenario) => {
                    format!("{}_is_killed_by_{}", mutant.replace('-', "_"), scenario.replace('.', "_"))
                }
                None => format!("{}_is_killed", mutant.replace('-', "_")),
            };
            let trips = mutants.trips.get(mutant).cloned().unwrap_or_default();
            let mutant = mutant.clone();
            trials.push(trial(&name, move || assert_killed(&mutant, killer.as_deref(), &trips)));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn target() -> &'static Target {
    Target::shared().expect("target")
}

fn status_in(record: &ScenarioRecord, invariant: &str) -> Option<Status> {
    record.invariants.iter().find(|r| r.name == invariant).map(|r| r.status)
}

/// Runs the mutant's first declared killer scenario with the mutant, and the same scenario clean;
/// asserts an attributed kill of every invariant it declares in `trips`.
fn assert_killed(mutant: &str, scenario: Option<&str>, trips: &[String]) {
    let scenario =
        scenario.unwrap_or_else(|| panic!("mutant {mutant} declares no killer scenario (mutants.killed-by)"));
    assert!(!trips.is_empty(), "mutant {mutant} declares no invariants it trips (mutants.trips)");
    let killed = scenarios::run(scenario, &ScenarioOptions::with_mutant(mutant));
    let clean = scenarios::run(scenario, &ScenarioOptions::default());
    println!("mutant {mutant} x {scenario}: violated {:?}", killed.violated());
    assert_eq!(killed.mutant.as_deref(), Some(mutant), "the record names the mutant");
    assert_eq!(killed.mutant_active, Some(true), "the seeded bug never became active: no kill can count");
    assert_ne!(
        killed.outcome(),
        ScenarioOutcome::Error,
        "a setup error is never a kill: {:?}",
        killed.setup_errors
    );
    assert_eq!(clean.outcome(), ScenarioOutcome::Passed, "the clean control must pass: {clean:#?}");
    for invariant in trips {
        assert_eq!(
            status_in(&killed, invariant),
            Some(Status::Violated),
            "mutant {mutant} survived {scenario}: {invariant} not violated; record invariants: {:#?}",
            killed.invariants
        );
        assert_eq!(
            status_in(&clean, invariant),
            Some(Status::Held),
            "{invariant} did not hold on the clean run of {scenario}, so its violation is no evidence"
        );
    }
}

/// Every declared mutant names a killer scenario the suite knows and the invariants it trips, and every
/// tripped name is an invariant of the suite.
fn every_declared_mutant_has_a_killer_scenario_and_expected_trips(spec: &TargetSpec) {
    let Some(mutants) = &spec.mutants else { return };
    let missing: Vec<&String> = mutants
        .names
        .iter()
        .filter(|m| {
            mutants.trips.get(m.as_str()).is_none_or(Vec::is_empty)
                || !mutants.killed_by.contains_key(m.as_str())
        })
        .collect();
    assert!(missing.is_empty(), "declared mutants without a killer scenario or expected trips: {missing:?}");
    for scenarios in mutants.killed_by.values() {
        for s in scenarios {
            assert!(
                {
                    let base = s.strip_suffix(scenarios::WITHOUT_CHECKSUM).unwrap_or(s);
                    scenarios::SCENARIOS
                        .iter()
                        .chain(scenarios::nightly::scenarios())
                        .any(|(n, _)| *n == base)
                        || base.starts_with("crash_at_")
                },
                "killed-by names an unknown scenario: {s}"
            );
        }
    }
    let unknown: Vec<&String> =
        mutants.trips.values().flatten().filter(|name| Invariant::from_name(name).is_none()).collect();
    assert!(unknown.is_empty(), "trips names no invariant of the suite: {unknown:?}");
}

/// No invariant is tripped only by states the harness plants itself: each one that applies to the target
/// is violated by a seeded bug of the target (a real code path), per the declared `mutants.trips`.
fn every_applicable_invariant_is_tripped_by_a_seeded_bug(spec: &TargetSpec) {
    let empty = BTreeMap::new();
    let trips = spec.mutants.as_ref().map(|m| &m.trips).unwrap_or(&empty);
    let tripped: BTreeSet<&str> = trips.values().flatten().map(String::as_str).collect();
    let untripped: Vec<&str> = Invariant::ALL
        .iter()
        .filter(|i| match i {
            // A flock lock cannot outlive its holder: the invariant applies to `exists` locks only.
            Invariant::NoLockHeld => spec.files.lock_kind == stress_cache_metadata::LockKind::Exists,
            Invariant::PublishedDurably => spec.features.durable,
            Invariant::PrintedPathIsACompleteFinal => spec.prints_path,
            _ => true,
        })
        .map(|i| i.name())
        .filter(|n| !tripped.contains(n))
        .collect();
    assert!(untripped.is_empty(), "invariants no seeded bug trips: {untripped:?}");
}

/// A mutant that never becomes active is never a kill: the record says so (`mutant_active = false`)
/// whatever was violated. A name the target does not know makes beaker refuse to run (usage error),
/// which is a setup error, not a violation.
fn an_inactive_mutant_is_recorded_as_inactive_and_its_usage_errors_as_setup_errors() {
    let record = scenarios::run("recovers_from_refused", &ScenarioOptions::with_mutant("no-such-seeded-bug"));
    assert_eq!(record.mutant_active, Some(false), "{record:#?}");
    assert_eq!(record.outcome(), ScenarioOutcome::Error, "{record:#?}");
    assert!(record.setup_errors.iter().any(|e| e.contains("usage")), "{:?}", record.setup_errors);
    assert!(record.violated().is_empty(), "a usage error is not a violation: {:?}", record.violated());
}

/// A crash scenario whose failpoint is never reached proves nothing: it is a setup error.
fn a_failpoint_never_reached_is_a_setup_error() {
    let record = scenarios::run("crash_at_no.such.failpoint_then_recovers", &ScenarioOptions::default());
    assert_eq!(record.outcome(), ScenarioOutcome::NotApplicable, "an undeclared failpoint does not apply");
    // A declared failpoint on a path the armed process never takes: the gc failpoint armed on a writer.
    let Some(fps) = target().spec.failpoints.clone() else { return };
    let Some(gc_fp) = fps.gc.clone() else { return };
    let record = stress_tests::scenarios::crash::crash_with_armed_writer(&ScenarioOptions::default(), &gc_fp)
        .expect("scenario");
    assert_eq!(record.outcome(), ScenarioOutcome::Error, "{record:#?}");
    assert!(record.setup_errors.iter().any(|e| e.contains("was not reached")), "{:?}", record.setup_errors);
    assert!(record.violated().is_empty(), "not a violation: {:?}", record.violated());
}
