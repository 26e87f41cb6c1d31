//! What the nightly tier's long-running parts measure (soak and scale figures, written in their scenario
//! records) and the run's `summary.json` (written by the CLI for a nightly tier run). Additive to the
//! record: records without these fields read as `None`.

use serde::{Deserialize, Serialize};

/// Version of [`NightlySummary`].
pub const SUMMARY_SCHEMA_VERSION: u32 = 1;

/// The file name of [`NightlySummary`] in a nightly run dir.
pub const SUMMARY_FILE: &str = "summary.json";

/// Seed 004's bound on the coefficient of variation of warm-hit latency.
pub const CV_BOUND: f64 = 0.10;

/// Seed 004's bound on the RSS growth of a long-lived process over a soak, in kB.
pub const RSS_GROWTH_BOUND_KB: i64 = 1024;

/// Latency statistics of a sample, the way hyperfine reports a benchmark (milliseconds).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyStats {
    /// Values in the sample.
    pub n: usize,
    /// Smallest.
    pub min_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Sample standard deviation (n − 1).
    pub stddev_ms: f64,
    /// Median (= p50).
    pub p50_ms: f64,
    /// 95th percentile (nearest rank).
    pub p95_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// Coefficient of variation: stddev / mean (0 for fewer than two values).
    pub cv: f64,
}

/// One soak window: the cache emptied, one cold run, warm-ups, then timed warm runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakWindow {
    /// 0-based window index.
    pub index: usize,
    /// Runs in the window (cold + warm-ups + timed).
    pub runs: usize,
    /// Failed runs in the window.
    pub failures: usize,
    /// Latency of the window's cold run (first after the cache was emptied).
    pub cold_ms: f64,
    /// Warm-up runs (not in the statistics).
    pub warmups: usize,
    /// Statistics over the timed warm runs (flattened: `p50_ms`, `p95_ms`, `cv`, ...).
    #[serde(flatten)]
    pub timed: LatencyStats,
    /// Largest peak RSS of a target process in the window (kB, from wait4).
    pub target_peak_rss_kb: Option<u64>,
}

/// RSS, open FDs and threads of one long-lived process at one moment (`/proc/<pid>/status`, `fd/`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceSample {
    /// Resident set size (kB).
    pub rss_kb: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// Threads.
    pub threads: usize,
}

/// A soak: N sequential warm-cache runs with a cold start every window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakFigures {
    /// Runs made.
    pub runs: usize,
    /// Runs that failed (any class but ok, a wrong model, a warm run that missed the cache).
    pub failures: usize,
    /// Runs per window.
    pub window: usize,
    /// Per window.
    pub windows: Vec<SoakWindow>,
    /// Median of the last window's timed runs against the first's: (last − first) / first.
    pub drift: f64,
    /// The harness process (the model server runs inside it, on its own runtime) after the first
    /// window, once its one-time allocations are made.
    pub harness_before: ResourceSample,
    /// The same at the end.
    pub harness_after: ResourceSample,
    /// Wall time of the whole soak (ms).
    pub wall_ms: f64,
}

/// A scale run: processes started together, or a sustained rolling pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ScaleFigures {
    /// A sustained rolling pool (`false`: processes started together).
    #[serde(default)]
    pub sustained: bool,
    /// Processes started together (burst), or the pool's size (sustained).
    pub processes: usize,
    /// Target runs completed.
    pub runs: usize,
    /// Runs that failed.
    pub failures: usize,
    /// Runs completed per minute of wall time.
    pub runs_per_minute: f64,
    /// Wall time (ms).
    pub wall_ms: f64,
    /// Latency of the runs.
    pub latency: LatencyStats,
}

/// `summary.json` of a nightly tier run: the figures the issue asks for, in one file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NightlySummary {
    /// [`SUMMARY_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Repeats of the tier.
    pub repeats: u32,
    /// The soak (every repeat's runs summed; windows in order of repeat); `None` when none ran.
    pub soak: Option<SoakSummary>,
    /// The scale scenarios; `None` when none ran.
    pub scale: Option<ScaleSummary>,
    /// What the harness left behind.
    pub leaks: LeakCounts,
    /// The power-loss crash states (every repeat summed).
    pub crash_states: CrashStatesSummary,
    /// Violated (scenario run × invariant) verdicts.
    pub violations: usize,
    /// Wall time of each part (sum of its tests' JUnit times over the repeats), in seconds.
    pub parts: Vec<PartTime>,
    /// Wall time of the whole tier run, in seconds.
    pub wall_s: f64,
}

/// `summary.soak`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SoakSummary {
    /// Runs.
    pub runs: usize,
    /// Failed runs.
    pub failures: usize,
    /// Windows, in order (repeat by repeat).
    pub windows: Vec<SoakWindow>,
    /// Largest |drift| of a repeat.
    pub max_abs_drift: f64,
    /// Largest harness RSS growth over a soak (kB; negative: it shrank).
    pub harness_rss_growth_kb: i64,
    /// Largest harness FD growth over a soak.
    pub harness_fd_growth: i64,
}

/// `summary.scale`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ScaleSummary {
    /// Most processes started together.
    pub processes: usize,
    /// Lowest sustained rate of a repeat (runs per minute).
    pub runs_per_minute: f64,
    /// Sustained runs (all repeats).
    pub sustained_runs: usize,
    /// Failed runs (burst and sustained, all repeats).
    pub failures: usize,
}

/// `summary.leaks`: what the harness left behind after the tier.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeakCounts {
    /// Processes still running that belong to the run.
    pub processes: usize,
    /// Unreaped children.
    pub zombies: usize,
    /// File descriptors of the harness opened since it started and still open.
    pub fds: usize,
    /// Entries left in the suite's temp dirs.
    pub temp_dirs: usize,
    /// File systems still mounted under the run dir.
    pub mounts: usize,
    /// Listening sockets of the harness or of the run's processes.
    pub sockets: usize,
    /// One line per leak.
    #[serde(default)]
    pub evidence: Vec<String>,
}

impl LeakCounts {
    /// Total leaks.
    pub fn total(&self) -> usize {
        self.processes + self.zombies + self.fds + self.temp_dirs + self.mounts + self.sockets
    }

    /// Adds `other`'s counts and evidence.
    pub fn add(&mut self, other: LeakCounts) {
        self.processes += other.processes;
        self.zombies += other.zombies;
        self.fds += other.fds;
        self.temp_dirs += other.temp_dirs;
        self.mounts += other.mounts;
        self.sockets += other.sockets;
        self.evidence.extend(other.evidence);
    }
}

/// `summary.crash_states`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrashStatesSummary {
    /// States built, recovered and checked.
    pub explored: usize,
    /// States that broke the cache.
    pub broken: usize,
}

/// One part's wall time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PartTime {
    /// `soak`, `scale`, `power_loss`, `model_update`, ... or `pr_scenarios` (the PR tier's scenarios).
    pub part: String,
    /// Seconds.
    pub seconds: f64,
    /// Tests counted.
    pub tests: usize,
}
