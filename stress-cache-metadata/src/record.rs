//! The JSON record one scenario run writes under `$STRESS_RESULTS_DIR`, and that `cargo stress-cache`
//! aggregates. Versioned: readers reject a `schema_version` they do not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::InvariantName;

/// Version of [`ScenarioRecord`] written by this crate. Version 2: every invariant is held, violated or
/// skipped (with a reason), setup errors are their own outcome, and a mutant run records whether the
/// seeded bug was confirmed active.
pub const RECORD_SCHEMA_VERSION: u32 = 2;

/// One scenario run. Its `Default` is empty (schema version 0): a base to fill, never a record as is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// Setup errors: the scenario could not produce the situation it checks (a precondition not met, a
    /// failpoint never reached, an overlap never forced, the target failed to start or rejected its
    /// configuration). Any of them makes the run [`ScenarioOutcome::Error`]: not a verdict about the
    /// target, and never a kill.
    #[serde(default)]
    pub setup_errors: Vec<String>,
    /// Why the scenario did not apply to the target at all (nothing was run).
    #[serde(default)]
    pub not_applicable: Option<String>,
    /// With a mutant: whether some process of the scenario confirmed the seeded bug was active (the
    /// target's declared marker on stderr). `None` without a mutant.
    #[serde(default)]
    pub mutant_active: Option<bool>,
    /// What the target cannot do by design, and what it costs (e.g. `cached_undetectable_corruption`):
    /// reported, never a violation and never a kill.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// What the harness did to the processes and what the server did to their requests, with wall-clock
    /// times, for the report's timelines: gate releases, SIGSTOP seen / SIGCONT / SIGKILL sent, faults
    /// served. Additive (records without it read as no events); an empty list means none was recorded,
    /// never "none happened" for a scenario that does not record them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<TimelineEvent>,
    /// Power-loss scenarios only: how many crash states were explored and how many broke the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_states: Option<CrashStateCounts>,
    /// The run's plan: enough to run it again (`cargo stress-cache replay`). Additive: records written
    /// before plans were recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<crate::RunPlan>,
    /// Soak scenarios only: per-window latency statistics, failures and the harness's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<crate::SoakFigures>,
    /// Scale scenarios only: processes, runs per minute, latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<crate::ScaleFigures>,
}

/// The crash states a power-loss scenario explored (see `stress_tests::crash_states`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CrashStateCounts {
    /// Cache operations of the clean run the states were built from.
    pub operations: usize,
    /// Crash points × losses considered.
    pub candidates: usize,
    /// Distinct states built, recovered and checked.
    pub explored: usize,
    /// Distinct states beyond the bound, not explored.
    pub over_bound: usize,
    /// Explored states where an invariant was violated (in the state itself or after recovery).
    pub broken: usize,
}

impl ScenarioRecord {
    /// The scenario's outcome: error (setup) before failed (a violation) before passed.
    pub fn outcome(&self) -> ScenarioOutcome {
        if !self.setup_errors.is_empty() {
            ScenarioOutcome::Error
        } else if self.not_applicable.is_some() {
            ScenarioOutcome::NotApplicable
        } else if self.invariants.iter().any(InvariantResult::is_violated) {
            ScenarioOutcome::Failed
        } else {
            ScenarioOutcome::Passed
        }
    }

    /// Whether the scenario passed: no setup error, no violation, and it applied.
    pub fn passed(&self) -> bool {
        self.outcome() == ScenarioOutcome::Passed
    }

    /// Names of the violated invariants.
    pub fn violated(&self) -> Vec<&str> {
        self.invariants.iter().filter(|i| i.is_violated()).map(|i| i.name.as_str()).collect()
    }

    /// Names of the invariants that held.
    pub fn held(&self) -> Vec<&str> {
        self.invariants.iter().filter(|i| i.status == Status::Held).map(|i| i.name.as_str()).collect()
    }

    /// Names of the skipped invariants.
    pub fn skipped(&self) -> Vec<&str> {
        self.invariants.iter().filter(|i| i.status == Status::Skipped).map(|i| i.name.as_str()).collect()
    }
}

/// How one scenario run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioOutcome {
    /// Every checked invariant held.
    Passed,
    /// Some invariant was violated.
    Failed,
    /// The scenario could not set up what it checks (see [`ScenarioRecord::setup_errors`]).
    Error,
    /// The scenario does not apply to the target (see [`ScenarioRecord::not_applicable`]).
    NotApplicable,
}

impl ScenarioOutcome {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioOutcome::Passed => "passed",
            ScenarioOutcome::Failed => "failed",
            ScenarioOutcome::Error => "error",
            ScenarioOutcome::NotApplicable => "not-applicable",
        }
    }
}

/// An invariant's status in one scenario run. "Not observed" is `Skipped`, never `Held`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Checked against an observation, and it held.
    Held,
    /// Checked, and violated: the evidence says where.
    Violated,
    /// Not checked: the reason says why (does not apply, not observable for this target).
    Skipped,
}

impl Status {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Violated => "violated",
            Status::Skipped => "skipped",
        }
    }
}

