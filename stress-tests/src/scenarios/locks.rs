//! Cross-process lock semantics, observed through `/proc/locks` while a process is held (SIGSTOP) at a
//! failpoint: a live holder keeps every other process of the entry waiting until it has published, and a
//! killed holder's lock is released.

use std::collections::BTreeSet;
use std::path::Path;

use stress_cache_metadata::{FilePattern, ScenarioRecord};

use crate::invariants::{Expectations, Invariant, LiveLockObservation, OutcomeClass};
use crate::orchestrator::{Fleet, ProcessOutcome};
use crate::proc_locks;
use crate::scenario::{Scenario, ScenarioError, ScenarioRun, TracedFleet};
use crate::server::{FaultPlan, RouteHandle};
use crate::snapshot::CacheSnapshot;
use crate::target::ProcessPlan;

use super::ScenarioOptions;
use super::holds;
use super::phases::SharedModel;
use super::phases::{self, LIVE_HOLDER_BLOCKS_OTHERS, PhaseInput};

/// Processes waiting behind the holder, before the `STRESS_PROCESSES` cap.
const WAITERS: usize = 7;

/// Waits (bounded) until every live process of `fleet` is blocked on a lock under `cache`, and returns
/// the evidence against "the live holder keeps the others waiting": processes that exited meanwhile,
/// and processes neither blocked nor exited at the deadline.
fn others_wait(fleet: &Fleet, cache: &Path, lock_pattern: &FilePattern, moment: &str) -> Vec<String> {
    let all_blocked = fleet.wait_until(
        |f| {
            let waiting = f.lock_waiters(cache, lock_pattern);
            f.alive().iter().all(|p| waiting.contains(p))
        },
        phases::EVENT_TIMEOUT,
    );
    let alive: BTreeSet<u32> = fleet.alive().into_iter().collect();
    let mut evidence = Vec::new();
    let exited: Vec<u32> = fleet.pids().into_iter().filter(|p| !alive.contains(p)).collect();
    if !exited.is_empty() {
        evidence.push(format!(
            "{moment}: pids {exited:?} finished although the holder had not released the lock"
        ));
    }
    if !all_blocked {
        let waiting = fleet.lock_waiters(cache, lock_pattern);
        let free: Vec<u32> = alive.iter().copied().filter(|p| !waiting.contains(p)).collect();
        evidence.push(format!(
            "{moment}: pids {free:?} neither blocked on a lock nor finished within {:?}",
            phases::EVENT_TIMEOUT
        ));
    }
    evidence
}

/// Waits (bounded) for the holder to stop at its failpoint; `Err` is the setup error when it never does.
fn holder_stopped(fleet: &Fleet, pid: u32, what: &str) -> Result<(), String> {
    // Not any stop: with holds armed, the tracer also stops the holder after each `close` and sync.
    if fleet.wait_until(|f| holds::stopped_outside_injection(f, pid), phases::EVENT_TIMEOUT) {
        Ok(())
    } else {
        Err(format!(
            "the holder (pid {pid}) never stopped at failpoint {what} within {:?}",
            phases::EVENT_TIMEOUT
        ))
    }
}

/// Live check while `pid` is stopped at a failpoint after taking its lock: it must hold an exclusive lock on
/// one of the cache's lock files (`/proc/locks`).
fn holder_holds_exclusive(
    pid: u32,
    cache: &Path,
    lock_pattern: &FilePattern,
    moment: &str,
) -> LiveLockObservation {
    let ids = proc_locks::lock_file_ids(cache, lock_pattern);
    let lines = proc_locks::read_proc_locks().unwrap_or_default();
    let holds =
        lines.iter().any(|l| !l.blocked && l.write && l.pid == i64::from(pid) && ids.contains(&l.file()));
    let line = format!("{moment}: pid {pid}");
    if holds {
        LiveLockObservation {
            checks: 1,
            witnesses: vec![format!("{line} holds an exclusive lock of the cache")],
            evidence: vec![],
        }
    } else {
        LiveLockObservation {
            checks: 1,
            witnesses: vec![],
            evidence: vec![format!(
                "{line} holds no exclusive lock on any lock file of {} ({})",
                cache.display(),
                lock_pattern.as_str()
            )],
        }
    }
}

/// A holder stopped (or not) at its first failpoint in a fleet of its own, and the waiters launched
/// behind it.
struct HeldHolder<'s> {
    run: ScenarioRun<'s>,
    holder_fleet: TracedFleet,
    pid: u32,
    /// `Err`: the holder never stopped at its failpoint (the setup error).
    stopped: Result<(), String>,
    /// The recovery writer, run after everyone.
    last: ProcessPlan,
    /// The holds of the holder and the waiters, when armed ([`holds`]).
    holds: Option<holds::Holds>,
}

