//! Every new fault and kill phase on the suite's small second target (`tiny-cache`), driven only through
//! its declaration: once correct, where each scenario must pass, and once per textbook mistake
//! (`TINY_CACHE_BUG`) the scenario exists to catch, where the named invariant must be violated. This is
//! how a scenario shows it can fail on a real target bug, not only on a state the harness planted.
//! (Not part of the stress tiers: these runs make red records on purpose.)

use std::path::Path;
use std::sync::Arc;

use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status, TargetSpec};
use stress_tests::scenarios::{self, ScenarioOptions};
use stress_tests::target::Target;

fn tiny() -> Arc<Target> {
    tiny_from("targets/tiny-cache.toml")
}

/// tiny-cache locking by a lock file holding its pid (`lock-kind = "exists"`).
fn tiny_pidlock() -> Arc<Target> {
    tiny_from("targets/tiny-cache-pidlock.toml")
}

fn tiny_from(spec: &str) -> Arc<Target> {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(spec);
    let spec = TargetSpec::from_spec_file(&spec_path).expect("spec");
    Arc::new(
        Target::prepare(
            spec,
            env!("CARGO_BIN_EXE_tiny-cache").into(),
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        )
        .expect("prepare tiny-cache"),
    )
}

/// Runs scenario `name` on tiny-cache with `TINY_CACHE_BUG=bug` (empty: correct).
fn run(name: &str, bug: &str) -> ScenarioRecord {
    run_on(tiny(), name, bug)
}

/// [`run`] on the given tiny-cache declaration.
fn run_on(target: Arc<Target>, name: &str, bug: &str) -> ScenarioRecord {
    let mut opts = ScenarioOptions { target: Some(target), ..ScenarioOptions::default() };
    opts.env.insert("TINY_CACHE_BUG".into(), bug.into());
    scenarios::run(name, &opts)
}

fn status(record: &ScenarioRecord, invariant: &str) -> Status {
    record
        .invariants
        .iter()
        .find(|r| r.name == invariant)
        .map(|r| r.status)
        .unwrap_or_else(|| panic!("{invariant} not reported: {:#?}", record.invariants))
}

fn assert_passes_clean(name: &str) -> ScenarioRecord {
    let record = run(name, "");
    assert_eq!(record.outcome(), ScenarioOutcome::Passed, "{name} on a correct tiny-cache: {record:#?}");
    record
}

fn assert_caught(name: &str, bug: &str, invariant: &str) {
    let record = run(name, bug);
    assert!(record.setup_errors.is_empty(), "{name} with {bug}: setup errors {:?}", record.setup_errors);
    assert_eq!(
        status(&record, invariant),
        Status::Violated,
        "{name}: tiny-cache with {bug} must violate {invariant}: {:#?}",
        record.invariants
    );
}

#[test]
fn a_cached_error_status_body_violates_final_artifacts_match_checksum() {
    assert_passes_clean("non_retryable_statuses_fail_cleanly_then_recover");
    assert_caught(
        "non_retryable_statuses_fail_cleanly_then_recover",
        "cache-error-body",
        "final_artifacts_match_checksum",
    );
    assert_caught(
        "non_retryable_statuses_fail_cleanly_then_recover",
        "cache-error-body",
        "failures_have_expected_class",
    );
}

#[test]
fn an_error_page_with_200_kept_without_checksum_or_load_is_a_finding_not_a_violation() {
    let record = assert_passes_clean("error_page_served_with_200_is_never_cached");
    let finding = record.findings.iter().find(|f| f.name == "cached_undetectable_corruption");
    assert!(finding.is_some_and(|f| !f.evidence.is_empty()), "{:#?}", record.findings);
    assert_eq!(status(&record, "final_artifacts_match_checksum"), Status::Held);
}

#[test]
fn resuming_by_appending_a_full_200_or_trusting_416_violates_final_artifacts_match_checksum() {
    assert_passes_clean("resume_after_a_kill_gets_416_then_a_full_200");
    assert_caught(
        "resume_after_a_kill_gets_416_then_a_full_200",
        "resume-append",
        "final_artifacts_match_checksum",
    );
}

#[test]
fn a_dead_writers_temp_file_never_cleaned_violates_no_temp_files_left_at_every_kill_phase() {
    for name in [
        "killed_once_the_lock_is_taken_then_recovers",
        "killed_once_a_temp_file_is_created_then_recovers",
        "killed_with_a_temp_file_half_written_then_recovers",
    ] {
        assert_passes_clean(name);
        assert_caught(name, "keep-dead-temps", "no_temp_files_left");
    }
}

#[test]
fn printing_a_path_that_is_gone_at_exit_violates_printed_path_is_a_complete_final() {
    let clean = assert_passes_clean("same_model_from_n_processes_downloads_once");
    assert_eq!(status(&clean, "printed_path_is_a_complete_final"), Status::Held);
    assert_caught(
        "same_model_from_n_processes_downloads_once",
        "print-temp-path",
        "printed_path_is_a_complete_final",
    );
}

