//! Lock integrity when the lock files themselves are damaged (seed 003): a lock file deleted while its
//! holder holds it, garbage written into one, one replaced by a directory. (A holder SIGKILLed while
//! holding is the PR tier's `live_lock_holder_blocks_others_and_a_killed_holder_releases`.) Each case: no
//! hang (`finished_before_watchdog`), no two holders acting on the entry at once (the trace invariants and
//! the live `/proc/locks` check of the parked download), and a clear error or a recovery.
//!
//! Overlap is forced by events only: the holder stops at a failpoint (`return(pause)` = SIGSTOP), the
//! newcomers' download parks at a gate until every other process is parked or blocked on a lock
//! (`/proc/locks`), and the holder is resumed only inside that window.

use std::path::{Path, PathBuf};

use stress_cache_metadata::{FilePattern, FileRoles, ScenarioRecord};

use crate::invariants::{Expectations, Invariant, OutcomeClass, ServedCounts};
use crate::scenario::{Scenario, ScenarioError};
use crate::server::{FaultPlan, Gate};
use crate::snapshot::walk;
use crate::target::ProcessPlan;

use crate::scenarios::phases::{self, PhaseInput, SharedModel};
use crate::scenarios::{ScenarioFn, ScenarioOptions, overlap, setup};

/// Record name: a lock file deleted while its holder holds it.
pub const DELETED: &str = "lock_file_deleted_under_a_holder_never_gives_two_holders";
/// Record name: garbage written into a lock file.
pub const GARBAGE: &str = "garbage_in_a_lock_file_changes_nothing";
/// Record name: a lock file replaced by a directory.
pub const DIRECTORY: &str = "lock_file_replaced_by_a_directory_fails_cleanly_then_recovers";
/// Record name: a stale lock file of a dead process (`lock-kind = "exists"`).
pub const STALE: &str = "stale_lock_file_of_a_dead_process_is_broken";

/// The lock-integrity scenarios, by record name.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    (DELETED, lock_file_deleted_under_a_holder_never_gives_two_holders),
    (GARBAGE, garbage_in_a_lock_file_changes_nothing),
    (DIRECTORY, lock_file_replaced_by_a_directory_fails_cleanly_then_recovers),
    (STALE, stale_lock_file_of_a_dead_process_is_broken),
];

/// Processes started after the lock file is damaged, before the `STRESS_PROCESSES` cap.
const NEWCOMERS: usize = 6;

/// The files under `cache` matching the lock pattern.
fn lock_files(cache: &Path, pattern: &FilePattern) -> Vec<PathBuf> {
    walk(cache).into_iter().filter(|e| e.is_file && pattern.matches(&e.relative)).map(|e| e.path).collect()
}

