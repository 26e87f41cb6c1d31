//! The compiled-model cache under contention (see `stress_tests::scenarios::compiled`).

use stress_tests::scenarios::run_and_assert;

#[test]
fn compiled_cache_concurrency_builds_each_entry_once() {
    run_and_assert("compiled_cache_concurrency_builds_each_entry_once");
}
