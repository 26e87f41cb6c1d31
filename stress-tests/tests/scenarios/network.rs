//! Network-fault scenarios (see `stress_tests::scenarios::network`) and corrupted state at rest
//! (`stress_tests::scenarios::at_rest`): each test runs one scenario with the options from the environment
//! (`STRESS_MUTANT`) and fails listing its setup errors or every violated invariant.

use stress_tests::scenarios::run_and_assert;

#[test]
fn recovers_from_refused() {
    run_and_assert("recovers_from_refused");
}

#[test]
fn recovers_from_accept_then_close() {
    run_and_assert("recovers_from_accept_then_close");
}

#[test]
fn recovers_from_headers_then_close() {
    run_and_assert("recovers_from_headers_then_close");
}

#[test]
fn recovers_from_close_after_n_bytes() {
    run_and_assert("recovers_from_close_after_n_bytes");
}

#[test]
fn recovers_from_reset() {
    run_and_assert("recovers_from_reset");
}

#[test]
fn recovers_from_stall() {
    run_and_assert("recovers_from_stall");
}

#[test]
fn network_failure_on_every_try_fails_cleanly() {
    run_and_assert("network_failure_on_every_try_fails_cleanly");
}

#[test]
fn corrupted_downloads_fail_some_processes_without_poisoning() {
    run_and_assert("corrupted_downloads_fail_some_processes_without_poisoning");
}

#[test]
fn network_failure_on_every_try_fails_cleanly_without_checksum() {
    run_and_assert("network_failure_on_every_try_fails_cleanly_without_checksum");
}

#[test]
fn http_error_storm_with_retry_after_recovers() {
    run_and_assert("http_error_storm_with_retry_after_recovers");
}

#[test]
fn corrupted_final_at_rest_is_refetched_once() {
    run_and_assert("corrupted_final_at_rest_is_refetched_once");
}

#[test]
fn corrupted_downloads_fail_some_processes_without_poisoning_without_checksum() {
    run_and_assert("corrupted_downloads_fail_some_processes_without_poisoning_without_checksum");
}

#[test]
fn non_retryable_statuses_fail_cleanly_then_recover() {
    run_and_assert("non_retryable_statuses_fail_cleanly_then_recover");
}

#[test]
fn error_page_served_with_200_is_never_cached() {
    run_and_assert("error_page_served_with_200_is_never_cached");
}

#[test]
fn error_page_served_with_200_is_never_cached_without_checksum() {
    run_and_assert("error_page_served_with_200_is_never_cached_without_checksum");
}

#[test]
fn corrupted_final_at_rest_is_refetched_once_without_checksum() {
    run_and_assert("corrupted_final_at_rest_is_refetched_once_without_checksum");
}

#[test]
fn truncated_final_at_rest_is_refetched_once() {
    run_and_assert("truncated_final_at_rest_is_refetched_once");
}

#[test]
fn truncated_final_at_rest_is_refetched_once_without_checksum() {
    run_and_assert("truncated_final_at_rest_is_refetched_once_without_checksum");
}

#[test]
fn emptied_final_at_rest_is_refetched_once() {
    run_and_assert("emptied_final_at_rest_is_refetched_once");
}

#[test]
fn emptied_final_at_rest_is_refetched_once_without_checksum() {
    run_and_assert("emptied_final_at_rest_is_refetched_once_without_checksum");
}

#[test]
fn recovers_from_close_after_n_bytes_without_checksum() {
    run_and_assert("recovers_from_close_after_n_bytes_without_checksum");
}
