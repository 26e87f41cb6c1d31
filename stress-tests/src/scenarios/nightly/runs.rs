//! Target runs the soak and the sustained scale phase make by the thousand: one process at a time
//! ([`run_once`]: a one-process [`Fleet`], so the same start line, process group, watchdog and `wait4`
//! reaping as every scenario), or a rolling pool of them ([`rolling_pool`]: each slot starts its next run
//! the moment `wait4` reaps its last one). Untraced: `strace -D` multiplies a run's cost and these parts
//! measure the target's latency and rate; the trace invariants are observed on the traced runs of the
//! same scenarios. Each run is judged as it is reaped ([`judge`]), while its metadata file is its own.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::invariants::{OutcomeClass, ProcessExpectation};
use crate::orchestrator::{Fleet, FleetError, FleetProcess, ProcessOutcome};
use crate::run_metadata::RunMetadata;
use crate::target::{ProcessPlan, Target};

/// Watchdog deadline of one run.
pub const RUN_DEADLINE: Duration = Duration::from_secs(25);

/// Starts `plan` as a one-process fleet in `dir` (its stdout/stderr files are overwritten by the next
/// run there) and reaps it.
pub fn run_once(dir: &Path, target: &Target, plan: &ProcessPlan) -> Result<ProcessOutcome, FleetError> {
    let process = FleetProcess::new(&plan.role, target.command_for(plan));
    let mut fleet = Fleet::start(dir, vec![process], RUN_DEADLINE)?;
    let outcome = fleet.wait().into_iter().next();
    outcome.ok_or(FleetError::NotReady { ready: 0, total: 1, waited: RUN_DEADLINE })
}

/// Why a reaped run failed, or `None`: a class other than ok (hung, signalled, any error exit), a model
/// other than the one asked for in its metadata file, or — with `warm` — a run that downloaded although
/// the cache held the model. Call before the plan's next run overwrites its metadata file.
pub fn judge(target: &Target, plan: &ProcessPlan, outcome: &ProcessOutcome, warm: bool) -> Option<String> {
    let class = OutcomeClass::of(outcome, &target.spec.exit_codes);
    if class != OutcomeClass::Ok {
        let tail = outcome.stderr_tail(300);
        return Some(format!(
            "{} ({}): {}",
            outcome.describe(),
            class.name(),
            tail.trim().replace('\n', " | ")
        ));
    }
    let (Some(decl), Some(path)) = (&target.spec.metadata_file, target.metadata_path(plan)) else {
        return None;
    };
    let meta = match RunMetadata::read(decl, &path) {
        Ok(m) => m,
        Err(e) => return Some(format!("pid {} succeeded but: {e}", outcome.pid)),
    };
    let expected = ProcessExpectation::for_plan(target, plan).model_sha256;
    if let (Some(want), Some(got)) = (&expected, &meta.sha256)
        && want != got
    {
        return Some(format!(
            "pid {} asked for {} (sha256 {}) but loaded sha256 {}",
            outcome.pid,
            plan.model,
            &want[..16.min(want.len())],
            &got[..16.min(got.len())]
        ));
    }
    if warm && meta.download_hit == Some(false) {
        return Some(format!("pid {}: a warm run missed the cache and downloaded again", outcome.pid));
    }
    None
}

/// One run of a pool: the slot (its plan) and the outcome, judged.
#[derive(Debug, Clone)]
pub struct PoolRun {
    /// Slot index (the plan it ran).
    pub slot: usize,
    /// The reaped process.
    pub outcome: ProcessOutcome,
    /// [`judge`]'s evidence, if it failed.
    pub failure: Option<String>,
}

/// What a pool did.
#[derive(Debug)]
pub struct PoolReport {
    /// Every run, in the order they were reaped.
    pub runs: Vec<PoolRun>,
    /// From the first start to the last reap.
    pub wall: Duration,
    /// A fleet that could not start (the pool stopped that slot).
    pub errors: Vec<String>,
}

/// Keeps one process per plan (slot) running until `duration` has passed or `max_runs` have started:
/// each slot's thread starts its next run as soon as its last one is reaped (`wait4`, an event: no
/// sleep). Runs already started when the time is up finish and count. Fleet dirs are `dir/slot-<i>`.
pub fn rolling_pool(
    dir: &Path,
    target: &Target,
    plans: &[ProcessPlan],
    duration: Duration,
    max_runs: usize,
) -> PoolReport {
    let started = Instant::now();
    let end = started + duration;
    let begun = AtomicUsize::new(0);
    let runs = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (slot, plan) in plans.iter().enumerate() {
            let (begun, runs, errors) = (&begun, &runs, &errors);
            let slot_dir = dir.join(format!("slot-{slot}"));
            scope.spawn(move || {
                // Bounded twice: by the clock and by the pool-wide run count.
                for _ in 0..max_runs {
                    if Instant::now() >= end || begun.fetch_add(1, Ordering::SeqCst) >= max_runs {
                        break;
                    }
                    match run_once(&slot_dir, target, plan) {
                        Ok(outcome) => {
                            let failure = judge(target, plan, &outcome, false);
                            let run = PoolRun { slot, outcome, failure };
                            runs.lock().unwrap_or_else(|p| p.into_inner()).push(run);
                        }
                        Err(e) => {
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("slot {slot}: {e}"));
                            break;
                        }
                    }
                }
            });
        }
    });
    PoolReport {
        runs: runs.into_inner().unwrap_or_else(|p| p.into_inner()),
        wall: started.elapsed(),
        errors: errors.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

/// At most `max` lines of `evidence`, then one line saying how many more there were.
pub fn capped(mut evidence: Vec<String>, max: usize) -> Vec<String> {
    if evidence.len() > max {
        let more = evidence.len() - max;
        evidence.truncate(max);
        evidence.push(format!("... and {more} more"));
    }
    evidence
}
