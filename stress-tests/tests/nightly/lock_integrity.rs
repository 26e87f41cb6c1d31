//! Lock integrity when lock files are damaged (`stress_tests::scenarios::nightly::lock_integrity`). The
//! seeded bug each catches is `lock-not-revalidated` (a holder that keeps trusting a deleted lock file),
//! killed by the deleted-lock scenario in `tests/mutants_are_killed.rs`. The stale lock file of a dead
//! process applies to `lock-kind = "exists"` targets only (beaker's flock locks cannot go stale): it runs
//! on tiny-cache's pid lock, and catches `o-excl-lock`, in `tests/tiny_cache_faults.rs`.

use stress_tests::scenarios::nightly::lock_integrity::{DELETED, DIRECTORY, GARBAGE, STALE};
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

#[test]
fn a_stale_lock_file_of_a_dead_holder_is_broken_where_locks_are_files() {
    run_and_assert(STALE);
}
