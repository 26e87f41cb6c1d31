//! gc racing with readers (see `stress_tests::scenarios::gc`).

use stress_tests::scenarios::run_and_assert;

#[test]
fn gc_racing_with_readers_never_breaks_a_reader() {
    run_and_assert("gc_racing_with_readers_never_breaks_a_reader");
}

#[test]
fn gc_and_readers_released_together_never_break_a_reader() {
    run_and_assert("gc_and_readers_released_together_never_break_a_reader");
}
