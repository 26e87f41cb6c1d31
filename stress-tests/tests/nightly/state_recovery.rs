//! Recovery from corrupted state at rest (`stress_tests::scenarios::nightly::state_recovery`). The seeded
//! bug it catches is `final-kind-unchecked` (a directory under the final name taken for the model, and
//! skipped by `cache verify`), killed in `tests/mutants_are_killed.rs`.

use stress_cache_metadata::Status;
use stress_tests::scenarios::nightly::state_recovery::{CACHE_CHECK_REPORTS_DAMAGE, DIRECTORY_FINAL};
use stress_tests::scenarios::run_and_assert;

#[test]
fn a_final_replaced_by_a_directory_is_reported_by_verify_then_moved_aside_and_refetched() {
    let record = run_and_assert(DIRECTORY_FINAL);
    if record.setup_errors.is_empty() {
        let check = record.invariants.iter().find(|i| i.name == CACHE_CHECK_REPORTS_DAMAGE);
        assert_eq!(check.map(|c| c.status), Some(Status::Held), "beaker declares verify-args: {check:?}");
    }
}
