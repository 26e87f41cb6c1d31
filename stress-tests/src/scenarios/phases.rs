//! Phases of the crash, compiled-cache, gc and lock scenarios: a scenario on the chosen target with
//! the chosen mutant, routes that serve a model with the target's headers, checks of an intermediate
//! phase (e.g. the cache right after a crash) and the merge of every phase into one record.

use std::path::PathBuf;
use std::time::Duration;

use stress_cache_metadata::InvariantResult;

use crate::invariants::{self, Expectations, Observations, ServedCounts};
use crate::orchestrator::ProcessOutcome;
use crate::scenario::{Phase, Scenario, ScenarioError, TracedFleet};
use crate::server::{FaultPlan, Gate, ModelServer, Route, RouteHandle};
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
use crate::target::{ProcessPlan, Target};

/// Name of the check that a process holding a cache lock (alive, stopped) keeps every other process of
/// that entry waiting. Not one of [`Invariant::ALL`]: it needs a process held at a failpoint, so only the
/// lock scenarios report it.
pub const LIVE_HOLDER_BLOCKS_OTHERS: &str = "live_lock_holder_blocks_others";

/// Bound of every wait for an event (a process stopped, blocked on a lock, exited).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

// Scenario and server set-up are shared with the other scenario modules.
pub use super::setup::{scenario, scenario_on, server};

/// The first model identity of the target (models are used generically); under a replayed plan's model
/// cap, the smallest.
pub fn first_model(s: &Scenario) -> String {
    if crate::replay::model_cap().is_some() {
        return super::setup::models_by_size(s.target())[0].clone();
    }
    s.target().model_ids().into_iter().next().unwrap_or_default()
}

/// The set-up most phased scenarios start from: the target's first model served on loopback with `plan`,
/// and one cache directory shared by every process of the scenario.
pub struct SharedModel {
    /// The target (a clone, so the scenario can be borrowed mutably meanwhile).
    pub target: Target,
    /// The server; keep it alive for the whole scenario.
    pub server: ModelServer,
    /// The model identity served.
    pub model: String,
    /// Its route (counters).
    pub route: RouteHandle,
    /// Its URL.
    pub url: String,
    /// The shared cache directory.
    pub cache: PathBuf,
}

/// Starts [`SharedModel`] for scenario `s`.
pub fn shared_model(s: &Scenario, plan: FaultPlan) -> Result<SharedModel, ScenarioError> {
    let target = s.target().clone();
    let server = server()?;
    let model = first_model(s);
    let route = serve(&server, &target, &model, plan);
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    Ok(SharedModel { target, server, model, route, url, cache })
}

/// [`shared_model`] with the model's body parked at `gate` mid-way (see [`super::overlap::gated_plan`]).
pub fn gated_shared_model(s: &Scenario, gate: &Gate) -> Result<SharedModel, ScenarioError> {
    let len = s.target().model(&first_model(s)).bytes.len();
    shared_model(s, super::overlap::gated_plan(gate, len))
}

/// [`shared_model`] without faults, plus the compiled reference entry of a clean run of the model
/// (served on an uncounted route beside it, so it is not counted as the scenario's downloads).
pub fn shared_model_with_compiled_reference(
    s: &mut Scenario,
) -> Result<(SharedModel, CompiledReference), ScenarioError> {
    let target = s.target().clone();
    let server = server()?;
    let model = first_model(s);
    let route = serve(&server, &target, &model, FaultPlan::default());
    let url = server.url(&route);
    let reference_route = serve_uncounted(&server, &target, &model, "reference");
    let reference = s.compiled_reference(&[(&model, &server.url(&reference_route))])?;
    let cache = s.cache_dir("shared");
    Ok((SharedModel { target, server, model, route, url, cache }, reference))
}

/// Serves `model` under the target's path prefixed by `prefix` (`""` for the declared path), with the
/// target's extra headers, a model id (so it counts as amplification) and a fault plan.
pub fn serve(server: &ModelServer, target: &Target, model: &str, plan: FaultPlan) -> RouteHandle {
    server.add_route(super::setup::model_route(target, model, plan))
}

/// Serves `model` under `/<prefix><declared path>` without a model id (reference runs: not counted).
pub fn serve_uncounted(server: &ModelServer, target: &Target, model: &str, prefix: &str) -> RouteHandle {
    let fixture = target.model(model);
    let mut route = Route::new(format!("/{prefix}{}", target.server_path(model)), fixture.bytes.clone());
    for (k, v) in &target.spec.server.headers {
        route = route.header(k.as_str(), v.as_str());
    }
    server.add_route(route)
}

