//! Crashes without failpoints: the harness sends SIGKILL when a process reaches a phase it can observe
//! from outside — so every target gets crash coverage, not only one that compiles failpoints in.
//!
//! The download of the one victim is parked at a server gate, so the phase holds still while it is
//! observed (events, not timing): the gate stops the body at a known byte, then `/proc/locks` shows the
//! lock taken, `/proc/<pid>/fd` shows a file in the cache open for writing, and "asleep waiting for
//! input" shows the process has handled every byte it was sent. Then the kill, then a fleet of clean
//! processes on the same cache (they must recover from whatever the victim left, concurrently), then a
//! recovery run, and every invariant over all of it.

use std::path::Path;
use std::time::Duration;

use stress_cache_metadata::{FileRoles, Role, ScenarioRecord};

use crate::orchestrator::{Fleet, blocked_waiting_for_input};
use crate::proc_locks;
use crate::scenario::ScenarioError;
use crate::server::{Fault, FaultPlan, Gate, GatePoint};
use crate::snapshot::walk;

use super::network::{FAULT_DEADLINE, FAULT_PROCESSES, faults_not_injected};
use super::{ScenarioOptions, setup};

/// How long a phase may take to show once the victim's response is parked (a cold start of the target
/// included); far above what it needs, and the only bound on the observation loop.
const PHASE_TIMEOUT: Duration = Duration::from_secs(20);

/// A phase of one download the harness can see from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedPhase {
    /// The process holds a lock of the cache (a `/proc/locks` line, or for `lock-kind = "exists"` a
    /// lock file) and waits for the response head.
    LockTaken,
    /// The process has a file in the cache open for writing (not a lock) after the first body byte.
    TempCreated,
    /// Half the body was sent, the process has handled all of it (asleep waiting for input) and has a
    /// file in the cache open for writing.
    TempHalfWritten,
    /// A file under a final name exists and the process that published it is still alive: its tracer
    /// holds it for a moment on the way out of its first rename (`strace -e inject=...:delay_exit`), so
    /// the kill lands after the publish and before whatever the process does next (unlock, sidecars,
    /// cleanup).
    FinalRenamed,
}

/// The victim's tracer holds it this long after its first rename returns: the window in which the
/// harness sees the final and kills. Far above the time the observation takes; the wait for the event
/// is what synchronises, this only keeps the process alive past it. It is also what the kill costs: the
/// tracer reports the killed victim to the harness only when the hold ends (it was 3 s: most of the
/// scenario's time); 1 s is still hundreds of the harness's 1 ms polls, under load included.
const AFTER_RENAME_HOLD: &str = "rename,renameat,renameat2:delay_exit=1s:when=1";

impl ObservedPhase {
    /// The record name of the scenario that kills at this phase.
    pub fn scenario_name(self) -> &'static str {
        match self {
            ObservedPhase::LockTaken => "killed_once_the_lock_is_taken_then_recovers",
            ObservedPhase::TempCreated => "killed_once_a_temp_file_is_created_then_recovers",
            ObservedPhase::TempHalfWritten => "killed_with_a_temp_file_half_written_then_recovers",
            ObservedPhase::FinalRenamed => "killed_right_after_publishing_then_recovers",
        }
    }

    /// Where the victim's response is parked (none: it downloads freely and is held by its tracer).
    fn gate_point(self, half: u64) -> Option<GatePoint> {
        match self {
            ObservedPhase::LockTaken => Some(GatePoint::BeforeHeaders),
            ObservedPhase::TempCreated => Some(GatePoint::AfterBytes(1)),
            ObservedPhase::TempHalfWritten => Some(GatePoint::AfterBytes(half)),
            ObservedPhase::FinalRenamed => None,
        }
    }
}

/// What the observation of a phase found.
enum Seen {
    /// The phase holds; the description goes into the record.
    Reached(String),
    /// The target does not have this phase (e.g. no lock files, or the body is kept in memory): the
    /// scenario does not apply, with the reason.
    NotApplicable(String),
    /// The victim exited or the phase never showed: a setup error.
    Missed(String),
}

/// Kills one process at `phase`, then runs clean processes on the same cache; see the module docs.
pub fn killed_at_then_recovers(
    phase: ObservedPhase,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    killed_at(phase.scenario_name(), phase, FaultPlan::default(), opts)
}

/// Kills one process with half the body written, then restarts clean processes against a server that
/// answers a `Range` request first with 416, then with 200 and the whole body (RFC 9110 lets a server
/// ignore `Range`). A client that resumes must start over: one that takes 416 as "already complete"
/// publishes the prefix, one that appends the 200 body to its partial publishes prefix + model; both are
/// a final that is not what was served (`final_artifacts_match_checksum`). A target that never resumes
/// passes as it should.
pub fn resume_after_a_kill_gets_416_then_a_full_200(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let restart = FaultPlan::new([Fault::RangeNotSatisfiable, Fault::IgnoreRange]).then(Fault::IgnoreRange);
    killed_at("resume_after_a_kill_gets_416_then_a_full_200", ObservedPhase::TempHalfWritten, restart, opts)
}

