//! The invariants every scenario checks, each reported by a stable snake_case name with evidence
//! (files, hashes, pids, stderr excerpts), and the process outcome classes they rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use stress_cache_metadata::{ExitCodes, InvariantResult};

use crate::orchestrator::ProcessOutcome;
use crate::reader_probe::ReaderReport;
use crate::run_metadata::RunMetadata;
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
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
    /// No strict prefix or corrupted copy anywhere once every process exited.
    NoPartialContent,
    /// No file matching the partial/temp patterns is left (download and compiled caches).
    NoTempFilesLeft,
    /// No lock is still held once every process exited.
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
}

impl Invariant {
    /// Every invariant, in check order.
    pub const ALL: [Invariant; 13] = [
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
    ];

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::OneFinalArtifactPerModel => "one_final_artifact_per_model",
            Invariant::FinalArtifactsMatchChecksum => "final_artifacts_match_checksum",
            Invariant::NoPartialContent => "no_partial_content",
            Invariant::NoTempFilesLeft => "no_temp_files_left",
            Invariant::NoLockHeld => "no_lock_held",
            Invariant::ReadersSawOnlyCompleteContent => "readers_saw_only_complete_content",
            Invariant::CompiledEntriesCompleteOrAbsent => "compiled_entries_complete_or_absent",
            Invariant::SuccessesLoadedExpectedModel => "successes_loaded_expected_model",
            Invariant::FailuresHaveExpectedClass => "failures_have_expected_class",
            Invariant::NoPanicOrUnexpectedSignal => "no_panic_or_unexpected_signal",
            Invariant::DownloadAmplificationBounded => "download_amplification_bounded",
            Invariant::NoPoisoning => "no_poisoning",
            Invariant::FinishedBeforeWatchdog => "finished_before_watchdog",
        }
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
    /// Invariants that do not apply to this scenario (not reported).
    pub skip: BTreeSet<Invariant>,
}