#[test]
fn a_lock_that_is_a_files_existence_outlives_a_killed_holder_and_fails_every_later_process() {
    for name in [
        "killed_once_a_temp_file_is_created_then_recovers",
        "killed_with_a_temp_file_half_written_then_recovers",
        "killed_right_after_publishing_then_recovers",
    ] {
        assert_caught(name, "o-excl-lock", "failures_have_expected_class");
    }
    assert_passes_clean("killed_right_after_publishing_then_recovers");
}

#[test]
fn a_rename_without_fsync_leaves_a_broken_final_after_power_loss() {
    use stress_tests::scenarios::nightly::power_loss::{NAME, POWER_LOSS_STATES_RECOVER};
    let clean = assert_passes_clean(NAME);
    let counts = clean.crash_states.expect("crash-state counts");
    assert!(counts.explored > 0 && counts.broken == 0 && counts.over_bound == 0, "{counts:?}");
    let caught = run(NAME, "no-fsync");
    assert!(caught.setup_errors.is_empty(), "setup errors: {:?}", caught.setup_errors);
    assert_eq!(
        status(&caught, "final_artifacts_match_checksum"),
        Status::Violated,
        "{:#?}",
        caught.invariants
    );
    assert_eq!(status(&caught, POWER_LOSS_STATES_RECOVER), Status::Violated);
    assert!(caught.crash_states.is_some_and(|c| c.broken > 0), "{:?}", caught.crash_states);
}

#[test]
fn resuming_a_dead_download_across_a_model_update_mixes_versions() {
    use stress_tests::scenarios::nightly::model_update::{NAME, NAME_AFTER_KILL, ONE_WHOLE_VERSION};
    assert_eq!(status(&assert_passes_clean(NAME), ONE_WHOLE_VERSION), Status::Held);
    assert_eq!(status(&assert_passes_clean(NAME_AFTER_KILL), ONE_WHOLE_VERSION), Status::Held);
    assert_caught(NAME_AFTER_KILL, "resume-append", ONE_WHOLE_VERSION);
}

/// The record's plan says what the run did: every process with its fleet and role, the kill with the
/// process it hit and its trigger, the fixtures by SHA-256 and the knobs (seed, tier).
#[test]
fn a_record_plan_names_every_process_the_external_kill_and_the_fixtures() {
    let record = assert_passes_clean("killed_once_the_lock_is_taken_then_recovers");
    let plan = record.plan.as_ref().expect("a plan");
    assert_eq!(plan.scenario, record.scenario);
    assert_eq!((plan.seed, plan.tier.as_str()), (record.seed, record.tier.as_str()));
    assert!(plan.roles().contains_key("recovery"), "{:?}", plan.roles());
    assert!(plan.processes.iter().all(|p| p.pid.is_some()), "{:?}", plan.processes);
    assert!(!plan.kills.is_empty(), "the observed kill is in the plan: {plan:#?}");
    assert!(plan.kills.iter().all(|k| k.process.is_some() && !k.trigger.is_empty()), "{:?}", plan.kills);
    let target = tiny();
    let fixtures: std::collections::BTreeMap<String, String> =
        target.models.iter().map(|(id, m)| (id.clone(), m.sha256.clone())).collect();
    assert_eq!(plan.fixtures, fixtures);
}

/// A process cap in the options (a shrunk plan's) sizes the scenario, and the plan records it.
#[test]
fn a_process_cap_sizes_the_fleet_and_is_recorded_in_the_plan() {
    let mut opts =
        ScenarioOptions { target: Some(tiny()), process_cap: Some(2), ..ScenarioOptions::default() };
    opts.env.insert("TINY_CACHE_BUG".into(), String::new());
    let record = scenarios::run("same_model_from_n_processes_downloads_once", &opts);
    let plan = record.plan.as_ref().expect("a plan");
    assert_eq!(plan.process_cap, Some(2));
    assert_eq!(plan.processes.iter().filter(|p| p.fleet == "fleet").count(), 2, "{:?}", plan.processes);
    assert_eq!(plan.gate_releases.len(), 1, "{:?}", plan.gate_releases);
    assert_eq!(plan.gate_releases[0].processes, 2);
}

#[test]
fn a_stale_lock_file_of_a_dead_holder_is_broken_by_a_pid_lock_and_outlives_an_exclusive_create_lock() {
    use stress_tests::scenarios::nightly::lock_integrity::STALE;
    let clean = run_on(tiny_pidlock(), STALE, "");
    assert_eq!(
        clean.outcome(),
        ScenarioOutcome::Passed,
        "a pid lock breaks a dead holder's lock: {clean:#?}"
    );
    assert_eq!(status(&clean, "no_lock_held"), Status::Held);
    let caught = run_on(tiny_pidlock(), STALE, "o-excl-lock");
    assert!(caught.setup_errors.is_empty(), "setup errors: {:?}", caught.setup_errors);
    assert_eq!(status(&caught, "failures_have_expected_class"), Status::Violated, "{:#?}", caught.invariants);
}
