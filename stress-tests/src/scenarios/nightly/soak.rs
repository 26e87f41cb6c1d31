//! Soak (nightly part 1): N sequential runs of the target on one cache (10,000 in the nightly tier), the
//! cache emptied every window (1,000) so each window starts cold. Per window: one cold run, warm-ups,
//! then timed warm hits, measured the way hyperfine measures a command (min/median/max/mean/stddev, plus
//! p95/p99 and the coefficient of variation); the drift of the last window's median against the first's;
//! RSS, FDs and threads of the harness process (the model server runs inside it) after the first window
//! and at the end.
//!
//! Verdicts: [`EVERY_RUN_SUCCEEDED`] (zero failures: any error exit, hang, signal, wrong model, or a warm
//! run that downloaded again), [`HARNESS_STABLE`] (no FD growth, RSS growth under seed 004's 1 MB), every
//! cache invariant on the cache as each window left it (one download per window:
//! `download_amplification_bounded`), and every invariant — trace ones included — on one traced warm run
//! and a recovery run after the soak. Latency is measured, never judged: a window whose CV exceeds seed
//! 004's 10 % is the finding [`CV_FINDING`] (machines are noisy; a shared two-core box more so).

use std::time::Instant;

use stress_cache_metadata::{
    CV_BOUND, Finding, InvariantResult, ScenarioRecord, SoakFigures, SoakWindow, Tier,
};

use super::runs::{self, capped};
use super::{resources, stats};
use crate::invariants::{Expectations, OutcomeClass};
use crate::scenario::{Phase, ScenarioError};
use crate::scenarios::phases::{self, PhaseInput};
use crate::scenarios::{ScenarioFn, ScenarioOptions, setup};
use crate::server::FaultPlan;
use crate::tier::TierConfig;

/// Record name.
pub const NAME: &str = "soak_sequential_warm_runs_never_fail";

/// The nightly soak scenarios.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[(NAME, soak_sequential_warm_runs_never_fail)];

/// Scenario-specific verdict: every run of the soak succeeded with the right model (warm ones from the
/// cache).
pub const EVERY_RUN_SUCCEEDED: &str = "soak_every_run_succeeded";

/// Scenario-specific verdict: the harness's FDs did not grow and its RSS grew less than 1 MB.
pub const HARNESS_STABLE: &str = "harness_resources_stable";

/// Finding: a window's warm-hit latency varied more than seed 004's bound.
pub const CV_FINDING: &str = "latency_cv_above_bound";

/// Evidence lines kept per verdict (the rest are counted).
const MAX_EVIDENCE: usize = 20;

/// How big a soak is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoakSize {
    /// Runs in all.
    pub runs: usize,
    /// Runs per window (the cache is emptied before each).
    pub window: usize,
    /// Warm-up runs per window after the cold one, left out of the statistics.
    pub warmups: usize,
}

impl SoakSize {
    /// 10,000 runs in windows of 1,000 (10 warm-ups) in the nightly tier; 60 in windows of 20 (2
    /// warm-ups) otherwise — the size the scenario tests run at outside the tier.
    pub fn for_tier(tier: Tier) -> Self {
        match tier {
            Tier::Nightly => SoakSize { runs: 10_000, window: 1_000, warmups: 10 },
            Tier::Pr => SoakSize { runs: 60, window: 20, warmups: 2 },
        }
    }
}

/// The soak at the tier's size on a clean server (see the module doc).
pub fn soak_sequential_warm_runs_never_fail(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    let size = SoakSize::for_tier(TierConfig::from_env()?.tier);
    soak(opts, size, FaultPlan::default())
}