impl Expectations {
    /// Expectations for plans, all allowed `{ok}`, bound 1 complete body per requested model.
    pub fn clean(target: &Target, plans: &[ProcessPlan]) -> Self {
        let processes: Vec<ProcessExpectation> =
            plans.iter().map(|p| ProcessExpectation::for_plan(target, p)).collect();
        let body_bound = processes.iter().filter_map(|p| p.model.clone()).map(|m| (m, 1)).collect();
        Expectations { processes, body_bound, skip: BTreeSet::new() }
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

/// Everything observed in one scenario, for [`check`].
#[derive(Debug, Clone, Copy)]
pub struct Observations<'a> {
    /// The target.
    pub target: &'a Target,
    /// The expectations.
    pub expectations: &'a Expectations,
    /// Fleet outcomes, by index.
    pub outcomes: &'a [ProcessOutcome],
    /// Final snapshots of every download cache used.
    pub caches: &'a [CacheSnapshot],
    /// Final snapshots of every compiled cache used.
    pub compiled: &'a [CompiledSnapshot],
    /// Reference for compiled entries (none: `compiled_entries_complete_or_absent` not checked).
    pub compiled_reference: Option<&'a CompiledReference>,
    /// The reader probe's report (none: not checked).
    pub readers: Option<&'a ReaderReport>,
    /// Server counters (none: amplification not checked).
    pub served: Option<&'a ServedCounts>,
    /// The recovery run (none: `no_poisoning` not checked).
    pub recovery: Option<&'a RecoveryRun>,
}

fn result(invariant: Invariant, evidence: Vec<String>) -> InvariantResult {
    InvariantResult::checked(invariant.name(), evidence)
}

fn excerpt(outcome: &ProcessOutcome) -> String {
    let tail = outcome.stderr_tail(400);
    let tail = tail.trim();
    if tail.is_empty() {
        outcome.describe()
    } else {
        format!("{}; stderr: {}", outcome.describe(), tail.replace('\n', " | "))
    }
}

/// Checks every applicable invariant (skipped and unobserved ones are not reported), in [`Invariant::ALL`]
/// order.
pub fn check(obs: &Observations<'_>) -> Vec<InvariantResult> {
    let codes = &obs.target.spec.exit_codes;
    let exp = |i: usize| obs.expectations.processes.get(i);
    let mut out = Vec::new();
    let skip = &obs.expectations.skip;
    for invariant in Invariant::ALL {
        if skip.contains(&invariant) {
            continue;
        }
        let evidence: Option<Vec<String>> = match invariant {
            Invariant::OneFinalArtifactPerModel => Some(one_final_per_model(obs, codes)),
            Invariant::FinalArtifactsMatchChecksum => Some(
                obs.caches
                    .iter()
                    .flat_map(|c| c.finals())
                    .filter(|f| !matches!(f.content, crate::snapshot::Content::Complete(_)))
                    .map(|f| format!("final artifact is not a complete model: {}", f.evidence()))
                    .collect(),
            ),
            Invariant::NoPartialContent => Some(
                obs.caches
                    .iter()
                    .flat_map(|c| c.partial_or_corrupt())
                    .map(|f| format!("left behind: {}", f.evidence()))
                    .collect(),
            ),
            Invariant::NoTempFilesLeft => Some(
                obs.caches
                    .iter()
                    .flat_map(|c| c.partials())
                    .map(|f| format!("temp file left: {}", f.evidence()))
                    .chain(
                        obs.compiled
                            .iter()
                            .flat_map(|c| &c.partials)
                            .map(|p| format!("compiled build dir left: {}", p.display())),
                    )
                    .collect(),
            ),
            Invariant::NoLockHeld => Some(
                obs.caches
                    .iter()
                    .flat_map(|c| c.held_locks())
                    .chain(obs.compiled.iter().flat_map(|c| c.locks.iter().filter(|l| l.held)))
                    .map(|l| format!("lock still held: {}", l.path.display()))
                    .collect(),
            ),
            Invariant::ReadersSawOnlyCompleteContent => obs.readers.map(|r| r.bad_reads.clone()),
            Invariant::CompiledEntriesCompleteOrAbsent => obs.compiled_reference.map(|reference| {
                obs.compiled
                    .iter()
                    .flat_map(|c| &c.entries)
                    .filter(|e| !reference.is_complete(e))
                    .map(|e| {
                        let files: Vec<String> =
                            e.files.iter().map(|(f, (len, _))| format!("{f} ({len} B)")).collect();
                        format!(
                            "incomplete compiled entry {}: files [{}]",
                            e.path.display(),
                            files.join(", ")
                        )
                    })
                    .collect()
            }),
            Invariant::SuccessesLoadedExpectedModel => obs
                .target
                .spec
                .metadata_file
                .as_ref()
                .map(|decl| loaded_expected(obs.outcomes, &exp, decl, codes)),
            Invariant::FailuresHaveExpectedClass => Some(
                obs.outcomes
                    .iter()
                    .filter_map(|o| {
                        let class = OutcomeClass::of(o, codes);
                        let e = exp(o.index)?;
                        let allowed =
                            e.allowed.contains(&class) || (class == OutcomeClass::Crashed && e.crash_allowed);
                        (!allowed).then(|| {
                            let names: Vec<&str> = e.allowed.iter().map(|c| c.name()).collect();
                            format!("class {class}, allowed {{{}}}: {}", names.join(", "), excerpt(o))
                        })
                    })
                    .collect(),
            ),
            Invariant::NoPanicOrUnexpectedSignal => Some(
                obs.outcomes
                    .iter()
                    .filter(|o| match OutcomeClass::of(o, codes) {
                        OutcomeClass::Panicked | OutcomeClass::Signal => true,
                        OutcomeClass::Crashed => !exp(o.index).is_some_and(|e| e.crash_allowed),
                        _ => false,
                    })
                    .map(excerpt)
                    .collect(),
            ),
            Invariant::DownloadAmplificationBounded => obs.served.map(|served| {
                obs.expectations
                    .body_bound
                    .iter()
                    .filter_map(|(model, bound)| {
                        let got = served.complete_bodies.get(model).copied().unwrap_or(0);
                        (got > *bound)
                            .then(|| format!("model {model}: {got} complete bodies served, bound {bound}"))
                    })
                    .collect()
            }),
            Invariant::NoPoisoning => obs.recovery.map(|recovery| {
                let rexp = |i: usize| recovery.expectations.get(i);
                let mut evidence: Vec<String> = recovery
                    .outcomes
                    .iter()
                    .filter(|o| OutcomeClass::of(o, codes) != OutcomeClass::Ok)
                    .map(|o| format!("recovery run failed: {}", excerpt(o)))
                    .collect();
                if let Some(decl) = &obs.target.spec.metadata_file {
                    evidence.extend(
                        loaded_expected(&recovery.outcomes, &rexp, decl, codes)
                            .into_iter()
                            .map(|e| format!("recovery run: {e}")),
                    );
                }
                evidence
            }),
            Invariant::FinishedBeforeWatchdog => {
                Some(obs.outcomes.iter().filter(|o| o.hung).map(excerpt).collect())
            }
        };
        if let Some(evidence) = evidence {
            out.push(result(invariant, evidence));
        }
    }
    out
}

fn one_final_per_model(obs: &Observations<'_>, codes: &ExitCodes) -> Vec<String> {
    let mut evidence = Vec::new();
    for cache in obs.caches {
        for model in obs.target.models.keys() {
            let copies = cache.complete_copies(model);
            if copies.len() > 1 {
                let files: Vec<String> = copies.iter().map(|f| f.path.display().to_string()).collect();
                evidence.push(format!(
                    "model {model}: {} complete copies: {}",
                    copies.len(),
                    files.join(", ")
                ));
            }
            let finals = copies.iter().filter(|f| f.is_final).count();
            let succeeded: Vec<u32> = obs
                .outcomes
                .iter()
                .filter(|o| {
                    obs.expectations.processes.get(o.index).is_some_and(|e| {
                        e.model.as_deref() == Some(model.as_str()) && e.cache_dir == cache.dir
                    }) && OutcomeClass::of(o, codes) == OutcomeClass::Ok
                })
                .map(|o| o.pid)
                .collect();
            if !succeeded.is_empty() && finals != 1 {
                evidence.push(format!(
                    "model {model}: {finals} final artifacts in {} although pids {succeeded:?} succeeded with it",
                    cache.dir.display()
                ));
            }
        }
    }
    evidence
}

fn loaded_expected<'e>(
    outcomes: &[ProcessOutcome],
    exp: &dyn Fn(usize) -> Option<&'e ProcessExpectation>,
    decl: &stress_cache_metadata::MetadataFile,
    codes: &ExitCodes,
) -> Vec<String> {
    let mut evidence = Vec::new();
    for o in outcomes.iter().filter(|o| OutcomeClass::of(o, codes) == OutcomeClass::Ok) {
        let Some(e) = exp(o.index) else { continue };
        let (Some(model), Some(expected), Some(path)) = (&e.model, &e.model_sha256, &e.metadata_path) else {
            continue;
        };
        match RunMetadata::read(decl, path) {
            Ok(meta) if meta.sha256.as_deref() == Some(expected.as_str()) => {}
            Ok(meta) => evidence.push(format!(
                "pid {} asked for {model} (sha256 {}) but loaded sha256 {} ({})",
                o.pid,
                &expected[..16],
                meta.sha256.as_deref().unwrap_or("<missing>"),
                path.display()
            )),
            Err(err) => evidence.push(format!("pid {} succeeded but: {err}", o.pid)),
        }
    }
    evidence
}

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
mod tests {
    use super::*;
    use crate::orchestrator::{Fleet, FleetProcess};
    use crate::snapshot::CompiledSnapshot;
    use crate::target::{ModelFixture, blob_models};
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;
    use stress_cache_metadata::{CompiledCache, LockKind, TargetSpec};

