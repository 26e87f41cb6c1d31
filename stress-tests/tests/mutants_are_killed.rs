//! The proof that the suite catches bugs: every seeded bug the target declares is killed by the scenario
//! its declaration names (`[package.metadata.stress-cache.mutants.killed-by]`), and a kill counts only as
//! evidence does: the seeded bug was confirmed active in the processes (the target's active marker), the
//! run was not a setup error, and each invariant it violated held on a clean run of the same scenario.
//! And every invariant that applies to the target is tripped by some seeded bug — never only by a state
//! the harness planted itself.
//!
//! The target is built with its failpoints and mutants features (see `stress_tests::target`).

use std::collections::BTreeSet;

use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};
use stress_tests::invariants::Invariant;
use stress_tests::scenarios::{self, ScenarioOptions};
use stress_tests::target::Target;

/// The invariants each seeded bug must violate in its first declared killer scenario. Kept next to the
/// bugs' descriptions in `beaker/src/mutants.rs`; the coverage test below reads it.
const TRIPS: &[(&str, &[&str])] = &[
    ("no-lock", &["download_amplification_bounded", "writer_holds_exclusive_lock"]),
    ("shared-tmp-name", &["download_amplification_bounded", "writer_holds_exclusive_lock"]),
    ("direct-write", &["final_published_atomically", "readers_saw_only_complete_content"]),
    ("skip-verify", &["failures_have_expected_class"]),
    ("verify-after-rename", &["failures_have_expected_class"]),
    ("leave-partial", &["no_temp_files_left", "no_partial_content"]),
    ("unlock-before-rename", &["writer_holds_exclusive_lock"]),
    ("no-timeout", &["finished_before_watchdog"]),
    ("compiled-direct-dir", &["compiled_entries_complete_or_absent"]),
    ("gc-ignores-readers", &["writer_holds_exclusive_lock"]),
    ("name-without-hash", &["one_final_artifact_per_model", "successes_loaded_expected_model"]),
    ("no-fsync", &["published_durably"]),
    ("unlink-lock-on-release", &["lock_files_stable"]),
    ("clean-partials-unlocked", &["live_temp_files_left_alone"]),
    ("copy-into-final", &["final_published_atomically"]),
    ("unwrap-read-error", &["no_panic_or_unexpected_signal"]),
    ("quarantine-noop", &["no_poisoning", "final_artifacts_match_checksum"]),
    ("skip-unverified-validation", &["final_artifacts_match_checksum"]),
];

fn target() -> &'static Target {
    Target::shared().expect("target")
}

fn trips(mutant: &str) -> &'static [&'static str] {
    TRIPS.iter().find(|(m, _)| *m == mutant).map(|(_, t)| *t).unwrap_or(&[])
}

fn status_in(record: &ScenarioRecord, invariant: &str) -> Option<Status> {
    record.invariants.iter().find(|r| r.name == invariant).map(|r| r.status)
}

/// Runs the mutant's first declared killer scenario with the mutant, and the same scenario clean; asserts
/// an attributed kill of every invariant in [`TRIPS`].
fn assert_killed(mutant: &str) {
    let spec = &target().spec;
    let Some(mutants) = &spec.mutants else {
        println!("the target declares no mutants: nothing to kill");
        return;
    };
    if !mutants.names.iter().any(|m| m == mutant) {
        println!("the target does not declare mutant {mutant}: nothing to kill");
        return;
    }
    let scenario = mutants
        .killed_by
        .get(mutant)
        .and_then(|s| s.first())
        .unwrap_or_else(|| panic!("mutant {mutant} declares no killer scenario (mutants.killed-by)"));
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
    for invariant in trips(mutant) {
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

macro_rules! mutant_is_killed {
    ($($test:ident => $mutant:literal),* $(,)?) => {
        /// Mutants with a test of their own.
        const TESTED: &[&str] = &[$($mutant),*];
        $(
            #[test]
            fn $test() {
                assert_killed($mutant);
            }
        )*
    };
}

mutant_is_killed! {
    no_lock_is_killed_by_contention => "no-lock",
    shared_tmp_name_is_killed_by_contention => "shared-tmp-name",
    direct_write_is_killed_by_the_trace_and_a_parked_scan => "direct-write",
    skip_verify_is_killed_by_a_corrupted_body_reaching_publish => "skip-verify",
    verify_after_rename_is_killed_by_a_corrupted_body_reaching_publish => "verify-after-rename",
    leave_partial_is_killed_by_a_network_failing_every_try => "leave-partial",
    unlock_before_rename_is_killed_by_a_paused_publisher => "unlock-before-rename",
    no_timeout_is_killed_by_a_stall => "no-timeout",
    compiled_direct_dir_is_killed_by_a_crash_before_the_compiled_rename => "compiled-direct-dir",
    gc_ignores_readers_is_killed_by_gc_under_paused_readers => "gc-ignores-readers",
    name_without_hash_is_killed_by_same_file_name_models => "name-without-hash",
    no_fsync_is_killed_by_the_durability_trace => "no-fsync",
    unlink_lock_on_release_is_killed_by_the_lock_trace => "unlink-lock-on-release",
    clean_partials_unlocked_is_killed_by_late_joiners => "clean-partials-unlocked",
    copy_into_final_is_killed_by_the_publish_trace => "copy-into-final",
    unwrap_read_error_is_killed_by_a_body_closed_midway => "unwrap-read-error",
    quarantine_noop_is_killed_by_a_final_corrupted_at_rest => "quarantine-noop",
    skip_unverified_validation_is_killed_by_an_error_page_served_with_200 => "skip-unverified-validation",
}

#[test]
fn every_declared_mutant_has_a_killer_scenario_expected_trips_and_a_test() {
    let Some(mutants) = &target().spec.mutants else { return };
    let missing: Vec<&String> = mutants
        .names
        .iter()
        .filter(|m| {
            !TESTED.contains(&m.as_str())
                || trips(m).is_empty()
                || !mutants.killed_by.contains_key(m.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "declared mutants without a killer scenario, expected trips or a test: {missing:?}"
    );
    for scenarios in mutants.killed_by.values() {
        for s in scenarios {
            assert!(
                {
                    let base = s.strip_suffix(scenarios::WITHOUT_CHECKSUM).unwrap_or(s);
                    scenarios::SCENARIOS.iter().any(|(n, _)| *n == base) || base.starts_with("crash_at_")
                },
                "killed-by names an unknown scenario: {s}"
            );
        }
    }
}

/// No invariant is tripped only by states the harness plants itself: each one that applies to the target
/// is violated by a seeded bug of the target (a real code path), per [`TRIPS`].
#[test]
fn every_applicable_invariant_is_tripped_by_a_seeded_bug() {
    let spec = &target().spec;
    let tripped: BTreeSet<&str> = TRIPS.iter().flat_map(|(_, t)| t.iter().copied()).collect();
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
#[test]
fn an_inactive_mutant_is_recorded_as_inactive_and_its_usage_errors_as_setup_errors() {
    let record = scenarios::run("recovers_from_refused", &ScenarioOptions::with_mutant("no-such-seeded-bug"));
    assert_eq!(record.mutant_active, Some(false), "{record:#?}");
    assert_eq!(record.outcome(), ScenarioOutcome::Error, "{record:#?}");
    assert!(record.setup_errors.iter().any(|e| e.contains("usage")), "{:?}", record.setup_errors);
    assert!(record.violated().is_empty(), "a usage error is not a violation: {:?}", record.violated());
}

/// A crash scenario whose failpoint is never reached proves nothing: it is a setup error.
#[test]
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
