//! The compiled-model cache under contention: N processes with a warm download cache and an empty
//! compiled cache build the entry once, and what is published equals a clean run's entry.

use stress_cache_metadata::ScenarioRecord;

use crate::invariants::Invariant;
use crate::run_metadata::RunMetadata;
use crate::scenario::ScenarioError;
use crate::snapshot::CompiledSnapshot;

use super::ScenarioOptions;
use super::phases::{self, SharedModel};

/// Processes of the compiled-cache scenario before the `STRESS_PROCESSES` cap (each loads a model).
const PROCESSES: usize = 8;

/// N processes, warm download cache, empty compiled cache: exactly one compiled entry, equal to the
/// reference entry of a clean run; exactly one process compiled (metadata `compiled-hit`); no build dir
/// left; no download (bound 0); plus the usual invariants and a recovery run.
pub fn compiled_cache_concurrency_builds_each_entry_once(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = phases::scenario("compiled_cache_concurrency_builds_each_entry_once", opts)?;
    let Some(patterns) = s.target().spec.compiled.clone() else {
        return Ok(s.not_applicable("the target declares no compiled cache"));
    };
    let (SharedModel { target, server: _server, model, route, url, cache }, reference) =
        phases::shared_model_with_compiled_reference(&mut s)?;
    let warmup = s.writer(900, &model, &url, &cache).compiled_dir(&s.compiled_dir("warmup")).role("warmup");
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }

    let n = s.tier().capped(PROCESSES);
    let (plans, last) = s.writers_and_recovery(n, &model, &url, &cache);
    let compiled_dir = plans[0].compiled_dir.clone().unwrap_or_else(|| s.compiled_dir("shared"));
    let metadata: Vec<_> = plans.iter().filter_map(|p| target.metadata_path(p)).collect();
    let before = phases::counts(&route);
    let mut run = s.launch(plans)?;
    run.body_bound(&model, 0);
    run.compiled_reference(reference);
    run.start_reader();
    run.wait();
    // Built-once evidence is read before the recovery run (it loads the entry too).
    let snapshot = CompiledSnapshot::take(&compiled_dir, &patterns, target.spec.files.lock_kind);
    let mut evidence = Vec::new();
    if snapshot.entries.len() != 1 {
        let names: Vec<String> = snapshot.entries.iter().map(|e| e.path.display().to_string()).collect();
        evidence.push(format!(
            "expected exactly one compiled entry for model {model}, found {}: [{}]",
            snapshot.entries.len(),
            names.join(", ")
        ));
    }
    let decl = target.spec.metadata_file.as_ref().filter(|d| d.compiled_hit.is_some());
    if let Some(decl) = decl {
        let builders: Vec<String> = metadata
            .iter()
            .filter_map(|p| RunMetadata::read(decl, p).ok().map(|m| (p, m)))
            .filter(|(_, m)| m.compiled_hit == Some(false))
            .map(|(p, _)| p.display().to_string())
            .collect();
        if builders.len() != 1 {
            evidence.push(format!(
                "expected exactly one process to compile (compiled-hit = false), found {}: {}",
                builders.len(),
                builders.join(", ")
            ));
        }
    }
    run.add_verdict(phases::verdict(Invariant::CompiledEntriesCompleteOrAbsent.name(), evidence));
    run.recover(last);
    run.served(phases::served_since(&route, &before));
    Ok(run.evaluate())
}
