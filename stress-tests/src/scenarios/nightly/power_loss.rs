//! Power loss, not just SIGKILL (nightly part 7). A SIGKILL leaves the page cache intact, so a target
//! that renames a file it never fsynced passes every kill scenario; a power loss at the same moment can
//! leave an empty or short file under the final name.
//!
//! How: ALICE-style crash states from the file-system trace ([`crate::crash_states`], whose module doc
//! says why this rather than a lazy FUSE file system). One clean cold run is traced; every distinct
//! state a power loss at any point of its cache operations can leave (page cache kept, unsynced data
//! lost, unsynced data and directory entries lost) is built in a fresh cache, checked as it is (every
//! final complete, compiled entries complete or absent), then recovered by one clean warm run of the
//! target and checked again (the run succeeds with the right model, the cache ends clean, at most one
//! download). Every state that breaks is reported with the operation sequence that led to it in
//! [`POWER_LOSS_STATES_RECOVER`]; the counts go into the record's `crash_states`. Works for any target:
//! no failpoint is used.

use stress_cache_metadata::{CrashStateCounts, InvariantResult, ScenarioRecord};

use crate::crash_states::{self, Exploration, Root};
use crate::invariants::{Expectations, Invariant};
use crate::scenario::{Phase, ScenarioError};
use crate::scenarios::phases::{self, PhaseInput, SharedModel};
use crate::scenarios::{ScenarioFn, ScenarioOptions};
use crate::server::FaultPlan;
use crate::snapshot::Content;

/// Record name.
pub const NAME: &str = "power_loss_at_any_point_of_a_cold_run_leaves_a_recoverable_cache";

/// The nightly power-loss scenarios.
pub const SCENARIOS: &[(&str, ScenarioFn)] =
    &[(NAME, power_loss_at_any_point_of_a_cold_run_leaves_a_recoverable_cache)];

/// Scenario-specific verdict: one evidence line per broken state, with its operation sequence.
pub const POWER_LOSS_STATES_RECOVER: &str = "power_loss_states_recover";

/// At most this many distinct states are built and recovered (a clean cold run of beaker has a few
/// dozen); the rest are counted as `over_bound`, never silently dropped.
pub const MAX_STATES: usize = 150;

/// The invariants a crash state is judged by before recovery: what a power loss must never leave.
const STATE_INVARIANTS: [Invariant; 3] = [
    Invariant::FinalArtifactsMatchChecksum,
    Invariant::OneFinalArtifactPerModel,
    Invariant::CompiledEntriesCompleteOrAbsent,
];

