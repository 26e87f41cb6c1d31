//! The steps every scenario takes, in one place: a temp dir per run, plans for N processes on shared or
//! own caches, a fleet released together (optionally with a reader probe), a clean recovery run, the
//! invariant check over final snapshots, the JSON record, and a panic listing every violated invariant.
//!
//! ```no_run
//! # use stress_tests::{scenario::Scenario, server::{ModelServer, Route}};
//! let mut s = Scenario::new("same_model_shared_cache").unwrap();
//! let server = ModelServer::start().unwrap();
//! let small = s.target().model("small").clone();
//! let route = server.add_route(Route::new(s.target().server_path("small"), small.bytes.clone()).model_id("small"));
//! let cache = s.cache_dir("shared");
//! let plans: Vec<_> = (0..s.tier().contention_processes())
//!     .map(|i| s.writer(i, "small", &server.url(&route), &cache).sha256(Some(&small.sha256)))
//!     .collect();
//! let mut run = s.launch(plans).unwrap();
//! run.start_reader();
//! run.wait();
//! let recovery = run.scenario().writer(999, "small", &server.url(&route), &cache).role("recovery");
//! run.recover(recovery);
//! run.served_from_routes(&[&route]);
//! run.finish(); // checks, writes the record, panics on violations
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stress_cache_metadata::ScenarioRecord;

use crate::invariants::{
    self, Expectations, Invariant, Observations, OutcomeClass, ProcessExpectation, RecoveryRun, ServedCounts,
};
use crate::orchestrator::{Fleet, FleetError, FleetProcess, ProcessOutcome};
use crate::reader_probe::{ReaderProbe, ReaderReport};
use crate::record::{self, RecordInput};
use crate::server::RouteHandle;
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
use crate::target::{ProcessPlan, Target, TargetError};
use crate::tier::{TierConfig, TierError};

/// Default watchdog deadline of a fleet.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(25);

