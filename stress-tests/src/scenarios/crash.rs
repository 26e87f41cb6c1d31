//! Crashes (SIGKILL at a declared failpoint) and what must survive them: right after the crash every
//! file under a final name is complete (partials may be left), and a concurrent clean recovery succeeds
//! and leaves a clean cache.

use std::path::PathBuf;

use stress_cache_metadata::{Failpoints, ScenarioRecord};

use crate::invariants::{Expectations, Invariant, OutcomeClass};
use crate::orchestrator::ProcessOutcome;
use crate::scenario::{Scenario, ScenarioError};
use crate::server::{Fault, FaultPlan};
use crate::snapshot::{CacheSnapshot, Content};
use crate::target::{PlanCommand, ProcessPlan};

use super::ScenarioOptions;
use super::phases::SharedModel;
use super::phases::{self, PhaseInput};
use crate::scenario::Phase;

/// Clean processes of the concurrent recovery after a crash (before the `STRESS_PROCESSES` cap).
const RECOVERY_PROCESSES: usize = 3;

/// The record name of the crash scenario at `failpoint`: `crash_at_<failpoint>_then_recovers`.
pub fn scenario_name(failpoint: &str) -> String {
    format!("crash_at_{failpoint}_then_recovers")
}

/// What must be true before the failpoint can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Precondition {
    /// Nothing: an empty cache (download and compiled).
    Cold,
    /// The model is already cached (the reader failpoint is on the hit path).
    Warm,
    /// A stale partial left by a first crash at this (mid-download) failpoint.
    StalePartial(String),
    /// The armed process is gc (`gc-args`, `{max_bytes}` = 0) over a warm cache.
    Gc,
}

fn precondition(fps: &Failpoints, failpoint: &str) -> Precondition {
    if fps.gc.as_deref() == Some(failpoint) {
        Precondition::Gc
    } else if fps.reader.as_deref() == Some(failpoint) {
        Precondition::Warm
    } else if failpoint.contains("stale") {
        match fps.names.iter().find(|n| n.contains("mid_download")) {
            Some(mid) => Precondition::StalePartial(mid.clone()),
            None => Precondition::Cold,
        }
    } else {
        Precondition::Cold
    }
}

/// Crash (the target's crash action) at every declared failpoint, one record per failpoint.
pub fn crash_at_every_declared_failpoint(
    opts: &ScenarioOptions,
) -> Result<Vec<ScenarioRecord>, ScenarioError> {
    let names = crate::target::Target::shared()?.spec.failpoint_names().to_vec();
    names.iter().map(|fp| crash_at_then_recovers(opts, fp)).collect()
}

fn crashed(o: &ProcessOutcome) -> bool {
    o.signal == Some(libc::SIGKILL) && !o.hung
}

/// One process armed with `<failpoint>=<crash action>` (preconditions set so the failpoint is reached)
/// must die by SIGKILL; right after, every final file is complete and compiled entries are complete or
/// absent; then several clean processes recover concurrently: all ok, clean cache, no lock held, bounded
/// downloads, no poisoning.
pub fn crash_at_then_recovers(
    opts: &ScenarioOptions,
    failpoint: &str,
) -> Result<ScenarioRecord, ScenarioError> {
    crash_at(opts, failpoint, None)
}

/// The crash scenario with `failpoint` armed on a plain writer of a cold cache, whatever path the
/// failpoint is on: a failpoint the writer never reaches makes the run a setup error (the checker's
/// own test of that outcome).
pub fn crash_with_armed_writer(
    opts: &ScenarioOptions,
    failpoint: &str,
) -> Result<ScenarioRecord, ScenarioError> {
    crash_at(opts, failpoint, Some(Precondition::Cold))
}

