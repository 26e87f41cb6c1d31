//! Recovery from corrupted state at rest, beyond the PR tier's `at_rest` (a final truncated, bit-flipped
//! or emptied in place): here the final name is taken by a directory, and a compiled entry loses a file,
//! has one corrupted, or its metadata file (the sidecar that says what the entry is) truncated. The next
//! run must detect it, move it aside or rebuild it, and never load it; the target's own cache check
//! (`verify-args`, beaker's `cache verify`) must report the damage with the integrity exit code before
//! the repair, and a clean cache after it.

use std::path::Path;

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::OutcomeClass;
use crate::orchestrator::ProcessOutcome;
use crate::scenario::{ScenarioError, ScenarioRun};
use crate::scenarios::phases::SharedModel;
use crate::scenarios::{ScenarioFn, ScenarioOptions, phases, setup};
use crate::server::FaultPlan;
use crate::snapshot::{CacheSnapshot, CompiledSnapshot, Content};
use crate::target::{PlanCommand, ProcessPlan};

/// Record name: the final replaced by a directory.
pub const DIRECTORY_FINAL: &str = "final_replaced_by_a_directory_is_moved_aside_and_refetched";

/// Name of the check that the target's cache check (`verify-args`) exits with the integrity code on the
/// damaged cache and with `ok` once the next run repaired it. Not one of the suite's invariants: only
/// the state-recovery scenarios damage a cache on purpose and then ask the target about it.
pub const CACHE_CHECK_REPORTS_DAMAGE: &str = "cache_check_reports_damage";

/// Record name: a compiled entry missing its largest file.
pub const COMPILED_MISSING: &str = "compiled_entry_missing_a_file_is_rebuilt";
/// Record name: a compiled entry whose largest file has one byte flipped.
pub const COMPILED_CORRUPTED: &str = "compiled_entry_with_a_corrupted_file_is_rebuilt";
/// Record name: a compiled entry whose metadata file is cut to half.
pub const COMPILED_METADATA_TRUNCATED: &str = "compiled_entry_metadata_truncated_is_rebuilt";

/// The state-recovery scenarios, by record name.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    (DIRECTORY_FINAL, final_replaced_by_a_directory_is_moved_aside_and_refetched),
    (COMPILED_MISSING, |o| damaged_compiled_entry_is_rebuilt(EntryDamage::MissingFile, o)),
    (COMPILED_CORRUPTED, |o| damaged_compiled_entry_is_rebuilt(EntryDamage::CorruptedFile, o)),
    (COMPILED_METADATA_TRUNCATED, |o| damaged_compiled_entry_is_rebuilt(EntryDamage::TruncatedMetadata, o)),
];

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
    add_check_verdict(&mut run, damaged, &check_repaired, &final_.path);
    Ok(run.evaluate())
}

/// How a published compiled entry is damaged at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDamage {
    /// Its largest file removed.
    MissingFile,
    /// One byte in the middle of its largest file flipped (same length).
    CorruptedFile,
    /// Its metadata file (`*.toml` / `*.json`) cut to half its length.
    TruncatedMetadata,
}

impl EntryDamage {
    fn scenario_name(self) -> &'static str {
        match self {
            EntryDamage::MissingFile => COMPILED_MISSING,
            EntryDamage::CorruptedFile => COMPILED_CORRUPTED,
            EntryDamage::TruncatedMetadata => COMPILED_METADATA_TRUNCATED,
        }
    }

    /// The file of the entry to damage (relative to it), `None` when the entry has none of that kind.
    fn pick(self, files: &std::collections::BTreeMap<String, (u64, String)>) -> Option<String> {
        match self {
            EntryDamage::MissingFile | EntryDamage::CorruptedFile => {
                files.iter().max_by_key(|(name, (len, _))| (*len, (*name).clone())).map(|(n, _)| n.clone())
            }
            EntryDamage::TruncatedMetadata => {
                files.keys().find(|n| n.ends_with(".toml") || n.ends_with(".json")).cloned()
            }
        }
    }

    fn apply(self, path: &Path) -> std::io::Result<()> {
        match self {
            EntryDamage::MissingFile => std::fs::remove_file(path),
            EntryDamage::CorruptedFile => {
                let mut bytes = std::fs::read(path)?;
                let middle = bytes.len() / 2;
                if let Some(b) = bytes.get_mut(middle) {
                    *b ^= 0x01;
                }
                std::fs::write(path, bytes)
            }
            EntryDamage::TruncatedMetadata => {
                let len = std::fs::metadata(path)?.len();
                std::fs::OpenOptions::new().write(true).open(path)?.set_len(len / 2)
            }
        }
    }
}

