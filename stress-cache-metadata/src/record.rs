//! The JSON record one scenario run writes under `$STRESS_RESULTS_DIR`, and that `cargo stress-cache`
//! aggregates. Versioned: readers reject a `schema_version` they do not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of [`ScenarioRecord`] written by this crate.
pub const RECORD_SCHEMA_VERSION: u32 = 1;

/// One scenario run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioRecord {
    /// [`RECORD_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Scenario name (snake_case, the test's name).
    pub scenario: String,
    /// `pr` or `nightly`.
    pub tier: String,
    /// Seed that sized/shuffled the run.
    pub seed: u64,
    /// Seeded bug active in every process, if any.
    pub mutant: Option<String>,
    /// Target display name.
    pub target: String,
    /// Processes started (writers and readers, not counting the recovery run).
    pub processes: usize,
    /// Wall-clock start (unix ms).
    pub started_unix_ms: u64,
    /// Process outcomes by class (`ok`, `usage`, `network`, `integrity`, `io`, `crashed`, `signal`,
    /// `hung`, `panicked`, `other`).
    pub outcomes: BTreeMap<String, usize>,
    /// Every invariant checked, in check order.
    pub invariants: Vec<InvariantResult>,
    /// Measured figures.
    pub figures: Figures,
    /// One entry per process, for timelines and debugging.
    pub process_runs: Vec<ProcessRun>,
    /// Where the scenario's temp dir was kept (failed runs only).
    #[serde(default)]
    pub kept_dir: Option<String>,
}

impl ScenarioRecord {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|i| i.held)
    }

    /// Names of the violated invariants.
    pub fn violated(&self) -> Vec<&str> {
        self.invariants.iter().filter(|i| !i.held).map(|i| i.name.as_str()).collect()
    }
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvariantResult {
    /// Stable snake_case name, e.g. `no_partial_content`.
    pub name: String,
    /// Whether it held.
    pub held: bool,
    /// Evidence: files, hashes, pids, stderr excerpts (empty when it held).
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// Figures of one run. Latencies are per process, from the common start to exit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    /// Wall time of the whole scenario phase that ran the processes.
    pub wall_ms: f64,
    /// Processes finished per second of that wall time.
    pub processes_per_sec: f64,
    /// Median process latency.
    pub latency_p50_ms: f64,
    /// 95th percentile process latency.
    pub latency_p95_ms: f64,
    /// Median lock wait reported by the target (if it reports it).
    pub lock_wait_p50_ms: Option<f64>,
    /// Body bytes the server sent.
    pub bytes_served: u64,
    /// Complete bodies served, per model identity (download amplification).
    pub complete_bodies_per_model: BTreeMap<String, u64>,
    /// Successful processes that reported a download-cache hit / all successful processes.
    pub cache_hit_ratio: Option<f64>,
    /// Bytes served / wall time, in MB/s.
    pub mb_per_sec: f64,
}

/// One process of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessRun {
    /// Index in the fleet.
    pub index: usize,
    /// Role (`writer`, `reader`, `gc`, `recovery`, ...).
    pub role: String,
    /// OS pid.
    pub pid: u32,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
    /// Outcome class (see [`ScenarioRecord::outcomes`]).
    pub class: String,
    /// From the common start to exit.
    pub wall_ms: f64,
    /// Peak resident set size (kB), from wait4's rusage.
    pub peak_rss_kb: Option<u64>,
    /// Phase timestamps reported by the target (unix ms).
    #[serde(default)]
    pub phases: Vec<Phase>,
    /// Last lines of stderr.
    #[serde(default)]
    pub stderr_tail: String,
}

/// A named phase of a process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// Start (unix ms).
    pub start_unix_ms: u64,
    /// End (unix ms).
    pub end_unix_ms: u64,
}
