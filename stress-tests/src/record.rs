//! Building a scenario's [`ScenarioRecord`] (outcomes, invariants, figures, per-process phases) and
//! writing it atomically to `$STRESS_RESULTS_DIR` (default `<target dir>/stress-cache/results`) as
//! `<scenario>-<unix_ms>-<pid>.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stress_cache_metadata::{Figures, InvariantResult, ProcessRun, RECORD_SCHEMA_VERSION, ScenarioRecord};

use crate::invariants::{Expectations, OutcomeClass, ServedCounts};
use crate::orchestrator::{ProcessOutcome, unix_ms_now};
use crate::run_metadata::RunMetadata;
use crate::target::Target;
use crate::tier::TierConfig;

/// Error writing a record.
#[derive(Debug, thiserror::Error)]
#[error("cannot write scenario record {path}: {source}")]
pub struct RecordError {
    /// The file (or dir).
    pub path: PathBuf,
    /// The error.
    pub source: std::io::Error,
}

/// Inputs of [`build_record`].
#[derive(Debug, Clone, Copy)]
pub struct RecordInput<'a> {
    /// Scenario name (snake_case).
    pub scenario: &'a str,
    /// Tier configuration.
    pub tier: &'a TierConfig,
    /// The target.
    pub target: &'a Target,
    /// Expectations (for metadata paths), by fleet index.
    pub expectations: &'a Expectations,
    /// Fleet outcomes.
    pub outcomes: &'a [ProcessOutcome],
    /// Invariant verdicts.
    pub invariants: &'a [InvariantResult],
    /// Server counters.
    pub served: Option<&'a ServedCounts>,
    /// Release instant (unix ms).
    pub started_unix_ms: u64,
    /// Wall time of the phase that ran the processes (release to last exit).
    pub wall: Duration,
    /// Kept temp dir, if the run failed.
    pub kept_dir: Option<&'a Path>,
}

/// Nearest-rank percentile of `values` (`p` in 0..=100); 0 for none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Builds the record: outcome classes, figures (wall, processes/s, p50/p95 latency, lock wait p50 and hit
/// ratio from metadata files, bytes served, bodies per model, MB/s) and per-process runs with phases.
pub fn build_record(input: &RecordInput<'_>) -> ScenarioRecord {
    let codes = &input.target.spec.exit_codes;
    let decl = input.target.spec.metadata_file.as_ref();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut runs = Vec::new();
    let mut lock_waits = Vec::new();
    let (mut hits, mut with_hit_flag) = (0usize, 0usize);
    for o in input.outcomes {
        let class = OutcomeClass::of(o, codes);
        *outcomes.entry(class.name().to_string()).or_default() += 1;
        let meta = decl
            .zip(input.expectations.processes.get(o.index).and_then(|e| e.metadata_path.as_ref()))
            .filter(|_| class == OutcomeClass::Ok)
            .and_then(|(d, path)| RunMetadata::read(d, path).ok());
        if let Some(m) = &meta {
            if let Some(w) = m.lock_wait_ms {
                lock_waits.push(w);
            }
            if let Some(hit) = m.download_hit {
                with_hit_flag += 1;
                hits += usize::from(hit);
            }
        }
        runs.push(ProcessRun {
            index: o.index,
            role: o.role.clone(),
            pid: o.pid,
            exit_code: o.exit_code,
            signal: o.signal,
            class: class.name().to_string(),
            wall_ms: o.wall.as_secs_f64() * 1000.0,
            peak_rss_kb: o.peak_rss_kb,
            phases: meta.map(|m| m.phases).unwrap_or_default(),
            stderr_tail: o.stderr_tail(2000),
            started_unix_ms: (o.started_unix_ms > 0).then_some(o.started_unix_ms),
        });
    }
    let latencies: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
    let wall_s = input.wall.as_secs_f64();
    let bytes_served = input.served.map(|s| s.bytes_served).unwrap_or(0);
    let figures = Figures {
        wall_ms: wall_s * 1000.0,
        processes_per_sec: if wall_s > 0.0 { input.outcomes.len() as f64 / wall_s } else { 0.0 },
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        lock_wait_p50_ms: (!lock_waits.is_empty()).then(|| percentile(&lock_waits, 50.0)),
        bytes_served,
        complete_bodies_per_model: input.served.map(|s| s.complete_bodies.clone()).unwrap_or_default(),
        cache_hit_ratio: (with_hit_flag > 0).then(|| hits as f64 / with_hit_flag as f64),
        mb_per_sec: if wall_s > 0.0 { bytes_served as f64 / 1e6 / wall_s } else { 0.0 },
    };
    ScenarioRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        scenario: input.scenario.to_string(),
        tier: input.tier.tier.as_str().to_string(),
        seed: input.tier.seed,
        mutant: input.tier.mutant.clone(),
        target: input.target.spec.display_name().to_string(),
        processes: input.outcomes.len(),
        started_unix_ms: input.started_unix_ms,
        outcomes,
        invariants: input.invariants.to_vec(),
        figures,
        process_runs: runs,
        kept_dir: input.kept_dir.map(|p| p.display().to_string()),
        // Everything else (setup errors, findings, events, plan, nightly figures, ...) starts empty.
        ..ScenarioRecord::default()
    }
}

/// `$STRESS_RESULTS_DIR`, else `<target dir>/stress-cache/results`.
pub fn results_dir(target: &Target) -> PathBuf {
    crate::tier::suite_env()
        .ok()
        .and_then(|env| env.results_dir.clone())
        .unwrap_or_else(|| target.stress_dir().join("results"))
}

/// Writes `record` to `dir/<scenario>-<unix_ms>-<pid>.json` atomically (temp file in `dir`, fsync, rename,
/// fsync dir). Returns the path.
pub fn write_record(record: &ScenarioRecord, dir: &Path) -> Result<PathBuf, RecordError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RecordError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let name = format!("{}-{}-{}.json", record.scenario, unix_ms_now(), std::process::id());
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let json = serde_json::to_vec_pretty(record)
        .map_err(|e| RecordError { path: path.clone(), source: e.into() })?;
    let mut file = std::fs::File::create(&tmp).map_err(err(&tmp))?;
    file.write_all(&json).and_then(|()| file.sync_all()).map_err(err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(err(&path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn writes_a_readable_record_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let record = ScenarioRecord {
            schema_version: RECORD_SCHEMA_VERSION,
            scenario: "same_model_shared_cache".into(),
            tier: "pr".into(),
            seed: 1,
            mutant: None,
            target: "beaker".into(),
            processes: 0,
            started_unix_ms: 0,
            outcomes: BTreeMap::new(),
            invariants: vec![],
            ..ScenarioRecord::default()
        };
        let path = write_record(&record, &dir.path().join("results")).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("same_model_shared_cache-")
                && name.ends_with(&format!("-{}.json", std::process::id()))
        );
        let back: ScenarioRecord = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, record);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("results")).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left");
    }
}
