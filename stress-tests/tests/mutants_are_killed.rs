//! The proof that the suite catches bugs: every seeded bug the target declares is killed by its scenario
//! (the named invariants are violated), the same scenarios hold on the real program, and every invariant
//! in `Invariant::ALL` is tripped by a seeded bug or an injected fault.
//!
//! The target is built with its failpoints and mutants features (see `stress_tests::target`).

use std::collections::BTreeSet;
use std::time::Duration;

use stress_cache_metadata::ScenarioRecord;
use stress_tests::invariants::{self, Expectations, Invariant, Observations, OutcomeClass};
use stress_tests::scenario::{Scenario, ScenarioError};
use stress_tests::scenarios::{ScenarioOptions, assert_held, contention, crash, gc, locks, network, phases};
use stress_tests::server::FaultPlan;
use stress_tests::snapshot::CacheSnapshot;
use stress_tests::target::Target;

type Run = fn(&ScenarioOptions) -> Result<ScenarioRecord, ScenarioError>;

/// A seeded bug, the scenario that kills it, and the invariants it must violate there.
struct Kill {
    mutant: &'static str,
    scenario: &'static str,
    run: Run,
    violates: &'static [&'static str],
}

const KILLS: &[Kill] = &[
    Kill {
        mutant: "no-lock",
        scenario: "same_model_from_n_processes_downloads_once",
        run: contention::same_model_from_n_processes_downloads_once,
        violates: &["download_amplification_bounded"],
    },
    Kill {
        mutant: "shared-tmp-name",
        scenario: "same_model_from_n_processes_downloads_once",
        run: contention::same_model_from_n_processes_downloads_once,
        violates: &["download_amplification_bounded"],
    },
    Kill {
        mutant: "direct-write",
        scenario: "crash_at_cache.mid_download_then_recovers",
        run: |o| crash::crash_at_then_recovers(o, "cache.mid_download"),
        violates: &["final_artifacts_match_checksum"],
    },
    Kill {
        mutant: "skip-verify",
        scenario: "corrupt_body_never_reaches_a_final_name_even_on_crash",
        run: crash::corrupt_body_never_reaches_a_final_name_even_on_crash,
        violates: &["failures_have_expected_class"],
    },
    Kill {
        mutant: "verify-after-rename",
        scenario: "corrupt_body_never_reaches_a_final_name_even_on_crash",
        run: crash::corrupt_body_never_reaches_a_final_name_even_on_crash,
        violates: &["failures_have_expected_class"],
    },
    Kill {
        mutant: "leave-partial",
        scenario: "network_failure_on_every_try_fails_cleanly",
        run: network::network_failure_on_every_try_fails_cleanly,
        violates: &["no_temp_files_left", "no_partial_content"],
    },
    Kill {
        mutant: "unlock-before-rename",
        scenario: "writer_paused_before_publish_keeps_others_waiting",
        run: locks::writer_paused_before_publish_keeps_others_waiting,
        violates: &[phases::LIVE_HOLDER_BLOCKS_OTHERS],
    },
    Kill {
        mutant: "no-timeout",
        scenario: "recovers_from_stall",
        run: network::recovers_from_stall,
        violates: &["finished_before_watchdog"],
    },
    Kill {
        mutant: "compiled-direct-dir",
        scenario: "crash_at_compiled.before_rename_then_recovers",
        run: |o| crash::crash_at_then_recovers(o, "compiled.before_rename"),
        violates: &["compiled_entries_complete_or_absent"],
    },
    Kill {
        mutant: "gc-ignores-readers",
        scenario: "gc_racing_with_readers_never_breaks_a_reader",
        run: gc::gc_racing_with_readers_never_breaks_a_reader,
        violates: &["failures_have_expected_class"],
    },
    Kill {
        mutant: "name-without-hash",
        scenario: "same_file_name_with_different_bytes_stays_isolated",
        run: contention::same_file_name_with_different_bytes_stays_isolated,
        violates: &["one_final_artifact_per_model"],
    },
];

