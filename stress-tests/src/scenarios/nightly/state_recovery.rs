//! Recovery from corrupted state at rest, beyond the PR tier's `at_rest` (a final truncated, bit-flipped
//! or emptied in place): here the final name is taken by a directory. The next run must detect it, move
//! it aside or replace it, and never load it; the target's own cache check (`verify-args`, beaker's
//! `cache verify`) must report the damage with the integrity exit code before the repair, and a clean
//! cache after it.

use std::path::Path;

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::OutcomeClass;
use crate::orchestrator::ProcessOutcome;
use crate::scenario::{ScenarioError, ScenarioRun};
use crate::scenarios::{ScenarioFn, ScenarioOptions, phases, setup};
use crate::server::FaultPlan;
use crate::snapshot::{CacheSnapshot, Content};
use crate::target::{PlanCommand, ProcessPlan};

/// Record name: the final replaced by a directory.
pub const DIRECTORY_FINAL: &str = "final_replaced_by_a_directory_is_moved_aside_and_refetched";

/// Name of the check that the target's cache check (`verify-args`) exits with the integrity code on the
/// damaged cache and with `ok` once the next run repaired it. Not one of the suite's invariants: only
/// the state-recovery scenarios damage a cache on purpose and then ask the target about it.
pub const CACHE_CHECK_REPORTS_DAMAGE: &str = "cache_check_reports_damage";

/// The state-recovery scenarios, by record name.
pub const SCENARIOS: &[(&str, ScenarioFn)] =
    &[(DIRECTORY_FINAL, final_replaced_by_a_directory_is_moved_aside_and_refetched)];

/// Processes started on the damaged cache, before the `STRESS_PROCESSES` cap.
const PROCESSES: usize = 6;

/// Warm cache; the published final is removed and a directory (holding a file, so only a rename or a
/// recursive removal gets rid of it) takes its name. The target's cache check runs first and must report
/// the damage (integrity exit code). Then N processes start together: each must succeed with the model
/// it asked for — the directory is never taken for the model — with one download between them; the cache
/// ends with a complete final, a recovery run succeeds, and the cache check now exits ok.
///
/// Catches a target that takes anything under a final name for the model (`final-kind-unchecked`: every
/// process fails reading a directory, for good: `failures_have_expected_class`, `no_poisoning`; and its
/// check skips what is not a file: [`CACHE_CHECK_REPORTS_DAMAGE`]).
pub fn final_replaced_by_a_directory_is_moved_aside_and_refetched(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(DIRECTORY_FINAL, opts)?;
    let server = setup::server()?;
    let (small, _) = setup::small_and_large(s.target());
    let target = s.target().clone();
    let route = server.add_route(setup::model_route(&target, &small, FaultPlan::default()));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let warmup = s.writer(900, &small, &url, &cache).role("warmup");
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }
    let snapshot = CacheSnapshot::take(&cache, &target.spec.files, &target.models);
    let Some(final_) =
        snapshot.finals().into_iter().find(|f| f.content == Content::Complete(small.clone())).cloned()
    else {
        return Ok(s.error_record("precondition not met: the warmup run published no complete final"));
    };
    if let Err(e) = replace_by_directory(&final_.path) {
        return Ok(s.error_record(&format!("cannot replace {} by a directory: {e}", final_.path.display())));
    }
    let check = |s: &crate::scenario::Scenario, i: usize| {
        s.writer(i, &small, &url, &cache).command(PlanCommand::Verify).role("cache-check")
    };
    let (check_damaged, check_repaired) = (check(&s, 901), check(&s, 902));
    let before = phases::counts(&route);
    let n = s.tier().capped(PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &small, &url, &cache);
    let has_check = target.spec.verify_args.is_some();
    let damaged = if has_check { Some(run_check(&mut s, &check_damaged)?) } else { None };
    let mut run = s.launch(plans)?;
    // The harness planted the directory: the bytes it hid are not the target's doing.
    run.expectations_mut().planted_at_rest = true;
    run.body_bound(&small, 1);
    // No reader probe: it would open the harness's own planted directory, which says nothing of the target.
    run.wait();
    run.recover(recovery);
    run.served(phases::served_since(&route, &before));
    match damaged {
        Some(damaged) => {
            let repaired = run_check_in(&mut run, &check_repaired);
            let verdict = cache_check_verdict(&run, &final_.path, &damaged, &repaired);
            run.add_verdict(verdict);
        }
        None => {
            run.add_verdict(InvariantResult::skipped(
                CACHE_CHECK_REPORTS_DAMAGE,
                "the target declares no verify-args",
            ));
        }
    }
    Ok(run.evaluate())
}

/// Removes the file at `path` and makes a directory there, with a file in it.
fn replace_by_directory(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    std::fs::create_dir(path)?;
    std::fs::write(path.join("junk.txt"), b"not a model")
}

/// Runs the target's cache check once, alone, to completion.
fn run_check(
    s: &mut crate::scenario::Scenario,
    plan: &ProcessPlan,
) -> Result<Vec<ProcessOutcome>, ScenarioError> {
    s.run_to_completion(std::slice::from_ref(plan), "cache-check")
}

/// [`run_check`] after the fleet, as a side fleet of the run (traced like the others).
fn run_check_in(run: &mut ScenarioRun<'_>, plan: &ProcessPlan) -> Vec<ProcessOutcome> {
    match run.side_fleet("cache-check", std::slice::from_ref(plan)) {
        Ok(mut fleet) => run.reap_side(&mut fleet),
        Err(e) => {
            run.setup_error(format!("the cache check after the repair could not start: {e}"));
            Vec::new()
        }
    }
}

/// Held when the check exited with the integrity code on the damaged cache and `ok` on the repaired one.
fn cache_check_verdict(
    run: &ScenarioRun<'_>,
    damaged_path: &Path,
    damaged: &[ProcessOutcome],
    repaired: &[ProcessOutcome],
) -> InvariantResult {
    let codes = &run.target().spec.exit_codes;
    let mut evidence = Vec::new();
    let mut judge = |outcomes: &[ProcessOutcome], want: Option<i32>, when: &str| {
        for o in outcomes {
            if o.exit_code != want || OutcomeClass::of(o, codes) == OutcomeClass::Panicked {
                evidence.push(format!(
                    "the cache check {when} ended {} (expected exit {}): {}",
                    o.describe(),
                    want.map_or("?".into(), |c| c.to_string()),
                    o.stdout().lines().chain(o.stderr().lines()).take(6).collect::<Vec<_>>().join(" | ")
                ));
            }
        }
    };
    judge(
        damaged,
        codes.integrity,
        &format!("on a cache whose final {} is a directory", damaged_path.display()),
    );
    judge(repaired, Some(codes.ok), "after the next run repaired the cache");
    if damaged.is_empty() || repaired.is_empty() {
        evidence.push("the cache check did not run before and after the repair".into());
    }
    InvariantResult::checked(CACHE_CHECK_REPORTS_DAMAGE, evidence)
}
