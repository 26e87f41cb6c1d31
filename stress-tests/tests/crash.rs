//! Crash at every failpoint the target declares, then recovery; a corrupted body never reaches a final
//! name, even when the process dies right after the rename; kills seen from outside at each phase.
//!
//! A libtest-mimic harness: one `crash_at_<failpoint>_then_recovers` test per failpoint the target
//! declares (its declaration decides the list, not this file), plus the fixed scenarios below.

mod support;

use libtest_mimic::Arguments;
use stress_tests::scenarios::{crash, run_and_assert};

/// Scenarios that do not depend on the declared failpoints (each applies or says why not).
const FIXED: &[&str] = &[
    "crash_at_cache.mid_download_then_recovers_without_checksum",
    "corrupt_body_never_reaches_a_final_name_even_on_crash",
    "killed_once_the_lock_is_taken_then_recovers",
    "killed_once_a_temp_file_is_created_then_recovers",
    "killed_with_a_temp_file_half_written_then_recovers",
    "killed_with_a_temp_file_half_written_then_recovers_without_checksum",
    "resume_after_a_kill_gets_416_then_a_full_200",
    "killed_right_after_publishing_then_recovers",
];

fn main() {
    let args = Arguments::from_args();
    let spec = support::declared_spec();
    let mut scenarios: Vec<String> =
        spec.failpoint_names().iter().map(|failpoint| crash::scenario_name(failpoint)).collect();
    scenarios.extend(FIXED.iter().map(|s| s.to_string()));
    let trials = scenarios
        .into_iter()
        // Test names are scenario names with the failpoints' dots made identifier-like.
        .map(|scenario| {
            support::trial(&scenario.replace('.', "_"), move || {
                run_and_assert(&scenario);
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
