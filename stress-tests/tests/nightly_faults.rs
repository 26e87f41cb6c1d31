//! Faults planted in the nightly parts to show each catches one (`stress_tests::scenarios::nightly`). Their
//! records are red without a seeded bug of the target, so this binary stays out of the stress tiers (as
//! `tiny_cache_faults` does); the workspace's tests (`ci`) run it. Small sizes: a couple of seconds.

use stress_cache_metadata::Status;
use stress_tests::scenarios::ScenarioOptions;
use stress_tests::scenarios::nightly::soak::{self, EVERY_RUN_SUCCEEDED, SoakSize};
use stress_tests::server::{Fault, FaultPlan};

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