/// The soak at `size`, the model served with `plan` (the n-th request gets the n-th fault: a test
/// injects a failure with it).
pub fn soak(
    opts: &ScenarioOptions,
    size: SoakSize,
    plan: FaultPlan,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(NAME, opts)?;
    let started = Instant::now();
    let target = s.target().clone();
    let server = setup::server()?;
    let model = setup::models_by_size(&target)[0].clone();
    let route = server.add_route(setup::model_route(&target, &model, plan));
    let url = server.url(&route);
    let reference = match target.spec.compiled {
        Some(_) => {
            let uncounted = phases::serve_uncounted(&server, &target, &model, "reference");
            Some(s.compiled_reference(&[(&model, &server.url(&uncounted))])?)
        }
        None => None,
    };
    let cache = s.cache_dir("soak");
    let plan = s.writer(0, &model, &url, &cache).role("soak");
    let runs_dir = s.dir().join("soak-runs");
    let window = size.window.max(1);
    let warmups = size.warmups.min(window.saturating_sub(2));
    let codes = target.spec.exit_codes.clone();

    let mut failures = Vec::new();
    let mut windows = Vec::new();
    let mut window_phases: Vec<Phase> = Vec::new();
    let mut counts: std::collections::BTreeMap<OutcomeClass, usize> = Default::default();
    let mut harness_before = None;
    let mut last_window_start = phases::counts(&route);
    for (index, first) in (0..size.runs).step_by(window).enumerate() {
        empty(&plan.cache_dir, plan.compiled_dir.as_deref())?;
        last_window_start = phases::counts(&route);
        let in_window = window.min(size.runs - first);
        let mut w = SoakWindow { index, runs: in_window, warmups, ..SoakWindow::default() };
        let mut timed = Vec::with_capacity(in_window);
        let mut last = None;
        for i in 0..in_window {
            let outcome = runs::run_once(&runs_dir, &target, &plan)?;
            let ms = outcome.wall.as_secs_f64() * 1000.0;
            if let Some(why) = runs::judge(&target, &plan, &outcome, i > 0) {
                w.failures += 1;
                failures.push(format!("run {} (window {index}, #{i}): {why}", first + i));
            }
            match i {
                0 => w.cold_ms = ms,
                i if i <= warmups => {}
                _ => timed.push(ms),
            }
            w.target_peak_rss_kb = w.target_peak_rss_kb.max(outcome.peak_rss_kb);
            if i + 1 < in_window {
                *counts.entry(OutcomeClass::of(&outcome, &codes)).or_default() += 1;
            }
            last = Some(outcome);
        }
        w.timed = stats::latency_stats(&timed);
        // The cache as the window left it, with the window's last run: one download per window.
        let outcomes: Vec<_> = last.into_iter().collect();
        window_phases.push(phases::check_phase(
            &s,
            PhaseInput {
                label: &format!("soak window {index}"),
                expectations: Expectations::clean(&target, std::slice::from_ref(&plan)),
                outcomes: &outcomes,
                caches: vec![cache.clone()],
                compiled: plan.compiled_dir.iter().cloned().collect(),
                compiled_reference: reference.as_ref(),
                served: Some(phases::served_since(&route, &last_window_start)),
            },
        ));
        windows.push(w);
        if index == 0 {
            // After the first window: the server, the fixtures and the allocator have warmed up.
            harness_before = Some(resources::sample(None));
        }
    }
    let harness_after = resources::sample(None);
    let harness_before = harness_before.unwrap_or(harness_after);
    let figures = SoakFigures {
        runs: size.runs,
        failures: failures.len(),
        window,
        drift: match (windows.first(), windows.last()) {
            (Some(f), Some(l)) => stats::drift(&f.timed, &l.timed),
            _ => 0.0,
        },
        windows,
        harness_before,
        harness_after,
        wall_ms: started.elapsed().as_secs_f64() * 1000.0,
    };
    let cv_evidence: Vec<String> = figures
        .windows
        .iter()
        .filter(|w| w.timed.cv >= CV_BOUND)
        .map(|w| {
            format!(
                "window {}: CV {:.1} % over {} timed warm hits (p50 {:.1} ms, p95 {:.1} ms, stddev {:.1} ms), seed \
                 004's bound is {:.0} %",
                w.index,
                w.timed.cv * 100.0,
                w.timed.n,
                w.timed.p50_ms,
                w.timed.p95_ms,
                w.timed.stddev_ms,
                CV_BOUND * 100.0
            )
        })
        .collect();
    let resource_evidence = resources::growth_evidence(
        "the harness process (model server inside)",
        &figures.harness_before,
        &figures.harness_after,
    );

    // One traced warm run on the soaked cache, and a recovery run: every invariant, trace ones included.
    let check = s.writer(1, &model, &url, &cache).role("traced warm run after the soak");
    let recovery = s.writer(2, &model, &url, &cache).role("recovery");
    let mut run = s.launch(vec![check])?;
    if let Some(r) = reference {
        run.compiled_reference(r);
    }
    run.start_reader();
    run.wait();
    run.served(phases::served_since(&route, &last_window_start));
    run.recover(recovery);
    for phase in window_phases {
        run.add_phase(phase);
    }
    for (class, n) in counts {
        run.count_outcomes(class, n);
    }
    run.add_verdict(InvariantResult::checked(EVERY_RUN_SUCCEEDED, capped(failures, MAX_EVIDENCE)));
    run.add_verdict(InvariantResult::checked(HARNESS_STABLE, resource_evidence));
    if !cv_evidence.is_empty() {
        run.add_finding(Finding { name: CV_FINDING.to_string(), evidence: cv_evidence });
    }
    run.soak_figures(figures);
    Ok(run.evaluate())
}

/// Empties the cache (and compiled cache) for a cold start: removed and created again.
fn empty(cache: &std::path::Path, compiled: Option<&std::path::Path>) -> Result<(), ScenarioError> {
    for dir in std::iter::once(cache).chain(compiled) {
        let io = |action, source| ScenarioError::Io { action, path: dir.display().to_string(), source };
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io("empty", e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
    }
    Ok(())
}