/// Complete bodies (and requests, bytes) served by `route` since `before` (a [`ServedCounts`] taken
/// earlier with [`counts`]).
pub fn served_since(route: &RouteHandle, before: &ServedCounts) -> ServedCounts {
    let now = counts(route);
    let mut out = ServedCounts { bytes_served: now.bytes_served - before.bytes_served, ..Default::default() };
    for (m, n) in &now.complete_bodies {
        out.complete_bodies.insert(m.clone(), n - before.complete_bodies.get(m).copied().unwrap_or(0));
    }
    for (m, n) in &now.requests {
        out.requests.insert(m.clone(), n - before.requests.get(m).copied().unwrap_or(0));
    }
    out
}

/// The route's counters now.
pub fn counts(route: &RouteHandle) -> ServedCounts {
    crate::scenario::served_counts(&[route])
}

/// Runs `plans` together to completion; the setup error it returns (a clean run that did not succeed)
/// is the scenario's `error` outcome, never a violation.
pub fn setup_run(s: &mut Scenario, plans: &[ProcessPlan], label: &str) -> Result<(), String> {
    let outcomes = s.run_to_completion(plans, label).map_err(|e| format!("{label}: {e}"))?;
    let codes = s.target().spec.exit_codes.clone();
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|o| o.exit_code != Some(codes.ok))
        .map(|o| format!("{}: {}", o.describe(), o.stderr_tail(300).trim()))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("precondition not met: the clean {label} run failed: {}", bad.join("; ")))
    }
}

/// Starts `plans` as a fleet of its own (outside the scenario's main run, traced like it), e.g. a process
/// held at a failpoint before the others start, or gc while readers are stopped. Reap it with
/// [`Scenario::reap`].
pub fn side_fleet(
    s: &mut Scenario,
    label: &str,
    plans: &[ProcessPlan],
) -> Result<TracedFleet, ScenarioError> {
    s.start_fleet_with_deadline(plans, label, crate::scenario::DEFAULT_DEADLINE)
}

/// What one intermediate phase observed (checked with the same invariant checker as the final phase).
pub struct PhaseInput<'a> {
    /// Label prefixed to the evidence (`after the crash`, `gc`, ...).
    pub label: &'a str,
    /// The phase's plans' expectations, by index of `outcomes`.
    pub expectations: Expectations,
    /// Its outcomes.
    pub outcomes: &'a [ProcessOutcome],
    /// Download caches to snapshot now (empty: none).
    pub caches: Vec<PathBuf>,
    /// Compiled caches to snapshot now.
    pub compiled: Vec<PathBuf>,
    /// Compiled reference.
    pub compiled_reference: Option<&'a CompiledReference>,
    /// Server counters of the phase.
    pub served: Option<ServedCounts>,
}

/// Snapshots the phase's caches now and checks every invariant on them (skipped where the phase has no
/// observation), for [`crate::scenario::ScenarioRun::add_phase`].
pub fn check_phase(s: &Scenario, input: PhaseInput<'_>) -> Phase {
    let target = s.target();
    let caches: Vec<CacheSnapshot> =
        input.caches.iter().map(|d| CacheSnapshot::take(d, &target.spec.files, &target.models)).collect();
    let compiled: Vec<CompiledSnapshot> = match &target.spec.compiled {
        Some(c) => {
            input.compiled.iter().map(|d| CompiledSnapshot::take(d, c, target.spec.files.lock_kind)).collect()
        }
        None => Vec::new(),
    };
    let mut obs = Observations::new(target, &input.expectations, input.outcomes, &caches, &compiled);
    obs.compiled_reference = input.compiled_reference;
    obs.served = input.served.as_ref();
    let results = invariants::check(&obs);
    Phase {
        label: input.label.to_string(),
        results,
        outcomes: input.outcomes.to_vec(),
        expectations: input.expectations,
        caches,
    }
}

/// A result under `name`, held when `evidence` is empty.
pub fn verdict(name: &str, evidence: Vec<String>) -> InvariantResult {
    InvariantResult::checked(name, evidence)
}

/// The failpoint configuration `<name>=<action>` for the target's env var.
pub fn arm(failpoint: &str, action: &str) -> String {
    format!("{failpoint}={action}")
}