/// Error setting up a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The target could not be prepared.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Bad tier configuration.
    #[error(transparent)]
    Tier(#[from] TierError),
    /// The fleet could not start.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// One scenario: its name, target, tier and temp dir.
pub struct Scenario {
    name: String,
    target: Target,
    tier: TierConfig,
    root: tempfile::TempDir,
    deadline: Duration,
    fleets: usize,
}

impl Scenario {
    /// A scenario on the shared target ([`Target::shared`]) with the tier from the environment.
    pub fn new(name: &str) -> Result<Self, ScenarioError> {
        let target = Target::shared()?.clone();
        Self::with_target(name, target, TierConfig::from_env()?)
    }

    /// A scenario on an explicit target (e.g. a second target built from a spec file).
    pub fn with_target(name: &str, target: Target, tier: TierConfig) -> Result<Self, ScenarioError> {
        let tmp_parent = target.stress_dir().join("tmp");
        std::fs::create_dir_all(&tmp_parent).map_err(|source| ScenarioError::Io {
            action: "create",
            path: tmp_parent.display().to_string(),
            source,
        })?;
        let root = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir_in(&tmp_parent).map_err(
            |source| ScenarioError::Io {
                action: "create temp dir in",
                path: tmp_parent.display().to_string(),
                source,
            },
        )?;
        Ok(Scenario { name: name.to_string(), target, tier, root, deadline: DEFAULT_DEADLINE, fleets: 0 })
    }

    /// Sets the watchdog deadline of the fleets this scenario starts.
    pub fn deadline(&mut self, deadline: Duration) -> &mut Self {
        self.deadline = deadline;
        self
    }

    /// Scenario name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The tier configuration.
    pub fn tier(&self) -> &TierConfig {
        &self.tier
    }

    /// The scenario's temp dir.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }

    fn subdir(&self, kind: &str, name: &str) -> PathBuf {
        let dir = self.root.path().join(kind).join(name);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// A download cache dir (created): `caches/<name>`.
    pub fn cache_dir(&self, name: &str) -> PathBuf {
        self.subdir("caches", name)
    }

    /// A compiled cache dir (created): `compiled/<name>`.
    pub fn compiled_dir(&self, name: &str) -> PathBuf {
        self.subdir("compiled", name)
    }

    /// An output dir (created) for process `index`: `out/<index>`.
    pub fn output_dir(&self, index: usize) -> PathBuf {
        self.subdir("out", &index.to_string())
    }

    /// A `writer` plan for process `index`: `model` from `url` on `cache`, own output dir, the
    /// checksum when the target takes one, the compiled dir `compiled/<cache name>` when the target has a
    /// compiled cache, and the tier's mutant.
    pub fn writer(&self, index: usize, model: &str, url: &str, cache: &Path) -> ProcessPlan {
        let mut plan =
            ProcessPlan::run(model, url, cache, &self.output_dir(index)).mutant(self.tier.mutant.as_deref());
        if self.target.spec.features.checksum {
            plan = plan.sha256(Some(&self.target.model(model).sha256));
        }
        if self.target.spec.compiled.is_some() {
            let name = cache
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "default".into());
            plan = plan.compiled_dir(&self.compiled_dir(&name));
        }
        plan
    }

    /// Starts `plans` as one fleet released together, with `{ok}`-only expectations and a body bound of 1
    /// per requested model (adjust with [`ScenarioRun::expect`] / [`ScenarioRun::expectations_mut`]).
    pub fn launch(&mut self, plans: Vec<ProcessPlan>) -> Result<ScenarioRun<'_>, ScenarioError> {
        let fleet = self.start_fleet(&plans, "fleet")?;
        let expectations = Expectations::clean(&self.target, &plans);
        Ok(ScenarioRun {
            scenario: self,
            plans,
            fleet: Some(fleet),
            expectations,
            outcomes: Vec::new(),
            started_unix_ms: 0,
            wall: Duration::ZERO,
            reader: None,
            reader_report: None,
            recovery: None,
            served: None,
            compiled_reference: None,
            extra_caches: Vec::new(),
        })
    }

    fn start_fleet(&mut self, plans: &[ProcessPlan], label: &str) -> Result<Fleet, ScenarioError> {
        self.fleets += 1;
        let dir = self.root.path().join(format!("{label}-{}", self.fleets));
        let processes = plans
            .iter()
            .map(|p| {
                let _ = std::fs::create_dir_all(&p.output_dir);
                FleetProcess::new(&p.role, self.target.command_for(p))
            })
            .collect();
        Ok(Fleet::start(&dir, processes, self.deadline)?)
    }

    /// Runs `plans` together to completion (e.g. setup or a reference run) and returns their outcomes.
    pub fn run_to_completion(
        &mut self,
        plans: &[ProcessPlan],
        label: &str,
    ) -> Result<Vec<ProcessOutcome>, ScenarioError> {
        let mut fleet = self.start_fleet(plans, label)?;
        Ok(fleet.wait())
    }

    /// A reference for compiled entries: for each `(model, url)`, two clean single runs in fresh caches
    /// (files that differ between the two, like timestamps, are then compared by length only).
    pub fn compiled_reference(
        &mut self,
        models: &[(&str, &str)],
    ) -> Result<CompiledReference, ScenarioError> {
        let Some(compiled) = self.target.spec.compiled.clone() else {
            return Ok(CompiledReference::default());
        };
        let mut snapshots = Vec::new();
        for round in 0..2 {
            for (i, (model, url)) in models.iter().enumerate() {
                let name = format!("reference-{model}-{round}");
                let cache = self.cache_dir(&name);
                let plan = ProcessPlan::run(model, url, &cache, &self.output_dir(10_000 + round * 100 + i))
                    .role("reference")
                    .sha256(
                        self.target
                            .spec
                            .features
                            .checksum
                            .then(|| self.target.model(model).sha256.clone())
                            .as_deref(),
                    )
                    .compiled_dir(&self.compiled_dir(&name));
                self.run_to_completion(std::slice::from_ref(&plan), "reference")?;
                snapshots.push(CompiledSnapshot::take(
                    &self.compiled_dir(&name),
                    &compiled,
                    self.target.spec.files.lock_kind,
                ));
            }
        }
        Ok(CompiledReference::from_snapshots(&snapshots))
    }
}

/// A running (then finished) scenario fleet and everything observed about it.
pub struct ScenarioRun<'s> {
    scenario: &'s mut Scenario,
    plans: Vec<ProcessPlan>,
    fleet: Option<Fleet>,
    expectations: Expectations,
    outcomes: Vec<ProcessOutcome>,
    started_unix_ms: u64,
    wall: Duration,
    reader: Option<ReaderProbe>,
    reader_report: Option<ReaderReport>,
    recovery: Option<RecoveryRun>,
    served: Option<ServedCounts>,
    compiled_reference: Option<CompiledReference>,
    extra_caches: Vec<PathBuf>,
}

