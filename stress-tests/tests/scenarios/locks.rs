//! Cross-process lock semantics (see `stress_tests::scenarios::locks`).

use stress_tests::scenarios::run_and_assert;

#[test]
fn writer_paused_before_publish_keeps_others_waiting() {
    run_and_assert("writer_paused_before_publish_keeps_others_waiting");
}

#[test]
fn live_lock_holder_blocks_others_and_a_killed_holder_releases() {
    run_and_assert("live_lock_holder_blocks_others_and_a_killed_holder_releases");
}
