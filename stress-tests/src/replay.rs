//! The plan a replay runs (`STRESS_REPLAY_PLAN`, set by `cargo stress-cache replay` and `shrink`): read
//! once per test process. Its knobs take precedence over the other variables: the tier, seed, mutant and
//! process cap of the recorded run, and the reductions of a shrunk plan: the fault cap (applied to every
//! route's schedule in [`crate::scenarios::setup::route`]), role caps ([`crate::scenario::Scenario::launch`]
//! and the recovery run), disarmed failpoints ([`crate::target::ProcessPlan::failpoints`]) and the model
//! cap ([`crate::scenarios::setup::models_by_size`]).

use std::sync::OnceLock;

use stress_cache_metadata::{PLAN_SCHEMA_VERSION, RunPlan, Tier};

use crate::tier::TierConfig;

/// The replay plan could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read the replay plan {path}: {message}")]
pub struct ReplayError {
    /// The plan's path.
    pub path: String,
    /// Why.
    pub message: String,
}

/// The plan this process replays, if the suite environment names one.
pub fn plan() -> Result<Option<&'static RunPlan>, ReplayError> {
    static PLAN: OnceLock<Result<Option<RunPlan>, ReplayError>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let Some(path) = crate::tier::suite_env().ok().and_then(|env| env.replay_plan.clone()) else {
            return Ok(None);
        };
        let error = |message: String| ReplayError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
        let plan: RunPlan = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        if plan.schema_version != PLAN_SCHEMA_VERSION {
            return Err(error(format!(
                "plan schema version {} (this suite reads {PLAN_SCHEMA_VERSION})",
                plan.schema_version
            )));
        }
        Ok(Some(plan))
    })
    .as_ref()
    .map(Option::as_ref)
    .map_err(Clone::clone)
}

/// `tier` with the knobs of `plan`: its tier, seed, mutant and process cap.
pub fn apply(plan: &RunPlan, tier: &mut TierConfig) {
    if let Some(t) = Tier::from_name(&plan.tier) {
        tier.tier = t;
    }
    tier.seed = plan.seed;
    tier.mutant = plan.mutant.clone();
    tier.process_cap = plan.process_cap;
}

/// The fault cap of the replayed plan, if any.
pub fn fault_cap() -> Option<usize> {
    plan().ok().flatten().and_then(|p| p.fault_cap)
}

/// The replayed plan's cap on the processes of `role`, if any.
pub fn role_cap(role: &str) -> Option<usize> {
    plan().ok().flatten().and_then(|p| p.role_cap(role))
}

/// `config` without the failpoints the replayed plan disarms (unchanged without a plan).
pub fn armed(config: &str) -> Option<String> {
    match plan().ok().flatten() {
        Some(p) => p.armed(config),
        None => Some(config.to_string()),
    }
}

/// The replayed plan's model cap, if any.
pub fn model_cap() -> Option<usize> {
    plan().ok().flatten().and_then(|p| p.model_cap)
}

/// The replayed plan's reductions (role caps, disarmed failpoints, model cap) carried into `into`, so
/// the record's plan says what it ran with.
pub fn carry_reductions(into: &mut RunPlan) {
    if let Ok(Some(p)) = plan() {
        into.role_caps = p.role_caps.clone();
        into.disarmed_failpoints = p.disarmed_failpoints.clone();
        into.model_cap = p.model_cap;
    }
}
