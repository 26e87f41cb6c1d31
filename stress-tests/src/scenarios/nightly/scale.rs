//! Scale (nightly part 2), two scenarios:
//!
//! - [`BURST`]: 128 processes (nightly tier) started together on one cache, each under the file-system
//!   tracer; the first download is parked mid-body until every other process is blocked on the cache
//!   lock, a reader scans meanwhile, a recovery run follows: every invariant checked, trace ones included.
//! - [`SUSTAINED`]: a rolling pool keeps a process per slot running for 3 minutes (nightly tier), every
//!   model of the target in turn on one fresh cache, at 1,000+ runs a minute; each run judged as it is
//!   reaped, every cache invariant checked at the end (one download per model over the whole phase), then
//!   a recovery run. A rate below the tier's minimum is a setup error: the phase did not apply the load it
//!   claims to check.

use std::time::Duration;

use stress_cache_metadata::{InvariantResult, ScaleFigures, ScenarioRecord, Tier};

use super::runs::{self, capped};
use super::stats;
use crate::invariants::{Expectations, OutcomeClass};
use crate::scenario::ScenarioError;
use crate::scenarios::phases::{self, PhaseInput};
use crate::scenarios::setup::SmallModel;
use crate::scenarios::{ScenarioFn, ScenarioOptions, overlap, setup};
use crate::server::{FaultPlan, Gate};
use crate::tier::TierConfig;

/// Record name of the burst.
pub const BURST: &str = "scale_processes_started_together_keep_every_invariant";

/// Record name of the sustained phase.
pub const SUSTAINED: &str = "scale_sustained_rolling_pool_keeps_every_invariant";

/// The nightly scale scenarios.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    (BURST, scale_processes_started_together_keep_every_invariant),
    (SUSTAINED, scale_sustained_rolling_pool_keeps_every_invariant),
];

/// Scenario-specific verdict: every run of the sustained phase succeeded with the model it asked for.
pub const EVERY_RUN_SUCCEEDED: &str = "sustained_every_run_succeeded";

/// How big the scale scenarios are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleSize {
    /// Processes started together (before the `STRESS_PROCESSES` cap).
    pub processes: usize,
    /// Slots of the rolling pool.
    pub pool: usize,
    /// How long the sustained phase keeps the pool full.
    pub sustained: Duration,
    /// The least rate the sustained phase must reach, in runs per minute (else a setup error).
    pub min_runs_per_minute: f64,
}

impl ScaleSize {
    /// 128 processes, a pool of 6 for 3 minutes at 1,000+ runs a minute in the nightly tier; 16
    /// processes and a pool of 4 for 5 seconds (no minimum rate) otherwise.
    pub fn for_tier(tier: Tier) -> Self {
        match tier {
            Tier::Nightly => ScaleSize {
                processes: 128,
                pool: 6,
                sustained: Duration::from_secs(180),
                min_runs_per_minute: 1000.0,
            },
            Tier::Pr => ScaleSize {
                processes: 16,
                pool: 4,
                sustained: Duration::from_secs(5),
                min_runs_per_minute: 0.0,
            },
        }
    }
}

/// Watchdog of the burst's fleet: 128 traced processes on two cores take a while.
const BURST_DEADLINE: Duration = Duration::from_secs(180);

/// How long the gate may hold the first download while the others reach the lock.
const BURST_OVERLAP_TIMEOUT: Duration = Duration::from_secs(90);

/// The burst at the tier's size (see the module doc).
pub fn scale_processes_started_together_keep_every_invariant(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    burst(opts, ScaleSize::for_tier(TierConfig::from_env()?.tier).processes)
}

/// `processes` started together on one cache (capped by `STRESS_PROCESSES`).
pub fn burst(opts: &ScenarioOptions, processes: usize) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(BURST, opts)?;
    s.deadline(BURST_DEADLINE);
    let gate = Gate::named("scale-burst-mid-body");
    let SmallModel { server: _server, model: small, route, url } = SmallModel::gated(s.target(), &gate)?;
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(processes);
    let (plans, recovery) = s.writers_and_recovery(n, &small, &url, &cache);
    let mut run = s.launch(plans)?;
    run.start_reader();
    let forced =
        overlap::hold_until_overlap(&run, &gate, std::slice::from_ref(&cache), BURST_OVERLAP_TIMEOUT);
    forced.record_into(&mut run);
    let outcomes = run.wait().to_vec();
    run.served_from_routes(&[&route]);
    let wall = outcomes.iter().map(|o| o.wall).max().unwrap_or_default();
    let latencies: Vec<f64> = outcomes.iter().map(|o| o.wall.as_secs_f64() * 1000.0).collect();
    let codes = run.target().spec.exit_codes.clone();
    run.scale_figures(ScaleFigures {
        sustained: false,
        processes: n,
        runs: outcomes.len(),
        failures: outcomes.iter().filter(|o| OutcomeClass::of(o, &codes) != OutcomeClass::Ok).count(),
        runs_per_minute: per_minute(outcomes.len(), wall),
        wall_ms: wall.as_secs_f64() * 1000.0,
        latency: stats::latency_stats(&latencies),
    });
    run.recover(recovery);
    Ok(run.evaluate())
}

/// The sustained phase at the tier's size (see the module doc).
pub fn scale_sustained_rolling_pool_keeps_every_invariant(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    sustained(opts, ScaleSize::for_tier(TierConfig::from_env()?.tier))
}

