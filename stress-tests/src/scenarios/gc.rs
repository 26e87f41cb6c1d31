//! gc racing with readers: an entry a reader has resolved (and holds its shared lock on) must never be
//! deleted under it.

use stress_cache_metadata::ScenarioRecord;

use crate::invariants::Expectations;
use crate::scenario::ScenarioError;
use crate::server::FaultPlan;
use crate::target::{PlanCommand, ProcessPlan};

use super::ScenarioOptions;
use super::phases::SharedModel;
use super::phases::{self, PhaseInput};

/// Readers before the `STRESS_PROCESSES` cap.
const READERS: usize = 4;
/// gc processes of the unpaused variant.
const GC_PROCESSES: usize = 2;

/// Warm cache; readers armed with `<reader failpoint>=<pause action>` stop holding their shared locks;
/// once every reader is stopped gc (`gc-args`, `{max_bytes}` = 0) runs to completion; then the readers
/// resume: all succeed and loaded the expected model, gc succeeded, nothing downloaded.
pub fn gc_racing_with_readers_never_breaks_a_reader(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario("gc_racing_with_readers_never_breaks_a_reader", opts)?;
    let spec = s.target().spec.clone();
    let (Some(fps), Some(_)) = (spec.failpoints.clone(), spec.gc_args.clone()) else {
        return Ok(s.not_applicable("the target declares no failpoints or no gc-args"));
    };
    let (Some(reader_fp), Some(pause)) = (fps.reader.clone(), fps.pause_action.clone()) else {
        return Ok(s.not_applicable("the target declares no reader failpoint or no pause action"));
    };
    let SharedModel { target, server: _server, model, route, url, cache } =
        phases::shared_model(&s, FaultPlan::default())?;
    let warmup = s.writer(900, &model, &url, &cache).role("warmup");
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }

    let n = s.tier().capped(READERS);
    let readers: Vec<ProcessPlan> = (0..n)
        .map(|i| {
            s.writer(i, &model, &url, &cache)
                .failpoints(Some(&phases::arm(&reader_fp, &pause)))
                .role("reader")
        })
        .collect();
    let gc_plan = s.writer(100, &model, &url, &cache).command(PlanCommand::Gc { max_bytes: 0 }).role("gc");
    let last = s.writer(n + 1, &model, &url, &cache).role("recovery");
    let before = phases::counts(&route);
    let mut run = s.launch(readers)?;
    run.body_bound(&model, 0);
    let pids = run.fleet().pids();
    let all_stopped =
        run.fleet().wait_until(|f| pids.iter().all(|p| f.is_stopped(*p)), phases::EVENT_TIMEOUT);
    let mut gc_outcomes = Vec::new();
    if all_stopped {
        let mut gc = run.side_fleet("gc", std::slice::from_ref(&gc_plan))?;
        gc_outcomes = run.reap_side(&mut gc);
    } else {
        let stopped: Vec<u32> = pids.iter().copied().filter(|p| run.fleet().is_stopped(*p)).collect();
        run.setup_error(format!(
            "not every reader stopped at {reader_fp} within {:?} (stopped: {stopped:?} of {pids:?}): gc was not run",
            phases::EVENT_TIMEOUT
        ));
    }
    for pid in &pids {
        let _ = run.fleet().resume(*pid);
    }
    run.wait();
    let gc_phase = phases::check_phase(
        run.scenario(),
        PhaseInput {
            label: "gc while every reader held the entry",
            expectations: Expectations::clean(&target, &[gc_plan]),
            outcomes: &gc_outcomes,
            caches: Vec::new(),
            compiled: Vec::new(),
            compiled_reference: None,
            served: None,
        },
    );
    run.add_phase(gc_phase);
    run.recover(last);
    run.served(phases::served_since(&route, &before));
    Ok(run.evaluate())
}

/// Warm cache; readers and gc processes (`{max_bytes}` = 0) released together, nobody paused: every
/// reader succeeds with the expected model and every gc succeeds; each gc can evict at most once, so at
/// most one download per gc process.
pub fn gc_and_readers_released_together_never_break_a_reader(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario("gc_and_readers_released_together_never_break_a_reader", opts)?;
    if s.target().spec.gc_args.is_none() {
        return Ok(s.not_applicable("the target declares no gc-args"));
    }
    let SharedModel { target: _, server: _server, model, route, url, cache } =
        phases::shared_model(&s, FaultPlan::default())?;
    let warmup = s.writer(900, &model, &url, &cache).role("warmup");
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }

    let n = s.tier().capped(READERS * 2);
    let mut plans: Vec<ProcessPlan> =
        (0..n).map(|i| s.writer(i, &model, &url, &cache).role("reader")).collect();
    plans.extend(
        (0..GC_PROCESSES).map(|i| {
            s.writer(n + i, &model, &url, &cache).command(PlanCommand::Gc { max_bytes: 0 }).role("gc")
        }),
    );
    let last = s.writer(n + GC_PROCESSES, &model, &url, &cache).role("recovery");
    let before = phases::counts(&route);
    let mut run = s.launch(plans)?;
    run.body_bound(&model, GC_PROCESSES as u64);
    run.start_reader();
    run.wait();
    run.recover(last);
    run.served(phases::served_since(&route, &before));
    Ok(run.evaluate())
}
