//! Resource exhaustion with real limits (`stress_tests::scenarios::nightly::exhaustion`): each passes on
//! the correct target, and the disk-full one catches beaker's seeded bug `leave-partial` (the partial that
//! filled the disk stays behind).

use stress_cache_metadata::Status;
use stress_tests::scenarios::nightly::exhaustion::{DISK_FULL, NOFILE, READ_ONLY, UNWRITABLE};
use stress_tests::scenarios::{self, ScenarioOptions, run_and_assert};

#[test]
fn sixteen_open_files_fail_cleanly_then_recover() {
    run_and_assert(NOFILE);
}

#[test]
fn disk_full_fails_cleanly_then_recovers_once_space_is_back() {
    run_and_assert(DISK_FULL);
}

#[test]
fn unwritable_cache_dir_fails_cleanly_then_recovers() {
    run_and_assert(UNWRITABLE);
}

#[test]
fn read_only_bind_mount_fails_cleanly_then_recovers() {
    run_and_assert(READ_ONLY);
}

#[test]
fn a_partial_left_on_a_full_disk_violates_no_temp_files_left() {
    let record = scenarios::run(DISK_FULL, &ScenarioOptions::with_mutant("leave-partial"));
    assert!(record.setup_errors.is_empty(), "setup errors: {:?}", record.setup_errors);
    assert_eq!(record.mutant_active, Some(true), "the seeded bug never became active");
    let status = record.invariants.iter().find(|i| i.name == "no_temp_files_left").map(|i| i.status);
    assert_eq!(status, Some(Status::Violated), "{:#?}", record.invariants);
}
