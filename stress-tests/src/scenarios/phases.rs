//! Phases of the crash, compiled-cache, gc and lock scenarios: a scenario on the chosen target with
//! the chosen mutant, routes that serve a model with the target's headers, checks of an intermediate
//! phase (e.g. the cache right after a crash) and the merge of every phase into one record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::{self, Expectations, Invariant, Observations, ServedCounts};
use crate::orchestrator::{Fleet, FleetProcess, ProcessOutcome};
use crate::record::{self, RecordInput};
use crate::scenario::{Scenario, ScenarioError};
use crate::server::{FaultPlan, ModelServer, Route, RouteHandle};
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
use crate::target::{ProcessPlan, Target};

/// Name of the check that a process holding a cache lock (alive, stopped) keeps every other process of
/// that entry waiting. Not one of [`Invariant::ALL`]: it needs a process held at a failpoint, so only the
/// lock scenarios report it.
pub const LIVE_HOLDER_BLOCKS_OTHERS: &str = "live_lock_holder_blocks_others";

/// Bound of every wait for an event (a process stopped, blocked on a lock, exited).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

// Scenario and server set-up are shared with the other scenario modules.
pub use super::setup::{scenario, scenario_on, server};

/// The first model identity of the target (models are used generically).
pub fn first_model(s: &Scenario) -> String {
    s.target().model_ids().into_iter().next().unwrap_or_default()
}

/// The set-up most phased scenarios start from: the target's first model served on loopback with `plan`,
/// and one cache directory shared by every process of the scenario.
pub struct SharedModel {
    /// The target (a clone, so the scenario can be borrowed mutably meanwhile).
    pub target: Target,
    /// The server; keep it alive for the whole scenario.
    pub server: ModelServer,
    /// The model identity served.
    pub model: String,
    /// Its route (counters).
    pub route: RouteHandle,
    /// Its URL.
    pub url: String,
    /// The shared cache directory.
    pub cache: PathBuf,
}

/// Starts [`SharedModel`] for scenario `s`.
pub fn shared_model(s: &Scenario, plan: FaultPlan) -> Result<SharedModel, ScenarioError> {
    let target = s.target().clone();
    let server = server()?;
    let model = first_model(s);
    let route = serve(&server, &target, &model, plan);
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    Ok(SharedModel { target, server, model, route, url, cache })
}

/// Serves `model` under the target's path prefixed by `prefix` (`""` for the declared path), with the
/// target's extra headers, a model id (so it counts as amplification) and a fault plan.
pub fn serve(server: &ModelServer, target: &Target, model: &str, plan: FaultPlan) -> RouteHandle {
    let fixture = target.model(model);
    let mut route =
        Route::new(target.server_path(model), fixture.bytes.clone()).model_id(model).schedule(plan);
    for (k, v) in &target.spec.server.headers {
        route = route.header(k.as_str(), v.as_str());
    }
    server.add_route(route)
}

/// Serves `model` under `/<prefix><declared path>` without a model id (reference runs: not counted).
pub fn serve_uncounted(server: &ModelServer, target: &Target, model: &str, prefix: &str) -> RouteHandle {
    let fixture = target.model(model);
    let mut route = Route::new(format!("/{prefix}{}", target.server_path(model)), fixture.bytes.clone());
    for (k, v) in &target.spec.server.headers {
        route = route.header(k.as_str(), v.as_str());
    }
    server.add_route(route)
}

/// Complete bodies (and requests, bytes) served by `route` since `before` (a [`ServedCounts`] taken
/// earlier with [`counts`]).
pub fn served_since(route: &RouteHandle, before: &ServedCounts) -> ServedCounts {
    let now = counts(route);
    let mut out = ServedCounts { bytes_served: now.bytes_served - before.bytes_served, ..Default::default() };
    for (m, n) in &now.complete_bodies {
        out.complete_bodies.insert(m.clone(), n - before.complete_bodies.get(m).copied().unwrap_or(0));
    }
    for (m, n) in &now.requests {
        out.requests.insert(m.clone(), n - before.requests.get(m).copied().unwrap_or(0));
    }
    out
}

/// The route's counters now.
pub fn counts(route: &RouteHandle) -> ServedCounts {
    crate::scenario::served_counts(&[route])
}

/// Runs `plans` together to completion and fails (setup error) unless every one ends `ok`.
pub fn setup_run(s: &mut Scenario, plans: &[ProcessPlan], label: &str) -> Result<(), ScenarioError> {
    let outcomes = s.run_to_completion(plans, label)?;
    let codes = s.target().spec.exit_codes.clone();
    let bad: Vec<String> = outcomes
        .iter()
        .filter(|o| o.exit_code != Some(codes.ok))
        .map(|o| format!("{}: {}", o.describe(), o.stderr_tail(300).trim()))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ScenarioError::Io {
            action: "set up (a clean run failed)",
            path: format!("{label}: {}", bad.join("; ")),
            source: std::io::Error::other("setup run failed"),
        })
    }
}

/// Starts `plans` as a fleet of its own (outside the scenario's main run), e.g. a process held at a
/// failpoint before the others start, or gc while readers are stopped.
pub fn side_fleet(target: &Target, dir: &Path, plans: &[ProcessPlan]) -> Result<Fleet, ScenarioError> {
    let processes = plans
        .iter()
        .map(|p| {
            let _ = std::fs::create_dir_all(&p.output_dir);
            FleetProcess::new(&p.role, target.command_for(p))
        })
        .collect();
    Ok(Fleet::start(dir, processes, crate::scenario::DEFAULT_DEADLINE)?)
}

