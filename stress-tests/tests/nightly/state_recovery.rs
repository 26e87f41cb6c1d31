//! Recovery from corrupted state at rest (`stress_tests::scenarios::nightly::state_recovery`). The seeded
//! bugs it catches, killed in `tests/mutants_are_killed.rs`: `final-kind-unchecked` (a directory under the
//! final name taken for the model, and skipped by `cache verify`) and `compiled-files-unchecked` (a
//! compiled entry's files not checked against its manifest: a corrupted weight file is run).

use stress_cache_metadata::Status;
use stress_tests::scenarios::nightly::state_recovery::{
    CACHE_CHECK_REPORTS_DAMAGE, COMPILED_CORRUPTED, COMPILED_METADATA_TRUNCATED, COMPILED_MISSING,
    DIRECTORY_FINAL,
};
use stress_tests::scenarios::run_and_assert;

#[test]
fn final_replaced_by_a_directory_is_moved_aside_and_refetched() {
    let record = run_and_assert(DIRECTORY_FINAL);
    if record.setup_errors.is_empty() {
        let check = record.invariants.iter().find(|i| i.name == CACHE_CHECK_REPORTS_DAMAGE);
        assert_eq!(check.map(|c| c.status), Some(Status::Held), "beaker declares verify-args: {check:?}");
    }
}

#[test]
fn compiled_entry_missing_a_file_is_rebuilt() {
    run_and_assert(COMPILED_MISSING);
}

#[test]
fn compiled_entry_with_a_corrupted_file_is_rebuilt() {
    run_and_assert(COMPILED_CORRUPTED);
}

#[test]
fn compiled_entry_metadata_truncated_is_rebuilt() {
    run_and_assert(COMPILED_METADATA_TRUNCATED);
}
