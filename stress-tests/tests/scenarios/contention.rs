//! Contention scenarios (see `stress_tests::scenarios::contention`): each test runs one scenario with the
//! options from the environment (`STRESS_MUTANT`) and fails listing its setup errors or every violated
//! invariant.

use stress_tests::scenarios::run_and_assert;

#[test]
fn same_model_from_n_processes_downloads_once() {
    run_and_assert("same_model_from_n_processes_downloads_once");
}

#[test]
fn different_models_in_parallel_share_one_cache() {
    run_and_assert("different_models_in_parallel_share_one_cache");
}

#[test]
fn same_file_name_with_different_bytes_stays_isolated() {
    run_and_assert("same_file_name_with_different_bytes_stays_isolated");
}

/// The same, with beaker's other configuration: no checksum given (URL-keyed names, validation by
/// loading).
#[test]
fn same_file_name_with_different_bytes_stays_isolated_without_checksum() {
    run_and_assert("same_file_name_with_different_bytes_stays_isolated_without_checksum");
}

#[test]
fn one_cache_per_process_downloads_once_per_cache() {
    run_and_assert("one_cache_per_process_downloads_once_per_cache");
}

#[test]
fn cache_dir_created_emptied_and_made_unwritable_while_running() {
    run_and_assert("cache_dir_created_emptied_and_made_unwritable_while_running");
}

#[test]
fn late_joiners_while_a_download_is_in_flight() {
    run_and_assert("late_joiners_while_a_download_is_in_flight");
}
