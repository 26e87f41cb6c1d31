//! The invariants every scenario checks, each reported by a stable snake_case name as held, violated (with
//! evidence: files, hashes, pids, stderr excerpts, trace lines) or skipped (with the reason), and the
//! process outcome classes they rely on. The checker itself is [`check`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use std::path::PathBuf;

use stress_cache_metadata::{ExitCodes, InvariantName, InvariantResult};

use crate::orchestrator::ProcessOutcome;
use crate::target::{ProcessPlan, Target};

/// Exit code of a Rust panic that unwound out of `main`.
pub const PANIC_EXIT_CODE: i32 = 101;

/// An invariant (stable names: used in JSON records and tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one complete copy of each model per cache, and exactly one final artifact for every model a
    /// process on that cache succeeded with.
    OneFinalArtifactPerModel,
    /// Every file under a final name is a complete model (hashes to its expected SHA-256).
    FinalArtifactsMatchChecksum,
    /// No strict prefix or corrupted copy anywhere once every process exited (quarantined files aside).
    NoPartialContent,
    /// No file matching the partial/temp patterns is left (download and compiled caches).
    NoTempFilesLeft,
    /// No lock is still held once every process exited: checked for `lock-kind = "exists"` targets only
    /// (the kernel releases a dead process's flock, so for flock targets it could never fail; their lock
    /// discipline is [`Invariant::WriterHoldsExclusiveLock`] and [`Invariant::LockFilesStable`]).
    NoLockHeld,
    /// A reader opening final artifacts while writers ran only ever saw complete content.
    ReadersSawOnlyCompleteContent,
    /// Every compiled entry equals a reference entry from a clean run (complete) — or is absent.
    CompiledEntriesCompleteOrAbsent,
    /// Every successful process loaded the model it asked for (its metadata file's SHA-256).
    SuccessesLoadedExpectedModel,
    /// Every process ended with a class allowed for the injected fault.
    FailuresHaveExpectedClass,
    /// No process panicked or died by a signal, except by an injected crash.
    NoPanicOrUnexpectedSignal,
    /// Complete bodies served per model stayed within the scenario's bound.
    DownloadAmplificationBounded,
    /// A clean run after the scenario succeeds without manual cleanup.
    NoPoisoning,
    /// Every process finished before the watchdog deadline.
    FinishedBeforeWatchdog,
    /// A final artifact appears only by an atomic rename of a complete file (a compiled entry only as a
    /// whole directory): never created, truncated or written under its final name (file-system trace).
    FinalPublishedAtomically,
    /// A temp/partial file a live process is still writing is never removed, renamed or truncated by
    /// another process (file-system trace).
    LiveTempFilesLeftAlone,
    /// A lock file any process holds or waits on is never unlinked or replaced, and no two processes
    /// hold the "same" lock on different inodes (file-system trace).
    LockFilesStable,
    /// Every publish (rename onto a final) and every removal of a final happens while the process holds an
    /// exclusive lock of that cache (file-system trace), and a download parked mid-body is written by a
    /// process holding an exclusive lock (`/proc/locks`, observed live).
    WriterHoldsExclusiveLock,
    /// Published bytes are fsynced before the rename that publishes them, and the directory after it
    /// (file-system trace). Reported separately: a target can declare it does not promise durability.
    PublishedDurably,
    /// A target that prints the path it resolved (`prints-path`) printed, for every success, a path that
    /// existed when the process exited, held the complete model it asked for, and was a final artifact
    /// of its cache or a symlink to one.
    PrintedPathIsACompleteFinal,
}

