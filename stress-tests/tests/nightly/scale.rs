//! Scale (`stress_tests::scenarios::nightly::scale`): processes started together and a sustained rolling
//! pool keep every invariant on the correct target, and both catch beaker's seeded `no-lock` (every
//! process that finds the cache cold downloads: `download_amplification_bounded`). Outside the nightly
//! tier they run small (16 processes; a pool of 4 for 5 s); no figure is asserted, only measured.

use stress_cache_metadata::{ScenarioRecord, Tier};
use stress_tests::scenarios::nightly::scale::{self, BURST, SUSTAINED, ScaleSize};
use stress_tests::scenarios::{ScenarioOptions, run_and_assert};

fn assert_caught(record: &ScenarioRecord, invariant: &str) {
    assert_eq!(record.mutant_active, Some(true), "the seeded bug never became active");
    assert!(record.setup_errors.is_empty(), "{:?}", record.setup_errors);
    assert!(record.violated().contains(&invariant), "{invariant} not violated: {:?}", record.violated());
}

#[test]
fn scale_processes_started_together_keep_every_invariant() {
    let record = run_and_assert(BURST);
    println!("{:?}", record.scale);
}

#[test]
fn scale_sustained_rolling_pool_keeps_every_invariant() {
    let record = run_and_assert(SUSTAINED);
    let figures = record.scale.expect("scale figures");
    println!("{}", serde_json::to_string_pretty(&figures).unwrap());
    assert!(figures.runs > figures.processes, "the pool rolled: {figures:?}");
    assert_eq!(figures.failures, 0);
}

#[test]
fn processes_started_together_without_a_lock_download_more_than_once() {
    let record = scale::burst(&ScenarioOptions::with_mutant("no-lock"), 16).unwrap();
    assert_caught(&record, "download_amplification_bounded");
}

#[test]
fn a_sustained_pool_without_a_lock_downloads_more_than_once() {
    let size = ScaleSize { pool: 4, ..ScaleSize::for_tier(Tier::Pr) };
    let record = scale::sustained(&ScenarioOptions::with_mutant("no-lock"), size).unwrap();
    assert_caught(&record, "download_amplification_bounded");
}
