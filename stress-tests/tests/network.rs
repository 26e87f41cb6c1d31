//! Network-fault scenarios (see `stress_tests::scenarios::network`): each test runs one scenario with the
//! options from the environment (`STRESS_MUTANT`) and fails listing every violated invariant.

use stress_tests::scenarios::{ScenarioOptions, assert_held, network};

fn opts() -> ScenarioOptions {
    ScenarioOptions::from_env()
}

#[test]
fn recovers_from_refused() {
    assert_held(&network::recovers_from_refused(&opts()).expect("scenario setup"));
}

#[test]
fn recovers_from_accept_then_close() {
    assert_held(&network::recovers_from_accept_then_close(&opts()).expect("scenario setup"));
}

#[test]
fn recovers_from_headers_then_close() {
    assert_held(&network::recovers_from_headers_then_close(&opts()).expect("scenario setup"));
}

#[test]
fn recovers_from_close_after_n_bytes() {
    assert_held(&network::recovers_from_close_after_n_bytes(&opts()).expect("scenario setup"));
}

#[test]
fn recovers_from_reset() {
    assert_held(&network::recovers_from_reset(&opts()).expect("scenario setup"));
}

#[test]
fn recovers_from_stall() {
    assert_held(&network::recovers_from_stall(&opts()).expect("scenario setup"));
}

#[test]
fn network_failure_on_every_try_fails_cleanly() {
    assert_held(&network::network_failure_on_every_try_fails_cleanly(&opts()).expect("scenario setup"));
}

#[test]
fn corrupted_downloads_fail_some_processes_without_poisoning() {
    assert_held(
        &network::corrupted_downloads_fail_some_processes_without_poisoning(&opts()).expect("scenario setup"),
    );
}

#[test]
fn http_error_storm_with_retry_after_recovers() {
    assert_held(&network::http_error_storm_with_retry_after_recovers(&opts()).expect("scenario setup"));
}
