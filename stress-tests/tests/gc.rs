//! gc racing with readers.

use stress_tests::scenarios::{ScenarioOptions, assert_held, gc};

#[test]
fn gc_racing_with_readers_never_breaks_a_reader() {
    let record = gc::gc_racing_with_readers_never_breaks_a_reader(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}

#[test]
fn gc_and_readers_released_together_never_break_a_reader() {
    let record = gc::gc_and_readers_released_together_never_break_a_reader(&ScenarioOptions::from_env())
        .expect("scenario setup");
    assert_held(&record);
}
