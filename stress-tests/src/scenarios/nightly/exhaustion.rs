//! Resource exhaustion with real limits, not simulated errors: a disk that is really full (a tmpfs
//! smaller than the model: ENOSPC), a real `RLIMIT_NOFILE` of 16 (set in the child before exec), a cache
//! dir whose mode really refuses writes (EACCES), and a read-only bind mount (EROFS). In each, every
//! process ends ok or with the io class and a clear error line (no panic, no hang), nothing in the cache is
//! corrupt or half-written, and once the resource is back a recovery run succeeds.
//!
//! What needs root: mounting (the disk-full tmpfs and the read-only bind; CAP_SYS_ADMIN — without it
//! these two scenarios are setup errors saying so, like the PR tier's `cache_dir`), and for the unwritable
//! dir only that, as root, the target runs with `CAP_DAC_OVERRIDE` dropped from its bounding set (else
//! root ignores the mode). The descriptor limit and the unwritable dir need nothing.
//! (A private mount namespace would spare the root for mounts, but only for processes inside it: the
//! harness, which snapshots and traces the cache, runs many threads and cannot `unshare` into one.)

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::OutcomeClass;
use crate::orchestrator::ProcessOutcome;
use crate::scenario::{Scenario, ScenarioError, ScenarioRun};
use crate::scenarios::network::FAULT_DEADLINE;
use crate::scenarios::setup::SmallModel;
use crate::scenarios::tmpfs::Tmpfs;
use crate::scenarios::{ScenarioFn, ScenarioOptions, phases, setup};
use crate::server::FaultPlan;
use crate::target::ProcessPlan;

/// Record name: `RLIMIT_NOFILE` of 16.
pub const NOFILE: &str = "sixteen_open_files_fail_cleanly_then_recover";
/// Record name: disk full, then space back.
pub const DISK_FULL: &str = "disk_full_fails_cleanly_then_recovers_once_space_is_back";
/// Record name: cache dir mode 0555.
pub const UNWRITABLE: &str = "unwritable_cache_dir_fails_cleanly_then_recovers";
/// Record name: read-only bind mount over a warm cache.
pub const READ_ONLY: &str = "read_only_bind_mount_fails_cleanly_then_recovers";

/// Name of the check that every process that failed printed a clear error: something on stderr, its
/// last line a message (not a panic or a backtrace), within [`MAX_LINE`] characters.
pub const CLEAR_ERROR_LINE: &str = "failures_print_one_clear_line";
/// Longest error line counted as "one clear line".
const MAX_LINE: usize = 400;
/// The descriptor limit of the issue.
pub const NOFILE_LIMIT: u64 = 16;
/// The limits below 16 that one process each runs with in the descriptor scenario. Not below 6: the
/// file-system tracer the process starts under needs descriptors of its own (at 4 it cannot open its
/// trace file, which is a setup error, not the target's).
pub const TIGHTER_LIMITS: [u64; 4] = [6, 7, 8, 12];
/// Processes per scenario, before the `STRESS_PROCESSES` cap.
const PROCESSES: usize = 4;

/// The resource-exhaustion scenarios, by record name.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    (NOFILE, sixteen_open_files_fail_cleanly_then_recover),
    (DISK_FULL, disk_full_fails_cleanly_then_recovers_once_space_is_back),
    (UNWRITABLE, unwritable_cache_dir_fails_cleanly_then_recovers),
    (READ_ONLY, read_only_bind_mount_fails_cleanly_then_recovers),
];

