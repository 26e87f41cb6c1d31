//! The tier of a run: how big each scenario is, and which nextest profile selects its scenarios.

use serde::{Deserialize, Serialize};

/// The size class of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Every pull request: the scenarios once, 10 processes per contention scenario (seed 000's fleet).
    #[default]
    Pr,
    /// Every night: the PR scenarios at 48 processes plus the nightly-only ones.
    Nightly,
}

impl Tier {
    /// Every tier.
    pub const ALL: [Tier; 2] = [Tier::Pr, Tier::Nightly];

    /// Stable lower-case name (`pr`, `nightly`): the `STRESS_TIER` value and the records' `tier`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Pr => "pr",
            Tier::Nightly => "nightly",
        }
    }

    /// The nextest profile (in `.config/nextest.toml`) whose `default-filter` selects this tier's
    /// scenarios.
    pub fn nextest_profile(self) -> &'static str {
        match self {
            Tier::Pr => "stress-pr",
            Tier::Nightly => "stress-nightly",
        }
    }

    /// Processes of a contention scenario in this tier, before the `STRESS_PROCESSES` cap.
    pub fn contention_processes(self) -> usize {
        match self {
            Tier::Pr => 10,
            Tier::Nightly => 48,
        }
    }

    /// The tier named `name` (exactly `pr` or `nightly`).
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
