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

mod conclusion;
mod plan;
mod run;
mod traced;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stress_cache_metadata::{ScenarioRecord, TimelineEvent};

pub use conclusion::merge_all;
pub use plan::PlanRecorder;
pub use run::{LongRun, Phase, ScenarioRun};
pub use traced::TracedFleet;

use crate::invariants::{Expectations, LiveLockObservation, ServedCounts};
use crate::orchestrator::{FleetError, ProcessOutcome};
use crate::record::{self, RecordInput};
use crate::server::RouteHandle;
use crate::snapshot::{CompiledReference, CompiledSnapshot};
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
    /// The file-system tracer is missing or failed.
    #[error("{0}")]
    Trace(String),
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
    traces: Vec<(usize, PathBuf)>,
    without_checksum: bool,
    /// Extra environment of every writer plan.
    process_env: BTreeMap<String, String>,
    /// Where this scenario's file systems are mounted: inside `STRESS_TMP_DIR` when the CLI set it, so
    /// its clean-up unmounts what a killed test could not.
    mount_parent: PathBuf,
    /// What happened to the processes and their requests (stops, signals, gate releases, faults), for
    /// the record's timeline.
    events: Vec<TimelineEvent>,
    /// The run's plan as it happens, for the record.
    recorder: PlanRecorder,
}

impl Scenario {
    /// A scenario on the shared target ([`Target::shared`]) with the tier from the environment.
    pub fn new(name: &str) -> Result<Self, ScenarioError> {
        let target = Target::shared()?.clone();
        Self::with_target(name, target, TierConfig::from_env()?)
    }

    /// A scenario on an explicit target (e.g. a second target built from a spec file).
    pub fn with_target(name: &str, target: Target, tier: TierConfig) -> Result<Self, ScenarioError> {
        // The CLI gives every repeat its own temp dir (`STRESS_TMP_DIR`) so that it can clean up after
        // an interrupted run; a test run outside the CLI uses the target's stress dir.
        let tmp_parent = crate::tier::suite_env()
            .ok()
            .and_then(|env| env.tmp_dir.clone())
            .unwrap_or_else(|| target.stress_dir().join("tmp"));
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
        Ok(Scenario {
            mount_parent: tmp_parent.join("mnt"),
            events: Vec::new(),
            recorder: PlanRecorder::default(),
            name: name.to_string(),
            target,
            tier,
            root,
            deadline: DEFAULT_DEADLINE,
            fleets: 0,
            traces: Vec::new(),
            without_checksum: false,
            process_env: BTreeMap::new(),
        })
    }

    /// Runs the target without its checksum option (its other configuration: validation by other means,
    /// URL-keyed names), so that path is stressed too.
    pub fn without_checksum(&mut self) -> &mut Self {
        self.without_checksum = true;
        self
    }

    /// The directory to mount scratch file systems under (see the field).
    pub fn mount_parent(&self) -> &Path {
        &self.mount_parent
    }

    /// Extra environment for every process this scenario's [`Scenario::writer`] plans.
    pub fn process_env(&mut self, env: &BTreeMap<String, String>) -> &mut Self {
        self.process_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    /// Whether the processes get the expected checksum (the target takes one and the scenario did not
    /// turn it off).
    pub fn uses_checksum(&self) -> bool {
        self.target.spec.features.checksum && !self.without_checksum
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

    /// `n` writers of `model` on one cache (indices `0..n`) and the recovery run after them (index `n`).
    pub fn writers_and_recovery(
        &self,
        n: usize,
        model: &str,
        url: &str,
        cache: &Path,
    ) -> (Vec<ProcessPlan>, ProcessPlan) {
        let writers = (0..n).map(|i| self.writer(i, model, url, cache)).collect();
        (writers, self.writer(n, model, url, cache).role("recovery"))
    }

    /// A `writer` plan for process `index`: `model` from `url` on `cache`, own output dir, the
    /// checksum when the target takes one, the compiled dir `compiled/<cache name>` when the target has a
    /// compiled cache, and the tier's mutant.
    pub fn writer(&self, index: usize, model: &str, url: &str, cache: &Path) -> ProcessPlan {
        let mut plan =
            ProcessPlan::run(model, url, cache, &self.output_dir(index)).mutant(self.tier.mutant.as_deref());
        if self.uses_checksum() {
            plan = plan.sha256(Some(&self.target.model(model).sha256));
        }
        for (k, v) in &self.process_env {
            plan = plan.env(k, v);
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
    /// A replayed plan's role caps keep only the first processes of each capped role.
    pub fn launch(&mut self, plans: Vec<ProcessPlan>) -> Result<ScenarioRun<'_>, ScenarioError> {
        let plans = within_role_caps(plans);
        let fleet = self.start_fleet(&plans, "fleet")?;
        let expectations = Expectations::clean(&self.target, &plans);
        Ok(ScenarioRun {
            scenario: self,
            plans,
            fleet: Some(fleet),
            joiners: Vec::new(),
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
            after_fleet: None,
            live_locks: LiveLockObservation::default(),
            phases: Vec::new(),
            verdicts: Vec::new(),
            setup_errors: Vec::new(),
            crash_states: None,
            long_run: Default::default(),
        })
    }

    /// A record for a scenario that could not be set up (a precondition not met, a setup run that failed):
    /// written with outcome `error` — not a verdict about the target, and never a kill.
    pub fn error_record(&self, error: &str) -> ScenarioRecord {
        let mut record = self.empty_record();
        record.setup_errors = vec![error.to_string()];
        if let Err(e) = record::write_record(&record, &record::results_dir(&self.target)) {
            log::warn!("{e}");
        }
        record
    }

    fn empty_record(&self) -> ScenarioRecord {
        let expectations = Expectations::default();
        record::build_record(&RecordInput {
            scenario: &self.name,
            tier: &self.tier,
            target: &self.target,
            expectations: &expectations,
            outcomes: &[],
            invariants: &[],
            served: None,
            started_unix_ms: 0,
            wall: Duration::ZERO,
            kept_dir: None,
        })
    }

    /// A record for a scenario that does not apply to the target (nothing run, nothing checked): written,
    /// and reported as not applicable — never as a pass of any invariant.
    pub fn not_applicable(&self, why: &str) -> ScenarioRecord {
        println!(
            "scenario {} does not apply to target {}: {why}",
            self.name,
            self.target.spec.display_name()
        );
        let mut record = self.empty_record();
        record.not_applicable = Some(why.to_string());
        if let Err(e) = record::write_record(&record, &record::results_dir(&self.target)) {
            log::warn!("{e}");
        }
        record
    }

    /// Runs `plans` together to completion (e.g. setup or a reference run) and returns their outcomes.
    pub fn run_to_completion(
        &mut self,
        plans: &[ProcessPlan],
        label: &str,
    ) -> Result<Vec<ProcessOutcome>, ScenarioError> {
        let mut fleet = self.start_fleet(plans, label)?;
        Ok(self.reap(&mut fleet))
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

/// `plans` without the processes of a role beyond the replayed plan's cap on it (in order: the first
/// ones of each role stay).
fn within_role_caps(plans: Vec<ProcessPlan>) -> Vec<ProcessPlan> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    plans
        .into_iter()
        .filter(|p| {
            let n = seen.entry(p.role.clone()).or_default();
            *n += 1;
            crate::replay::role_cap(&p.role).is_none_or(|cap| *n <= cap)
        })
        .collect()
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
    let base = crate::tier::suite_env()
        .ok()
        .and_then(|env| env.keep_dir.clone())
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