/// A finding: a named observation with its evidence that does not fail the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    /// Name, e.g. `cached_undetectable_corruption`.
    pub name: String,
    /// What was seen, one line each.
    pub evidence: Vec<String>,
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InvariantResult {
    /// Stable snake_case name, e.g. `no_partial_content`.
    pub name: InvariantName,
    /// Held, violated or skipped.
    pub status: Status,
    /// Evidence: files, hashes, pids, stderr excerpts (what was observed; for a violation, where).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl InvariantResult {
    /// A checked invariant: violated when `evidence` is non-empty.
    pub fn checked(name: &str, evidence: Vec<String>) -> Self {
        let status = if evidence.is_empty() { Status::Held } else { Status::Violated };
        InvariantResult { name: InvariantName::new(name), status, evidence, reason: None }
    }

    /// A checked invariant that held, with what was observed (a positive check's witness).
    pub fn held_with(name: &str, observed: Vec<String>) -> Self {
        InvariantResult {
            name: InvariantName::new(name),
            status: Status::Held,
            evidence: observed,
            reason: None,
        }
    }

    /// An invariant that was not checked, and why.
    pub fn skipped(name: &str, reason: impl Into<String>) -> Self {
        InvariantResult {
            name: InvariantName::new(name),
            status: Status::Skipped,
            evidence: Vec::new(),
            reason: Some(reason.into()),
        }
    }

    /// Whether it was violated.
    pub fn is_violated(&self) -> bool {
        self.status == Status::Violated
    }

    /// Merges another verdict of the same invariant (e.g. from another phase): violated wins over held,
    /// held over skipped; evidence is appended with `label` in front.
    pub fn merge(&mut self, other: InvariantResult, label: Option<&str>) {
        use Status::*;
        self.status = match (self.status, other.status) {
            (Violated, _) | (_, Violated) => Violated,
            (Held, _) | (_, Held) => Held,
            (Skipped, Skipped) => Skipped,
        };
        if self.status != Skipped {
            self.reason = None;
        } else if self.reason.is_none() {
            self.reason = other.reason;
        }
        self.evidence.extend(other.evidence.into_iter().map(|e| match label {
            Some(l) => format!("[{l}] {e}"),
            None => e,
        }));
    }
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
    /// When its fleet was released (unix ms): the start of its bar on a timeline. `wall_ms` counts from
    /// here. Absent in records written before it was added; readers then use the record's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_ms: Option<u64>,
}

/// Something that happened to the processes of a scenario at a known instant (see
/// [`ScenarioRecord::events`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TimelineEvent {
    /// Wall-clock time (unix ms).
    pub unix_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The process it happened to, if one (a gate release or a fault concerns the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Details: the gate's name, the fault served and on which route, why a process was killed.
    #[serde(default)]
    pub detail: String,
}

/// [`TimelineEvent::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A server gate released the responses parked at it.
    GateRelease,
    /// The harness saw the process stopped (SIGSTOP, e.g. raised by a `pause` failpoint).
    Sigstop,
    /// The harness resumed a stopped process.
    Sigcont,
    /// The harness killed the process (a crash it injected, or the watchdog).
    Sigkill,
    /// The server answered a request with a fault (anything but a clean response).
    Fault,
}

impl EventKind {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::GateRelease => "gate-release",
            EventKind::Sigstop => "sigstop",
            EventKind::Sigcont => "sigcont",
            EventKind::Sigkill => "sigkill",
            EventKind::Fault => "fault",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The timeline fields are additive: a record written before them reads as "no events recorded"
    /// and "start unknown", and one with them round-trips.
    #[test]
    fn timeline_fields_are_optional_and_round_trip() {
        let old = serde_json::json!({
            "schema_version": 2, "scenario": "s", "tier": "pr", "seed": 1, "mutant": null, "target": "t",
            "processes": 1, "started_unix_ms": 5, "outcomes": {}, "invariants": [],
            "figures": { "wall_ms": 1.0, "processes_per_sec": 1.0, "latency_p50_ms": 1.0, "latency_p95_ms": 1.0,
                         "lock_wait_p50_ms": null, "bytes_served": 0, "complete_bodies_per_model": {},
                         "cache_hit_ratio": null, "mb_per_sec": 0.0 },
            "process_runs": [{ "index": 0, "role": "writer", "pid": 7, "exit_code": 0, "signal": null,
                               "class": "ok", "wall_ms": 3.0, "peak_rss_kb": null }]
        });
        let mut record: ScenarioRecord = serde_json::from_value(old).expect("an older record reads");
        assert!(record.events.is_empty());
        assert_eq!(record.process_runs[0].started_unix_ms, None);
        record.process_runs[0].started_unix_ms = Some(5);
        record.events.push(TimelineEvent {
            unix_ms: 6,
            kind: EventKind::Sigkill,
            pid: Some(7),
            detail: "x".into(),
        });
        let text = serde_json::to_string(&record).expect("serialises");
        assert!(text.contains("\"kind\":\"sigkill\""), "{text}");
        assert_eq!(serde_json::from_str::<ScenarioRecord>(&text).expect("reads back"), record);
    }
}