/// N processes on a cold cache, each with `RLIMIT_NOFILE` = 16, started together with one process at each
/// tighter limit of [`TIGHTER_LIMITS`] (a target that fits in 16 descriptors — beaker needs 7 — still
/// meets EMFILE somewhere: at its lock, its socket, its partial or its compiled entry). Each process
/// succeeds or fails with the io class and one line; whatever was published is complete, nothing is left
/// half-written; a recovery run without the limit succeeds.
pub fn sixteen_open_files_fail_cleanly_then_recover(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(NOFILE, opts)?;
    s.deadline(FAULT_DEADLINE);
    let SmallModel { server, model, route, url } = SmallModel::serve(s.target(), FaultPlan::default())?;
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(PROCESSES);
    let limits: Vec<u64> = std::iter::repeat_n(NOFILE_LIMIT, n).chain(TIGHTER_LIMITS).collect();
    let plans: Vec<_> =
        limits.iter().enumerate().map(|(i, l)| s.writer(i, &model, &url, &cache).nofile_limit(*l)).collect();
    let recovery = s.writer(limits.len(), &model, &url, &cache).role("recovery");
    let n = plans.len();
    // A process may download the whole body and then fail to open its next file: one body each at most.
    let mut run = launch_expecting(&mut s, plans, &[OutcomeClass::Ok, OutcomeClass::Io], &model)?;
    run.start_reader();
    run.wait();
    let failed =
        run.outcomes().iter().filter(|o| o.exit_code != Some(run.target().spec.exit_codes.ok)).count();
    log::info!("{NOFILE}: {failed} of {n} process(es) failed, limits {limits:?}");
    finish(run, recovery, &route, server)
}

/// A tmpfs of half the large model: N processes fetch it and each hits ENOSPC — each must fail with the
/// io class and one line and leave no partial (`no_temp_files_left`) and nothing under a final name. The
/// tmpfs is then grown (`remount,size=`): a recovery run on the same cache succeeds. Needs root (mount).
///
/// Catches a target that leaves its partial behind when a write fails (`leave-partial`:
/// `no_temp_files_left`, `no_partial_content`) — the partial that filled the disk keeps it full.
pub fn disk_full_fails_cleanly_then_recovers_once_space_is_back(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(DISK_FULL, opts)?;
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let target = s.target().clone();
    let (_, large) = setup::small_and_large(&target);
    let route = server.add_route(setup::model_route(&target, &large, FaultPlan::default()));
    let url = server.url(&route);
    let large_len = target.model(&large).bytes.len() as u64;
    let disk = Tmpfs::new_under(s.mount_parent(), "disk-full", (large_len / 2).max(64 * 1024))?;
    let cache = disk.path().join("cache");
    let n = s.tier().capped(PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &large, &url, &cache);
    // Each process may receive the whole body before its write fails (the server fills socket buffers).
    let mut run = launch_expecting(&mut s, plans, &[OutcomeClass::Io], &large)?;
    wait_then_restore(
        &mut run,
        || disk.resize(4 * large_len + (1 << 20)),
        "cannot give the disk its space back",
    );
    let record = finish(run, recovery, &route, server);
    drop(disk);
    record
}

/// The cache dir exists with mode 0555 (and the processes run without root's permission override):
/// nothing can be created in it. N processes must each fail with the io class and one line, and leave
/// nothing; the mode is set back to 0755 and a recovery run succeeds.
pub fn unwritable_cache_dir_fails_cleanly_then_recovers(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    use std::os::unix::fs::PermissionsExt;
    let mut s = setup::scenario(UNWRITABLE, opts)?;
    s.deadline(FAULT_DEADLINE);
    let SmallModel { server, model, route, url } = SmallModel::serve(s.target(), FaultPlan::default())?;
    let cache = s.cache_dir("shared");
    let set_mode = |mode: u32| std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(mode));
    if let Err(e) = set_mode(0o555) {
        return Ok(s.error_record(&format!("cannot make {} read-only: {e}", cache.display())));
    }
    let n = s.tier().capped(PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &model, &url, &cache);
    let plans = plans.into_iter().map(|p| p.without_dac_override()).collect();
    let mut run = launch_expecting(&mut s, plans, &[OutcomeClass::Io], &model)?;
    let failure = format!("cannot make {} writable again", cache.display());
    wait_then_restore(&mut run, || set_mode(0o755), &failure);
    finish(run, recovery, &route, server)
}

