//! `summary.json` of a nightly tier run (issue 9, part 9): the soak, scale, leak, crash-state and
//! violation figures and each part's time, in one file next to `report.json`. Written here, by the CLI's
//! nightly tier run rather than by `cargo xtask nightly`: the CLI is the process that has every record,
//! every JUnit report (the parts' times) and the leak check of itself, and `cargo stress-cache --tier
//! nightly` alone then gives the same file; xtask only adds the mutants matrix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stress_cache_metadata::{
    CrashStatesSummary, LeakCounts, NightlySummary, PartTime, SUMMARY_FILE, SUMMARY_SCHEMA_VERSION,
    ScaleSummary, SoakSummary,
};

use crate::aggregate::Aggregate;
use crate::errors::{Error, Result};
use crate::inputs::Inputs;

/// The nightly-only test binary; its tests are named `<part>::<property>`.
const NIGHTLY_BINARY: &str = "stress-tests::nightly";

/// The part a JUnit test belongs to: its module in the nightly binary, else the PR tier's scenarios.
pub fn part_of(test: &str) -> String {
    match test.split_once(' ') {
        Some((binary, name)) if binary == NIGHTLY_BINARY => {
            name.split_once("::").map_or("nightly", |(part, _)| part).to_string()
        }
        _ => "pr_scenarios".to_string(),
    }
}

/// The summary of everything read back from a run (`repeats` of the tier, `wall` in all).
pub fn build(
    inputs: &Inputs,
    agg: &Aggregate,
    leaks: LeakCounts,
    repeats: u32,
    wall: Duration,
) -> NightlySummary {
    let records: Vec<_> = inputs.records.iter().map(|(_, r)| r).collect();
    let soaks: Vec<_> = records.iter().filter_map(|r| r.soak.as_ref()).collect();
    let soak = (!soaks.is_empty()).then(|| SoakSummary {
        runs: soaks.iter().map(|s| s.runs).sum(),
        failures: soaks.iter().map(|s| s.failures).sum(),
        windows: soaks.iter().flat_map(|s| s.windows.iter().cloned()).collect(),
        max_abs_drift: soaks.iter().map(|s| s.drift.abs()).fold(0.0, f64::max),
        harness_rss_growth_kb: soaks
            .iter()
            .map(|s| s.harness_after.rss_kb as i64 - s.harness_before.rss_kb as i64)
            .max()
            .unwrap_or(0),
        harness_fd_growth: soaks
            .iter()
            .map(|s| s.harness_after.fds as i64 - s.harness_before.fds as i64)
            .max()
            .unwrap_or(0),
    });
    let scales: Vec<_> = records.iter().filter_map(|r| r.scale.as_ref()).collect();
    let sustained: Vec<_> = scales.iter().filter(|s| s.sustained).collect();
    let scale = (!scales.is_empty()).then(|| ScaleSummary {
        processes: scales.iter().filter(|s| !s.sustained).map(|s| s.processes).max().unwrap_or(0),
        runs_per_minute: sustained.iter().map(|s| s.runs_per_minute).reduce(f64::min).unwrap_or(0.0),
        sustained_runs: sustained.iter().map(|s| s.runs).sum(),
        failures: scales.iter().map(|s| s.failures).sum(),
    });
    let mut crash_states = CrashStatesSummary::default();
    for c in records.iter().filter_map(|r| r.crash_states) {
        crash_states.explored += c.explored;
        crash_states.broken += c.broken;
    }
    let mut parts: BTreeMap<String, PartTime> = BTreeMap::new();
    for o in inputs.junit.iter().flat_map(|(_, obs)| obs) {
        let part = part_of(&o.test);
        let entry = parts.entry(part.clone()).or_insert_with(|| PartTime { part, ..PartTime::default() });
        entry.seconds += o.time_s.unwrap_or(0.0);
        entry.tests += 1;
    }
    NightlySummary {
        schema_version: SUMMARY_SCHEMA_VERSION,
        repeats,
        soak,
        scale,
        leaks,
        crash_states,
        violations: agg.violations(),
        parts: parts.into_values().collect(),
        wall_s: wall.as_secs_f64(),
    }
}

/// Writes `summary` to `<run_dir>/summary.json` and returns the path.
pub fn write(run_dir: &Path, summary: &NightlySummary) -> Result<PathBuf> {
    let path = run_dir.join(SUMMARY_FILE);
    let text = serde_json::to_string_pretty(summary)
        .map_err(|e| Error::io("cannot serialise", &path, std::io::Error::other(e.to_string())))?;
    std::fs::write(&path, text + "\n").map_err(|source| Error::io("cannot write", &path, source))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_tests_are_grouped_by_module_and_the_rest_are_pr_scenarios() {
        assert_eq!(part_of("stress-tests::nightly soak::soak_sequential_warm_runs_never_fail"), "soak");
        assert_eq!(part_of("stress-tests::nightly power_loss::x"), "power_loss");
        assert_eq!(
            part_of("stress-tests::contention same_model_from_n_processes_downloads_once"),
            "pr_scenarios"
        );
    }
}