    /// A target whose "program" is `sh -c <script>`, with beaker-like exit codes and a TOML metadata file.
    fn target(dir: &Path) -> Target {
        let spec: TargetSpec = toml::from_str(
            r#"
            command = "sh"
            args = ["-c", "true", "{url}", "{cache_dir}"]
            [files]
            final = "*.bin"
            partial = "*.partial"
            lock = "*.lock"
            [compiled]
            entry = "*-*"
            partial = ".*.tmp"
            lock = "*.lock"
            [exit-codes]
            ok = 0
            network = 3
            integrity = 4
            [metadata-file]
            path = "{output_dir}/{input_stem}.meta.toml"
            sha256 = "model.sha256"
        "#,
        )
        .unwrap();
        Target::from_parts("sh".into(), spec, blob_models(), dir.join("in.png"), dir.join("target"))
    }

    /// Runs real processes with `sh -c` scripts; returns outcomes and expectations (all writers of `alpha`).
    fn run(
        t: &Target,
        cache: &Path,
        out: &Path,
        scripts: &[&str],
        deadline: Duration,
    ) -> (Vec<ProcessOutcome>, Expectations) {
        let plans: Vec<ProcessPlan> =
            scripts.iter().map(|_| ProcessPlan::run("alpha", "http://127.0.0.1:9/a", cache, out)).collect();
        let processes = scripts
            .iter()
            .map(|s| {
                let mut c = Command::new("sh");
                c.arg("-c").arg(s);
                FleetProcess::new("writer", c)
            })
            .collect();
        let mut fleet = Fleet::start(&out.join("fleet"), processes, deadline).unwrap();
        let outcomes = fleet.wait();
        (outcomes, Expectations::clean(t, &plans))
    }

