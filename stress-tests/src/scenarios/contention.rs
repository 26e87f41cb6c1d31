//! Contention scenarios: many processes on one cache (or one cache each), the same or different models,
//! the same file name with different bytes. Overlap is forced with a gate in the middle of a download
//! ([`overlap::hold_until_overlap`]), never by sleeping.

use std::path::Path;
use std::time::Duration;

use stress_cache_metadata::ScenarioRecord;

use crate::scenario::{Scenario, ScenarioError, ScenarioRun};
use crate::server::{FaultPlan, Gate, RouteHandle};
use crate::target::ProcessPlan;

use super::setup::SmallModel;
use super::{ScenarioOptions, holds, overlap, setup};

/// How long a gate may hold a download while the rest of the fleet catches up.
const OVERLAP_TIMEOUT: Duration = overlap::DEFAULT_TIMEOUT;

/// N processes (16 in the PR tier) ask for the same model on one shared cache; the first download is
/// parked mid-body until every other process is blocked on the cache lock (or parked too), and a reader
/// scans the cache meanwhile; after the release, a writer that synced a file others still write, or
/// released the lock others wait for, is held until they are quiet ([`holds`]). Property: all succeed,
/// one complete body is served, one final artifact, no partial, no lock held, the reader never sees a
/// prefix under a final name.
///
/// Catches `no-lock` and `shared-tmp-name` (every process downloads: `download_amplification_bounded`;
/// the shared temp file is renamed away under the others: `failures_have_expected_class`) and
/// `direct-write` (the parked prefix is visible under the final name: `readers_saw_only_complete_content`).
pub fn same_model_from_n_processes_downloads_once(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("same_model_from_n_processes_downloads_once", opts)?;
    let gate = Gate::named("same-model-mid-body");
    let SmallModel { server: _server, model: small, route, url } = SmallModel::gated(s.target(), &gate)?;
    let cache = s.cache_dir("shared");
    let n = s.tier().contention_processes();
    let (mut plans, recovery) = s.writers_and_recovery(n, &small, &url, &cache);
    for p in &mut plans {
        p.trace_inject = Some(holds::INJECT.to_string());
    }
    let mut run = s.launch(plans)?;
    let lock = stress_cache_metadata::FileRoles::from_validated(&run.target().spec.files).lock;
    let held = holds::Holds::start(run.fleet().pids(), vec![cache.clone()], lock);
    run.start_reader();
    force_overlap(&mut run, &gate, &cache);
    run.wait();
    run.record_holds(held);
    run.served_from_routes(&[&route]);
    run.recover(recovery);
    Ok(run.evaluate())
}

/// Half the processes ask for the small model, half for the large one, all on one shared cache, started
/// together. Property: every process succeeds with the model it asked for, each model is downloaded once
/// (bound 1 each) and has exactly one final artifact; no partial, no lock held, readers see complete
/// files only.
///
/// Catches `no-lock`/`shared-tmp-name` (`download_amplification_bounded`) and any cross-model mix-up
/// (`successes_loaded_expected_model`).
pub fn different_models_in_parallel_share_one_cache(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("different_models_in_parallel_share_one_cache", opts)?;
    let server = setup::server()?;
    let (small, large) = setup::small_and_large(s.target());
    let small_route = server.add_route(setup::model_route(s.target(), &small, FaultPlan::default()));
    let large_route = server.add_route(setup::model_route(s.target(), &large, FaultPlan::default()));
    let (small_url, large_url) = (server.url(&small_route), server.url(&large_route));
    let cache = s.cache_dir("shared");
    let (plans, recovery) = alternating_writers(&s, (&small, &small_url), (&large, &large_url), &cache);
    let mut run = s.launch(plans)?;
    run.start_reader();
    Ok(finish(run, &[&small_route, &large_route], recovery))
}

/// Two different models served under the same file name at two URL paths (the target's path template with
/// a different `{model}` segment but the small model's `{file_name}`): half the processes fetch one, half
/// the other, on one shared cache. Both downloads are parked mid-body at one gate until the rest of the
/// fleet waits on a lock, so both are in flight together. Property: each process ends with the bytes of
/// the URL it asked for (the model identities stay distinct), one final artifact per model, each body
/// downloaded once.
///
/// Catches `name-without-hash` (the final name is the URL's file name only, so the second model is
/// served from the first one's file: `successes_loaded_expected_model`, `one_final_artifact_per_model`).
pub fn same_file_name_with_different_bytes_stays_isolated(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("same_file_name_with_different_bytes_stays_isolated", opts)?;
    let server = setup::server()?;
    let (small, large) = setup::small_and_large(s.target());
    let gate = Gate::named("same-name-mid-body");
    let shared_name = s.target().model(&small).file_name.clone();
    let path_of = |segment: &str| {
        let template = &s.target().spec.server.path;
        let path = template.replace("{file_name}", &shared_name);
        if template.contains("{model}") {
            path.replace("{model}", segment)
        } else {
            format!("/{segment}{path}")
        }
    };
    let (path_a, path_b) = (path_of(&format!("{small}-a")), path_of(&format!("{large}-b")));
    assert_ne!(path_a, path_b);
    let mut routes = Vec::new();
    for (path, model) in [(&path_a, &small), (&path_b, &large)] {
        let fixture = s.target().model(model);
        let plan = overlap::gated_plan(&gate, fixture.bytes.len());
        routes.push(server.add_route(setup::route(s.target(), path, model, &fixture.bytes, plan)));
    }
    let (url_a, url_b) = (server.url(&routes[0]), server.url(&routes[1]));
    let cache = s.cache_dir("shared");
    let (plans, recovery) = alternating_writers(&s, (&small, &url_a), (&large, &url_b), &cache);
    let mut run = s.launch(plans)?;
    run.start_reader();
    force_overlap(&mut run, &gate, &cache);
    Ok(finish(run, &[&routes[0], &routes[1]], recovery))
}