fn crash_at(
    opts: &ScenarioOptions,
    failpoint: &str,
    forced: Option<Precondition>,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario(&scenario_name(failpoint), opts)?;
    let Some(fps) = s.target().spec.failpoints.clone() else {
        return Ok(s.not_applicable("the target declares no failpoints"));
    };
    if !fps.names.iter().any(|n| n == failpoint) {
        return Ok(s.not_applicable(&format!("the target does not declare failpoint {failpoint}")));
    }
    let pre = forced.unwrap_or_else(|| precondition(&fps, failpoint));
    if pre == Precondition::Gc && s.target().spec.gc_args.is_none() {
        return Ok(s.not_applicable("the gc failpoint needs `gc-args`"));
    }
    let SharedModel { target, server, model, route, url, cache } =
        phases::shared_model(&s, FaultPlan::default())?;
    let compiled_dirs: Vec<PathBuf> = s.writer(0, &model, &url, &cache).compiled_dir.into_iter().collect();
    let reference = if target.spec.compiled.is_some() && failpoint.starts_with("compiled") {
        let reference_route = phases::serve_uncounted(&server, &target, &model, "reference");
        Some(s.compiled_reference(&[(&model, &server.url(&reference_route))])?)
    } else {
        None
    };
    let mut earlier: Vec<Phase> = Vec::new();
    let mut setup_errors = Vec::new();
    match &pre {
        Precondition::Warm | Precondition::Gc => {
            let warmup = s.writer(900, &model, &url, &cache).role("warmup");
            if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
                return Ok(s.error_record(&e));
            }
        }
        Precondition::StalePartial(mid) => {
            let before = phases::counts(&route);
            let plan = s
                .writer(901, &model, &url, &cache)
                .failpoints(Some(&phases::arm(mid, &fps.crash_action)))
                .role("first-crash");
            let outcomes = s.run_to_completion(std::slice::from_ref(&plan), "first-crash")?;
            let first_crashed = outcomes.iter().all(crashed);
            let phase = crash_phase(
                &s,
                &format!("first crash at {mid}"),
                plan,
                &outcomes,
                &cache,
                &[],
                None,
                &before,
                &route,
            );
            let stale = phase.caches.iter().map(|c| c.partials().len()).sum::<usize>();
            if !first_crashed || stale == 0 {
                setup_errors.push(format!(
                    "precondition not met: the first crash at {mid} left no partial for {failpoint} to clean"
                ));
            }
            earlier.push(phase);
        }
        Precondition::Cold => {}
    }

    // The armed process.
    let before = phases::counts(&route);
    let mut armed = s
        .writer(0, &model, &url, &cache)
        .failpoints(Some(&phases::arm(failpoint, &fps.crash_action)))
        .role("armed");
    if pre == Precondition::Gc {
        armed = armed.command(PlanCommand::Gc { max_bytes: 0 }).role("armed-gc");
    }
    let outcomes = s.run_to_completion(std::slice::from_ref(&armed), "armed")?;
    let phase = crash_phase(
        &s,
        &format!("right after the crash at {failpoint}"),
        armed,
        &outcomes,
        &cache,
        &compiled_dirs,
        reference.as_ref(),
        &before,
        &route,
    );
    setup_errors.extend(outcomes.iter().filter(|o| !crashed(o)).map(|o| {
        format!(
            "failpoint {failpoint} was not reached (the armed process did not crash, so the scenario proves \
             nothing): {}",
            o.describe()
        )
    }));
    let complete_final =
        phase.caches.iter().flat_map(|c| c.finals()).any(|f| f.content == Content::Complete(model.clone()));
    earlier.push(phase);

    let after = Recovery { earlier, setup_errors, extra: Vec::new(), complete_final_left: complete_final };
    recover(&mut s, after, &model, &url, &cache, reference, &route)
}

/// What the phases before the concurrent recovery observed.
struct Recovery {
    earlier: Vec<Phase>,
    setup_errors: Vec<String>,
    extra: Vec<stress_cache_metadata::InvariantResult>,
    complete_final_left: bool,
}

/// Checks the cache right after a crashing phase: every final complete, compiled entries complete or
/// absent, the process crashed (only `crashed` allowed); partials and temp files are allowed (a crash
/// leaves them; the recovery must remove them).
#[allow(clippy::too_many_arguments)]
fn crash_phase(
    s: &Scenario,
    label: &str,
    plan: ProcessPlan,
    outcomes: &[ProcessOutcome],
    cache: &std::path::Path,
    compiled: &[PathBuf],
    reference: Option<&crate::snapshot::CompiledReference>,
    before: &crate::invariants::ServedCounts,
    route: &crate::server::RouteHandle,
) -> Phase {
    let mut expectations = Expectations::clean(s.target(), &[plan]);
    expectations.processes[0] = expectations.processes[0].clone().allow(&[OutcomeClass::Crashed]).crash();
    if !outcomes.iter().all(crashed) {
        // Not a verdict: the failpoint was never reached, which the caller records as a setup error.
        expectations
            .skip(Invariant::FailuresHaveExpectedClass, "the armed process did not crash (setup error)");
    }
    let why = "a crash may leave temp files and prefixes; the recovery must remove them (checked after it)";
    expectations.skip(Invariant::NoPartialContent, why);
    expectations.skip(Invariant::NoTempFilesLeft, why);
    phases::check_phase(
        s,
        PhaseInput {
            label,
            expectations,
            outcomes,
            caches: vec![cache.to_path_buf()],
            compiled: compiled.to_vec(),
            compiled_reference: reference,
            served: Some(phases::served_since(route, before)),
        },
    )
}

