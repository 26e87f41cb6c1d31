//! One scenario run as a single pipeline: **observe** (fleets, joiners, earlier phases, the reader probe,
//! live lock checks, snapshots after the fleet and after recovery, the file-system trace), then **check**
//! (every invariant once: held, violated or skipped), then **write** the record once. Nothing rewrites a
//! record afterwards: scenario-specific checks and setup errors are handed to the run before
//! [`ScenarioRun::evaluate`].

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use stress_cache_metadata::{EventKind, InvariantResult, TimelineEvent};

use super::{Scenario, ScenarioError, TracedFleet};
use crate::invariants::{
    Expectations, Invariant, LiveLockObservation, OutcomeClass, ProcessExpectation, RecoveryRun, ServedCounts,
};
use crate::orchestrator::{Fleet, ProcessOutcome};
use crate::reader_probe::{ReaderProbe, ReaderReport};
use crate::server::{Fault, Gate, RouteHandle};
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
use crate::target::{ProcessPlan, Target};

/// An earlier, separately checked phase of a scenario (e.g. the cache right after a crash), merged into
/// the run's record: its verdicts (evidence labelled), outcomes and process runs.
pub struct Phase {
    /// Label put in front of its evidence.
    pub label: String,
    /// Its verdicts.
    pub results: Vec<InvariantResult>,
    /// Its outcomes (merged into the record's outcome counts and process runs).
    pub outcomes: Vec<ProcessOutcome>,
    /// Its expectations (for the metadata paths of its process runs).
    pub expectations: Expectations,
    /// The download-cache snapshots it took.
    pub caches: Vec<CacheSnapshot>,
}

/// A running (then finished) scenario fleet and everything observed about it.
pub struct ScenarioRun<'s> {
    pub(super) scenario: &'s mut Scenario,
    pub(super) plans: Vec<ProcessPlan>,
    pub(super) fleet: Option<TracedFleet>,
    pub(super) joiners: Vec<(TracedFleet, usize)>,
    pub(super) expectations: Expectations,
    pub(super) outcomes: Vec<ProcessOutcome>,
    pub(super) started_unix_ms: u64,
    pub(super) wall: Duration,
    pub(super) reader: Option<ReaderProbe>,
    pub(super) reader_report: Option<ReaderReport>,
    pub(super) recovery: Option<RecoveryRun>,
    pub(super) served: Option<ServedCounts>,
    pub(super) compiled_reference: Option<CompiledReference>,
    pub(super) extra_caches: Vec<PathBuf>,
    pub(super) after_fleet: Option<(Vec<CacheSnapshot>, Vec<CompiledSnapshot>)>,
    pub(super) live_locks: LiveLockObservation,
    pub(super) phases: Vec<Phase>,
    pub(super) verdicts: Vec<InvariantResult>,
    pub(super) setup_errors: Vec<String>,
    pub(super) crash_states: Option<stress_cache_metadata::CrashStateCounts>,
    pub(super) long_run: LongRun,
}

/// What the nightly soak and scale parts add to a record: their figures, findings, and the outcomes of
/// the runs they made untraced by the thousand (counted, without a process run each).
#[derive(Default)]
pub struct LongRun {
    pub(super) soak: Option<stress_cache_metadata::SoakFigures>,
    pub(super) scale: Option<stress_cache_metadata::ScaleFigures>,
    pub(super) findings: Vec<stress_cache_metadata::Finding>,
    pub(super) outcomes: std::collections::BTreeMap<String, usize>,
}

