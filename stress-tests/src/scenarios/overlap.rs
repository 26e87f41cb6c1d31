//! Forcing the dangerous overlap by events: a download is parked at a [`Gate`] in the middle of its body
//! and released only once every other live process of the fleet is parked at the gate too, blocked on one
//! of the cache's lock files (read from `/proc/locks`) or gone — and once a reader has scanned the caches
//! in full while the download was parked, so a final name holding a prefix (`direct-write`) is seen every
//! time, not by luck.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stress_cache_metadata::InvariantResult;

use crate::invariants::LiveLockObservation;
use crate::orchestrator::{self, Fleet};
use crate::proc_locks;
use crate::reader_probe::{ReaderProbe, ReaderReport};
use crate::scenario::ScenarioRun;
use crate::server::{Fault, FaultPlan, Gate, GatePoint};
use crate::snapshot::walk;

/// How long a gate may hold a download while the rest of the fleet catches up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a gated download parks: after 64 KiB or half the body, whichever is smaller (at least 1 byte).
pub fn gate_point(body_len: usize) -> GatePoint {
    GatePoint::AfterBytes((body_len / 2).clamp(1, 64 * 1024) as u64)
}

/// A plan that parks every response at [`gate_point`] until `gate` is released (responses arriving after
/// the release pass straight through).
pub fn gated_plan(gate: &Gate, body_len: usize) -> FaultPlan {
    FaultPlan::always(Fault::Gated { at: gate_point(body_len), gate: gate.clone() })
}

/// What happened while the gate held the download.
#[derive(Debug, Clone)]
pub struct Overlap {
    /// The condition never held: the gate was released by the deadline.
    pub by_deadline: bool,
    /// Responses parked at the gate when it was released.
    pub parked: u64,
    /// Live processes blocked on a cache lock file then.
    pub lock_waiters: usize,
    /// Processes already gone then.
    pub exited: usize,
    /// Time from the call to the release.
    pub waited: Duration,
    /// The full scan(s) a reader made while the download was parked.
    pub parked_scan: ReaderReport,
    /// Whether each process writing cache data while the download was parked held an exclusive lock.
    pub live_locks: LiveLockObservation,
    /// The gate, and when it was released (unix ms), for the record's timeline.
    pub released: (Gate, u64),
}

impl Overlap {
    /// One line saying how the overlap was forced (or not).
    pub fn describe(&self) -> String {
        let how = if self.by_deadline { "gate released by deadline" } else { "gate released by condition" };
        format!(
            "{how} after {} ms: {} response(s) parked, {} process(es) blocked on cache locks, {} exited; reader \
             made {} scan(s), {} read(s) while parked",
            self.waited.as_millis(),
            self.parked,
            self.lock_waiters,
            self.exited,
            self.parked_scan.scans,
            self.parked_scan.reads
        )
    }

    /// Hands what the overlap observed to the run: an overlap that never happened is a setup error (the
    /// scenario proved nothing); the parked scan's reads go to `readers_saw_only_complete_content`; the
    /// live lock check to `writer_holds_exclusive_lock`.
    pub fn record_into(self, run: &mut ScenarioRun<'_>) {
        if self.by_deadline {
            run.setup_error(format!("overlap not achieved: {}", self.describe()));
        }
        if self.parked_scan.reads > 0 {
            run.add_verdict(InvariantResult::checked(
                crate::invariants::Invariant::ReadersSawOnlyCompleteContent.name(),
                self.parked_scan
                    .bad_reads
                    .iter()
                    .map(|b| format!("while a download was parked: {b}"))
                    .collect(),
            ));
        }
        run.add_live_locks(self.live_locks);
        run.gate_released(&self.released.0, self.parked, self.released.1);
    }
}

/// Holds `gate` closed until every live process of `run`'s fleet is parked at it, blocked on a lock file
/// of one of `caches`, or exited, and some data file (not a lock) with at least one byte exists in the
/// caches (the parked download reached the disk); then scans the caches in full, and releases the gate.
/// After `timeout` it releases anyway ([`Overlap::by_deadline`]). Call after [`ScenarioRun::start_reader`].
pub fn hold_until_overlap(
    run: &ScenarioRun<'_>,
    gate: &Gate,
    caches: &[PathBuf],
    timeout: Duration,
) -> Overlap {
    hold_until_overlap_then(run, gate, caches, timeout, || {})
}