fn killed_at(
    name: &str,
    phase: ObservedPhase,
    restart: FaultPlan,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(name, opts)?;
    if phase == ObservedPhase::FinalRenamed && !s.tier().trace {
        return Ok(s.not_applicable("the moment after a publish is held by the tracer, and STRESS_TRACE=off"));
    }
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let (small, _) = setup::small_and_large(s.target());
    let half = (s.target().model(&small).bytes.len() / 2) as u64;
    let gate = Gate::named(format!("{name}-victim"));
    let parked = phase.gate_point(half).map(|at| Fault::Gated { at, gate: gate.clone() });
    let route = server.add_route(setup::model_route(s.target(), &small, FaultPlan::new(parked.clone())));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(FAULT_PROCESSES);
    let mut victim = s.writer(0, &small, &url, &cache).role("victim");
    if phase == ObservedPhase::FinalRenamed {
        victim.trace_inject = Some(AFTER_RENAME_HOLD.to_string());
    }
    let restarted: Vec<_> = (1..=n).map(|i| s.writer(i, &small, &url, &cache)).collect();
    let recovery = s.writer(n + 1, &small, &url, &cache).role("recovery");
    let roles = FileRoles::from_validated(&s.target().spec.files);
    let lock_kind_exists = s.target().spec.files.lock_kind == stress_cache_metadata::LockKind::Exists;

    let mut run = s.launch(vec![victim])?;
    run.expect(0, &[], true);
    let pid = run.fleet().pids()[0];
    let at_gate = match &parked {
        Some(_) => gate.wait_arrivals(1, PHASE_TIMEOUT).err(),
        None => None,
    };
    let seen = match at_gate {
        Some(e) => Seen::Missed(format!("the victim's download never reached the server gate: {e}")),
        None => observe(run.fleet(), pid, phase, &cache, &roles, lock_kind_exists),
    };
    match seen {
        Seen::Reached(what) => {
            run.fleet().kill(pid);
            log::info!("{name}: SIGKILL to pid {pid} at {phase:?}: {what}");
        }
        Seen::NotApplicable(why) => {
            run.release_gate(&gate);
            run.wait();
            return Ok(run.scenario().not_applicable(&why));
        }
        Seen::Missed(why) => {
            run.setup_error(why);
            run.fleet().kill(pid);
        }
    }
    // The victim is dead: the parked response goes on into a closed socket.
    run.release_gate(&gate);
    run.wait();
    route.set_schedule(restart);
    run.join(restarted)?;
    run.body_bound(&small, 2);
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    for e in faults_not_injected(&route, &parked.into_iter().collect::<Vec<_>>()) {
        run.setup_error(e);
    }
    route.set_schedule(FaultPlan::default());
    run.recover(recovery);
    Ok(run.evaluate())
}

/// Watches the victim until `phase` shows (bounded by [`PHASE_TIMEOUT`]).
fn observe(
    fleet: &Fleet,
    pid: u32,
    phase: ObservedPhase,
    cache: &Path,
    roles: &FileRoles,
    exists: bool,
) -> Seen {
    let writing = || proc_locks::open_for_write(&[pid], cache, roles.lock.as_ref());
    match phase {
        ObservedPhase::LockTaken => {
            let Some(lock) = roles.lock.as_ref() else {
                return Seen::NotApplicable(
                    "the target declares no lock files, so there is no lock to be killed holding".into(),
                );
            };
            let held = || {
                let files = proc_locks::lock_file_ids(cache, lock);
                if exists {
                    !files.is_empty()
                } else {
                    let lines = proc_locks::read_proc_locks().unwrap_or_default();
                    !proc_locks::holding(&lines, &[pid], &files).is_empty()
                }
            };
            // Parked before the response head: once it sleeps waiting for input it has taken every lock
            // it takes before downloading.
            if fleet.wait_until(|_| blocked_waiting_for_input(pid) && held(), PHASE_TIMEOUT) {
                Seen::Reached(format!(
                    "pid {pid} holds a lock of {} and waits for the response",
                    cache.display()
                ))
            } else if !fleet.alive().contains(&pid) {
                Seen::Missed(format!("the victim (pid {pid}) exited before it was seen holding a lock"))
            } else if blocked_waiting_for_input(pid) {
                Seen::NotApplicable(
                    "the target requests the model without holding a lock of the cache: no lock-taken phase"
                        .into(),
                )
            } else {
                Seen::Missed(format!("pid {pid} was never seen holding a lock within {PHASE_TIMEOUT:?}"))
            }
        }
        ObservedPhase::TempCreated | ObservedPhase::TempHalfWritten => {
            let idle = || blocked_waiting_for_input(pid);
            if fleet.wait_until(|_| idle() && !writing().is_empty(), PHASE_TIMEOUT) {
                let files: Vec<String> = writing()
                    .iter()
                    .map(|w| {
                        let len = std::fs::metadata(&w.path).map(|m| m.len()).unwrap_or(0);
                        format!("{} ({len} B)", w.path.display())
                    })
                    .collect();
                Seen::Reached(format!("pid {pid} is writing {}", files.join(", ")))
            } else if !fleet.alive().contains(&pid) {
                Seen::Missed(format!("the victim (pid {pid}) exited before its download was parked"))
            } else if idle() {
                Seen::NotApplicable(
                    "the target keeps the download in memory (no file of the cache open for writing while the \
                     body arrives): no temp-file phase to be killed in"
                        .into(),
                )
            } else {
                Seen::Missed(format!(
                    "pid {pid} never settled with its download parked within {PHASE_TIMEOUT:?}"
                ))
            }
        }
        ObservedPhase::FinalRenamed => {
            let published = || {
                walk(cache)
                    .iter()
                    .any(|e| (e.is_file || e.is_symlink) && roles.role_of(&e.relative) == Some(Role::Final))
            };
            if fleet.wait_until(|f| published() && f.alive().contains(&pid), PHASE_TIMEOUT) {
                Seen::Reached(format!("a final exists in {} and pid {pid} is still alive", cache.display()))
            } else if published() {
                Seen::NotApplicable(
                    "the victim exited before it was seen alive after its publish: it publishes without a rename \
                     its tracer can hold"
                        .into(),
                )
            } else {
                Seen::Missed(format!("pid {pid} published no final within {PHASE_TIMEOUT:?}"))
            }
        }
    }
}
