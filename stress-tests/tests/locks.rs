//! Cross-process lock semantics: a live holder blocks, a killed holder's lock is released.

use stress_tests::scenarios::{ScenarioOptions, assert_held, locks};

#[test]
fn writer_paused_before_publish_keeps_others_waiting() {
    let record = locks::writer_paused_before_publish_keeps_others_waiting(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}

#[test]
fn live_lock_holder_blocks_others_and_a_killed_holder_releases() {
    let record =
        locks::live_lock_holder_blocks_others_and_a_killed_holder_releases(&ScenarioOptions::from_env())
            .expect("scenario setup");
    assert_held(&record);
}
