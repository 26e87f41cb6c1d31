//! What one scenario observed, handed to the checker in one piece: the fleet's outcomes and the caches
//! after it, and each optional observation (reader probe, server counters, recovery run, trace, live
//! lock checks) whose absence makes its invariants `skipped`, never `held`.

use super::{Expectations, RecoveryRun, ServedCounts};
use crate::orchestrator::ProcessOutcome;
use crate::reader_probe::ReaderReport;
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
use crate::target::Target;

/// What the file-system trace of every process of the scenario showed, per trace invariant.
pub use crate::fs_trace::TraceVerdicts as TraceObservation;

/// Live lock checks made while processes ran (a download parked at a gate, a process stopped at a
/// failpoint): evidence against [`Invariant::WriterHoldsExclusiveLock`], and how many checks were made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveLockObservation {
    /// Checks made.
    pub checks: usize,
    /// What each check saw (witnesses of writers holding their lock).
    pub witnesses: Vec<String>,
    /// Violations.
    pub evidence: Vec<String>,
}

/// Everything observed in one scenario, for [`check`].
#[derive(Debug, Clone, Copy)]
pub struct Observations<'a> {
    /// The target.
    pub target: &'a Target,
    /// The expectations.
    pub expectations: &'a Expectations,
    /// Fleet outcomes, by index.
    pub outcomes: &'a [ProcessOutcome],
    /// Snapshots of every download cache, right after the fleet (before any recovery run).
    pub caches: &'a [CacheSnapshot],
    /// Snapshots of every compiled cache, right after the fleet.
    pub compiled: &'a [CompiledSnapshot],
    /// The same caches again after the recovery run, if one ran.
    pub after_recovery: Option<(&'a [CacheSnapshot], &'a [CompiledSnapshot])>,
    /// Reference for compiled entries (none: `compiled_entries_complete_or_absent` skipped).
    pub compiled_reference: Option<&'a CompiledReference>,
    /// The reader probe's report (none: skipped).
    pub readers: Option<&'a ReaderReport>,
    /// Server counters (none: amplification skipped).
    pub served: Option<&'a ServedCounts>,
    /// The recovery run (none: `no_poisoning` skipped).
    pub recovery: Option<&'a RecoveryRun>,
    /// The file-system trace's verdicts (none: the trace invariants are skipped).
    pub trace: Option<&'a TraceObservation>,
    /// Live lock checks (none made: only the trace speaks for `writer_holds_exclusive_lock`).
    pub live_locks: Option<&'a LiveLockObservation>,
}

impl<'a> Observations<'a> {
    /// Observations with only the fleet and its caches; the optional ones unset.
    pub fn new(
        target: &'a Target,
        expectations: &'a Expectations,
        outcomes: &'a [ProcessOutcome],
        caches: &'a [CacheSnapshot],
        compiled: &'a [CompiledSnapshot],
    ) -> Self {
        Observations {
            target,
            expectations,
            outcomes,
            caches,
            compiled,
            after_recovery: None,
            compiled_reference: None,
            readers: None,
            served: None,
            recovery: None,
            trace: None,
            live_locks: None,
        }
    }
}
