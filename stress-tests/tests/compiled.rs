//! The compiled-model cache under contention.

use stress_tests::scenarios::{ScenarioOptions, assert_held, compiled};

#[test]
fn compiled_cache_concurrency_builds_each_entry_once() {
    let record = compiled::compiled_cache_concurrency_builds_each_entry_once(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}
