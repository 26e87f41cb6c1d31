//! Lock integrity when lock files are damaged (`stress_tests::scenarios::nightly::lock_integrity`). The
//! seeded bug each catches is `lock-not-revalidated` (a holder that keeps trusting a deleted lock file),
//! killed by the deleted-lock scenario in `tests/mutants_are_killed.rs`. The stale lock file of a dead
//! process applies to `lock-kind = "exists"` targets only (beaker's flock locks cannot go stale): it runs
//! on tiny-cache's pid lock, and catches `o-excl-lock`, in `tests/tiny_cache_faults.rs`.

use stress_tests::scenarios::nightly::lock_integrity::{DELETED, DIRECTORY, GARBAGE, STALE};
use stress_tests::scenarios::run_and_assert;

#[test]
fn lock_file_deleted_under_a_holder_never_gives_two_holders() {
    run_and_assert(DELETED);
}

#[test]
fn garbage_in_a_lock_file_changes_nothing() {
    run_and_assert(GARBAGE);
}

#[test]
fn lock_file_replaced_by_a_directory_fails_cleanly_then_recovers() {
    run_and_assert(DIRECTORY);
}

#[test]
fn stale_lock_file_of_a_dead_process_is_broken() {
    run_and_assert(STALE);
}