impl Invariant {
    /// Every invariant, in check order.
    pub const ALL: [Invariant; 19] = [
        Invariant::OneFinalArtifactPerModel,
        Invariant::FinalArtifactsMatchChecksum,
        Invariant::NoPartialContent,
        Invariant::NoTempFilesLeft,
        Invariant::NoLockHeld,
        Invariant::ReadersSawOnlyCompleteContent,
        Invariant::CompiledEntriesCompleteOrAbsent,
        Invariant::SuccessesLoadedExpectedModel,
        Invariant::FailuresHaveExpectedClass,
        Invariant::NoPanicOrUnexpectedSignal,
        Invariant::DownloadAmplificationBounded,
        Invariant::NoPoisoning,
        Invariant::FinishedBeforeWatchdog,
        Invariant::FinalPublishedAtomically,
        Invariant::LiveTempFilesLeftAlone,
        Invariant::LockFilesStable,
        Invariant::WriterHoldsExclusiveLock,
        Invariant::PublishedDurably,
        Invariant::PrintedPathIsACompleteFinal,
    ];

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        self.id().as_static().unwrap_or_default()
    }

    /// The name as the record carries it (the contract's constant).
    pub fn id(self) -> InvariantName {
        match self {
            Invariant::OneFinalArtifactPerModel => InvariantName::ONE_FINAL_ARTIFACT_PER_MODEL,
            Invariant::FinalArtifactsMatchChecksum => InvariantName::FINAL_ARTIFACTS_MATCH_CHECKSUM,
            Invariant::NoPartialContent => InvariantName::NO_PARTIAL_CONTENT,
            Invariant::NoTempFilesLeft => InvariantName::NO_TEMP_FILES_LEFT,
            Invariant::NoLockHeld => InvariantName::NO_LOCK_HELD,
            Invariant::ReadersSawOnlyCompleteContent => InvariantName::READERS_SAW_ONLY_COMPLETE_CONTENT,
            Invariant::CompiledEntriesCompleteOrAbsent => InvariantName::COMPILED_ENTRIES_COMPLETE_OR_ABSENT,
            Invariant::SuccessesLoadedExpectedModel => InvariantName::SUCCESSES_LOADED_EXPECTED_MODEL,
            Invariant::FailuresHaveExpectedClass => InvariantName::FAILURES_HAVE_EXPECTED_CLASS,
            Invariant::NoPanicOrUnexpectedSignal => InvariantName::NO_PANIC_OR_UNEXPECTED_SIGNAL,
            Invariant::DownloadAmplificationBounded => InvariantName::DOWNLOAD_AMPLIFICATION_BOUNDED,
            Invariant::NoPoisoning => InvariantName::NO_POISONING,
            Invariant::FinishedBeforeWatchdog => InvariantName::FINISHED_BEFORE_WATCHDOG,
            Invariant::FinalPublishedAtomically => InvariantName::FINAL_PUBLISHED_ATOMICALLY,
            Invariant::LiveTempFilesLeftAlone => InvariantName::LIVE_TEMP_FILES_LEFT_ALONE,
            Invariant::LockFilesStable => InvariantName::LOCK_FILES_STABLE,
            Invariant::WriterHoldsExclusiveLock => InvariantName::WRITER_HOLDS_EXCLUSIVE_LOCK,
            Invariant::PublishedDurably => InvariantName::PUBLISHED_DURABLY,
            Invariant::PrintedPathIsACompleteFinal => InvariantName::PRINTED_PATH_IS_A_COMPLETE_FINAL,
        }
    }

    /// The invariant named `name`, if it is one of [`Invariant::ALL`].
    pub fn from_name(name: &str) -> Option<Invariant> {
        Invariant::ALL.iter().copied().find(|i| i.name() == name)
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a process ended, by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutcomeClass {
    /// Exit code `exit_codes.ok`.
    Ok,
    /// Usage/configuration error.
    Usage,
    /// Network error.
    Network,
    /// Integrity error.
    Integrity,
    /// Local I/O error.
    Io,
    /// Killed by SIGKILL not sent by the watchdog (an injected crash).
    Crashed,
    /// Killed by another signal.
    Signal,
    /// Killed by the watchdog.
    Hung,
    /// Panicked (exit 101 or "panicked at" on stderr).
    Panicked,
    /// Any other exit code, or it never ran.
    Other,
}

impl OutcomeClass {
    /// Stable name (as in [`stress_cache_metadata::ScenarioRecord::outcomes`]).
    pub fn name(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "ok",
            OutcomeClass::Usage => "usage",
            OutcomeClass::Network => "network",
            OutcomeClass::Integrity => "integrity",
            OutcomeClass::Io => "io",
            OutcomeClass::Crashed => "crashed",
            OutcomeClass::Signal => "signal",
            OutcomeClass::Hung => "hung",
            OutcomeClass::Panicked => "panicked",
            OutcomeClass::Other => "other",
        }
    }

    /// Classifies an outcome through the target's exit codes.
    pub fn of(outcome: &ProcessOutcome, codes: &ExitCodes) -> OutcomeClass {
        if outcome.hung {
            return OutcomeClass::Hung;
        }
        if outcome.exit_code == Some(PANIC_EXIT_CODE) || outcome.stderr().contains("panicked at") {
            return OutcomeClass::Panicked;
        }
        if let Some(sig) = outcome.signal {
            return if sig == libc::SIGKILL { OutcomeClass::Crashed } else { OutcomeClass::Signal };
        }
        match outcome.exit_code {
            Some(c) if c == codes.ok => OutcomeClass::Ok,
            Some(c) if Some(c) == codes.usage => OutcomeClass::Usage,
            Some(c) if Some(c) == codes.network => OutcomeClass::Network,
            Some(c) if Some(c) == codes.integrity => OutcomeClass::Integrity,
            Some(c) if Some(c) == codes.io => OutcomeClass::Io,
            _ => OutcomeClass::Other,
        }
    }
}

impl fmt::Display for OutcomeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one process is expected to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExpectation {
    /// Model it requests (`None`: it loads none, e.g. gc).
    pub model: Option<String>,
    /// Expected SHA-256 of that model.
    pub model_sha256: Option<String>,
    /// Cache dir it uses.
    pub cache_dir: PathBuf,
    /// Where its metadata file is written, if the target writes one.
    pub metadata_path: Option<PathBuf>,
    /// Allowed outcome classes.
    pub allowed: BTreeSet<OutcomeClass>,
    /// A crash is injected into this process (SIGKILL is then allowed).
    pub crash_allowed: bool,
    /// The process was given the model's checksum (a target without one cannot tell a corrupted body).
    pub checksum_given: bool,
}

