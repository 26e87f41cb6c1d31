//! The figures of a page: latency histograms per scenario, benchmark rows with their change against the
//! baseline, and the nightly trend charts. A change is "regressed" only where the aggregate found a
//! regression (beyond its threshold), so the page never contradicts the verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use stress_cache_metadata::ScenarioRecord;

use super::charts;
use super::view::{MAX_TIMELINES, Svg, with_mutant};
use crate::aggregate::Aggregate;
use crate::benchmarks::BenchmarkRow;

/// Buckets of a latency histogram.
const HISTOGRAM_BUCKETS: usize = 20;

/// A latency histogram.
#[derive(Debug, Serialize)]
pub struct HistogramView {
    /// Scenario (and mutant).
    pub scenario: String,
    /// Processes counted.
    pub processes: usize,
    /// The SVG.
    pub svg: Svg,
}

/// A named chart.
#[derive(Debug, Serialize)]
pub struct ChartView {
    /// Title.
    pub title: String,
    /// The SVG.
    pub svg: Svg,
}

/// A benchmark row with its changes against the baseline.
#[derive(Debug, Serialize)]
pub struct BenchmarkView {
    /// Scenario.
    pub scenario: String,
    /// Clean runs measured.
    pub runs: usize,
    /// Figures: processes/s, p50, p95, MB/s.
    pub figures: Vec<FigureView>,
    /// Cache hit ratio.
    pub hit_ratio: String,
    /// Bodies per model.
    pub bodies: String,
}

/// One figure of a benchmark row.
#[derive(Debug, Serialize)]
pub struct FigureView {
    /// The value.
    pub value: String,
    /// Change against the baseline (`+12%`), if there is one.
    pub delta: Option<String>,
    /// `better`, `worse`, `regressed` (worse beyond the threshold) or `same`.
    pub trend: &'static str,
}

pub(super) fn histograms(records: &[(&Path, &ScenarioRecord)]) -> Vec<HistogramView> {
    let mut by_scenario: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (_, r) in records.iter().filter(|(_, r)| r.not_applicable.is_none() && !r.process_runs.is_empty()) {
        by_scenario
            .entry(with_mutant(&r.scenario, &r.mutant))
            .or_default()
            .extend(r.process_runs.iter().map(|p| p.wall_ms));
    }
    if by_scenario.len() > MAX_TIMELINES {
        return Vec::new();
    }
    by_scenario
        .into_iter()
        .map(|(scenario, latencies)| HistogramView {
            scenario,
            processes: latencies.len(),
            svg: charts::latency_histogram(&latencies, HISTOGRAM_BUCKETS).into(),
        })
        .collect()
}

/// The metrics of a benchmark row, and whether more is better.
const METRICS: [(&str, bool); 4] =
    [("processes_per_sec", true), ("latency_p50_ms", false), ("latency_p95_ms", false), ("mb_per_sec", true)];

fn metric(row: &BenchmarkRow, name: &str) -> f64 {
    match name {
        "processes_per_sec" => row.processes_per_sec,
        "latency_p50_ms" => row.latency_p50_ms,
        "latency_p95_ms" => row.latency_p95_ms,
        _ => row.mb_per_sec,
    }
}

pub(super) fn benchmarks(agg: &Aggregate, baseline: Option<&Aggregate>) -> Vec<BenchmarkView> {
    agg.benchmarks
        .iter()
        .map(|row| {
            let base = baseline.and_then(|b| b.benchmarks.iter().find(|r| r.scenario == row.scenario));
            let figures = METRICS
                .iter()
                .map(|(name, more_is_better)| {
                    let value = metric(row, name);
                    let shown = if name.starts_with("latency") {
                        format!("{value:.0}")
                    } else {
                        format!("{value:.2}")
                    };
                    let regressed =
                        agg.regressions.iter().any(|r| r.scenario == row.scenario && r.metric == *name);
                    let (delta, trend) = match base.map(|b| metric(b, name)) {
                        Some(before) if before != 0.0 => {
                            let change = (value - before) / before * 100.0;
                            let better = (change > 0.0) == *more_is_better;
                            let trend = if regressed {
                                "regressed"
                            } else if change.abs() < 0.5 {
                                "same"
                            } else if better {
                                "better"
                            } else {
                                "worse"
                            };
                            (Some(format!("{change:+.0}%")), trend)
                        }
                        _ => (None, "same"),
                    };
                    FigureView { value: shown, delta, trend }
                })
                .collect();
            BenchmarkView {
                scenario: row.scenario.clone(),
                runs: row.runs,
                figures,
                hit_ratio: row.cache_hit_ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()),
                bodies: row
                    .bodies_per_model
                    .iter()
                    .map(|(m, n)| format!("{m}={n}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        })
        .collect()
}

/// One chart per scenario: its p50 and p95 latency and processes/s over the nightly runs.
pub(super) fn trend(nightly: &[(String, Aggregate)]) -> Vec<ChartView> {
    if nightly.len() < 2 {
        return Vec::new();
    }
    let scenarios: BTreeSet<&str> =
        nightly.iter().flat_map(|(_, a)| a.benchmarks.iter().map(|b| b.scenario.as_str())).collect();
    scenarios
        .into_iter()
        .map(|scenario| {
            let mut figures: charts::Trend = BTreeMap::new();
            for (name, _) in METRICS.iter().filter(|(n, _)| *n != "mb_per_sec") {
                let values = nightly
                    .iter()
                    .map(|(_, a)| {
                        a.benchmarks.iter().find(|b| b.scenario == scenario).map(|b| metric(b, name))
                    })
                    .collect();
                figures.insert(name, values);
            }
            ChartView {
                title: scenario.to_string(),
                svg: charts::trend(scenario, &figures, nightly.len()).into(),
            }
        })
        .collect()
}
