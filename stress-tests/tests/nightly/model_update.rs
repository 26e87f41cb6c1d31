//! A model updated while readers run (`stress_tests::scenarios::nightly::model_update`): every process
//! loads one whole version and the cache ends clean, with and without the target's checksum; and a cache
//! keyed without the version (beaker's seeded bug `name-without-hash`) hands the old model to processes
//! that asked for the new one. (tiny-cache, without checksum or failpoints, and its version-mixing
//! `resume-append`: `tests/tiny_cache_faults.rs`.)

use stress_cache_metadata::Status;
use stress_tests::scenarios::nightly::model_update::{NAME, NAME_AFTER_KILL, ONE_WHOLE_VERSION};
use stress_tests::scenarios::{self, ScenarioOptions, WITHOUT_CHECKSUM, run_and_assert};

#[test]
fn model_updated_while_readers_run_loads_one_whole_version() {
    run_and_assert(NAME);
}

#[test]
fn model_updated_while_readers_run_without_checksum_loads_one_whole_version() {
    run_and_assert(&format!("{NAME}{WITHOUT_CHECKSUM}"));
}

#[test]
fn model_updated_after_a_reader_died_mid_download_never_mixes_versions() {
    run_and_assert(NAME_AFTER_KILL);
    run_and_assert(&format!("{NAME_AFTER_KILL}{WITHOUT_CHECKSUM}"));
}

#[test]
fn a_cache_keyed_without_the_version_serves_the_old_model_to_new_readers() {
    let record = scenarios::run(NAME, &ScenarioOptions::with_mutant("name-without-hash"));
    assert!(record.setup_errors.is_empty(), "setup errors: {:?}", record.setup_errors);
    assert_eq!(record.mutant_active, Some(true), "the seeded bug never became active");
    let verdict = record.invariants.iter().find(|r| r.name == ONE_WHOLE_VERSION).expect("version verdict");
    assert_eq!(verdict.status, Status::Violated, "{:#?}", record.invariants);
    println!("{ONE_WHOLE_VERSION}: {:#?}", verdict.evidence);
}