impl ScenarioRun<'_> {
    /// The running fleet (pids, stop/resume, lock waiters, wait_until). Panics after [`ScenarioRun::wait`].
    pub fn fleet(&self) -> &Fleet {
        self.fleet.as_ref().expect("the fleet is still running (before wait)")
    }

    /// The scenario (to make more plans, e.g. the recovery plan).
    pub fn scenario(&self) -> &Scenario {
        self.scenario
    }

    /// The plans, by fleet index.
    pub fn plans(&self) -> &[ProcessPlan] {
        &self.plans
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.scenario.target
    }

    /// Mutable expectations (allowed classes, body bounds, skipped invariants).
    pub fn expectations_mut(&mut self) -> &mut Expectations {
        &mut self.expectations
    }

    /// Allowed classes of process `index`; `crash` marks an injected crash.
    pub fn expect(&mut self, index: usize, allowed: &[OutcomeClass], crash: bool) -> &mut Self {
        if let Some(e) = self.expectations.processes.get_mut(index) {
            *e = e.clone().allow(allowed);
            e.crash_allowed = crash;
        }
        self
    }

    /// Sets the complete-bodies bound of a model.
    pub fn body_bound(&mut self, model: &str, bound: u64) -> &mut Self {
        self.expectations.body_bound.insert(model.to_string(), bound);
        self
    }

    /// Does not check (nor report) `invariant` in this scenario.
    pub fn skip(&mut self, invariant: Invariant) -> &mut Self {
        self.expectations.skip.insert(invariant);
        self
    }

    /// Also snapshots and checks `dir` as a download cache (dirs of the plans are included already).
    pub fn also_check_cache(&mut self, dir: &Path) -> &mut Self {
        self.extra_caches.push(dir.to_path_buf());
        self
    }

    /// Sets the compiled-entry reference (see [`Scenario::compiled_reference`]).
    pub fn compiled_reference(&mut self, reference: CompiledReference) -> &mut Self {
        self.compiled_reference = Some(reference);
        self
    }

    /// Starts a reader probe over every download cache of the plans (final pattern), until [`ScenarioRun::wait`].
    pub fn start_reader(&mut self) -> &mut Self {
        let dirs = self.cache_dirs();
        let pattern = self.scenario.target.spec.files.final_.clone();
        let deadline = self.scenario.deadline + Duration::from_secs(5);
        self.reader = Some(ReaderProbe::start(dirs, &pattern, self.scenario.target.models.clone(), deadline));
        self
    }

    /// Waits for every process (watchdog-bounded), stops the reader, and returns the outcomes.
    pub fn wait(&mut self) -> &[ProcessOutcome] {
        if let Some(mut fleet) = self.fleet.take() {
            self.outcomes = fleet.wait();
            self.started_unix_ms = fleet.released_unix_ms();
            self.wall = self.outcomes.iter().map(|o| o.wall).max().unwrap_or_default();
        }
        if let Some(reader) = self.reader.take() {
            self.reader_report = Some(reader.stop());
        }
        &self.outcomes
    }

    /// Runs the clean recovery process(es) after the fleet (expected `{ok}` and the right model) for
    /// `no_poisoning`. Call after [`ScenarioRun::wait`].
    pub fn recover(&mut self, plan: ProcessPlan) -> &[ProcessOutcome] {
        self.wait();
        let plans = vec![plan];
        let expectations: Vec<ProcessExpectation> =
            plans.iter().map(|p| ProcessExpectation::for_plan(&self.scenario.target, p)).collect();
        let outcomes = match self.scenario.run_to_completion(&plans, "recovery") {
            Ok(o) => o,
            Err(e) => vec![ProcessOutcome {
                index: 0,
                role: "recovery".into(),
                pid: 0,
                exit_code: None,
                signal: None,
                hung: false,
                wall: Duration::ZERO,
                peak_rss_kb: None,
                stdout_path: PathBuf::new(),
                stderr_path: PathBuf::new(),
                spawn_error: Some(e.to_string()),
            }],
        };
        &self.recovery.insert(RecoveryRun { outcomes, expectations }).outcomes
    }

    /// Sets the server counters.
    pub fn served(&mut self, served: ServedCounts) -> &mut Self {
        self.served = Some(served);
        self
    }

    /// Sets the server counters from route handles (routes need a model id; requests and bodies are
    /// summed per model).
    pub fn served_from_routes(&mut self, routes: &[&RouteHandle]) -> &mut Self {
        self.served = Some(served_counts(routes));
        self
    }

    /// Outcomes (after [`ScenarioRun::wait`]).
    pub fn outcomes(&self) -> &[ProcessOutcome] {
        &self.outcomes
    }

    fn cache_dirs(&self) -> Vec<PathBuf> {
        let set: BTreeSet<PathBuf> =
            self.plans.iter().map(|p| p.cache_dir.clone()).chain(self.extra_caches.iter().cloned()).collect();
        set.into_iter().collect()
    }

    /// Checks the invariants and writes the record without panicking; returns the record and its path.
    /// A failed run's temp dir is kept (moved to `$STRESS_KEEP_DIR` or `<results>/kept/`).
    pub fn evaluate(mut self) -> (ScenarioRecord, Option<PathBuf>) {
        self.wait();
        let target = &self.scenario.target;
        let caches: Vec<CacheSnapshot> = self
            .cache_dirs()
            .iter()
            .map(|d| CacheSnapshot::take(d, &target.spec.files, &target.models))
            .collect();
        let compiled: Vec<CompiledSnapshot> = match &target.spec.compiled {
            Some(c) => {
                let dirs: BTreeSet<PathBuf> =
                    self.plans.iter().filter_map(|p| p.compiled_dir.clone()).collect();
                dirs.iter().map(|d| CompiledSnapshot::take(d, c, target.spec.files.lock_kind)).collect()
            }
            None => Vec::new(),
        };
        let obs = Observations {
            target,
            expectations: &self.expectations,
            outcomes: &self.outcomes,
            caches: &caches,
            compiled: &compiled,
            compiled_reference: self.compiled_reference.as_ref(),
            readers: self.reader_report.as_ref(),
            served: self.served.as_ref(),
            recovery: self.recovery.as_ref(),
        };
        let mut results = invariants::check(&obs);
        let failed = results.iter().any(|r| r.is_violated());
        let results_dir = record::results_dir(target);
        let root = self.scenario.root.path().to_path_buf();
        let kept = if failed { keep_dir(&root, &self.scenario.name, &results_dir) } else { None };
        if let Some(kept) = &kept {
            // Evidence names files where they are now.
            let (from, to) = (root.display().to_string(), kept.display().to_string());
            for e in results.iter_mut().flat_map(|r| r.evidence.iter_mut()) {
                *e = e.replace(&from, &to);
            }
        }
        let record = record::build_record(&RecordInput {
            scenario: &self.scenario.name,
            tier: &self.scenario.tier,
            target,
            expectations: &self.expectations,
            outcomes: &self.outcomes,
            invariants: &results,
            served: self.served.as_ref(),
            started_unix_ms: self.started_unix_ms,
            wall: self.wall,
            kept_dir: kept.as_deref(),
        });
        let path = match record::write_record(&record, &results_dir) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("{e}");
                None
            }
        };
        (record, path)
    }

    /// [`ScenarioRun::evaluate`], then panics listing every violated invariant with its evidence.
    pub fn finish(self) -> ScenarioRecord {
        let name = self.scenario.name.clone();
        let (record, path) = self.evaluate();
        if !record.passed() {
            let mut notes = Vec::new();
            if let Some(p) = &path {
                notes.push(format!("record: {}", p.display()));
            }
            if let Some(k) = &record.kept_dir {
                notes.push(format!("kept dir: {k}"));
            }
            invariants::assert_all_held_with_notes(&name, &record.invariants, &notes);
        }
        record
    }
}