/// The holder is armed to stop at the stale-cleanup failpoint: it holds the entry's exclusive lock, has
/// looked again (no final yet) and is about to remove this key's partials and download. Its lock file is
/// deleted under it. Newcomers start: the first creates a new lock file, locks it and downloads; its body
/// parks at a gate while the others block on the new lock (`/proc/locks`). In that window the holder is
/// resumed, and the gate is released only once it has shown what it does: blocked on the new lock (it
/// noticed its lock file is gone and started over), or acting on the entry (its own download parked at
/// the gate too, having removed the newcomer's live partial as "stale").
///
/// Catches a target that trusts a lock whose file was deleted (`lock-not-revalidated`: the holder deletes
/// the live partial of the newcomer, `live_temp_files_left_alone`; that newcomer's publish fails,
/// `failures_have_expected_class`; two downloads, `download_amplification_bounded`).
///
/// `lock_files_stable` is skipped: the harness itself deletes the held lock file, so two processes
/// locking two inodes of one lock name for a moment is the premise here, not a finding; what is judged is
/// whether the old holder acts on the entry next to the new one.
pub fn lock_file_deleted_under_a_holder_never_gives_two_holders(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario(DELETED, opts)?;
    let spec = s.target().spec.clone();
    let Some(fps) = spec.failpoints.clone() else {
        return Ok(s.not_applicable("the target declares no failpoints"));
    };
    let cleanup = fps.names.iter().find(|n| n.contains("stale_cleanup")).cloned();
    let (Some(cleanup), Some(pause), Some(lock_pattern)) =
        (cleanup, fps.pause_action.clone(), FileRoles::from_validated(&spec.files).lock)
    else {
        return Ok(s.not_applicable("needs a stale-cleanup failpoint, a pause action and lock files"));
    };
    let gate = Gate::named("lock-deleted-mid-body");
    let SharedModel { target, server: _server, model, route, url, cache } =
        phases::gated_shared_model(&s, &gate)?;
    let holder =
        s.writer(0, &model, &url, &cache).failpoints(Some(&phases::arm(&cleanup, &pause))).role("holder");
    let n = s.tier().capped(NEWCOMERS).max(2);
    let newcomers: Vec<ProcessPlan> = (1..=n).map(|i| s.writer(i, &model, &url, &cache)).collect();
    let recovery = s.writer(n + 1, &model, &url, &cache).role("recovery");
    let mut holder_fleet = phases::side_fleet(&mut s, "holder", std::slice::from_ref(&holder))?;
    let pid = holder_fleet.fleet.pids()[0];
    let stopped = holder_fleet.fleet.wait_until(|f| f.is_stopped(pid), phases::EVENT_TIMEOUT);
    let deleted: Vec<PathBuf> = lock_files(&cache, &lock_pattern);
    let mut setup_error = None;
    if !stopped {
        setup_error = Some(format!("the holder (pid {pid}) never stopped at {cleanup}"));
    } else if deleted.is_empty() {
        setup_error = Some(format!("the stopped holder left no lock file under {}", cache.display()));
    }
    for path in &deleted {
        if let Err(e) = std::fs::remove_file(path) {
            setup_error = Some(format!("cannot delete the held lock file {}: {e}", path.display()));
        }
    }
    let mut run = s.launch(newcomers)?;
    run.skip(
        Invariant::LockFilesStable,
        "the harness deletes the held lock file itself: two inodes of one lock name are the premise",
    );
    if let Some(e) = setup_error {
        run.setup_error(e);
    }
    run.start_reader();
    let mut after_resume = String::new();
    let forced = overlap::hold_cache_until_overlap_then(&run, &gate, &cache, || {
        let _ = holder_fleet.fleet.resume(pid);
        let shown = holder_fleet.fleet.wait_until(
            |f| {
                f.alive().is_empty()
                    || f.lock_waiters(&cache, &lock_pattern).contains(&pid)
                    || gate.parked() > 1
            },
            phases::EVENT_TIMEOUT,
        );
        after_resume = match (shown, gate.parked() > 1) {
            (false, _) => "the resumed holder neither blocked, parked nor exited in time".into(),
            (true, true) => "the resumed holder downloaded next to the new holder".into(),
            (true, false) => "the resumed holder blocked on the new lock file or exited".into(),
        };
    });
    log::info!("{DELETED}: deleted {deleted:?}; {}; {after_resume}", forced.describe());
    forced.record_into(&mut run);
    let holder_outcomes = run.reap_side(&mut holder_fleet);
    run.wait();
    let mut expectations = Expectations::clean(&target, std::slice::from_ref(&holder));
    expectations
        .skip(
            Invariant::OneFinalArtifactPerModel,
            "the holder's cache is checked with the others' (same dir)",
        )
        .skip(Invariant::LockFilesStable, "the harness deleted the holder's lock file");
    let phase = phases::check_phase(
        run.scenario(),
        PhaseInput {
            label: "holder",
            expectations,
            outcomes: &holder_outcomes,
            caches: Vec::new(),
            compiled: Vec::new(),
            compiled_reference: None,
            served: None,
        },
    );
    run.add_phase(phase);
    run.recover(recovery);
    run.served_from_routes(&[&route]);
    Ok(run.evaluate())
}

/// A warm run leaves the entry's lock file; the final is removed (a cold entry again) and the lock file
/// is filled with garbage (a pid that is not one, binary noise). Then N processes start together: a
/// lock's content means nothing to a flock lock, so each succeeds, one download serves them all, and the
/// lock file is still a lock file afterwards.
pub fn garbage_in_a_lock_file_changes_nothing(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut garbage = b"pid=not-a-pid 4294967296\n\0\xff\xfe".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let damaged = DamagedLocks::start(GARBAGE, opts, |lock| {
        std::fs::write(lock, &garbage)
            .map_err(|e| format!("cannot write garbage into {}: {e}", lock.display()))
    })?;
    let DamagedLocks { mut s, entry: prepared, before, plans, recovery } = match damaged {
        Ok(d) => d,
        Err(record) => return Ok(record),
    };
    let mut run = s.launch(plans)?;
    run.start_reader();
    run.wait();
    run.recover(recovery);
    run.served(phases::served_since(&prepared.route, &before));
    Ok(run.evaluate())
}