/// Every process has its own cache dir; all fetch the same model at once. Property: each cache ends with
/// exactly one complete final copy and nothing else, every process succeeds, and the server served at
/// most one body per cache (bound N).
///
/// Catches leftovers and duplicate copies per cache (`one_final_artifact_per_model`,
/// `no_temp_files_left`) and a process that downloads twice into its own cache.
pub fn one_cache_per_process_downloads_once_per_cache(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("one_cache_per_process_downloads_once_per_cache", opts)?;
    let SmallModel { server: _server, model: small, route, url } =
        SmallModel::serve(s.target(), FaultPlan::default())?;
    let n = s.tier().contention_processes();
    let plans: Vec<_> =
        (0..n).map(|i| s.writer(i, &small, &url, &s.cache_dir(&format!("own-{i}")))).collect();
    let recovery = s.writer(n, &small, &url, &s.cache_dir("own-0")).role("recovery");
    let mut run = s.launch(plans)?;
    run.body_bound(&small, n as u64);
    run.start_reader();
    Ok(finish(run, &[&route], vec![recovery]))
}

/// One process starts downloading the model; once its download is parked mid-body with data on disk,
/// N-1 more processes start (late joiners, as when jobs start staggered while a download is in flight),
/// and the gate is released only when every joiner is blocked on the cache lock. Property: the joiners
/// never touch the live download's temp file, everyone succeeds with one download, and the usual
/// invariants hold.
///
/// Catches cleanup that does not take the lock first (`clean-partials-unlocked`: the joiners delete the
/// live partial — `live_temp_files_left_alone` on the trace, and the downloader's publish fails:
/// `failures_have_expected_class`), and any writer that works without the lock while others arrive.
pub fn late_joiners_while_a_download_is_in_flight(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("late_joiners_while_a_download_is_in_flight", opts)?;
    let gate = Gate::named("late-joiners-mid-body");
    let SmallModel { server: _server, model: small, route, url } = SmallModel::gated(s.target(), &gate)?;
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(JOINERS + 1).max(2);
    let first = vec![s.writer(0, &small, &url, &cache)];
    let joiners: Vec<_> = (1..n).map(|i| s.writer(i, &small, &url, &cache).role("joiner")).collect();
    let recovery = s.writer(n, &small, &url, &cache).role("recovery");
    let mut run = s.launch(first)?;
    run.start_reader();
    // The first download must be parked with bytes on disk before anyone else starts.
    let parked =
        run.fleet().wait_until(|_| gate.parked() > 0 && overlap::data_on_disk(&run, &cache), OVERLAP_TIMEOUT);
    if parked {
        run.join(joiners)?;
        force_overlap(&mut run, &gate, &cache);
    } else {
        run.release_gate(&gate);
        run.setup_error(format!(
            "the first download never parked with data on disk within {OVERLAP_TIMEOUT:?}"
        ));
    }
    Ok(finish(run, &[&route], vec![recovery]))
}

/// The tier's contention count of writers on `cache`, the even ones fetching `even` (model, URL), the odd
/// ones `odd`; the recovery run after them fetches `odd`.
fn alternating_writers(
    s: &Scenario,
    even: (&str, &str),
    odd: (&str, &str),
    cache: &Path,
) -> (Vec<ProcessPlan>, Vec<ProcessPlan>) {
    let n = s.tier().contention_processes();
    let plans = (0..n)
        .map(|i| {
            let (model, url) = if i % 2 == 0 { even } else { odd };
            s.writer(i, model, url, cache)
        })
        .collect();
    // A recovery run per model: which model's bytes a mixed-up cache ends with is the scheduler's
    // choice, and whichever it is poisons the other model's process.
    let recovery = vec![
        s.writer(n, odd.0, odd.1, cache).role("recovery"),
        s.writer(n + 1, even.0, even.1, cache).role("recovery"),
    ];
    (plans, recovery)
}

/// Holds the gated download until the rest of the fleet waits on `cache` (or [`OVERLAP_TIMEOUT`]), and
/// records what was forced.
fn force_overlap(run: &mut ScenarioRun<'_>, gate: &Gate, cache: &Path) {
    let forced = overlap::hold_until_overlap(run, gate, &[cache.to_path_buf()], OVERLAP_TIMEOUT);
    forced.record_into(run);
}

/// Waits for the fleet, counts what `routes` served, runs `recovery` and evaluates the scenario.
fn finish(mut run: ScenarioRun<'_>, routes: &[&RouteHandle], recovery: Vec<ProcessPlan>) -> ScenarioRecord {
    run.wait();
    run.served_from_routes(routes);
    run.recover_each(recovery);
    run.evaluate()
}

/// Late joiners of [`late_joiners_while_a_download_is_in_flight`] (before the `STRESS_PROCESSES` cap).
const JOINERS: usize = 7;
