//! How big a scenario run is: the tier (`STRESS_TIER`), the process cap (`STRESS_PROCESSES`), the seed
//! (`STRESS_SEED`) and the seeded bug every process runs with (`STRESS_MUTANT`).

use std::sync::OnceLock;

use stress_cache_metadata::SuiteEnv;
use stress_cache_metadata::suite_env;

/// Default seed when `STRESS_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// Error reading the tier configuration from the environment.
pub type TierError = suite_env::BadValue;

pub use stress_cache_metadata::Tier;

/// The suite environment of this process (`STRESS_*`), read once.
pub fn suite_env() -> Result<&'static SuiteEnv, TierError> {
    static ENV: OnceLock<Result<SuiteEnv, TierError>> = OnceLock::new();
    ENV.get_or_init(SuiteEnv::from_env).as_ref().map_err(Clone::clone)
}

/// The run configuration read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierConfig {
    /// `STRESS_TIER` (default `pr`).
    pub tier: Tier,
    /// `STRESS_PROCESSES`: cap on processes per scenario.
    pub process_cap: Option<usize>,
    /// `STRESS_SEED` (decimal or `0x` hex; default [`DEFAULT_SEED`]).
    pub seed: u64,
    /// `STRESS_MUTANT`: seeded bug every process runs with.
    pub mutant: Option<String>,
    /// `STRESS_TRACE` (`on` by default, `off`): record every target process's file-system operations.
    /// Off, the trace invariants are reported as skipped, never as held.
    pub trace: bool,
}

impl TierConfig {
    /// The configuration of this process's suite environment.
    /// A replayed plan (`STRESS_REPLAY_PLAN`) overrides the tier, seed, mutant and process cap.
    pub fn from_env() -> Result<Self, TierError> {
        let mut tier = suite_env().map(TierConfig::from_suite_env)?;
        match crate::replay::plan() {
            Ok(Some(plan)) => crate::replay::apply(plan, &mut tier),
            Ok(None) => {}
            Err(e) => {
                return Err(TierError {
                    var: suite_env::REPLAY_PLAN.to_string(),
                    value: e.path,
                    expected: "a readable run plan (JSON, plan schema 1)",
                });
            }
        }
        Ok(tier)
    }

    /// The configuration `env` describes (defaults for what it leaves unset).
    pub fn from_suite_env(env: &SuiteEnv) -> Self {
        TierConfig {
            tier: env.tier_or_default(),
            process_cap: env.processes,
            seed: env.seed.unwrap_or(DEFAULT_SEED),
            mutant: env.mutant.clone(),
            trace: env.trace_or_default(),
        }
    }

    /// Processes for a contention scenario: the tier's count, capped by `STRESS_PROCESSES`.
    pub fn contention_processes(&self) -> usize {
        self.capped(self.tier.contention_processes())
    }

    /// `wanted` capped by `STRESS_PROCESSES` (never below 1).
    pub fn capped(&self, wanted: usize) -> usize {
        self.process_cap.map_or(wanted, |cap| wanted.min(cap)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use stress_cache_metadata::suite_env::{MUTANT, PROCESSES, SEED, TIER, TRACE};

    fn config(vars: &[(&str, &str)]) -> Result<TierConfig, TierError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SuiteEnv::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.into()))
            .map(|env| TierConfig::from_suite_env(&env))
    }

    #[test]
    fn defaults_to_pr_with_fixed_seed() {
        let c = config(&[]).unwrap();
        assert_eq!(c.tier, Tier::Pr);
        assert_eq!(c.seed, DEFAULT_SEED);
        assert_eq!(c.contention_processes(), 10);
        assert_eq!(c.mutant, None);
    }

    #[test]
    fn nightly_is_capped_by_stress_processes() {
        let c = config(&[(TIER, "nightly"), (PROCESSES, "20"), (SEED, "0x10")]).unwrap();
        assert_eq!(c.tier, Tier::Nightly);
        assert_eq!(c.contention_processes(), 20);
        assert_eq!(c.seed, 16);
        assert_eq!(config(&[(TIER, "nightly")]).unwrap().contention_processes(), 48);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = config(&[(TIER, "weekly")]).unwrap_err().to_string();
        assert!(e.contains("weekly") && e.contains("pr") && e.contains("nightly"), "{e}");
        assert!(config(&[(PROCESSES, "0")]).is_err());
        assert!(config(&[(SEED, "abc")]).is_err());
        assert!(config(&[(PROCESSES, "abc")]).is_err());
        assert!(config(&[(TRACE, "maybe")]).is_err());
        assert!(!config(&[(TRACE, "off")]).unwrap().trace);
    }

    #[test]
    fn mutant_is_read() {
        assert_eq!(config(&[(MUTANT, "no-lock")]).unwrap().mutant.as_deref(), Some("no-lock"));
    }
}
