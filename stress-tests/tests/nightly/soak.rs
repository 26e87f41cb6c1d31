//! Soak (`stress_tests::scenarios::nightly::soak`): sequential warm runs never fail, with their
//! statistics per window. That a run failing mid-soak is caught is in `tests/nightly_faults.rs` (its red
//! record stays out of the tiers); the statistics are checked on known input in the library
//! (`nightly::stats`), the harness-growth verdict on a planted descriptor (`nightly::resources`). Nothing
//! here asserts on timing: only that figures were measured.

use stress_cache_metadata::{ScenarioOutcome, Status};
use stress_tests::scenarios::nightly::soak::{EVERY_RUN_SUCCEEDED, HARNESS_STABLE, NAME};
use stress_tests::scenarios::run_and_assert;

#[test]
fn soak_sequential_warm_runs_never_fail() {
    let record = run_and_assert(NAME);
    if record.outcome() != ScenarioOutcome::Passed {
        return;
    }
    let figures = record.soak.expect("soak figures in the record");
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
    assert_eq!(figures.failures, 0);
    assert_eq!(figures.windows.iter().map(|w| w.runs).sum::<usize>(), figures.runs);
    assert!(figures.windows.iter().all(|w| w.timed.n > 0 && w.timed.p50_ms > 0.0), "{figures:?}");
    assert_eq!(record.processes, figures.runs + 1, "every soak run and the traced run are counted");
    for name in [EVERY_RUN_SUCCEEDED, HARNESS_STABLE, "download_amplification_bounded"] {
        let status = record.invariants.iter().find(|i| i.name == name).map(|i| i.status);
        assert_eq!(status, Some(Status::Held), "{name}: {:#?}", record.invariants);
    }
}
