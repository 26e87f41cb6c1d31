//! The flakes table: each test's stability across nextest runs (repeats, partitions) and nextest's
//! retries, from the JUnit reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::junit::{Observation, Outcome};

/// A test's stability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Passed first time in every run.
    Stable,
    /// Failed in some run (or passed only on retry) but passed in another.
    Flaky,
    /// Never passed.
    Broken,
}

impl Verdict {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Stable => "stable",
            Verdict::Flaky => "flaky",
            Verdict::Broken => "broken",
        }
    }
}

/// Classifies a test from its outcome counts across runs.
pub fn classify(passed: usize, flaky_on_retry: usize, failed: usize) -> Verdict {
    if flaky_on_retry == 0 && failed == 0 {
        Verdict::Stable
    } else if passed == 0 && flaky_on_retry == 0 {
        Verdict::Broken
    } else {
        Verdict::Flaky
    }
}

/// One test across runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlakeRow {
    /// `<binary id> <test name>`.
    pub test: String,
    /// Runs where it passed first time.
    pub passed: usize,
    /// Runs where it passed only on retry.
    pub flaky_on_retry: usize,
    /// Runs where it failed every attempt.
    pub failed: usize,
    /// The verdict.
    pub verdict: Verdict,
}

/// One row per test, from every run's observations.
pub fn rows(observations: &[&Observation]) -> Vec<FlakeRow> {
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for obs in observations {
        let slot = counts.entry(obs.test.as_str()).or_default();
        match obs.outcome {
            Outcome::Passed => slot[0] += 1,
            Outcome::FlakyOnRetry => slot[1] += 1,
            Outcome::Failed => slot[2] += 1,
        }
    }
    counts
        .into_iter()
        .map(|(test, [passed, flaky_on_retry, failed])| FlakeRow {
            test: test.to_string(),
            passed,
            flaky_on_retry,
            failed,
            verdict: classify(passed, flaky_on_retry, failed),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_stable_flaky_broken() {
        assert_eq!(classify(5, 0, 0), Verdict::Stable);
        assert_eq!(classify(4, 1, 0), Verdict::Flaky);
        assert_eq!(classify(4, 0, 1), Verdict::Flaky);
        assert_eq!(classify(0, 1, 0), Verdict::Flaky);
        assert_eq!(classify(0, 0, 3), Verdict::Broken);
    }
}