/// A warm run leaves the entry's lock file; the final and the lock file are removed and a directory (not
/// empty) takes the lock file's name. N processes start together: none can take the lock, so each must
/// fail with the io class and one clear line — never proceed unlocked — and nothing is published. The
/// harness then removes the directory (the lock path is usable again): a recovery run succeeds.
pub fn lock_file_replaced_by_a_directory_fails_cleanly_then_recovers(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let damaged = DamagedLocks::start(DIRECTORY, opts, |lock| {
        std::fs::remove_file(lock)
            .and_then(|()| std::fs::create_dir(lock))
            .and_then(|()| std::fs::write(lock.join("not-a-lock"), b"x"))
            .map_err(|e| format!("cannot replace {} by a directory: {e}", lock.display()))
    })?;
    let DamagedLocks { mut s, entry: prepared, before, plans, recovery } = match damaged {
        Ok(d) => d,
        Err(record) => return Ok(record),
    };
    let n = plans.len();
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Io], false);
    }
    run.body_bound(&prepared.model, 0);
    run.wait();
    let clear = super::exhaustion::clear_error_line(run.outcomes(), &run.target().spec.exit_codes);
    run.add_verdict(clear);
    run.snapshot_after_fleet();
    for lock in &prepared.locks {
        if let Err(e) = std::fs::remove_dir_all(lock) {
            run.setup_error(format!("cannot restore the lock path {}: {e}", lock.display()));
        }
    }
    run.served(phases::served_since(&prepared.route, &before));
    run.recover(recovery);
    Ok(run.evaluate())
}

/// For `lock-kind = "exists"` targets (a lock is held while its file exists): a holder's download parks
/// at a gate, so its lock file is there (found by the lock pattern), and the holder is SIGKILLed — the file
/// stays, naming a dead process, in the target's own format. N processes then start on that cache: each
/// must break the stale lock within its own bound and succeed, with one download, and no lock file is left
/// (`no_lock_held`). A flock lock cannot go stale (the kernel releases a dead holder's lock: the PR
/// tier's killed-holder scenarios cover it), so for flock targets this does not apply.
///
/// Catches a lock that is a file's existence and is never broken (tiny-cache's `o-excl-lock`: every later
/// process waits out its bound and fails, `failures_have_expected_class`; `tests/tiny_cache_faults.rs`).
pub fn stale_lock_file_of_a_dead_process_is_broken(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(STALE, opts)?;
    let spec = s.target().spec.clone();
    let Some(lock_pattern) = FileRoles::from_validated(&spec.files).lock else {
        return Ok(s.not_applicable("the target declares no lock files"));
    };
    if spec.files.lock_kind != stress_cache_metadata::LockKind::Exists {
        return Ok(s.not_applicable(
            "flock locks cannot go stale (the kernel releases a dead holder's lock; the killed-holder scenarios \
             cover them): a stale lock file is a `lock-kind = \"exists\"` case",
        ));
    }
    let gate = Gate::named("stale-lock-holder");
    let SharedModel { server: _server, model, route, url, cache, .. } =
        phases::gated_shared_model(&s, &gate)?;
    let holder = s.writer(0, &model, &url, &cache).role("holder");
    let mut holder_fleet = phases::side_fleet(&mut s, "holder", std::slice::from_ref(&holder))?;
    let pid = holder_fleet.fleet.pids()[0];
    let parked = holder_fleet.fleet.wait_until(|_| gate.parked() >= 1, phases::EVENT_TIMEOUT);
    let locks = lock_files(&cache, &lock_pattern);
    holder_fleet.fleet.kill(pid);
    s.reap(&mut holder_fleet);
    gate.release();
    if !parked {
        return Ok(s.error_record(&format!("the holder (pid {pid}) never reached the gate")));
    }
    let stale: Vec<&PathBuf> = locks.iter().filter(|l| l.exists()).collect();
    if stale.is_empty() {
        return Ok(s.error_record("no lock file of the killed holder is left: nothing stale to break"));
    }
    log::info!("{STALE}: holder pid {pid} killed, stale lock file(s) {stale:?}");
    let before = phases::counts(&route);
    let n = s.tier().capped(NEWCOMERS);
    let plans: Vec<ProcessPlan> = (1..=n).map(|i| s.writer(i, &model, &url, &cache)).collect();
    let recovery = s.writer(n + 1, &model, &url, &cache).role("recovery");
    let mut run = s.launch(plans)?;
    run.body_bound(&model, 1);
    run.wait();
    run.served(phases::served_since(&route, &before));
    run.recover(recovery);
    Ok(run.evaluate())
}