/// Invariants tripped by the injected-fault tests below (on the real program, no seeded bug).
const INJECTED: &[(&str, &str)] = &[
    ("no_lock_held", "no_lock_held_is_violated_while_a_stopped_process_holds_the_lock"),
    ("no_panic_or_unexpected_signal", "a_panic_at_a_failpoint_violates_no_panic_or_unexpected_signal"),
    ("no_poisoning", "a_cache_that_breaks_the_next_run_violates_no_poisoning"),
    (
        "readers_saw_only_complete_content",
        "a_prefix_under_a_final_name_violates_readers_saw_only_complete_content",
    ),
    ("successes_loaded_expected_model", "loading_another_model_violates_successes_loaded_expected_model"),
];

fn kill(mutant: &str) -> &'static Kill {
    KILLS
        .iter()
        .find(|k| k.mutant == mutant)
        .unwrap_or_else(|| panic!("no killing scenario for mutant {mutant}"))
}

fn declared(mutant: &str) -> bool {
    Target::shared().expect("target").spec.mutant_names().iter().any(|m| m == mutant)
}

/// Runs the mutant's killing scenario with the mutant and asserts the expected invariants are violated.
fn assert_killed(mutant: &str) {
    if !declared(mutant) {
        println!("the target does not declare mutant {mutant}: nothing to kill");
        return;
    }
    let k = kill(mutant);
    let record = (k.run)(&ScenarioOptions::with_mutant(mutant)).expect("scenario setup");
    let violated: BTreeSet<&str> = record.violated().into_iter().collect();
    println!("mutant {mutant} x {}: violated {violated:?}", k.scenario);
    assert_eq!(record.mutant.as_deref(), Some(mutant), "the record names the mutant");
    let missing: Vec<&str> = k.violates.iter().copied().filter(|v| !violated.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "mutant {mutant} survived {}: expected violations {missing:?} not found (violated: {violated:?}); \
         record invariants: {:#?}",
        k.scenario,
        record.invariants
    );
}

macro_rules! mutant_is_killed {
    ($($test:ident => $mutant:literal),* $(,)?) => {
        /// Mutants with a test of their own.
        const TESTED: &[&str] = &[$($mutant),*];
        $(
            #[test]
            fn $test() {
                assert_killed($mutant);
            }
        )*
    };
}

mutant_is_killed! {
    no_lock_is_killed_by_download_amplification => "no-lock",
    shared_tmp_name_is_killed_by_download_amplification => "shared-tmp-name",
    direct_write_is_killed_by_a_crash_mid_download => "direct-write",
    skip_verify_is_killed_by_a_corrupted_body_reaching_publish => "skip-verify",
    verify_after_rename_is_killed_by_a_corrupted_body_reaching_publish => "verify-after-rename",
    leave_partial_is_killed_by_a_network_failing_every_try => "leave-partial",
    unlock_before_rename_is_killed_by_a_paused_publisher => "unlock-before-rename",
    no_timeout_is_killed_by_a_stall => "no-timeout",
    compiled_direct_dir_is_killed_by_a_crash_before_the_compiled_rename => "compiled-direct-dir",
    gc_ignores_readers_is_killed_by_gc_under_paused_readers => "gc-ignores-readers",
    name_without_hash_is_killed_by_same_file_name_models => "name-without-hash",
}

#[test]
fn every_declared_mutant_has_a_killing_scenario_and_a_test() {
    let target = Target::shared().expect("target");
    let untested: Vec<&String> = target
        .spec
        .mutant_names()
        .iter()
        .filter(|m| !TESTED.contains(&m.as_str()) || !KILLS.iter().any(|k| k.mutant == m.as_str()))
        .collect();
    assert!(untested.is_empty(), "declared mutants without a killing scenario: {untested:?}");
}

#[test]
fn killing_scenarios_hold_on_the_real_program() {
    let mut seen = BTreeSet::new();
    let mut failed = Vec::new();
    for k in KILLS.iter().filter(|k| seen.insert(k.scenario)) {
        let record = (k.run)(&ScenarioOptions::default()).expect("scenario setup");
        if !record.passed() {
            failed.push((k.scenario, record));
        }
    }
    for (_, record) in &failed {
        assert_held(record);
    }
}