/// The concurrent recovery: clean writers released together with a reader probe, then one more clean
/// run (`no_poisoning`); merged with the earlier phases.
fn recover(
    s: &mut Scenario,
    after: Recovery,
    model: &str,
    url: &str,
    cache: &std::path::Path,
    reference: Option<crate::snapshot::CompiledReference>,
    route: &crate::server::RouteHandle,
) -> Result<ScenarioRecord, ScenarioError> {
    let Recovery { earlier, setup_errors, extra, complete_final_left } = after;
    let k = s.tier().capped(RECOVERY_PROCESSES);
    let plans: Vec<ProcessPlan> = (1..=k).map(|i| s.writer(i, model, url, cache).role("recovery")).collect();
    let last = s.writer(k + 1, model, url, cache).role("recovery");
    let before = phases::counts(route);
    let mut run = s.launch(plans)?;
    // A complete final survived the crash: nobody needs to download again.
    run.body_bound(model, if complete_final_left { 0 } else { 1 });
    if let Some(r) = reference {
        run.compiled_reference(r);
    }
    for phase in earlier {
        run.add_phase(phase);
    }
    for e in setup_errors {
        run.setup_error(e);
    }
    for v in extra {
        run.add_verdict(v);
    }
    if crate::replay::role_cap("recovery") == Some(0) {
        // A shrunk plan without the recovery: the crash's leftovers are nobody's to clean.
        let why = "the replayed plan runs no recovery, so nothing cleans what the crash left";
        run.skip(Invariant::NoTempFilesLeft, why);
        run.skip(Invariant::NoPartialContent, why);
    } else if complete_final_left {
        // Nobody needed to download, so nobody had a reason to clean the crash's temp files yet.
        let why =
            "a complete final survived the crash: no process of the fleet downloads, so none cleans yet";
        run.skip_after_fleet(Invariant::NoTempFilesLeft, why);
        run.skip_after_fleet(Invariant::NoPartialContent, why);
    }
    run.start_reader();
    run.wait();
    run.recover(last);
    run.served(phases::served_since(route, &before));
    Ok(run.evaluate())
}

/// A corrupted body (the route's first response) reaches a process armed to crash at the target's
/// before-rename ("written and verified") and after-rename failpoints: correct code fails the integrity
/// check before either, so it exits with the integrity class and no corrupted file is ever under a final
/// name. A build that renames (or publishes) before verifying reaches a publish failpoint with the
/// corrupted body and dies there: that is a violation (`failures_have_expected_class`), and a corrupted
/// final left by the crash violates `final_artifacts_match_checksum`. Then a concurrent clean recovery.
pub fn corrupt_body_never_reaches_a_final_name_even_on_crash(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario("corrupt_body_never_reaches_a_final_name_even_on_crash", opts)?;
    let Some(fps) = s.target().spec.failpoints.clone() else {
        return Ok(s.not_applicable("the target declares no failpoints"));
    };
    let publish_points: Vec<String> = fps
        .names
        .iter()
        .filter(|n| !n.starts_with("compiled") && (n.contains("before_rename") || n.contains("after_rename")))
        .cloned()
        .collect();
    if publish_points.is_empty() {
        return Ok(s.not_applicable("the target declares no before/after-rename failpoint"));
    }
    if !s.uses_checksum() && !s.target().spec.features.loads_model {
        return Ok(s.not_applicable(
            "the target neither takes a checksum nor loads the model: it cannot detect a corrupted body",
        ));
    }
    let SharedModel { target, server: _server, model, route, url, cache } =
        phases::shared_model(&s, FaultPlan::new([Fault::Corrupt]))?;

    let before = phases::counts(&route);
    let armed_with: Vec<String> =
        publish_points.iter().map(|fp| phases::arm(fp, &fps.crash_action)).collect();
    let armed = s.writer(0, &model, &url, &cache).failpoints(Some(&armed_with.join(";"))).role("armed");
    let outcomes = s.run_to_completion(std::slice::from_ref(&armed), "armed")?;
    let mut expectations = Expectations::clean(&target, &[armed]);
    expectations.processes[0] =
        expectations.processes[0].clone().allow(&[OutcomeClass::Integrity, OutcomeClass::Crashed]).crash();
    // A crash (see below) may leave a temp file; it must never leave corrupted content under a final name.
    let why = "a crash may leave a temp file; only a final name must never hold corrupted content";
    expectations.skip(Invariant::NoTempFilesLeft, why);
    expectations.skip(Invariant::NoPartialContent, why);
    let phase = phases::check_phase(
        &s,
        PhaseInput {
            label: "after the corrupted download",
            expectations,
            outcomes: &outcomes,
            caches: vec![cache.clone()],
            compiled: Vec::new(),
            compiled_reference: None,
            served: Some(phases::served_since(&route, &before)),
        },
    );
    let past_verify: Vec<String> = outcomes
        .iter()
        .filter(|o| crashed(o))
        .map(|o| {
            format!(
                "with a corrupted body the process reached a publish failpoint ({}) and died there: it got past \
                 the integrity check: {}",
                publish_points.join(", "),
                o.describe()
            )
        })
        .collect();
    let complete_final =
        phase.caches.iter().flat_map(|c| c.finals()).any(|f| f.content == Content::Complete(model.clone()));
    let extra = vec![phases::verdict(Invariant::FailuresHaveExpectedClass.name(), past_verify)];
    let after = Recovery {
        earlier: vec![phase],
        setup_errors: Vec::new(),
        extra,
        complete_final_left: complete_final,
    };
    recover(&mut s, after, &model, &url, &cache, None, &route)
}

/// Whether a snapshot holds a complete final of `model`.
pub fn has_complete_final(snapshot: &CacheSnapshot, model: &str) -> bool {
    snapshot.finals().iter().any(|f| f.content == Content::Complete(model.to_string()))
}
