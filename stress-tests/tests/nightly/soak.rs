//! Soak (`stress_tests::scenarios::nightly::soak`): sequential warm runs never fail, with their
//! statistics per window; a run that fails mid-soak is caught. The statistics themselves are checked on
//! known input in the library (`nightly::stats`), the harness-growth verdict on a planted descriptor
//! (`nightly::resources`). Nothing here asserts on timing: only that figures were measured.

use stress_cache_metadata::{ScenarioOutcome, Status};
use stress_tests::scenarios::nightly::soak::{self, EVERY_RUN_SUCCEEDED, HARNESS_STABLE, NAME, SoakSize};
use stress_tests::scenarios::{ScenarioOptions, run_and_assert};
use stress_tests::server::{Fault, FaultPlan};

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

/// The second window's cold download is answered 404: that run fails (and the next one, finding the
/// cache empty, downloads again), and the soak says so with the run's number and window.
#[test]
fn a_run_that_fails_mid_soak_is_a_violation() {
    let size = SoakSize { runs: 12, window: 6, warmups: 1 };
    let not_found = Fault::Status { code: 404, retry_after: None };
    let record =
        soak::soak(&ScenarioOptions::default(), size, FaultPlan::new([Fault::Ok, not_found])).unwrap();
    assert!(record.setup_errors.is_empty(), "{:?}", record.setup_errors);
    let verdict = record.invariants.iter().find(|i| i.name == EVERY_RUN_SUCCEEDED).expect("reported");
    assert_eq!(verdict.status, Status::Violated, "{verdict:?}");
    assert!(verdict.evidence[0].starts_with("run 6 (window 1, #0)"), "{:?}", verdict.evidence);
    let figures = record.soak.expect("soak figures");
    assert_eq!((figures.windows[0].failures, figures.windows[1].failures > 0), (0, true), "{figures:?}");
    assert_eq!(figures.failures, verdict.evidence.len());
}
