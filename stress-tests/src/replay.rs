//! The plan a replay runs (`STRESS_REPLAY_PLAN`, set by `cargo stress-cache replay` and `shrink`): read
//! once per test process. Its knobs take precedence over the other variables: the tier, seed, mutant and
//! process cap of the recorded run, and the fault cap of a shrunk plan (applied to every route's schedule
//! in [`crate::scenarios::setup::route`]).

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