/// Warm download and compiled caches; one file of the published compiled entry is damaged
/// ([`EntryDamage`]). The target's cache check must report it; then N processes start together: each
/// succeeds, nothing is downloaded, and the entry left is complete (equal to a clean run's,
/// `compiled_entries_complete_or_absent`) — a damaged entry is never run; the cache check then exits ok.
///
/// Catches a target that trusts a compiled entry whose files it does not check
/// (`compiled-files-unchecked`: the corrupted weight file loads, runs and stays:
/// `compiled_entries_complete_or_absent`).
pub fn damaged_compiled_entry_is_rebuilt(
    damage: EntryDamage,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(damage.scenario_name(), opts)?;
    let Some(patterns) = s.target().spec.compiled.clone() else {
        return Ok(s.not_applicable("the target declares no compiled cache"));
    };
    let (SharedModel { target, server: _server, model, route, url, cache }, reference) =
        phases::shared_model_with_compiled_reference(&mut s)?;
    let warmup = s.writer(900, &model, &url, &cache).role("warmup");
    let Some(compiled_dir) = warmup.compiled_dir.clone() else {
        return Ok(s.error_record("the writers get no compiled dir"));
    };
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }
    let snapshot = CompiledSnapshot::take(&compiled_dir, &patterns, target.spec.files.lock_kind);
    let Some(entry) = snapshot.entries.first() else {
        return Ok(s.error_record("precondition not met: the warmup run published no compiled entry"));
    };
    let Some(file) = damage.pick(&entry.files) else {
        return Ok(s.not_applicable(&format!("the compiled entry has no file to damage so ({damage:?})")));
    };
    let path = entry.path.join(&file);
    if let Err(e) = damage.apply(&path) {
        return Ok(s.error_record(&format!("cannot damage {}: {e}", path.display())));
    }
    log::info!("{}: {damage:?} on {}", damage.scenario_name(), path.display());
    let check = |s: &crate::scenario::Scenario, i: usize| {
        s.writer(i, &model, &url, &cache).command(PlanCommand::Verify).role("cache-check")
    };
    let (check_damaged, check_repaired) = (check(&s, 901), check(&s, 902));
    let has_check = target.spec.verify_args.is_some();
    let damaged = if has_check { Some(run_check(&mut s, &check_damaged)?) } else { None };
    let before = phases::counts(&route);
    let n = s.tier().capped(PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &model, &url, &cache);
    let mut run = s.launch(plans)?;
    run.body_bound(&model, 0);
    run.compiled_reference(reference);
    run.wait();
    run.served(phases::served_since(&route, &before));
    run.recover(recovery);
    add_check_verdict(&mut run, damaged, &check_repaired, &path);
    Ok(run.evaluate())
}

/// The cache-check verdict: judged when the check ran on the damaged cache, else skipped.
fn add_check_verdict(
    run: &mut ScenarioRun<'_>,
    damaged: Option<Vec<ProcessOutcome>>,
    check_repaired: &ProcessPlan,
    damaged_path: &Path,
) {
    match damaged {
        Some(damaged) => {
            let repaired = run_check_in(run, check_repaired);
            let verdict = cache_check_verdict(run, damaged_path, &damaged, &repaired);
            run.add_verdict(verdict);
        }
        None => {
            let reason = "the target declares no verify-args";
            run.add_verdict(InvariantResult::skipped(CACHE_CHECK_REPORTS_DAMAGE, reason));
        }
    }
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
    judge(damaged, codes.integrity, &format!("on a cache with {} damaged", damaged_path.display()));
    judge(repaired, Some(codes.ok), "after the next run repaired the cache");
    if damaged.is_empty() || repaired.is_empty() {
        evidence.push("the cache check did not run before and after the repair".into());
    }
    InvariantResult::checked(CACHE_CHECK_REPORTS_DAMAGE, evidence)
}