/// A rolling pool of `size.pool` slots for `size.sustained`, then every check.
pub fn sustained(opts: &ScenarioOptions, size: ScaleSize) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(SUSTAINED, opts)?;
    let target = s.target().clone();
    let server = setup::server()?;
    let models = setup::models_by_size(&target);
    let routes: Vec<_> = models
        .iter()
        .map(|m| server.add_route(setup::model_route(&target, m, FaultPlan::default())))
        .collect();
    let cache = s.cache_dir("sustained");
    let slots = s.tier().capped(size.pool.max(1));
    let plans: Vec<_> = (0..slots)
        .map(|i| s.writer(i, &models[i % models.len()], &server.url(&routes[i % routes.len()]), &cache))
        .map(|p| p.role("pool"))
        .collect();
    // A bound far above any rate a machine reaches (100 runs a second per slot).
    let max_runs = (size.sustained.as_secs_f64() * 100.0) as usize * slots + slots;
    let report = runs::rolling_pool(&s.dir().join("pool"), &target, &plans, size.sustained, max_runs);
    let rate = per_minute(report.runs.len(), report.wall);
    let codes = target.spec.exit_codes.clone();
    let failures: Vec<String> = report
        .runs
        .iter()
        .filter_map(|r| r.failure.as_ref().map(|f| format!("slot {} ({}): {f}", r.slot, plans[r.slot].model)))
        .collect();
    let latencies: Vec<f64> = report.runs.iter().map(|r| r.outcome.wall.as_secs_f64() * 1000.0).collect();
    let figures = ScaleFigures {
        sustained: true,
        processes: slots,
        runs: report.runs.len(),
        failures: failures.len(),
        runs_per_minute: rate,
        wall_ms: report.wall.as_secs_f64() * 1000.0,
        latency: stats::latency_stats(&latencies),
    };
    // The cache as the pool left it, with each slot's last run (its metadata file is still its own).
    let mut last_of_slot: Vec<Option<crate::orchestrator::ProcessOutcome>> = vec![None; slots];
    for r in &report.runs {
        let mut o = r.outcome.clone();
        o.index = r.slot;
        last_of_slot[r.slot] = Some(o);
    }
    let mut counts: std::collections::BTreeMap<OutcomeClass, usize> = Default::default();
    for o in &report.runs {
        *counts.entry(OutcomeClass::of(&o.outcome, &codes)).or_default() += 1;
    }
    let lasts: Vec<_> = last_of_slot.into_iter().flatten().collect();
    for o in &lasts {
        if let Some(n) = counts.get_mut(&OutcomeClass::of(o, &codes)) {
            *n -= 1;
        }
    }
    let route_refs: Vec<_> = routes.iter().collect();
    let served = crate::scenario::served_counts(&route_refs);
    // Outcomes are checked by slot index; a slot that never ran has no outcome.
    let expectations = Expectations::clean(&target, &plans);
    let phase = phases::check_phase(
        &s,
        PhaseInput {
            label: "sustained pool",
            expectations,
            outcomes: &lasts,
            caches: vec![cache.clone()],
            compiled: plans.iter().filter_map(|p| p.compiled_dir.clone()).take(1).collect(),
            compiled_reference: None,
            served: Some(served),
        },
    );
    let recovery = s.writer(slots, &models[0], &server.url(&routes[0]), &cache).role("recovery");
    let check =
        s.writer(slots + 1, &models[0], &server.url(&routes[0]), &cache).role("traced run after the pool");
    let before = crate::scenario::served_counts(&route_refs);
    let mut run = s.launch(vec![check])?;
    run.wait();
    let after = crate::scenario::served_counts(&route_refs);
    run.served(since(&before, &after));
    run.body_bound(&models[0], 0);
    run.recover(recovery);
    run.add_phase(phase);
    for (class, n) in counts {
        run.count_outcomes(class, n);
    }
    run.add_verdict(InvariantResult::checked(EVERY_RUN_SUCCEEDED, capped(failures, 20)));
    for e in &report.errors {
        run.setup_error(format!("the pool could not start a run: {e}"));
    }
    if rate < size.min_runs_per_minute {
        run.setup_error(format!(
            "the sustained phase reached {rate:.0} runs/minute ({} runs in {:.1} s), below the {:.0} it must apply",
            report.runs.len(),
            report.wall.as_secs_f64(),
            size.min_runs_per_minute
        ));
    }
    run.scale_figures(figures);
    Ok(run.evaluate())
}

fn per_minute(runs: usize, wall: Duration) -> f64 {
    if wall.is_zero() { 0.0 } else { runs as f64 * 60.0 / wall.as_secs_f64() }
}

/// Counters served between two readings.
fn since(
    before: &crate::invariants::ServedCounts,
    after: &crate::invariants::ServedCounts,
) -> crate::invariants::ServedCounts {
    let mut out = crate::invariants::ServedCounts {
        bytes_served: after.bytes_served - before.bytes_served,
        ..Default::default()
    };
    for (m, n) in &after.complete_bodies {
        out.complete_bodies.insert(m.clone(), n - before.complete_bodies.get(m).copied().unwrap_or(0));
    }
    for (m, n) in &after.requests {
        out.requests.insert(m.clone(), n - before.requests.get(m).copied().unwrap_or(0));
    }
    out
}
