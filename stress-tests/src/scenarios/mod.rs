//! The scenarios as library functions, so the scenario tests and the mutant tests run the very same
//! code: each is `pub fn <name>(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError>`, runs
//! its fleet, checks every invariant, writes its record and returns it **without asserting**;
//! [`assert_held`] turns a record into a test verdict.

use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord};

use crate::scenario::ScenarioError;

pub mod at_rest;
pub mod cache_dir;
pub mod contention;
pub mod holds;
pub mod network;
pub mod nightly;
pub mod overlap;
pub mod setup;
pub mod tmpfs;

/// How a scenario runs beyond the tier: the seeded bug every target process runs with, and which
/// target (the one the environment names, unless given).
#[derive(Debug, Clone, Default)]
pub struct ScenarioOptions {
    /// Seeded bug (`BEAKER_MUTANT`-style name declared by the target), `None` for the real program.
    pub mutant: Option<String>,
    /// Run the target without its checksum option (record name suffixed [`WITHOUT_CHECKSUM`]).
    pub without_checksum: bool,
    /// The target to run instead of [`crate::target::Target::shared`] (e.g. the suite's own
    /// `tiny-cache` in its tests).
    pub target: Option<std::sync::Arc<crate::target::Target>>,
    /// Extra environment of every target process (e.g. a test target's own bug switch).
    pub env: std::collections::BTreeMap<String, String>,
    /// Cap on processes instead of `STRESS_PROCESSES` (a shrunk plan's, in a regression test).
    pub process_cap: Option<usize>,
}

/// Suffix of the record name of a scenario run without the target's checksum option.
pub const WITHOUT_CHECKSUM: &str = "_without_checksum";

impl ScenarioOptions {
    /// Options from the environment: `STRESS_MUTANT` (empty or unset → no mutant). A malformed suite
    /// environment is reported by the scenario's own setup, which reads it again.
    /// A replayed plan (`STRESS_REPLAY_PLAN`) names the mutant instead.
    pub fn from_env() -> Self {
        let mutant = match crate::replay::plan() {
            Ok(Some(plan)) => plan.mutant.clone(),
            _ => crate::tier::suite_env().ok().and_then(|env| env.mutant.clone()),
        };
        ScenarioOptions { mutant, ..ScenarioOptions::default() }
    }

    /// Options running every process with the seeded bug `name`.
    pub fn with_mutant(name: &str) -> Self {
        ScenarioOptions { mutant: Some(name.to_string()), ..ScenarioOptions::default() }
    }
}

/// Panics with the scenario's setup errors, or every violated invariant of `record` and its evidence
/// (and where the kept temp dir is); returns quietly when it passed or did not apply.
pub fn assert_held(record: &ScenarioRecord) {
    let label = match &record.mutant {
        Some(m) => format!("{} (mutant {m})", record.scenario),
        None => record.scenario.clone(),
    };
    let kept = record.kept_dir.iter().map(|k| format!("kept dir: {k}")).collect::<Vec<_>>();
    match record.outcome() {
        ScenarioOutcome::Passed | ScenarioOutcome::NotApplicable => {}
        ScenarioOutcome::Error => panic!(
            "scenario {label}: SETUP ERROR (not a verdict about the target):\n- {}\n{}",
            record.setup_errors.join("\n- "),
            kept.join("\n")
        ),
        ScenarioOutcome::Failed => {
            crate::invariants::assert_all_held_with_notes(&label, &record.invariants, &kept)
        }
    }
}

/// A scenario function: runs, checks, writes its record and returns it without asserting.
pub type ScenarioFn = fn(&ScenarioOptions) -> Result<ScenarioRecord, ScenarioError>;