/// What one intermediate phase observed (checked with the same invariant checker as the final phase).
pub struct PhaseInput<'a> {
    /// Label prefixed to the evidence (`after the crash`, `gc`, ...).
    pub label: &'a str,
    /// The phase's plans' expectations, by index of `outcomes`.
    pub expectations: Expectations,
    /// Its outcomes.
    pub outcomes: &'a [ProcessOutcome],
    /// Download caches to snapshot now (empty: none).
    pub caches: Vec<PathBuf>,
    /// Compiled caches to snapshot now.
    pub compiled: Vec<PathBuf>,
    /// Compiled reference.
    pub compiled_reference: Option<&'a CompiledReference>,
    /// Server counters of the phase.
    pub served: Option<ServedCounts>,
}

/// A checked phase: its partial record (outcomes, process runs, invariants) to merge into the final one,
/// and the snapshots it took.
pub struct Phase {
    label: String,
    record: ScenarioRecord,
    /// The download cache snapshots taken by the phase.
    pub caches: Vec<CacheSnapshot>,
}

impl Phase {
    /// Whether every invariant of the phase held.
    pub fn passed(&self) -> bool {
        self.record.passed()
    }
}

/// Snapshots the phase's caches now and checks the invariants that apply (those in `expectations.skip`
/// and those without an observation are not reported).
pub fn check_phase(s: &Scenario, input: PhaseInput<'_>) -> Phase {
    let target = s.target();
    let caches: Vec<CacheSnapshot> =
        input.caches.iter().map(|d| CacheSnapshot::take(d, &target.spec.files, &target.models)).collect();
    let compiled: Vec<CompiledSnapshot> = match &target.spec.compiled {
        Some(c) => {
            input.compiled.iter().map(|d| CompiledSnapshot::take(d, c, target.spec.files.lock_kind)).collect()
        }
        None => Vec::new(),
    };
    let obs = Observations {
        target,
        expectations: &input.expectations,
        outcomes: input.outcomes,
        caches: &caches,
        compiled: &compiled,
        compiled_reference: input.compiled_reference,
        readers: None,
        served: input.served.as_ref(),
        recovery: None,
    };
    let results = invariants::check(&obs);
    let record = record::build_record(&RecordInput {
        scenario: s.name(),
        tier: s.tier(),
        target,
        expectations: &input.expectations,
        outcomes: input.outcomes,
        invariants: &results,
        served: input.served.as_ref(),
        started_unix_ms: 0,
        wall: input.outcomes.iter().map(|o| o.wall).max().unwrap_or_default(),
        kept_dir: None,
    });
    Phase { label: input.label.to_string(), record, caches }
}

/// A result under `name`, held when `evidence` is empty.
pub fn verdict(name: &str, evidence: Vec<String>) -> InvariantResult {
    InvariantResult::checked(name, evidence)
}

/// A positive check that held, with what it saw (e.g. the lock probe saw a live holder's lock).
pub fn held_with(name: &str, evidence: Vec<String>) -> InvariantResult {
    InvariantResult::held_with(name, evidence)
}

/// Merges intermediate phases and extra results into the final record (an invariant holds only if it
/// held in every phase; evidence is prefixed with the phase label), and rewrites the record file.
pub fn merge(
    final_: (ScenarioRecord, Option<PathBuf>),
    phases: Vec<Phase>,
    extra: Vec<InvariantResult>,
) -> ScenarioRecord {
    let (mut record, path) = final_;
    let mut by_name: BTreeMap<String, InvariantResult> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut add = |r: InvariantResult, label: Option<&str>| {
        if !order.contains(&r.name) {
            order.push(r.name.clone());
        }
        let entry = by_name.entry(r.name.clone()).or_insert_with(|| InvariantResult {
            name: r.name.clone(),
            held: true,
            evidence: Vec::new(),
        });
        entry.held &= r.held;
        entry.evidence.extend(r.evidence.into_iter().map(|e| match label {
            Some(l) => format!("[{l}] {e}"),
            None => e,
        }));
    };
    for phase in &phases {
        for r in phase.record.invariants.clone() {
            add(r, Some(&phase.label));
        }
    }
    for r in record.invariants.clone() {
        add(r, None);
    }
    for r in extra {
        add(r, None);
    }
    // Stable order: the invariants in check order, then the scenario-specific ones.
    let mut names: Vec<String> = Invariant::ALL.iter().map(|i| i.name().to_string()).collect();
    names.extend(order.into_iter().filter(|n| !Invariant::ALL.iter().any(|i| i.name() == n)));
    record.invariants = names.into_iter().filter_map(|n| by_name.remove(&n)).collect();
    for phase in phases {
        for (class, n) in phase.record.outcomes {
            *record.outcomes.entry(class).or_default() += n;
        }
        record.processes += phase.record.processes;
        record.process_runs.extend(phase.record.process_runs.into_iter().map(|mut r| {
            r.role = format!("{}: {}", phase.label, r.role);
            r
        }));
    }
    if let Some(p) = path {
        let _ = std::fs::remove_file(&p);
        let results_dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Err(e) = record::write_record(&record, &results_dir) {
            log::warn!("{e}");
        }
    }
    record
}

/// A record for a scenario that does not apply to the target (nothing checked, so it passes), after
/// printing why.
pub fn not_applicable(s: &Scenario, why: &str) -> ScenarioRecord {
    println!("scenario {} skipped for target {}: {why}", s.name(), s.target().spec.display_name());
    let expectations = Expectations::default();
    record::build_record(&RecordInput {
        scenario: s.name(),
        tier: s.tier(),
        target: s.target(),
        expectations: &expectations,
        outcomes: &[],
        invariants: &[],
        served: None,
        started_unix_ms: 0,
        wall: Duration::ZERO,
        kept_dir: None,
    })
}

/// The failpoint configuration `<name>=<action>` for the target's env var.
pub fn arm(failpoint: &str, action: &str) -> String {
    format!("{failpoint}={action}")
}