/// Server counters from route handles, summed per model id (routes without one are skipped).
pub fn served_counts(routes: &[&RouteHandle]) -> ServedCounts {
    let mut served = ServedCounts::default();
    for r in routes {
        served.bytes_served += r.bytes_served();
        if let Some(model) = r.model_id() {
            *served.requests.entry(model.to_string()).or_default() += r.requests();
            *served.complete_bodies.entry(model.to_string()).or_default() += r.complete_bodies();
        }
    }
    served
}

/// Copies a failed scenario's dir to `$STRESS_KEEP_DIR` (or `<results>/kept/`) as `<name>-<ms>-<pid>`.
fn keep_dir(root: &Path, name: &str, results_dir: &Path) -> Option<PathBuf> {
    let base = std::env::var_os("STRESS_KEEP_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| results_dir.join("kept"));
    let dest = base.join(format!("{name}-{}-{}", crate::orchestrator::unix_ms_now(), std::process::id()));
    std::fs::create_dir_all(&base).ok()?;
    match std::fs::rename(root, &dest) {
        Ok(()) => {
            // TempDir's drop then finds nothing to delete.
            Some(dest)
        }
        Err(_) => copy_tree(root, &dest).then_some(dest),
    }
}

fn copy_tree(from: &Path, to: &Path) -> bool {
    let mut ok = std::fs::create_dir_all(to).is_ok();
    for entry in crate::snapshot::walk(from) {
        let dest = to.join(&entry.relative);
        if entry.is_dir {
            ok &= std::fs::create_dir_all(&dest).is_ok();
        } else if entry.is_file {
            ok &= std::fs::copy(&entry.path, &dest).is_ok();
        }
    }
    ok
}