/// Every scenario with a fixed name, by its record name (the crash scenarios are named per failpoint:
/// see [`by_name`]).
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    ("same_model_from_n_processes_downloads_once", contention::same_model_from_n_processes_downloads_once),
    (
        "different_models_in_parallel_share_one_cache",
        contention::different_models_in_parallel_share_one_cache,
    ),
    (
        "same_file_name_with_different_bytes_stays_isolated",
        contention::same_file_name_with_different_bytes_stays_isolated,
    ),
    (
        "one_cache_per_process_downloads_once_per_cache",
        contention::one_cache_per_process_downloads_once_per_cache,
    ),
    ("late_joiners_while_a_download_is_in_flight", contention::late_joiners_while_a_download_is_in_flight),
    ("recovers_from_refused", network::recovers_from_refused),
    ("recovers_from_accept_then_close", network::recovers_from_accept_then_close),
    ("recovers_from_headers_then_close", network::recovers_from_headers_then_close),
    ("recovers_from_close_after_n_bytes", network::recovers_from_close_after_n_bytes),
    ("recovers_from_reset", network::recovers_from_reset),
    ("recovers_from_stall", network::recovers_from_stall),
    ("network_failure_on_every_try_fails_cleanly", network::network_failure_on_every_try_fails_cleanly),
    (
        "corrupted_downloads_fail_some_processes_without_poisoning",
        network::corrupted_downloads_fail_some_processes_without_poisoning,
    ),
    ("http_error_storm_with_retry_after_recovers", network::http_error_storm_with_retry_after_recovers),
    ("corrupted_final_at_rest_is_refetched_once", at_rest::corrupted_final_at_rest_is_refetched_once),
    ("truncated_final_at_rest_is_refetched_once", at_rest::truncated_final_at_rest_is_refetched_once),
    ("emptied_final_at_rest_is_refetched_once", at_rest::emptied_final_at_rest_is_refetched_once),
    (
        "non_retryable_statuses_fail_cleanly_then_recover",
        responses::non_retryable_statuses_fail_cleanly_then_recover,
    ),
    ("error_page_served_with_200_is_never_cached", responses::error_page_served_with_200_is_never_cached),
    ("killed_once_the_lock_is_taken_then_recovers", |o| {
        observed_kill::killed_at_then_recovers(observed_kill::ObservedPhase::LockTaken, o)
    }),
    ("killed_once_a_temp_file_is_created_then_recovers", |o| {
        observed_kill::killed_at_then_recovers(observed_kill::ObservedPhase::TempCreated, o)
    }),
    ("killed_with_a_temp_file_half_written_then_recovers", |o| {
        observed_kill::killed_at_then_recovers(observed_kill::ObservedPhase::TempHalfWritten, o)
    }),
    ("killed_right_after_publishing_then_recovers", |o| {
        observed_kill::killed_at_then_recovers(observed_kill::ObservedPhase::FinalRenamed, o)
    }),
    (
        "resume_after_a_kill_gets_416_then_a_full_200",
        observed_kill::resume_after_a_kill_gets_416_then_a_full_200,
    ),
    (
        "cache_dir_created_emptied_and_made_unwritable_while_running",
        cache_dir::cache_dir_created_emptied_and_made_unwritable_while_running,
    ),
    (
        "corrupt_body_never_reaches_a_final_name_even_on_crash",
        crash::corrupt_body_never_reaches_a_final_name_even_on_crash,
    ),
    (
        "compiled_cache_concurrency_builds_each_entry_once",
        compiled::compiled_cache_concurrency_builds_each_entry_once,
    ),
    ("gc_racing_with_readers_never_breaks_a_reader", gc::gc_racing_with_readers_never_breaks_a_reader),
    (
        "gc_and_readers_released_together_never_break_a_reader",
        gc::gc_and_readers_released_together_never_break_a_reader,
    ),
    (
        "writer_paused_before_publish_keeps_others_waiting",
        locks::writer_paused_before_publish_keeps_others_waiting,
    ),
    (
        "live_lock_holder_blocks_others_and_a_killed_holder_releases",
        locks::live_lock_holder_blocks_others_and_a_killed_holder_releases,
    ),
];

/// Runs the scenario named `name` (a [`SCENARIOS`] name or `crash_at_<failpoint>_then_recovers`), or
/// `None` for an unknown name.
pub fn by_name(name: &str, opts: &ScenarioOptions) -> Option<Result<ScenarioRecord, ScenarioError>> {
    if let Some(base) = name.strip_suffix(WITHOUT_CHECKSUM) {
        let without = ScenarioOptions { without_checksum: true, ..opts.clone() };
        // A target that takes no checksum always runs this configuration: the scenario without the
        // suffix is it, so this record says so instead of running it twice.
        let takes_checksum = match &opts.target {
            Some(t) => t.spec.features.checksum,
            None => crate::target::Target::shared().is_ok_and(|t| t.spec.features.checksum),
        };
        if !takes_checksum {
            return Some(setup::scenario(base, &without).map(|s| {
                s.not_applicable(&format!("the target takes no checksum: `{base}` already runs without one"))
            }));
        }
        return by_name(base, &without);
    }
    if let Some((_, f)) = SCENARIOS.iter().chain(nightly::scenarios()).find(|(n, _)| *n == name) {
        return Some(f(opts));
    }
    let failpoint = name.strip_prefix("crash_at_")?.strip_suffix("_then_recovers")?;
    Some(crash::crash_at_then_recovers(opts, failpoint))
}

/// Runs the scenario named `name` and returns its record — or, when it could not even be set up, an
/// `error` record written for it: a setup failure is never a silent pass, nor an invariant violation.
pub fn run(name: &str, opts: &ScenarioOptions) -> ScenarioRecord {
    let result = by_name(name, opts).unwrap_or_else(|| panic!("no scenario named {name}"));
    match result {
        Ok(record) => record,
        Err(e) => match setup::scenario(name, opts) {
            Ok(s) => s.error_record(&e.to_string()),
            Err(_) => panic!("scenario {name}: SETUP ERROR: {e}"),
        },
    }
}

/// [`run`] with the options from the environment, then [`assert_held`]: the body of every scenario test.
pub fn run_and_assert(name: &str) -> ScenarioRecord {
    let record = run(name, &ScenarioOptions::from_env());
    assert_held(&record);
    record
}

pub mod compiled;
pub mod crash;
pub mod gc;
pub mod locks;
pub mod observed_kill;
pub mod phases;
pub mod responses;
