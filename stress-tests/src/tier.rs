//! How big a scenario run is: the tier (`STRESS_TIER`), the process cap (`STRESS_PROCESSES`), the seed
//! (`STRESS_SEED`) and the seeded bug every process runs with (`STRESS_MUTANT`).

use std::fmt;

use stress_cache_metadata::suite_env;

/// Default seed when `STRESS_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// Error reading the tier configuration from the environment.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// `STRESS_TIER` is neither `pr` nor `nightly`.
    #[error("STRESS_TIER={value:?} is not a tier: expected `pr` or `nightly`")]
    BadTier {
        /// The value found.
        value: String,
    },
    /// A variable did not parse.
    #[error(transparent)]
    BadValue(#[from] suite_env::BadValue),
}

/// The size class of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Pull-request tier: fast (16 processes in contention scenarios).
    Pr,
    /// Nightly tier: heavier (48 processes in contention scenarios).
    Nightly,
}

impl Tier {
    /// Reads `STRESS_TIER` (default `pr`); see [`TierConfig::from_env`] for the whole configuration.
    pub fn from_env() -> Result<Self, TierError> {
        TierConfig::from_env().map(|c| c.tier)
    }

    /// Parses `pr` or `nightly`.
    pub fn parse(value: &str) -> Result<Self, TierError> {
        match value.trim() {
            "pr" => Ok(Tier::Pr),
            "nightly" => Ok(Tier::Nightly),
            other => Err(TierError::BadTier { value: other.to_string() }),
        }
    }

    /// Stable lower-case name (`pr`, `nightly`), as written in records.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Pr => "pr",
            Tier::Nightly => "nightly",
        }
    }

    /// Processes of a contention scenario in this tier, before the `STRESS_PROCESSES` cap.
    pub fn contention_processes(self) -> usize {
        match self {
            Tier::Pr => 16,
            Tier::Nightly => 48,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
    /// Reads `STRESS_TIER`, `STRESS_PROCESSES`, `STRESS_SEED`, `STRESS_MUTANT`.
    pub fn from_env() -> Result<Self, TierError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`TierConfig::from_env`] with an injectable lookup (for tests). Parsing is shared with
    /// the CLI (`stress_cache_metadata::suite_env`): both sides accept exactly the same values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TierError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let tier = match get(suite_env::TIER) {
            Some(v) => Tier::parse(&v)?,
            None => Tier::Pr,
        };
        let process_cap = get(suite_env::PROCESSES)
            .map(|v| suite_env::parse_processes(suite_env::PROCESSES, &v))
            .transpose()?;
        let seed = get(suite_env::SEED)
            .map(|v| suite_env::parse_seed(suite_env::SEED, &v))
            .transpose()?
            .unwrap_or(DEFAULT_SEED);
        let mutant = get(suite_env::MUTANT).map(|v| v.trim().to_string());
        let trace = get(suite_env::TRACE)
            .map(|v| suite_env::parse_trace(suite_env::TRACE, &v))
            .transpose()?
            .unwrap_or(true);
        Ok(TierConfig { tier, process_cap, seed, mutant, trace })
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

    fn config(vars: &[(&str, &str)]) -> Result<TierConfig, TierError> {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TierConfig::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_to_pr_with_fixed_seed() {
        let c = config(&[]).unwrap();
        assert_eq!(c.tier, Tier::Pr);
        assert_eq!(c.seed, DEFAULT_SEED);
        assert_eq!(c.contention_processes(), 16);
        assert_eq!(c.mutant, None);
    }

    #[test]
    fn nightly_is_capped_by_stress_processes() {
        let c = config(&[("STRESS_TIER", "nightly"), ("STRESS_PROCESSES", "20"), ("STRESS_SEED", "0x10")])
            .unwrap();
        assert_eq!(c.tier, Tier::Nightly);
        assert_eq!(c.contention_processes(), 20);
        assert_eq!(c.seed, 16);
        assert_eq!(config(&[("STRESS_TIER", "nightly")]).unwrap().contention_processes(), 48);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = config(&[("STRESS_TIER", "weekly")]).unwrap_err().to_string();
        assert!(e.contains("weekly") && e.contains("pr") && e.contains("nightly"), "{e}");
        assert!(config(&[("STRESS_PROCESSES", "0")]).is_err());
        assert!(config(&[("STRESS_SEED", "abc")]).is_err());
        assert!(config(&[("STRESS_PROCESSES", "abc")]).is_err());
        assert!(config(&[("STRESS_TRACE", "maybe")]).is_err());
        assert!(!config(&[("STRESS_TRACE", "off")]).unwrap().trace);
    }

    #[test]
    fn mutant_is_read() {
        assert_eq!(config(&[("STRESS_MUTANT", "no-lock")]).unwrap().mutant.as_deref(), Some("no-lock"));
    }
}