/// [`hold_until_overlap_then`] on the one cache `cache`, with [`DEFAULT_TIMEOUT`].
pub fn hold_cache_until_overlap_then(
    run: &ScenarioRun<'_>,
    gate: &Gate,
    cache: &Path,
    before_release: impl FnOnce(),
) -> Overlap {
    hold_until_overlap_then(run, gate, &[cache.to_path_buf()], DEFAULT_TIMEOUT, before_release)
}

/// [`hold_until_overlap`], running `before_release` after the parked scan and just before the release
/// (e.g. to empty the cache or make it unwritable while the download is parked).
pub fn hold_until_overlap_then(
    run: &ScenarioRun<'_>,
    gate: &Gate,
    caches: &[PathBuf],
    timeout: Duration,
    before_release: impl FnOnce(),
) -> Overlap {
    let start = Instant::now();
    let target = run.target();
    let files = &target.spec.files;
    let roles = stress_cache_metadata::FileRoles::from_validated(files);
    // Every fleet of the run counts: the main one and any joiners started while the download is parked.
    let fleets = run.fleets();
    let fleet = run.fleet();
    let total: usize = fleets.iter().map(|f| f.pids().len()).sum();
    let waiters = |_: &Fleet| -> usize {
        match &roles.lock {
            Some(pattern) => {
                fleets.iter().flat_map(|f| caches.iter().map(|c| f.lock_waiters(c, pattern).len())).sum()
            }
            None => 0,
        }
    };
    let alive_count = || -> usize { fleets.iter().map(|f| f.alive().len()).sum() };
    let data_on_disk = || caches.iter().any(|c| data_on_disk(run, c));
    // The parked downloader has done all it can once its bytes reached the disk — or, for a target that
    // buffers the body in memory, once it sleeps waiting for more input.
    let downloader_idle = || {
        let waiting: BTreeSet<u32> = match &roles.lock {
            Some(pattern) => {
                fleets.iter().flat_map(|g| caches.iter().flat_map(|c| g.lock_waiters(c, pattern))).collect()
            }
            None => BTreeSet::new(),
        };
        fleets
            .iter()
            .flat_map(|g| g.alive())
            .filter(|p| !waiting.contains(p))
            .all(orchestrator::blocked_waiting_for_input)
    };
    let held = fleet.wait_until(
        |f| {
            let parked = gate.parked() as usize;
            parked > 0 && alive_count() <= parked + waiters(f) && (data_on_disk() || downloader_idle())
        },
        timeout,
    );
    let (parked, lock_waiters, alive) = (gate.parked(), waiters(fleet), alive_count());
    let parked_scan = if parked > 0 {
        let models = target.models.clone();
        ReaderProbe::start(caches.to_vec(), files, models, Duration::from_secs(10)).stop()
    } else {
        ReaderReport::default()
    };
    // While the download is parked its writer is alive and mid-body: the moment to see who holds what.
    let mut live_locks = LiveLockObservation::default();
    if parked > 0 {
        let pids: Vec<u32> = fleets.iter().flat_map(|f| f.alive()).collect();
        for cache in caches {
            let (checks, witnesses, evidence) = proc_locks::writers_hold_exclusive_locks(&pids, cache, files);
            live_locks.checks += checks;
            live_locks
                .witnesses
                .extend(witnesses.into_iter().map(|w| format!("while a download was parked: {w}")));
            live_locks
                .evidence
                .extend(evidence.into_iter().map(|e| format!("while a download was parked: {e}")));
        }
    }
    before_release();
    gate.release();
    let released = (gate.clone(), orchestrator::unix_ms_now());
    Overlap {
        released,
        by_deadline: !held,
        parked,
        lock_waiters,
        exited: total.saturating_sub(alive),
        waited: start.elapsed(),
        parked_scan,
        live_locks,
    }
}

/// Whether some data file (not a lock) with at least one byte exists under `cache`: a parked download
/// has reached the disk.
pub fn data_on_disk(run: &ScenarioRun<'_>, cache: &Path) -> bool {
    let lock = stress_cache_metadata::FileRoles::from_validated(&run.target().spec.files).lock;
    walk(cache)
        .iter()
        .any(|e| e.is_file && e.len > 0 && !lock.as_ref().is_some_and(|p| p.matches(&e.relative)))
}