/// Starts `holder` alone, waits (bounded) for it to stop at `failpoint`, then launches the waiters
/// behind it (writers `1..n`; writer `n` is the recovery run). With `hold`, the holder and the
/// waiters run with [`holds::INJECT`] and are watched ([`holds::Holds`]).
fn launch_behind_holder<'s>(
    s: &'s mut Scenario,
    holder: &ProcessPlan,
    shared: &SharedModel,
    failpoint: &str,
    hold: bool,
) -> Result<HeldHolder<'s>, ScenarioError> {
    let SharedModel { model, url, cache, .. } = shared;
    let n = s.tier().capped(WAITERS + 1).max(2);
    let inject = hold.then(|| holds::INJECT.to_string());
    let mut holder = holder.clone();
    holder.trace_inject.clone_from(&inject);
    let others: Vec<ProcessPlan> = (1..n)
        .map(|i| ProcessPlan { trace_inject: inject.clone(), ..s.writer(i, model, url, cache) })
        .collect();
    let last = s.writer(n, model, url, cache).role("recovery");
    let holder_fleet = phases::side_fleet(s, "holder", std::slice::from_ref(&holder))?;
    let pid = holder_fleet.fleet.pids()[0];
    let lock = stress_cache_metadata::FileRoles::from_validated(&s.target().spec.files).lock;
    let holds = hold.then(|| holds::Holds::start(vec![pid], vec![cache.clone()], lock));
    let stopped = holder_stopped(&holder_fleet.fleet, pid, failpoint);
    let run = s.launch(others)?;
    if let Some(h) = &holds {
        h.watch(&run.fleet().pids());
    }
    Ok(HeldHolder { run, holder_fleet, pid, stopped, last, holds })
}

/// At `moment` (the holder stopped at a failpoint holding the lock): the holder must hold an exclusive
/// lock and every other live process must wait on it.
fn observe_held(
    run: &mut ScenarioRun<'_>,
    pid: u32,
    cache: &Path,
    lock_pattern: &FilePattern,
    moment: &str,
    evidence: &mut Vec<String>,
) {
    run.add_live_locks(holder_holds_exclusive(pid, cache, lock_pattern, moment));
    evidence.extend(others_wait(run.fleet(), cache, lock_pattern, moment));
}

/// Reaps the holder, waits for the others, checks the holder's phase and the live-holder verdict, runs
/// the recovery writer and evaluates the scenario.
fn conclude(
    held: HeldHolder<'_>,
    holder: &ProcessPlan,
    killed: bool,
    evidence: Vec<String>,
    route: &RouteHandle,
) -> ScenarioRecord {
    let HeldHolder { mut run, mut holder_fleet, last, holds, .. } = held;
    let holder_outcomes = run.reap_side(&mut holder_fleet);
    run.wait();
    if let Some(h) = holds {
        run.record_holds(h);
    }
    let phase = holder_phase(run.scenario(), holder, &holder_outcomes, killed);
    run.add_phase(phase);
    run.add_verdict(phases::verdict(LIVE_HOLDER_BLOCKS_OTHERS, evidence));
    run.recover(last);
    run.served_from_routes(&[route]);
    run.evaluate()
}

fn holder_phase_expectations(
    target: &crate::target::Target,
    plan: &ProcessPlan,
    killed: bool,
) -> Expectations {
    let mut e = Expectations::clean(target, std::slice::from_ref(plan));
    if killed {
        e.processes[0] = e.processes[0].clone().allow(&[OutcomeClass::Crashed]).crash();
    }
    e
}

