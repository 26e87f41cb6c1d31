//! Contention scenarios (see `stress_tests::scenarios::contention`): each test runs one scenario with the
//! options from the environment (`STRESS_MUTANT`) and fails listing every violated invariant.

use stress_tests::scenarios::{ScenarioOptions, assert_held, contention};

#[test]
fn same_model_from_n_processes_downloads_once() {
    let record = contention::same_model_from_n_processes_downloads_once(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}

#[test]
fn different_models_in_parallel_share_one_cache() {
    let record = contention::different_models_in_parallel_share_one_cache(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}

#[test]
fn same_file_name_with_different_bytes_stays_isolated() {
    let record = contention::same_file_name_with_different_bytes_stays_isolated(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}

#[test]
fn one_cache_per_process_downloads_once_per_cache() {
    let record = contention::one_cache_per_process_downloads_once_per_cache(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}

#[test]
fn cache_dir_created_emptied_and_made_unwritable_while_running() {
    let record =
        stress_tests::scenarios::cache_dir::cache_dir_created_emptied_and_made_unwritable_while_running(
            &ScenarioOptions::from_env(),
        )
        .expect("scenario setup (needs root with CAP_SYS_ADMIN to mount tmpfs)");
    assert_held(&record);
}