#[test]
fn every_invariant_is_tripped_by_a_mutant_or_an_injected_fault() {
    let tripped: BTreeSet<&str> = KILLS
        .iter()
        .flat_map(|k| k.violates.iter().copied())
        .chain(INJECTED.iter().map(|(i, _)| *i))
        .collect();
    let untripped: Vec<&str> =
        Invariant::ALL.iter().map(|i| i.name()).filter(|n| !tripped.contains(n)).collect();
    assert!(untripped.is_empty(), "invariants no seeded bug or injected fault trips: {untripped:?}");
}

/// A scenario with one process of the real program armed with `<failpoint>=<action>`.
fn armed_scenario(name: &str) -> Option<(Scenario, stress_cache_metadata::Failpoints)> {
    let s = phases::scenario(name, &ScenarioOptions::default()).expect("scenario");
    match s.target().spec.failpoints.clone() {
        Some(f) => Some((s, f)),
        None => {
            println!("{name}: the target declares no failpoints");
            None
        }
    }
}

#[test]
fn no_lock_held_is_violated_while_a_stopped_process_holds_the_lock() {
    let Some((mut s, fps)) = armed_scenario("injected_no_lock_held") else { return };
    let (Some(after_lock), Some(pause)) =
        (fps.names.iter().find(|n| n.contains("after_lock")).cloned(), fps.pause_action.clone())
    else {
        return;
    };
    let target = s.target().clone();
    let server = phases::server().expect("server");
    let model = phases::first_model(&s);
    let route = phases::serve(&server, &target, &model, FaultPlan::default());
    let cache = s.cache_dir("shared");
    let plan =
        s.writer(0, &model, &server.url(&route), &cache).failpoints(Some(&phases::arm(&after_lock, &pause)));
    let run = s.launch(vec![plan.clone()]).expect("launch");
    let pid = run.fleet().pids()[0];
    assert!(
        run.fleet().wait_until(|f| f.is_stopped(pid), Duration::from_secs(15)),
        "never stopped at {after_lock}"
    );
    let caches = [CacheSnapshot::take(&cache, &target.spec.files, &target.models)];
    let expectations = Expectations::clean(&target, &[plan]);
    let results = invariants::check(&Observations {
        target: &target,
        expectations: &expectations,
        outcomes: &[],
        caches: &caches,
        compiled: &[],
        compiled_reference: None,
        readers: None,
        served: None,
        recovery: None,
    });
    run.fleet().kill(pid);
    let r = results.iter().find(|r| r.name == "no_lock_held").expect("no_lock_held reported");
    assert!(r.is_violated(), "a lock held by a stopped process must violate no_lock_held: {r:?}");
}

#[test]
fn a_panic_at_a_failpoint_violates_no_panic_or_unexpected_signal() {
    let Some((mut s, fps)) = armed_scenario("injected_panic") else { return };
    let Some(failpoint) = fps.names.first().cloned() else { return };
    let target = s.target().clone();
    let server = phases::server().expect("server");
    let model = phases::first_model(&s);
    let route = phases::serve(&server, &target, &model, FaultPlan::default());
    let cache = s.cache_dir("shared");
    // Cover every seam: whichever the process reaches first panics.
    let all: Vec<String> = fps.names.iter().map(|n| phases::arm(n, "panic")).collect();
    let plan = s.writer(0, &model, &server.url(&route), &cache).failpoints(Some(&all.join(";")));
    let mut run = s.launch(vec![plan]).expect("launch");
    run.expect(0, &[OutcomeClass::Ok, OutcomeClass::Panicked], false);
    let (record, _) = run.evaluate();
    let violated = record.violated();
    assert!(
        violated.contains(&"no_panic_or_unexpected_signal"),
        "a panic at {failpoint} (no crash declared) must violate no_panic_or_unexpected_signal: {:#?}",
        record.invariants
    );
}

