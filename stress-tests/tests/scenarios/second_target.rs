//! The suite on a second target of another shape (`tiny-cache`: arguments instead of env vars, a cache with
//! subdirectories, no checksum option, no failpoints, no metadata file, no gc, no compiled cache), driven
//! only through its declaration `targets/tiny-cache.toml`.
//!
//! The scenario functions of `stress_tests::scenarios` run on the shared target (`ScenarioOptions` has no
//! target), so these tests rebuild the same scenarios from the library for this target: the same-model
//! contention scenario (gate-forced overlap, reader probe, recovery) and a network-fault scenario. Every
//! invariant that applies is checked; the record lists the ones skipped for lack of a feature. The crash,
//! compiled, gc and lock scenarios need failpoints / gc-args / a compiled cache and print why they skip.

use std::path::Path;
use std::time::Duration;

use stress_cache_metadata::{ScenarioOutcome, ScenarioRecord, Status};
use stress_tests::invariants::Invariant;
use stress_tests::scenario::Scenario;
use stress_tests::scenarios::{ScenarioOptions, assert_held, network, overlap, phases};
use stress_tests::server::{Fault, FaultPlan, Gate};
use stress_tests::target::Target;

fn tiny() -> Target {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("targets/tiny-cache.toml");
    let spec = stress_cache_metadata::TargetSpec::from_spec_file(&spec_path).expect("spec");
    Target::prepare(
        spec,
        env!("CARGO_BIN_EXE_tiny-cache").into(),
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    )
    .expect("prepare tiny-cache")
}

fn scenario(name: &str) -> Scenario {
    phases::scenario_on(name, &ScenarioOptions::default(), tiny()).expect("scenario")
}

/// Every invariant is reported (held, violated or skipped); those that do not apply to the target are
/// skipped with a reason, never dropped and never counted as held.
fn assert_every_invariant_reported(record: &ScenarioRecord, target: &Target) {
    for invariant in Invariant::ALL {
        let r = record
            .invariants
            .iter()
            .find(|r| r.name == invariant.name())
            .unwrap_or_else(|| panic!("{invariant} was not reported for {}", record.target));
        let applies = match invariant {
            Invariant::SuccessesLoadedExpectedModel => target.spec.metadata_file.is_some(),
            Invariant::CompiledEntriesCompleteOrAbsent => target.spec.compiled.is_some(),
            _ => true,
        };
        if !applies {
            assert_eq!(r.status, Status::Skipped, "{invariant} cannot apply to {}: {r:?}", record.target);
            assert!(r.reason.is_some(), "a skip says why: {r:?}");
        }
    }
}

#[test]
fn second_target_same_model_from_n_processes_downloads_once() {
    let mut s = scenario("second_target_same_model_from_n_processes_downloads_once");
    let target = s.target().clone();
    let server = phases::server().expect("server");
    let model = phases::first_model(&s);
    let gate = Gate::named("tiny-mid-body");
    let len = target.model(&model).bytes.len();
    let route = phases::serve(&server, &target, &model, overlap::gated_plan(&gate, len));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().contention_processes();
    let (plans, recovery) = s.writers_and_recovery(n, &model, &url, &cache);
    let mut run = s.launch(plans).expect("launch");
    run.start_reader();
    let forced =
        overlap::hold_until_overlap(&run, &gate, std::slice::from_ref(&cache), Duration::from_secs(15));
    forced.record_into(&mut run);
    run.wait();
    run.served_from_routes(&[&route]);
    run.recover(recovery);
    let record = run.evaluate();
    assert_every_invariant_reported(&record, &target);
    assert_eq!(record.outcomes.get("ok"), Some(&n), "{record:#?}");
    assert_held(&record);
}

#[test]
fn second_target_recovers_from_bodies_closed_midway() {
    let mut s = scenario("second_target_recovers_from_bodies_closed_midway");
    let target = s.target().clone();
    let server = phases::server().expect("server");
    let model = phases::first_model(&s);
    let half = (target.model(&model).bytes.len() / 2) as u64;
    let faults = vec![Fault::CloseAfter(half), Fault::Reset];
    let route = phases::serve(&server, &target, &model, FaultPlan::new(faults.clone()));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(4);
    let (plans, recovery) = s.writers_and_recovery(n, &model, &url, &cache);
    let mut run = s.launch(plans).expect("launch");
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    run.recover(recovery);
    for e in network::faults_not_injected(&route, &faults) {
        run.setup_error(e);
    }
    let record = run.evaluate();
    assert_every_invariant_reported(&record, &target);
    assert_held(&record);
}

/// The failpoint, gc and compiled scenarios do not apply to a target without those features: each says so
/// in a record of its own (not applicable: checks nothing, passes nothing) instead of failing.
#[test]
fn second_target_without_failpoints_gc_or_compiled_cache_skips_those_scenarios_clearly() {
    let target = tiny();
    assert!(
        target.spec.failpoints.is_none() && target.spec.gc_args.is_none() && target.spec.compiled.is_none()
    );
    let s = phases::scenario_on("second_target_crash_scenarios", &ScenarioOptions::default(), target)
        .expect("scenario");
    let record = s.not_applicable("the target declares no failpoints, no gc-args and no compiled cache");
    assert!(record.invariants.is_empty());
    assert_eq!(record.outcome(), ScenarioOutcome::NotApplicable);
    assert!(!record.passed(), "not applicable is not a pass");
}