/// Scenario set-up of the damaged-lock-file scenarios: a [`ColdEntry`] whose every lock file was damaged,
/// and the newcomers to start on it.
struct DamagedLocks {
    s: Scenario,
    entry: ColdEntry,
    /// The route's counts once the lock files were damaged.
    before: ServedCounts,
    /// The tier's count of newcomers (capped [`NEWCOMERS`]).
    plans: Vec<ProcessPlan>,
    recovery: ProcessPlan,
}

impl DamagedLocks {
    /// Scenario `name` on a cold entry whose every lock file went through `damage` (its `Err` is a setup
    /// error). The inner `Err` is the record to return at once: not applicable (the target declares no
    /// lock files) or a setup error.
    fn start(
        name: &str,
        opts: &ScenarioOptions,
        damage: impl Fn(&Path) -> Result<(), String>,
    ) -> Result<Result<DamagedLocks, ScenarioRecord>, ScenarioError> {
        let mut s = setup::scenario(name, opts)?;
        let Some(lock_pattern) = FileRoles::from_validated(&s.target().spec.files).lock else {
            return Ok(Err(s.not_applicable("the target declares no lock files")));
        };
        let entry = match cold_entry_with_lock_files(&mut s, &lock_pattern)? {
            Ok(p) => p,
            Err(e) => return Ok(Err(s.error_record(&e))),
        };
        for lock in &entry.locks {
            if let Err(e) = damage(lock) {
                return Ok(Err(s.error_record(&e)));
            }
        }
        let before = phases::counts(&entry.route);
        let n = s.tier().capped(NEWCOMERS);
        let (plans, recovery) = s.writers_and_recovery(n, &entry.model, &entry.url, &entry.cache);
        Ok(Ok(DamagedLocks { s, entry, before, plans, recovery }))
    }
}

/// A served model whose cache entry was made once (so its lock files exist) and then made cold again.
struct ColdEntry {
    model: String,
    route: crate::server::RouteHandle,
    url: String,
    cache: PathBuf,
    locks: Vec<PathBuf>,
    // Kept alive for the scenario.
    _server: crate::server::ModelServer,
}

/// Warms the cache once (learning the lock file names from what the target made), then removes every
/// final so the next processes must take the lock to download. The inner `Err` is a setup error.
fn cold_entry_with_lock_files(
    s: &mut Scenario,
    lock_pattern: &FilePattern,
) -> Result<Result<ColdEntry, String>, ScenarioError> {
    let server = setup::server()?;
    let target = s.target().clone();
    let model = phases::first_model(s);
    let route = server.add_route(setup::model_route(&target, &model, FaultPlan::default()));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let warmup = s.writer(900, &model, &url, &cache).role("warmup");
    if let Err(e) = phases::setup_run(s, &[warmup], "warmup") {
        return Ok(Err(e));
    }
    let locks = lock_files(&cache, lock_pattern);
    if locks.is_empty() {
        return Ok(Err(format!(
            "precondition not met: the warmup run left no lock file in {}",
            cache.display()
        )));
    }
    let snapshot = crate::snapshot::CacheSnapshot::take(&cache, &target.spec.files, &target.models);
    for f in snapshot.finals() {
        if let Err(e) = std::fs::remove_file(&f.path) {
            return Ok(Err(format!("cannot remove the final {}: {e}", f.path.display())));
        }
    }
    Ok(Ok(ColdEntry { model, route, url, cache, locks, _server: server }))
}