impl ProcessExpectation {
    /// Expectation for a plan (the model comes from the plan, gc plans load none), allowed `{ok}`.
    pub fn for_plan(target: &Target, plan: &ProcessPlan) -> Self {
        let loads = matches!(plan.command, crate::target::PlanCommand::Run);
        let model = loads.then(|| plan.model.clone());
        ProcessExpectation {
            model_sha256: model.as_ref().and_then(|m| target.models.get(m)).map(|m| m.sha256.clone()),
            model,
            cache_dir: plan.cache_dir.clone(),
            metadata_path: if loads { target.metadata_path(plan) } else { None },
            allowed: BTreeSet::from([OutcomeClass::Ok]),
            crash_allowed: false,
            checksum_given: plan.sha256.is_some(),
        }
    }

    /// Replaces the allowed classes.
    pub fn allow(mut self, classes: &[OutcomeClass]) -> Self {
        self.allowed = classes.iter().copied().collect();
        self
    }

    /// Marks a crash as injected (class `crashed` allowed).
    pub fn crash(mut self) -> Self {
        self.crash_allowed = true;
        self
    }
}

/// What the scenario expects of its fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Per process, by fleet index.
    pub processes: Vec<ProcessExpectation>,
    /// Bound on complete bodies served per model (models absent here: no bound checked).
    pub body_bound: BTreeMap<String, u64>,
    /// Invariants that do not apply to this scenario, with the reason (reported as skipped).
    pub skip: BTreeMap<Invariant, String>,
    /// Snapshot invariants not checked on the snapshot right after the fleet (only after recovery), with
    /// the reason.
    pub skip_after_fleet: BTreeMap<Invariant, String>,
    /// The harness itself planted a bad file at rest (a corrupted final): a quarantined non-complete file
    /// is then the target doing its job, not proof that it published bad bytes.
    pub planted_at_rest: bool,
}

impl Expectations {
    /// Expectations for plans, all allowed `{ok}`, bound 1 complete body per requested model.
    pub fn clean(target: &Target, plans: &[ProcessPlan]) -> Self {
        let processes: Vec<ProcessExpectation> =
            plans.iter().map(|p| ProcessExpectation::for_plan(target, p)).collect();
        let body_bound = processes.iter().filter_map(|p| p.model.clone()).map(|m| (m, 1)).collect();
        Expectations {
            processes,
            body_bound,
            skip: BTreeMap::new(),
            skip_after_fleet: BTreeMap::new(),
            planted_at_rest: false,
        }
    }

    /// Skips `invariant` in this check, with the reason.
    pub fn skip(&mut self, invariant: Invariant, reason: &str) -> &mut Self {
        self.skip.insert(invariant, reason.to_string());
        self
    }
}

/// What the model server counted (plain numbers so this module does not depend on the server's types).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedCounts {
    /// Requests per model.
    pub requests: BTreeMap<String, u64>,
    /// Complete bodies per model.
    pub complete_bodies: BTreeMap<String, u64>,
    /// Body bytes sent in total.
    pub bytes_served: u64,
}

/// The clean run after the scenario.
#[derive(Debug, Clone, Default)]
pub struct RecoveryRun {
    /// Its outcomes.
    pub outcomes: Vec<ProcessOutcome>,
    /// Its expectations (by index).
    pub expectations: Vec<ProcessExpectation>,
}

mod check;
mod findings;
mod observations;

pub use check::{check, summary};
pub use findings::findings;
pub use observations::{LiveLockObservation, Observations, TraceObservation};

/// Panics with every violated invariant and its evidence (no-op when all held).
pub fn assert_all_held(scenario: &str, results: &[InvariantResult]) {
    assert_all_held_with_notes(scenario, results, &[]);
}

/// [`assert_all_held`], appending `notes` (e.g. where the record and the kept dir are) to the message.
pub fn assert_all_held_with_notes(scenario: &str, results: &[InvariantResult], notes: &[String]) {
    let violated: Vec<&InvariantResult> = results.iter().filter(|r| r.is_violated()).collect();
    if violated.is_empty() {
        return;
    }
    let mut message = format!("scenario {scenario}: {} invariant(s) violated:\n", violated.len());
    for v in violated {
        message.push_str(&format!("- {}\n", v.name));
        for e in v.evidence.iter().take(12) {
            message.push_str(&format!("    {e}\n"));
        }
        if v.evidence.len() > 12 {
            message.push_str(&format!("    ... and {} more\n", v.evidence.len() - 12));
        }
    }
    for note in notes {
        message.push_str(&format!("{note}\n"));
    }
    panic!("{message}");
}

#[cfg(test)]
mod tests;
