//! Crash at every failpoint the target declares, then recovery; a corrupted body never reaches a final
//! name, even when the process dies right after the rename.

use stress_tests::scenarios::{crash, run_and_assert};
use stress_tests::target::Target;

/// One test per failpoint beaker declares (a target that does not declare one prints why and passes).
macro_rules! crash_then_recovers {
    ($($test:ident => $failpoint:literal),* $(,)?) => {
        /// Failpoints with a test of their own.
        const COVERED: &[&str] = &[$($failpoint),*];
        $(
            #[test]
            fn $test() {
                run_and_assert(&crash::scenario_name($failpoint));
            }
        )*
    };
}

crash_then_recovers! {
    crash_at_cache_after_lock_then_recovers => "cache.after_lock",
    crash_at_cache_mid_download_then_recovers => "cache.mid_download",
    crash_at_cache_before_rename_then_recovers => "cache.before_rename",
    crash_at_cache_after_rename_then_recovers => "cache.after_rename",
    crash_at_cache_stale_cleanup_then_recovers => "cache.stale_cleanup",
    crash_at_cache_after_resolve_then_recovers => "cache.after_resolve",
    crash_at_compiled_before_rename_then_recovers => "compiled.before_rename",
    crash_at_gc_before_delete_then_recovers => "gc.before_delete",
}

/// Any other failpoint the target declares gets the same scenario here, one record each.
#[test]
fn crash_at_every_other_declared_failpoint_then_recovers() {
    let target = Target::shared().expect("target");
    let others: Vec<String> =
        target.spec.failpoint_names().iter().filter(|n| !COVERED.contains(&n.as_str())).cloned().collect();
    if others.is_empty() {
        println!("every failpoint of {} has its own test", target.spec.display_name());
    }
    for failpoint in others {
        run_and_assert(&crash::scenario_name(&failpoint));
    }
}

/// A crash mid-download with the target's other configuration (no checksum given).
#[test]
fn crash_at_cache_mid_download_then_recovers_without_checksum() {
    run_and_assert("crash_at_cache.mid_download_then_recovers_without_checksum");
}

#[test]
fn corrupt_body_never_reaches_a_final_name_even_on_crash() {
    run_and_assert("corrupt_body_never_reaches_a_final_name_even_on_crash");
}

#[test]
fn killed_once_the_lock_is_taken_then_recovers() {
    run_and_assert("killed_once_the_lock_is_taken_then_recovers");
}

#[test]
fn killed_once_a_temp_file_is_created_then_recovers() {
    run_and_assert("killed_once_a_temp_file_is_created_then_recovers");
}

#[test]
fn killed_with_a_temp_file_half_written_then_recovers() {
    run_and_assert("killed_with_a_temp_file_half_written_then_recovers");
}

#[test]
fn killed_with_a_temp_file_half_written_then_recovers_without_checksum() {
    run_and_assert("killed_with_a_temp_file_half_written_then_recovers_without_checksum");
}

#[test]
fn resume_after_a_kill_gets_416_then_a_full_200() {
    run_and_assert("resume_after_a_kill_gets_416_then_a_full_200");
}

#[test]
fn killed_right_after_publishing_then_recovers() {
    run_and_assert("killed_right_after_publishing_then_recovers");
}