    struct World {
        _tmp: tempfile::TempDir,
        t: Target,
        cache: PathBuf,
        out: PathBuf,
    }

    fn world() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let t = target(tmp.path());
        let cache = tmp.path().join("cache");
        let out = tmp.path().join("out");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        World { _tmp: tmp, t, cache, out }
    }

    fn alpha(w: &World) -> &ModelFixture {
        &w.t.models["alpha"]
    }

    fn write_meta(w: &World, sha: &str) {
        std::fs::write(w.out.join("in.meta.toml"), format!("[model]\nsha256 = \"{sha}\"\n")).unwrap();
    }

    fn check_with(
        w: &World,
        outcomes: &[ProcessOutcome],
        exp: &Expectations,
        extra: impl FnOnce(&mut Observations<'_>),
    ) -> Vec<InvariantResult> {
        let caches = [CacheSnapshot::take(&w.cache, &w.t.spec.files, &w.t.models)];
        let mut obs = Observations {
            target: &w.t,
            expectations: exp,
            outcomes,
            caches: &caches,
            compiled: &[],
            compiled_reference: None,
            readers: None,
            served: None,
            recovery: None,
        };
        extra(&mut obs);
        check(&obs)
    }

    fn held(results: &[InvariantResult], invariant: Invariant) -> bool {
        results
            .iter()
            .find(|r| r.name == invariant.name())
            .unwrap_or_else(|| panic!("{invariant} not reported"))
            .status
            == stress_cache_metadata::Status::Held
    }

    fn violated(results: &[InvariantResult]) -> Vec<&str> {
        results.iter().filter(|r| r.is_violated()).map(|r| r.name.as_str()).collect()
    }

    /// A clean cache (one complete final, a free lock, metadata naming the right model) passes everything.
    fn clean_world() -> (World, Vec<ProcessOutcome>, Expectations) {
        let w = world();
        std::fs::write(w.cache.join("alpha-1.bin"), &alpha(&w).bytes).unwrap();
        std::fs::write(w.cache.join("alpha-1.bin.lock"), b"").unwrap();
        write_meta(&w, &alpha(&w).sha256.clone());
        let (outcomes, exp) = run(&w.t, &w.cache, &w.out, &["exit 0", "exit 0"], Duration::from_secs(20));
        (w, outcomes, exp)
    }

    #[test]
    fn clean_run_holds_every_invariant() {
        let (w, outcomes, exp) = clean_world();
        let served =
            ServedCounts { complete_bodies: BTreeMap::from([("alpha".into(), 1)]), ..Default::default() };
        let readers = ReaderReport { scans: 3, reads: 1, complete_reads: 1, bad_reads: vec![] };
        let recovery = RecoveryRun { outcomes: outcomes.clone(), expectations: exp.processes.clone() };
        let results = check_with(&w, &outcomes, &exp, |o| {
            o.served = Some(Box::leak(Box::new(served)));
            o.readers = Some(Box::leak(Box::new(readers)));
            o.recovery = Some(Box::leak(Box::new(recovery)));
        });
        assert_eq!(results.len(), 12, "all but compiled (no reference) reported: {results:?}");
        assert!(violated(&results).is_empty(), "{results:#?}");
    }

    #[test]
    fn two_complete_copies_violate_one_final_artifact() {
        let (w, outcomes, exp) = clean_world();
        std::fs::write(w.cache.join("alpha-url2.bin"), &alpha(&w).bytes).unwrap();
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert_eq!(violated(&r), ["one_final_artifact_per_model"]);
    }

    #[test]
    fn success_without_a_final_artifact_violates_one_final_artifact() {
        let (w, outcomes, exp) = clean_world();
        std::fs::remove_file(w.cache.join("alpha-1.bin")).unwrap();
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert!(!held(&r, Invariant::OneFinalArtifactPerModel));
    }

    #[test]
    fn corrupted_final_violates_checksum_and_partial_content() {
        let (w, outcomes, exp) = clean_world();
        let mut bytes = alpha(&w).bytes.clone();
        bytes[100] ^= 0x55;
        std::fs::write(w.cache.join("alpha-1.bin"), bytes).unwrap();
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert!(!held(&r, Invariant::FinalArtifactsMatchChecksum));
        assert!(!held(&r, Invariant::NoPartialContent));
        let evidence = &r.iter().find(|x| x.name == "final_artifacts_match_checksum").unwrap().evidence[0];
        assert!(evidence.contains("corrupted(alpha)") && evidence.contains("alpha-1.bin"), "{evidence}");
    }

    #[test]
    fn prefix_under_a_temp_name_violates_partial_content_and_temp_files() {
        let (w, outcomes, exp) = clean_world();
        std::fs::write(w.cache.join("alpha-1.bin.123-1.partial"), &alpha(&w).bytes[..5000]).unwrap();
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert_eq!(violated(&r), ["no_partial_content", "no_temp_files_left"]);
    }

    #[test]
    fn a_lock_held_by_a_live_child_violates_no_lock_held() {
        let (w, outcomes, exp) = clean_world();
        let lock = w.cache.join("alpha-1.bin.lock");
        let mut holder =
            Command::new("flock").arg(&lock).arg("cat").stdin(std::process::Stdio::piped()).spawn().unwrap();
        let files = crate::proc_locks::lock_file_ids(&w.cache, "*.lock");
        let mut taken = false;
        for _ in 0..20_000 {
            let lines = crate::proc_locks::read_proc_locks().unwrap();
            if !crate::proc_locks::holding(&lines, &[holder.id()], &files).is_empty() {
                taken = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(taken);
        let r = check_with(&w, &outcomes, &exp, |_| {});
        drop(holder.stdin.take());
        holder.wait().unwrap();
        assert_eq!(violated(&r), ["no_lock_held"]);
        assert!(
            r.iter().find(|x| x.name == "no_lock_held").unwrap().evidence[0].contains("alpha-1.bin.lock")
        );
    }

    #[test]
    fn a_bad_read_violates_readers_saw_only_complete_content() {
        let (w, outcomes, exp) = clean_world();
        let readers = ReaderReport {
            scans: 2,
            reads: 1,
            complete_reads: 0,
            bad_reads: vec!["x.bin: read prefix(alpha, 10 B)".into()],
        };
        let r = check_with(&w, &outcomes, &exp, |o| o.readers = Some(Box::leak(Box::new(readers))));
        assert_eq!(violated(&r), ["readers_saw_only_complete_content"]);
    }

    #[test]
    fn an_incomplete_compiled_entry_violates_compiled_entries_complete() {
        let (w, outcomes, exp) = clean_world();
        let patterns =
            CompiledCache { entry: "*-*".into(), partial: ".*.tmp".into(), lock: Some("*.lock".into()) };
        let reference_dir = w.out.join("reference");
        let compiled_dir = w.out.join("compiled");
        for (dir, graph) in [(&reference_dir, &b"graph"[..]), (&compiled_dir, &b"gra"[..])] {
            std::fs::create_dir_all(dir.join("abc-1")).unwrap();
            std::fs::write(dir.join("abc-1/graph.nnef"), graph).unwrap();
        }
        let reference = CompiledReference::from_snapshots(&[CompiledSnapshot::take(
            &reference_dir,
            &patterns,
            LockKind::Flock,
        )]);
        let good = [CompiledSnapshot::take(&reference_dir, &patterns, LockKind::Flock)];
        let bad = [CompiledSnapshot::take(&compiled_dir, &patterns, LockKind::Flock)];
        let ok = check_with(&w, &outcomes, &exp, |o| {
            o.compiled = Box::leak(Box::new(good));
            o.compiled_reference = Some(Box::leak(Box::new(reference.clone())));
        });
        assert!(held(&ok, Invariant::CompiledEntriesCompleteOrAbsent));
        let r = check_with(&w, &outcomes, &exp, |o| {
            o.compiled = Box::leak(Box::new(bad));
            o.compiled_reference = Some(Box::leak(Box::new(reference)));
        });
        assert_eq!(violated(&r), ["compiled_entries_complete_or_absent"]);
    }

    #[test]
    fn loading_the_other_model_violates_successes_loaded_expected_model() {
        let (w, outcomes, exp) = clean_world();
        write_meta(&w, &w.t.models["beta"].sha256.clone());
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert_eq!(violated(&r), ["successes_loaded_expected_model"]);
        std::fs::remove_file(w.out.join("in.meta.toml")).unwrap();
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert_eq!(
            violated(&r),
            ["successes_loaded_expected_model"],
            "a success without metadata is a violation"
        );
    }

    #[test]
    fn unexpected_exit_class_violates_expected_class() {
        let w = world();
        let (outcomes, mut exp) = run(
            &w.t,
            &w.cache,
            &w.out,
            &["echo 'beaker: error: checksum' >&2; exit 4", "exit 3"],
            Duration::from_secs(20),
        );
        exp.processes[1] = exp.processes[1].clone().allow(&[OutcomeClass::Ok, OutcomeClass::Network]);
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert_eq!(violated(&r), ["failures_have_expected_class"]);
        let evidence = &r.iter().find(|x| x.name == "failures_have_expected_class").unwrap().evidence;
        assert_eq!(evidence.len(), 1);
        assert!(evidence[0].contains("integrity") && evidence[0].contains("checksum"), "{evidence:?}");
    }

    #[test]
    fn panic_and_signals_violate_no_panic_unless_a_crash_was_injected() {
        let w = world();
        let (outcomes, mut exp) = run(
            &w.t,
            &w.cache,
            &w.out,
            &[
                "echo \"thread 'main' panicked at src/main.rs:1:1\" >&2; exit 101",
                "kill -TERM $$",
                "kill -KILL $$",
            ],
            Duration::from_secs(20),
        );
        for e in &mut exp.processes {
            e.allowed = BTreeSet::from([
                OutcomeClass::Ok,
                OutcomeClass::Panicked,
                OutcomeClass::Signal,
                OutcomeClass::Crashed,
            ]);
        }
        exp.skip.insert(Invariant::OneFinalArtifactPerModel);
        let r = check_with(&w, &outcomes, &exp, |_| {});
        let evidence = &r.iter().find(|x| x.name == "no_panic_or_unexpected_signal").unwrap().evidence;
        assert_eq!(evidence.len(), 3, "{evidence:?}");
        exp.processes[2] = exp.processes[2].clone().crash();
        let r = check_with(&w, &outcomes, &exp, |_| {});
        let evidence = &r.iter().find(|x| x.name == "no_panic_or_unexpected_signal").unwrap().evidence;
        assert_eq!(evidence.len(), 2, "an injected crash is allowed: {evidence:?}");
        assert_eq!(OutcomeClass::of(&outcomes[0], &w.t.spec.exit_codes), OutcomeClass::Panicked);
        assert_eq!(OutcomeClass::of(&outcomes[1], &w.t.spec.exit_codes), OutcomeClass::Signal);
        assert_eq!(OutcomeClass::of(&outcomes[2], &w.t.spec.exit_codes), OutcomeClass::Crashed);
    }

    #[test]
    fn too_many_bodies_violate_amplification_bound() {
        let (w, outcomes, exp) = clean_world();
        let served =
            ServedCounts { complete_bodies: BTreeMap::from([("alpha".into(), 2)]), ..Default::default() };
        let r = check_with(&w, &outcomes, &exp, |o| o.served = Some(Box::leak(Box::new(served))));
        assert_eq!(violated(&r), ["download_amplification_bounded"]);
    }

    #[test]
    fn a_failing_recovery_run_violates_no_poisoning() {
        let (w, outcomes, exp) = clean_world();
        let (bad, _) = run(
            &w.t,
            &w.cache,
            &w.out,
            &["echo 'beaker: error: bad model' >&2; exit 4"],
            Duration::from_secs(20),
        );
        let recovery = RecoveryRun { outcomes: bad, expectations: exp.processes[..1].to_vec() };
        let r = check_with(&w, &outcomes, &exp, |o| o.recovery = Some(Box::leak(Box::new(recovery))));
        assert_eq!(violated(&r), ["no_poisoning"]);
    }

    #[test]
    fn a_hung_process_violates_finished_before_watchdog() {
        let w = world();
        std::fs::write(w.cache.join("alpha-1.bin"), &alpha(&w).bytes).unwrap();
        write_meta(&w, &alpha(&w).sha256.clone());
        let (outcomes, exp) =
            run(&w.t, &w.cache, &w.out, &["exit 0", "exec sleep 1000"], Duration::from_millis(500));
        let r = check_with(&w, &outcomes, &exp, |_| {});
        assert!(!held(&r, Invariant::FinishedBeforeWatchdog));
        assert!(!held(&r, Invariant::FailuresHaveExpectedClass));
        assert!(held(&r, Invariant::NoPanicOrUnexpectedSignal), "a watchdog kill is a hang, not a crash");
    }

    #[test]
    fn names_are_stable_snake_case() {
        let names: BTreeSet<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
        assert_eq!(names.len(), 13);
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        assert_eq!(Invariant::NoLockHeld.to_string(), "no_lock_held");
    }

    #[test]
    #[should_panic(expected = "no_lock_held")]
    fn assert_all_held_lists_violations() {
        assert_all_held(
            "s",
            &[InvariantResult::checked("no_lock_held", vec!["x.lock".into()])],
        );
    }
}