#[test]
fn a_cache_that_breaks_the_next_run_violates_no_poisoning() {
    let Ok(mut s) = phases::scenario("injected_poisoning", &ScenarioOptions::default()) else {
        panic!("scenario")
    };
    let target = s.target().clone();
    let Some(lock_pattern) = target.spec.files.lock.clone() else {
        println!("the target declares no lock files");
        return;
    };
    let server = phases::server().expect("server");
    let model = phases::first_model(&s);
    let route = phases::serve(&server, &target, &model, FaultPlan::default());
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let plan = s.writer(0, &model, &url, &cache);
    let last = s.writer(1, &model, &url, &cache).role("recovery");
    let mut run = s.launch(vec![plan]).expect("launch");
    run.wait();
    // The injected poison: every lock file (and final) replaced by a directory of the same name.
    let pattern = stress_tests::pattern::FilePattern::new(&lock_pattern);
    let final_pattern = stress_tests::pattern::FilePattern::new(&target.spec.files.final_);
    for entry in stress_tests::snapshot::walk(&cache) {
        if entry.is_file && (pattern.matches(&entry.relative) || final_pattern.matches(&entry.relative)) {
            std::fs::remove_file(&entry.path).expect("remove");
            std::fs::create_dir(&entry.path).expect("mkdir");
        }
    }
    run.recover(last);
    run.skip(Invariant::OneFinalArtifactPerModel);
    let (record, _) = run.evaluate();
    assert!(
        record.violated().contains(&"no_poisoning"),
        "a cache that breaks the next run must violate no_poisoning: {:#?}",
        record.invariants
    );
}

/// A strict prefix of the model planted under its final name (what a direct write leaves): a process
/// resolves it as a hit and is held (paused) at the reader failpoint, then killed; the reader probe reads
/// the prefix.
#[test]
fn a_prefix_under_a_final_name_violates_readers_saw_only_complete_content() {
    let Some((mut s, fps)) = armed_scenario("injected_prefix_final") else { return };
    let (Some(reader_fp), Some(pause)) = (fps.reader.clone(), fps.pause_action.clone()) else { return };
    let target = s.target().clone();
    let server = phases::server().expect("server");
    let model = phases::first_model(&s);
    let route = phases::serve(&server, &target, &model, FaultPlan::default());
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let warmup = s.writer(900, &model, &url, &cache);
    phases::setup_run(&mut s, &[warmup], "warmup").expect("warmup");
    let finals = CacheSnapshot::take(&cache, &target.spec.files, &target.models);
    let final_path = finals.finals().first().map(|f| f.path.clone()).expect("a final after the warmup");
    let bytes = &target.model(&model).bytes;
    std::fs::write(&final_path, &bytes[..bytes.len() / 2]).expect("plant a prefix");
    let plan = s.writer(0, &model, &url, &cache).failpoints(Some(&phases::arm(&reader_fp, &pause)));
    let mut run = s.launch(vec![plan]).expect("launch");
    run.expect(0, &[OutcomeClass::Crashed], true);
    run.start_reader();
    let pid = run.fleet().pids()[0];
    assert!(run.fleet().wait_until(|f| f.is_stopped(pid), Duration::from_secs(15)), "never stopped");
    run.fleet().kill(pid);
    let (record, _) = run.evaluate();
    assert!(record.violated().contains(&"readers_saw_only_complete_content"), "{:#?}", record.invariants);
}

/// A success whose metadata names another model (the other model's bytes served under this model's
/// URL, no checksum given) violates `successes_loaded_expected_model`.
#[test]
fn loading_another_model_violates_successes_loaded_expected_model() {
    let mut s = phases::scenario("injected_other_model", &ScenarioOptions::default()).expect("scenario");
    let target = s.target().clone();
    if target.spec.metadata_file.is_none() || target.models.len() < 2 {
        println!("needs a metadata file and two models");
        return;
    }
    let ids = target.model_ids();
    let (model, other) = (&ids[0], &ids[1]);
    let server = phases::server().expect("server");
    let route = server.add_route(
        stress_tests::server::Route::new(target.server_path(model), target.model(other).bytes.clone())
            .model_id(model.as_str()),
    );
    let cache = s.cache_dir("shared");
    let plan = s.writer(0, model, &server.url(&route), &cache).sha256(None);
    let run = s.launch(vec![plan]).expect("launch");
    let (record, _) = run.evaluate();
    assert!(record.violated().contains(&"successes_loaded_expected_model"), "{:#?}", record.invariants);
}
