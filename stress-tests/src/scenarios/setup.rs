//! What the contention and network scenarios set up the same way: a [`Scenario`] on the shared target with
//! the options' mutant, a loopback model server, routes that carry the target's declared headers, and the
//! target's models ordered by size (so no scenario hard-codes a target's model names).

use stress_cache_metadata::InvariantResult;

use crate::scenario::{Scenario, ScenarioError};
use crate::server::{FaultPlan, Gate, ModelServer, Route, RouteHandle};
use crate::target::Target;
use crate::tier::TierConfig;

use super::ScenarioOptions;

/// A scenario named `name` on the shared target, with the tier from the environment and the options'
/// mutant (which every [`Scenario::writer`] plan then carries).
pub fn scenario(name: &str, opts: &ScenarioOptions) -> Result<Scenario, ScenarioError> {
    match &opts.target {
        // Another target's records must not take the names of the shared target's.
        Some(t) => {
            let prefix = t.spec.display_name().replace(['-', '.', ' '], "_");
            scenario_on(&format!("{prefix}__{name}"), opts, (**t).clone())
        }
        None => scenario_on(name, opts, Target::shared()?.clone()),
    }
}

/// A scenario on an explicit target (e.g. a second target) with the options' mutant.
pub fn scenario_on(name: &str, opts: &ScenarioOptions, target: Target) -> Result<Scenario, ScenarioError> {
    let mut tier = TierConfig::from_env()?;
    // The options decide (`ScenarioOptions::from_env` reads `STRESS_MUTANT`): a clean run stays clean
    // even when the environment names a mutant.
    tier.mutant = opts.mutant.clone();
    if opts.process_cap.is_some() {
        tier.process_cap = opts.process_cap;
    }
    let mut s = if opts.without_checksum {
        let mut s = Scenario::with_target(&format!("{name}{}", super::WITHOUT_CHECKSUM), target, tier)?;
        s.without_checksum();
        s
    } else {
        Scenario::with_target(name, target, tier)?
    };
    s.process_env(&opts.env);
    Ok(s)
}

/// Starts a model server on 127.0.0.1 (its error mapped into [`ScenarioError::Io`]).
pub fn server() -> Result<ModelServer, ScenarioError> {
    ModelServer::start().map_err(|e| ScenarioError::Io {
        action: "start the model server on",
        path: "127.0.0.1".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// The target's model ids ordered by size (smallest first, ties by id); a replayed plan's model cap
/// keeps only that many of the smallest. Panics if the target declares no model.
pub fn models_by_size(target: &Target) -> Vec<String> {
    let mut ids = target.model_ids();
    assert!(!ids.is_empty(), "the target declares no model fixture");
    ids.sort_by_key(|id| (target.model(id).bytes.len(), id.clone()));
    if let Some(cap) = crate::replay::model_cap() {
        ids.truncate(cap.max(1));
    }
    ids
}

/// `(small, large)`: the smallest and the largest model (the same id if the target has only one).
pub fn small_and_large(target: &Target) -> (String, String) {
    let ids = models_by_size(target);
    (ids[0].clone(), ids[ids.len() - 1].clone())
}

/// A route serving `bytes` under `path` for model identity `model`, with every header the target's
/// declaration asks for and the schedule `plan`.
/// A replayed plan's fault cap ([`crate::replay::fault_cap`]) caps `plan`.
pub fn route(target: &Target, path: &str, model: &str, bytes: &[u8], plan: FaultPlan) -> Route {
    let plan = match crate::replay::fault_cap() {
        Some(n) => plan.capped(n),
        None => plan,
    };
    let mut route = Route::new(path.to_string(), bytes.to_vec()).model_id(model).schedule(plan);
    for (k, v) in &target.spec.server.headers {
        route = route.header(k.as_str(), v.as_str());
    }
    route
}

/// The route of `model` under the target's declared path, serving the model's own bytes.
pub fn model_route(target: &Target, model: &str, plan: FaultPlan) -> Route {
    route(target, &target.server_path(model), model, &target.model(model).bytes, plan)
}

/// The route of `model` (see [`model_route`]) with its body parked at `gate` mid-way.
pub fn gated_model_route(target: &Target, model: &str, gate: &Gate) -> Route {
    model_route(target, model, super::overlap::gated_plan(gate, target.model(model).bytes.len()))
}

/// The target's small model served on a fresh loopback server.
pub struct SmallModel {
    /// The server; keep it alive for the whole scenario.
    pub server: ModelServer,
    /// The model identity.
    pub model: String,
    /// Its route (counters).
    pub route: RouteHandle,
    /// Its URL.
    pub url: String,
}

impl SmallModel {
    /// The small model served with the schedule `plan` (see [`model_route`]).
    pub fn serve(target: &Target, plan: FaultPlan) -> Result<SmallModel, ScenarioError> {
        Self::serve_with(target, |model| model_route(target, model, plan))
    }

    /// The small model with its body parked at `gate` mid-way (see [`gated_model_route`]).
    pub fn gated(target: &Target, gate: &Gate) -> Result<SmallModel, ScenarioError> {
        Self::serve_with(target, |model| gated_model_route(target, model, gate))
    }

    fn serve_with(target: &Target, route: impl FnOnce(&str) -> Route) -> Result<SmallModel, ScenarioError> {
        let server = server()?;
        let (model, _) = small_and_large(target);
        let route = server.add_route(route(&model));
        let url = server.url(&route);
        Ok(SmallModel { server, model, route, url })
    }
}

/// A scenario-specific verdict: held when `evidence` is empty.
pub fn verdict(name: &str, evidence: Vec<String>) -> InvariantResult {
    InvariantResult::checked(name, evidence)
}
