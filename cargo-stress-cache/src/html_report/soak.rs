//! The soak figures of a nightly run on the page: per soak record, its totals and one row per window
//! (p50/p95/p99, CV, cold run, failures), the CV marked where it is at or above seed 004's bound. The
//! numbers are the record's own (`summary.json` sums the same records), formatted here, not in the
//! template.

use std::path::Path;

use serde::Serialize;
use stress_cache_metadata::{CV_BOUND, ScenarioRecord};

/// One soak record.
#[derive(Debug, Serialize)]
pub struct SoakView {
    /// Scenario (with its repeat's record file name, when there are several).
    pub scenario: String,
    /// Runs, failures, wall time, drift and the harness's RSS/FD change, as one line.
    pub totals: String,
    /// Whether any run failed.
    pub failed: bool,
    /// One per window.
    pub windows: Vec<SoakWindowRow>,
}

/// One window of a soak.
#[derive(Debug, Serialize)]
pub struct SoakWindowRow {
    /// 0-based window index.
    pub index: usize,
    /// Runs in the window.
    pub runs: usize,
    /// Failed runs.
    pub failures: usize,
    /// The cold run (ms).
    pub cold_ms: String,
    /// Median of the timed warm runs (ms).
    pub p50_ms: String,
    /// 95th percentile (ms).
    pub p95_ms: String,
    /// 99th percentile (ms).
    pub p99_ms: String,
    /// Coefficient of variation, in percent.
    pub cv_pct: String,
    /// At or above seed 004's CV bound (a finding, not a violation).
    pub cv_above_bound: bool,
}

/// The soak views of `records` (those that carry soak figures), in record order.
pub fn soak_views(records: &[(&Path, &ScenarioRecord)]) -> Vec<SoakView> {
    let several = records.iter().filter(|(_, r)| r.soak.is_some()).count() > 1;
    records
        .iter()
        .filter_map(|(path, r)| {
            let soak = r.soak.as_ref()?;
            let scenario = match (several, path.file_name()) {
                (true, Some(name)) => format!("{} ({})", r.scenario, name.to_string_lossy()),
                _ => r.scenario.clone(),
            };
            let (before, after) = (soak.harness_before, soak.harness_after);
            let totals = format!(
                "{} runs, {} failed, {:.0} s; drift of the last window's median {:+.1} %; harness RSS {:+} kB, FDs {:+}",
                soak.runs,
                soak.failures,
                soak.wall_ms / 1000.0,
                soak.drift * 100.0,
                after.rss_kb as i64 - before.rss_kb as i64,
                after.fds as i64 - before.fds as i64
            );
            let windows = soak
                .windows
                .iter()
                .map(|w| SoakWindowRow {
                    index: w.index,
                    runs: w.runs,
                    failures: w.failures,
                    cold_ms: format!("{:.1}", w.cold_ms),
                    p50_ms: format!("{:.1}", w.timed.p50_ms),
                    p95_ms: format!("{:.1}", w.timed.p95_ms),
                    p99_ms: format!("{:.1}", w.timed.p99_ms),
                    cv_pct: format!("{:.1}", w.timed.cv * 100.0),
                    cv_above_bound: w.timed.cv >= CV_BOUND,
                })
                .collect();
            Some(SoakView { scenario, totals, failed: soak.failures > 0, windows })
        })
        .collect()
}
