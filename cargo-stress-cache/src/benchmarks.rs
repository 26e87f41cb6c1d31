//! The benchmarks table: per scenario, medians of the figures its records measured, and the
//! comparison with a baseline `report.json`.

use std::collections::BTreeMap;

use stress_cache_metadata::ScenarioRecord;
pub use stress_cache_metadata::report::{BenchmarkRow, Regression};

/// Medians of the figures of clean `records` (mutant runs measure a bug), one row per scenario.
pub fn rows(records: &[&ScenarioRecord]) -> Vec<BenchmarkRow> {
    let mut by_scenario: BTreeMap<&str, Vec<&ScenarioRecord>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.mutant.is_none()) {
        by_scenario.entry(record.scenario.as_str()).or_default().push(record);
    }
    by_scenario
        .into_iter()
        .map(|(scenario, runs)| {
            let figure = |f: fn(&ScenarioRecord) -> f64| median(runs.iter().map(|r| f(r)).collect());
            let hit_ratios: Vec<f64> = runs.iter().filter_map(|r| r.figures.cache_hit_ratio).collect();
            let mut bodies: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for run in &runs {
                for (model, count) in &run.figures.complete_bodies_per_model {
                    bodies.entry(model.clone()).or_default().push(*count as f64);
                }
            }
            BenchmarkRow {
                scenario: scenario.to_string(),
                runs: runs.len(),
                processes_per_sec: figure(|r| r.figures.processes_per_sec),
                latency_p50_ms: figure(|r| r.figures.latency_p50_ms),
                latency_p95_ms: figure(|r| r.figures.latency_p95_ms),
                cache_hit_ratio: (!hit_ratios.is_empty()).then(|| median(hit_ratios)),
                bodies_per_model: bodies.into_iter().map(|(m, v)| (m, median(v))).collect(),
                mb_per_sec: figure(|r| r.figures.mb_per_sec),
            }
        })
        .collect()
}

/// Benchmarks of `current` that got worse than in `baseline` by more than `threshold_pct` percent.
pub fn regressions(
    current: &[BenchmarkRow],
    baseline: &[BenchmarkRow],
    threshold_pct: f64,
) -> Vec<Regression> {
    let mut regressions = Vec::new();
    for row in current {
        let Some(base) = baseline.iter().find(|b| b.scenario == row.scenario) else {
            continue;
        };
        // (name, baseline, current, higher is better)
        let metrics = [
            ("processes_per_sec", base.processes_per_sec, row.processes_per_sec, true),
            ("mb_per_sec", base.mb_per_sec, row.mb_per_sec, true),
            ("latency_p50_ms", base.latency_p50_ms, row.latency_p50_ms, false),
            ("latency_p95_ms", base.latency_p95_ms, row.latency_p95_ms, false),
        ];
        for (metric, before, now, higher_is_better) in metrics {
            if before <= 0.0 || !before.is_finite() || !now.is_finite() {
                continue;
            }
            let change_pct = (now - before) / before * 100.0;
            let worse = if higher_is_better { -change_pct } else { change_pct };
            if worse > threshold_pct {
                regressions.push(Regression {
                    scenario: row.scenario.clone(),
                    metric: metric.to_string(),
                    baseline: before,
                    current: now,
                    change_pct,
                });
            }
        }
    }
    regressions
}

/// The median (mean of the two middle values for an even count); 0 for no values.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `warm_hits` row with the two figures regressions are judged on (tests of the comparison).
    pub(crate) fn warm_hits_row(pps: f64, p95: f64) -> BenchmarkRow {
        BenchmarkRow {
            scenario: "warm_hits".into(),
            runs: 1,
            processes_per_sec: pps,
            latency_p50_ms: 10.0,
            latency_p95_ms: p95,
            cache_hit_ratio: Some(1.0),
            bodies_per_model: BTreeMap::new(),
            mb_per_sec: 0.0,
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn only_changes_beyond_the_threshold_in_the_worse_direction_are_regressions() {
        let row = warm_hits_row;
        // -15% throughput is within 20%; +40% p95 latency is not; faster is never a regression.
        let found = regressions(&[row(85.0, 70.0)], &[row(100.0, 50.0)], 20.0);
        let metrics: Vec<&str> = found.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(metrics, vec!["latency_p95_ms"]);
        assert!(regressions(&[row(200.0, 10.0)], &[row(100.0, 50.0)], 20.0).is_empty());
    }
}
