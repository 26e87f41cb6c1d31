//! Lock integrity when lock files are damaged (`stress_tests::scenarios::nightly::lock_integrity`). The
//! seeded bug each catches is `lock-not-revalidated` (a holder that keeps trusting a deleted lock file),
//! killed by the deleted-lock scenario in `tests/mutants_are_killed.rs`.

use stress_tests::scenarios::nightly::lock_integrity::{DELETED, DIRECTORY, GARBAGE};
use stress_tests::scenarios::run_and_assert;

#[test]
fn a_holder_whose_lock_file_is_deleted_never_acts_next_to_the_new_holder() {
    run_and_assert(DELETED);
}

#[test]
fn garbage_in_a_lock_file_changes_nothing() {
    run_and_assert(GARBAGE);
}

#[test]
fn a_lock_file_replaced_by_a_directory_fails_every_process_cleanly_then_recovers() {
    run_and_assert(DIRECTORY);
}