/// Writer A is armed to pause before and after its rename (it holds the exclusive lock at both
/// points); once A is stopped before the rename, B..N start and must all block on the lock; A resumes
/// and stops again right after the rename, where B..N must still be blocked; then A resumes: everyone
/// succeeds with one download. A build that releases the lock before publishing lets B..N finish (or
/// download again) while A has not finished publishing.
pub fn writer_paused_before_publish_keeps_others_waiting(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario("writer_paused_before_publish_keeps_others_waiting", opts)?;
    let spec = s.target().spec.clone();
    let Some(fps) = spec.failpoints.clone() else {
        return Ok(s.not_applicable("the target declares no failpoints"));
    };
    let before_rename = fps.names.iter().find(|n| n.contains("before_rename") && n.starts_with("cache"));
    let after_rename = fps.names.iter().find(|n| n.contains("after_rename"));
    let (Some(before_rename), Some(after_rename), Some(pause), Some(lock_pattern)) = (
        before_rename.cloned(),
        after_rename.cloned(),
        fps.pause_action.clone(),
        stress_cache_metadata::FileRoles::from_validated(&spec.files).lock,
    ) else {
        return Ok(s.not_applicable("needs before/after-rename failpoints, a pause action and lock files"));
    };
    let shared = phases::shared_model(&s, FaultPlan::default())?;
    let SharedModel { target, model, route, url, cache, .. } = &shared;
    let armed = format!("{};{}", phases::arm(&before_rename, &pause), phases::arm(&after_rename, &pause));
    let holder = s.writer(0, model, url, cache).failpoints(Some(&armed)).role("paused-writer");
    // Holds: a holder that lets go of the lock before it publishes (`unlock-before-rename`) is held
    // right after the release until the waiter that took the lock has had its go, so the waiter
    // finds no final and downloads again in every run, not when the scheduler says.
    let mut held = launch_behind_holder(&mut s, &holder, &shared, &before_rename, true)?;
    let pid = held.pid;
    let mut evidence = Vec::new();
    match held.stopped.clone() {
        Ok(()) => {
            let moment = format!("holder stopped at {before_rename}");
            observe_held(&mut held.run, pid, cache, &lock_pattern, &moment, &mut evidence);
            let _ = held.holder_fleet.fleet.resume(pid);
            let published = held.holder_fleet.fleet.wait_until(
                |f| holds::stopped_outside_injection(f, pid) && complete_final(target, cache, model),
                phases::EVENT_TIMEOUT,
            );
            if published {
                let moment = format!("holder stopped at {after_rename}");
                observe_held(&mut held.run, pid, cache, &lock_pattern, &moment, &mut evidence);
            } else {
                evidence.push(format!(
                    "the holder (pid {pid}) never stopped at {after_rename} with the model published"
                ));
            }
            let _ = held.holder_fleet.fleet.resume(pid);
        }
        Err(e) => {
            let _ = held.holder_fleet.fleet.resume(pid);
            held.run.setup_error(e);
        }
    }
    Ok(conclude(held, &holder, false, evidence, route))
}

fn complete_final(target: &crate::target::Target, cache: &Path, model: &str) -> bool {
    let snapshot = CacheSnapshot::take(cache, &target.spec.files, &target.models);
    super::crash::has_complete_final(&snapshot, model)
}

fn holder_phase(
    s: &crate::scenario::Scenario,
    plan: &ProcessPlan,
    outcomes: &[ProcessOutcome],
    killed: bool,
) -> crate::scenario::Phase {
    let mut expectations = holder_phase_expectations(s.target(), plan, killed);
    expectations.skip(
        Invariant::OneFinalArtifactPerModel,
        "the holder's cache is checked with the others' (same dir)",
    );
    phases::check_phase(
        s,
        PhaseInput {
            label: "holder",
            expectations,
            outcomes,
            caches: Vec::new(),
            compiled: Vec::new(),
            compiled_reference: None,
            served: None,
        },
    )
}

/// Process A is armed to pause right after taking the exclusive lock; B..N start and must all block on
/// the lock (`/proc/locks`); at that moment the lock probe must see A's lock (a positive check that the
/// `no_lock_held` probe works); then A is killed (SIGKILL): the kernel releases its lock, the others
/// proceed and succeed with one download, and no lock is left held.
pub fn live_lock_holder_blocks_others_and_a_killed_holder_releases(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario("live_lock_holder_blocks_others_and_a_killed_holder_releases", opts)?;
    let spec = s.target().spec.clone();
    let Some(fps) = spec.failpoints.clone() else {
        return Ok(s.not_applicable("the target declares no failpoints"));
    };
    let after_lock = fps.names.iter().find(|n| n.contains("after_lock")).cloned();
    let (Some(after_lock), Some(pause), Some(lock_pattern)) = (
        after_lock,
        fps.pause_action.clone(),
        stress_cache_metadata::FileRoles::from_validated(&spec.files).lock,
    ) else {
        return Ok(s.not_applicable("needs an after-lock failpoint, a pause action and lock files"));
    };
    let shared = phases::shared_model(&s, FaultPlan::default())?;
    let SharedModel { model, route, url, cache, .. } = &shared;
    let holder =
        s.writer(0, model, url, cache).failpoints(Some(&phases::arm(&after_lock, &pause))).role("holder");
    let mut held = launch_behind_holder(&mut s, &holder, &shared, &after_lock, false)?;
    let pid = held.pid;
    let mut evidence = Vec::new();
    match held.stopped.clone() {
        Ok(()) => {
            let moment = format!("holder stopped at {after_lock}");
            observe_held(&mut held.run, pid, cache, &lock_pattern, &moment, &mut evidence);
        }
        Err(e) => {
            held.run.setup_error(e);
        }
    }
    held.holder_fleet.fleet.kill(pid);
    Ok(conclude(held, &holder, true, evidence, route))
}
