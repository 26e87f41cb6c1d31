//! The flakes table: each test's stability across nextest runs (repeats, partitions) and nextest's
//! retries, from the JUnit reports.

use std::collections::BTreeMap;

pub use stress_cache_metadata::report::{FlakeRow, TestStability};

use crate::junit::{Observation, Outcome};

/// Classifies a test from its outcome counts across runs.
pub fn classify(passed: usize, flaky_on_retry: usize, failed: usize) -> TestStability {
    if flaky_on_retry == 0 && failed == 0 {
        TestStability::Stable
    } else if passed == 0 && flaky_on_retry == 0 {
        TestStability::Broken
    } else {
        TestStability::Flaky
    }
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
        assert_eq!(classify(5, 0, 0), TestStability::Stable);
        assert_eq!(classify(4, 1, 0), TestStability::Flaky);
        assert_eq!(classify(4, 0, 1), TestStability::Flaky);
        assert_eq!(classify(0, 1, 0), TestStability::Flaky);
        assert_eq!(classify(0, 0, 3), TestStability::Broken);
    }
}