impl ScenarioRun<'_> {
    /// The running fleet (pids, stop/resume, lock waiters, wait_until). Panics after [`ScenarioRun::wait`].
    pub fn fleet(&self) -> &Fleet {
        &self.fleet.as_ref().expect("the fleet is still running (before wait)").fleet
    }

    /// Every fleet of the run still running (the main one and joiners).
    pub fn fleets(&self) -> Vec<&Fleet> {
        self.fleet.iter().chain(self.joiners.iter().map(|(f, _)| f)).map(|t| &t.fleet).collect()
    }

    /// The scenario (to make more plans, e.g. the recovery plan).
    pub fn scenario(&self) -> &Scenario {
        self.scenario
    }

    /// The plans, by fleet index (joiners' plans follow the main fleet's).
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

    /// Checks snapshot invariant `invariant` only after the recovery run, not right after the fleet.
    pub fn skip_after_fleet(&mut self, invariant: Invariant, reason: &str) -> &mut Self {
        self.expectations.skip_after_fleet.insert(invariant, reason.to_string());
        self
    }

    /// Does not check `invariant` in this scenario; it is reported as skipped with `reason`.
    pub fn skip(&mut self, invariant: Invariant, reason: &str) -> &mut Self {
        self.expectations.skip(invariant, reason);
        self
    }

    /// Also snapshots and checks `dir` as a download cache (dirs of the plans are included already).
    pub fn also_check_cache(&mut self, dir: &std::path::Path) -> &mut Self {
        self.extra_caches.push(dir.to_path_buf());
        self
    }

    /// Sets the compiled-entry reference (see [`Scenario::compiled_reference`]).
    pub fn compiled_reference(&mut self, reference: CompiledReference) -> &mut Self {
        self.compiled_reference = Some(reference);
        self
    }

    /// Adds an earlier phase, checked on its own (its verdicts are merged, evidence labelled).
    pub fn add_phase(&mut self, phase: Phase) -> &mut Self {
        self.phases.push(phase);
        self
    }

    /// Adds a scenario-specific verdict (merged into an invariant of the same name, if any).
    pub fn add_verdict(&mut self, verdict: InvariantResult) -> &mut Self {
        self.verdicts.push(verdict);
        self
    }

    /// Sets the crash-state counts of a power-loss scenario (written in the record).
    pub fn crash_states(&mut self, counts: stress_cache_metadata::CrashStateCounts) -> &mut Self {
        self.crash_states = Some(counts);
        self
    }

    /// Sets the soak figures (written in the record).
    pub fn soak_figures(&mut self, figures: stress_cache_metadata::SoakFigures) -> &mut Self {
        self.long_run.soak = Some(figures);
        self
    }

    /// Sets the scale figures (written in the record).
    pub fn scale_figures(&mut self, figures: stress_cache_metadata::ScaleFigures) -> &mut Self {
        self.long_run.scale = Some(figures);
        self
    }

    /// Adds a finding (reported, never a violation).
    pub fn add_finding(&mut self, finding: stress_cache_metadata::Finding) -> &mut Self {
        self.long_run.findings.push(finding);
        self
    }

    /// Counts `n` more processes of class `class` made outside any fleet or phase of the record (the
    /// soak's and the sustained phase's untraced runs): in the record's outcome counts and process
    /// total, without a process run each.
    pub fn count_outcomes(&mut self, class: OutcomeClass, n: usize) -> &mut Self {
        *self.long_run.outcomes.entry(class.name().to_string()).or_default() += n;
        self
    }

    /// Records that the scenario could not set up what it checks (the run is `error`, not a verdict).
    pub fn setup_error(&mut self, message: impl Into<String>) -> &mut Self {
        self.setup_errors.push(message.into());
        self
    }

    /// Adds live lock observations (see [`crate::scenarios::overlap`]).
    pub fn add_live_locks(&mut self, observed: LiveLockObservation) -> &mut Self {
        self.live_locks.checks += observed.checks;
        self.live_locks.witnesses.extend(observed.witnesses);
        self.live_locks.evidence.extend(observed.evidence);
        self
    }

    /// Starts `plans` now as a second wave of the same run (processes that start while the first wave is
    /// busy, e.g. while its download is parked at a gate). They are checked with the main fleet.
    pub fn join(&mut self, plans: Vec<ProcessPlan>) -> Result<&Fleet, ScenarioError> {
        let offset = self.plans.len();
        let label = format!("joiners-{}", self.joiners.len() + 1);
        let fleet = self.scenario.start_fleet(&plans, &label)?;
        self.expectations
            .processes
            .extend(plans.iter().map(|p| ProcessExpectation::for_plan(&self.scenario.target, p)));
        for m in plans
            .iter()
            .filter_map(|p| matches!(p.command, crate::target::PlanCommand::Run).then_some(&p.model))
        {
            self.expectations.body_bound.entry(m.clone()).or_insert(1);
        }
        self.plans.extend(plans);
        self.joiners.push((fleet, offset));
        Ok(self.joiners.last().map(|(f, _)| &f.fleet).expect("just pushed"))
    }

    /// Starts `plans` as a side fleet of this run (traced; not part of the checked fleet): e.g. gc while the
    /// readers are stopped. Reap it with [`ScenarioRun::reap_side`] and check it as a [`Phase`].
    pub fn side_fleet(&mut self, label: &str, plans: &[ProcessPlan]) -> Result<TracedFleet, ScenarioError> {
        self.scenario.start_fleet_with_deadline(plans, label, super::DEFAULT_DEADLINE)
    }

    /// Waits for a side fleet (and its tracers).
    pub fn reap_side(&mut self, fleet: &mut TracedFleet) -> Vec<ProcessOutcome> {
        self.scenario.reap(fleet)
    }

    /// Starts a reader probe over every download cache of the plans (final pattern), until [`ScenarioRun::wait`].
    pub fn start_reader(&mut self) -> &mut Self {
        let dirs = self.cache_dirs();
        let files = self.scenario.target.spec.files.clone();
        let deadline = self.scenario.deadline + Duration::from_secs(5);
        self.reader = Some(ReaderProbe::start(dirs, &files, self.scenario.target.models.clone(), deadline));
        self
    }

    /// Waits for every process (watchdog-bounded), stops the reader, and returns the outcomes.
    pub fn wait(&mut self) -> &[ProcessOutcome] {
        if let Some(mut fleet) = self.fleet.take() {
            self.outcomes = self.scenario.reap(&mut fleet);
            self.started_unix_ms = fleet.fleet.released_unix_ms();
        }
        for (mut fleet, offset) in std::mem::take(&mut self.joiners) {
            let outcomes = self.scenario.reap(&mut fleet);
            self.outcomes.extend(outcomes.into_iter().map(|mut o| {
                o.index += offset;
                o
            }));
        }
        self.wall = self.outcomes.iter().map(|o| o.wall).max().unwrap_or_default();
        if let Some(reader) = self.reader.take() {
            self.reader_report = Some(reader.stop());
        }
        &self.outcomes
    }

    /// Runs the clean recovery process after the fleet (expected `{ok}` and the right model) for
    /// `no_poisoning`. The caches are snapshotted first, so what the fleet left is checked before the
    /// recovery run cleans anything.
    /// A replayed plan that caps the recovery's role at 0 runs none: what only it observes is skipped.
    pub fn recover(&mut self, plan: ProcessPlan) -> &[ProcessOutcome] {
        self.recover_each(vec![plan])
    }

    /// [`ScenarioRun::recover`] with several processes at once, e.g. one per model the fleet cached:
    /// a cache poisoned for one model is poisoned for whichever model's process comes next, so each
    /// model gets its own clean run.
    pub fn recover_each(&mut self, plans: Vec<ProcessPlan>) -> &[ProcessOutcome] {
        self.wait();
        self.snapshot_after_fleet();
        let plans: Vec<ProcessPlan> =
            plans.into_iter().filter(|p| crate::replay::role_cap(&p.role) != Some(0)).collect();
        if plans.is_empty() {
            return &[];
        }
        let expectations: Vec<ProcessExpectation> =
            plans.iter().map(|p| ProcessExpectation::for_plan(&self.scenario.target, p)).collect();
        let outcomes = match self.scenario.run_to_completion(&plans, "recovery") {
            Ok(o) => o,
            Err(e) => {
                self.setup_errors.push(format!("the recovery run could not start: {e}"));
                Vec::new()
            }
        };
        &self.recovery.insert(RecoveryRun { outcomes, expectations }).outcomes
    }

    /// Records the holds of this run's fleet in its plan (after [`ScenarioRun::wait`]).
    pub fn record_holds(&mut self, holds: crate::scenarios::holds::Holds) -> &mut Self {
        self.scenario.recorder.held(holds.finish());
        self
    }

    /// Sets the server counters.
    pub fn served(&mut self, served: ServedCounts) -> &mut Self {
        self.served = Some(served);
        self
    }

    /// Sets the server counters from route handles (routes need a model id; requests and bodies are
    /// summed per model).
    pub fn served_from_routes(&mut self, routes: &[&RouteHandle]) -> &mut Self {
        self.served = Some(super::served_counts(routes));
        self.scenario.recorder.routes(routes);
        // Every fault served goes on the timeline (clean responses would only crowd it).
        for route in routes {
            for (at, fault) in route.served_faults_at().into_iter().filter(|(_, f)| *f != Fault::Ok) {
                let unix_ms = at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64);
                let what = match &fault {
                    Fault::Gated { .. } => "gated".to_string(),
                    other => format!("{other:?}"),
                };
                self.scenario.events.push(TimelineEvent {
                    unix_ms: unix_ms.unwrap_or(0),
                    kind: EventKind::Fault,
                    pid: None,
                    detail: format!("{}: {what}", route.path()),
                });
            }
        }
        self
    }

    /// Releases `gate` now and puts the release on the record's timeline.
    pub fn release_gate(&mut self, gate: &Gate) -> &mut Self {
        let parked = gate.parked();
        gate.release();
        self.gate_released(gate, parked, crate::orchestrator::unix_ms_now());
        self
    }

    /// Puts a release of `gate`, with `parked` responses held at it, at `unix_ms` on the record's
    /// timeline and in its plan. The count is the one taken before the release: read after it, it
    /// falls as the responses leave.
    pub fn gate_released(&mut self, gate: &Gate, parked: u64, unix_ms: u64) -> &mut Self {
        let detail = format!("gate {} released ({parked} parked)", gate.name());
        self.scenario.recorder.gate_released(gate.name(), parked, self.plans.len());
        self.scenario.events.push(TimelineEvent { unix_ms, kind: EventKind::GateRelease, pid: None, detail });
        self
    }

    /// Outcomes (after [`ScenarioRun::wait`]).
    pub fn outcomes(&self) -> &[ProcessOutcome] {
        &self.outcomes
    }

    pub(super) fn cache_dirs(&self) -> Vec<PathBuf> {
        let set: BTreeSet<PathBuf> =
            self.plans.iter().map(|p| p.cache_dir.clone()).chain(self.extra_caches.iter().cloned()).collect();
        set.into_iter().collect()
    }

    pub(super) fn compiled_dirs(&self) -> Vec<PathBuf> {
        let set: BTreeSet<PathBuf> = self.plans.iter().filter_map(|p| p.compiled_dir.clone()).collect();
        set.into_iter().collect()
    }

    pub(super) fn snapshots(&self) -> (Vec<CacheSnapshot>, Vec<CompiledSnapshot>) {
        let target = &self.scenario.target;
        let caches = self
            .cache_dirs()
            .iter()
            .map(|d| CacheSnapshot::take(d, &target.spec.files, &target.models))
            .collect();
        let compiled = match &target.spec.compiled {
            Some(c) => self
                .compiled_dirs()
                .iter()
                .map(|d| CompiledSnapshot::take(d, c, target.spec.files.lock_kind))
                .collect(),
            None => Vec::new(),
        };
        (caches, compiled)
    }

    /// Snapshots the caches as the fleet left them (once).
    pub fn snapshot_after_fleet(&mut self) -> &(Vec<CacheSnapshot>, Vec<CompiledSnapshot>) {
        self.wait();
        if self.after_fleet.is_none() {
            self.after_fleet = Some(self.snapshots());
        }
        self.after_fleet.as_ref().expect("just set")
    }
}