/// See the module doc.
pub fn power_loss_at_any_point_of_a_cold_run_leaves_a_recoverable_cache(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario(NAME, opts)?;
    if !s.tier().trace {
        return Ok(
            s.not_applicable("the crash states are built from the file-system trace (STRESS_TRACE=off)")
        );
    }
    let SharedModel { target, server, model, route, url, cache } =
        phases::shared_model(&s, FaultPlan::default())?;
    let reference = match target.spec.compiled {
        Some(_) => {
            let reference_route = phases::serve_uncounted(&server, &target, &model, "reference");
            Some(s.compiled_reference(&[(&model, &server.url(&reference_route))])?)
        }
        None => None,
    };
    let clean = s.writer(0, &model, &url, &cache).role("clean-cold-run");
    let compiled_dir = clean.compiled_dir.clone();
    let mut run = s.launch(vec![clean])?;
    if let Some(r) = reference.clone() {
        run.compiled_reference(r);
    }
    let outcomes = run.wait().to_vec();
    run.served(phases::counts(&route));
    let ok = target.spec.exit_codes.ok;
    if let Some(bad) = outcomes.iter().find(|o| o.exit_code != Some(ok)) {
        run.setup_error(format!(
            "precondition not met: the clean cold run failed, so there is no run to build crash states from: {}: {}",
            bad.describe(),
            bad.stderr_tail(300).trim()
        ));
        return Ok(run.evaluate());
    }
    let Some((_, trace_file)) = run.scenario().trace_files().last().cloned() else {
        run.setup_error("the clean cold run left no file-system trace");
        return Ok(run.evaluate());
    };
    let parsed = match crate::fs_trace::read_trace(&trace_file, 0) {
        Ok(p) => p,
        Err(e) => {
            run.setup_error(format!("the clean run's trace could not be read: {e}"));
            return Ok(run.evaluate());
        }
    };
    let trace = crate::fs_trace::FsTrace::merge(vec![parsed]);
    let mut roots = vec![Root { dir: cache.clone(), label: "cache".into() }];
    roots.extend(compiled_dir.iter().map(|d| Root { dir: d.clone(), label: "compiled".into() }));
    let ops = crash_states::ops_from_trace(&trace, &roots);
    if !ops.iter().any(crash_states::Op::is_write) {
        run.setup_error("the clean cold run's trace shows no write to the cache: nothing to crash");
        return Ok(run.evaluate());
    }
    let exploration = crash_states::explore(ops, &roots, &target.model(&model).bytes, MAX_STATES);

    let mut broken = Vec::new();
    for (i, state) in exploration.states.iter().enumerate() {
        let name = format!("power-loss-{i}");
        let state_cache = run.scenario().cache_dir(&name);
        let plan = run
            .scenario()
            .writer(100 + i, &model, &url, &state_cache)
            .role(&format!("recovery of state {i}"));
        let mut dirs = vec![state_cache.clone()];
        dirs.extend(plan.compiled_dir.clone());
        if let Err(e) = state.materialize(&dirs) {
            run.setup_error(format!("crash state {i} could not be built in {}: {e}", state_cache.display()));
            break;
        }
        let label = format!(
            "power loss state {i}: after op #{} of {}, {}",
            state.after_ops,
            exploration.ops.len(),
            state.loss.describe()
        );
        // The state as the power loss left it.
        let mut as_left = phases::check_phase(
            run.scenario(),
            PhaseInput {
                label: &label,
                expectations: Expectations::default(),
                outcomes: &[],
                caches: vec![state_cache.clone()],
                compiled: plan.compiled_dir.iter().cloned().collect(),
                compiled_reference: reference.as_ref(),
                served: None,
            },
        );
        as_left.results.retain(|r| STATE_INVARIANTS.iter().any(|i| i.name() == r.name));
        let complete_final = as_left
            .caches
            .iter()
            .flat_map(|c| c.finals())
            .any(|f| f.content == Content::Complete(model.clone()));

        // One clean warm run of the target on it.
        let before = phases::counts(&route);
        let mut fleet = run.side_fleet(&format!("recovery-{i}"), std::slice::from_ref(&plan))?;
        let recovery_outcomes = run.reap_side(&mut fleet);
        let mut expectations = Expectations::clean(&target, std::slice::from_ref(&plan));
        if complete_final {
            let why = "a complete final survived the power loss: the recovery run has no reason to download, \
                       so none to clean temp files yet";
            expectations.skip(Invariant::NoTempFilesLeft, why);
            expectations.skip(Invariant::NoPartialContent, why);
        }
        let recovered = phases::check_phase(
            run.scenario(),
            PhaseInput {
                label: &format!("recovery of {label}"),
                expectations,
                outcomes: &recovery_outcomes,
                caches: vec![state_cache.clone()],
                compiled: plan.compiled_dir.iter().cloned().collect(),
                compiled_reference: reference.as_ref(),
                served: Some(phases::served_since(&route, &before)),
            },
        );
        let violated: Vec<String> = violated_names(&as_left, "as left")
            .into_iter()
            .chain(violated_names(&recovered, "after recovery"))
            .collect();
        if !violated.is_empty() {
            let last = match state.after_ops {
                0 => "before any operation".to_string(),
                k => format!("after {}", last_op(&exploration, k, &roots)),
            };
            let also = match state.duplicates {
                0 => String::new(),
                n => format!(" (the same state at {n} later point/loss pair(s))"),
            };
            broken.push(format!(
                "state {i}: power loss {last}, {}{also}; left: {}; broke: {}",
                state.loss.describe(),
                state.describe_entries(&roots),
                violated.join(", ")
            ));
        }
        run.add_phase(as_left);
        run.add_phase(recovered);
    }
    run.crash_states(counts(&exploration, broken.len()));
    if !broken.is_empty() {
        // The sequence every broken state's "after #k" refers to, once.
        let ops = crash_states::describe_ops(&exploration.ops, &roots);
        broken.insert(0, format!("the clean cold run's cache operations: {}", ops.join("; ")));
    }
    run.add_verdict(InvariantResult::checked(POWER_LOSS_STATES_RECOVER, broken));
    Ok(run.evaluate())
}

/// Op `#k` (1-based) as described in the numbered sequence (a write inside a collapsed run: the run).
fn last_op(e: &Exploration, k: usize, roots: &[Root]) -> String {
    let prefix = crash_states::describe_ops(&e.ops[..k], roots);
    let item = prefix.last().cloned().unwrap_or_default();
    if e.ops[k - 1].is_write() { format!("op #{k}, the last of {item}") } else { format!("op {item}") }
}

/// `<invariant> (<when>)` for every violated invariant of a phase.
fn violated_names(phase: &Phase, when: &str) -> Vec<String> {
    phase.results.iter().filter(|r| r.is_violated()).map(|r| format!("{} ({when})", r.name)).collect()
}

fn counts(e: &Exploration, broken: usize) -> CrashStateCounts {
    CrashStateCounts {
        operations: e.ops.len(),
        candidates: e.candidates,
        explored: e.states.len(),
        over_bound: e.over_bound,
        broken,
    }
}
