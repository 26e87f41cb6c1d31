//! A model updated while readers run (`stress_tests::scenarios::nightly::model_update`): every process
//! loads one whole version and the cache ends clean, with and without the target's checksum. The seeded
//! bug these scenarios catch is tiny-cache's `resume-append` (a dead download's prefix resumed against the
//! new version: a mix), in `tests/tiny_cache_faults.rs` with tiny-cache's clean runs: its bug switch is not
//! a declared mutant, so its red records stay out of the tiers. None of beaker's seeded bugs mixes
//! versions: beaker re-verifies the checksum of what it loads, so even `name-without-hash` only evicts the
//! old version (quarantine) and refetches, which the property allows.

use stress_tests::scenarios::nightly::model_update::{NAME, NAME_AFTER_KILL};
use stress_tests::scenarios::{WITHOUT_CHECKSUM, run_and_assert};

#[test]
fn model_updated_while_readers_run_loads_one_whole_version() {
    run_and_assert(NAME);
}

#[test]
fn model_updated_while_readers_run_loads_one_whole_version_without_checksum() {
    run_and_assert(&format!("{NAME}{WITHOUT_CHECKSUM}"));
}

#[test]
fn model_updated_after_a_reader_died_mid_download_never_mixes_versions() {
    run_and_assert(NAME_AFTER_KILL);
}

#[test]
fn model_updated_after_a_reader_died_mid_download_never_mixes_versions_without_checksum() {
    run_and_assert(&format!("{NAME_AFTER_KILL}{WITHOUT_CHECKSUM}"));
}