/// A warm cache is bind-mounted read-only over itself. N processes start: each either loads the cached
/// model (a target that can read a read-only cache) or fails with the io class and one line; the
/// published final is untouched. The bind is unmounted and a recovery run succeeds. Needs root (mount).
pub fn read_only_bind_mount_fails_cleanly_then_recovers(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(READ_ONLY, opts)?;
    s.deadline(FAULT_DEADLINE);
    let SmallModel { server: _server, model, route, url } =
        SmallModel::serve(s.target(), FaultPlan::default())?;
    let cache = s.cache_dir("shared");
    let warmup = s.writer(900, &model, &url, &cache).role("warmup");
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }
    let before = phases::counts(&route);
    let mut bind = Tmpfs::read_only_bind(&cache)?;
    let n = s.tier().capped(PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &model, &url, &cache);
    let mut run = launch_expecting(&mut s, plans, &[OutcomeClass::Ok, OutcomeClass::Io], &model)?;
    run.start_reader();
    wait_then_restore(&mut run, || bind.unmount(), "cannot remove the read-only bind");
    run.add_verdict(clear_error_line(run.outcomes(), &run.target().spec.exit_codes));
    run.recover(recovery);
    run.served(phases::served_since(&route, &before));
    Ok(run.evaluate())
}

/// Launches `plans` together, each expected to end in one of `classes` (no hang), with a bound of one
/// body of `model` per process.
fn launch_expecting<'s>(
    s: &'s mut Scenario,
    plans: Vec<ProcessPlan>,
    classes: &[OutcomeClass],
    model: &str,
) -> Result<ScenarioRun<'s>, ScenarioError> {
    let n = plans.len();
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, classes, false);
    }
    run.body_bound(model, n as u64);
    Ok(run)
}

/// Waits for the fleet and snapshots its cache while the resource is still exhausted, then gives the
/// resource back with `restore` (a failure to do so is a setup error starting with `failure`).
fn wait_then_restore<E: std::fmt::Display>(
    run: &mut ScenarioRun<'_>,
    restore: impl FnOnce() -> Result<(), E>,
    failure: &str,
) {
    run.wait();
    run.snapshot_after_fleet();
    if let Err(e) = restore() {
        run.setup_error(format!("{failure}: {e}"));
    }
}

/// The clear-line verdict, the recovery run and the server counts, then the record.
fn finish(
    mut run: ScenarioRun<'_>,
    recovery: crate::target::ProcessPlan,
    route: &crate::server::RouteHandle,
    server: crate::server::ModelServer,
) -> Result<ScenarioRecord, ScenarioError> {
    run.add_verdict(clear_error_line(run.outcomes(), &run.target().spec.exit_codes));
    // Counted before the recovery run: its download is the resource coming back, not the fleet's.
    run.served_from_routes(&[route]);
    run.recover(recovery);
    let record = run.evaluate();
    drop(server);
    Ok(record)
}

/// [`CLEAR_ERROR_LINE`] over `outcomes`: every process that did not exit ok left a last stderr line that
/// is a message — present, not a panic or backtrace, at most [`MAX_LINE`] characters.
pub fn clear_error_line(
    outcomes: &[ProcessOutcome],
    codes: &stress_cache_metadata::ExitCodes,
) -> InvariantResult {
    let mut evidence = Vec::new();
    let mut failures = 0;
    for o in outcomes.iter().filter(|o| o.exit_code != Some(codes.ok)) {
        failures += 1;
        let stderr = o.stderr();
        let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("");
        let problem = if last.is_empty() {
            Some("printed nothing on stderr")
        } else if stderr.contains("panicked at") || stderr.contains("stack backtrace") {
            Some("panicked")
        } else if last.chars().count() > MAX_LINE {
            Some("ended with a line longer than one clear line")
        } else {
            None
        };
        if let Some(p) = problem {
            evidence.push(format!("{}: {p}: {}", o.describe(), o.stderr_tail(300).trim()));
        }
    }
    if failures == 0 {
        return InvariantResult::skipped(CLEAR_ERROR_LINE, "no process failed: no error line to judge");
    }
    InvariantResult::checked(CLEAR_ERROR_LINE, evidence)
}
