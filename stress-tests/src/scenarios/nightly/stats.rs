//! Latency statistics the way hyperfine reports a benchmark (min, median, max, mean, sample standard
//! deviation) plus the nearest-rank p95/p99 the records use everywhere ([`crate::record::percentile`]),
//! the coefficient of variation, and the drift of one window's median against another's. Pure: the soak
//! measures, this computes, the tests below check it on known input.

use stress_cache_metadata::LatencyStats;

use crate::record::percentile;

/// The statistics of `values` (milliseconds); all zero for an empty sample.
pub fn latency_stats(values: &[f64]) -> LatencyStats {
    let n = values.len();
    if n == 0 {
        return LatencyStats::default();
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    LatencyStats {
        n,
        min_ms: values.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        mean_ms: mean,
        stddev_ms: stddev,
        p50_ms: percentile(values, 50.0),
        p95_ms: percentile(values, 95.0),
        p99_ms: percentile(values, 99.0),
        cv: if n > 1 && mean > 0.0 { stddev / mean } else { 0.0 },
    }
}

/// Relative change of `last`'s median against `first`'s: `(last − first) / first` (0 when `first` has
/// no median).
pub fn drift(first: &LatencyStats, last: &LatencyStats) -> f64 {
    if first.p50_ms > 0.0 { (last.p50_ms - first.p50_ms) / first.p50_ms } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// 1..=5: mean 3, sample stddev √2.5, nearest-rank median 3 and p95/p99 5, CV √2.5 / 3.
    #[test]
    fn statistics_of_a_known_sample_are_exact() {
        let s = latency_stats(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(s.n, 5);
        assert!(close(s.min_ms, 1.0) && close(s.max_ms, 5.0), "{s:?}");
        assert!(close(s.mean_ms, 3.0), "{s:?}");
        assert!(close(s.stddev_ms, 2.5f64.sqrt()), "{s:?}");
        assert!(close(s.p50_ms, 3.0) && close(s.p95_ms, 5.0) && close(s.p99_ms, 5.0), "{s:?}");
        assert!(close(s.cv, 2.5f64.sqrt() / 3.0), "{s:?}");
    }

    /// 100 values 1..=100: nearest-rank p95 is 95 and p99 99; a constant sample has CV 0.
    #[test]
    fn percentiles_are_nearest_rank_and_a_constant_sample_has_no_variation() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = latency_stats(&values);
        assert!(close(s.p50_ms, 50.0) && close(s.p95_ms, 95.0) && close(s.p99_ms, 99.0), "{s:?}");
        let flat = latency_stats(&[40.0; 10]);
        assert!(close(flat.cv, 0.0) && close(flat.stddev_ms, 0.0), "{flat:?}");
        assert_eq!(latency_stats(&[]), LatencyStats::default());
        assert!(close(latency_stats(&[7.0]).cv, 0.0));
    }

    /// Drift is the relative change of the median: 40 ms → 44 ms is +10 %, 40 → 30 is −25 %.
    #[test]
    fn drift_is_the_relative_change_of_the_median() {
        let first = latency_stats(&[39.0, 40.0, 41.0]);
        assert!(close(drift(&first, &latency_stats(&[43.0, 44.0, 45.0])), 0.1));
        assert!(close(drift(&first, &latency_stats(&[30.0])), -0.25));
        assert!(close(drift(&LatencyStats::default(), &first), 0.0));
    }
}
