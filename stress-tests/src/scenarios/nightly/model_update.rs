//! A model updated while readers run (nightly part 3, seed 002's invalidation race). The server starts
//! serving a new version of a model — new bytes, new checksum — while a fleet is reading the old one:
//!
//! 1. a first process of the old version downloads it; its body is parked at a gate mid-way;
//! 2. more old-version processes join and wait (parked at the gate or blocked on the entry's lock);
//! 3. the route switches to the new version (the server re-registers the path with new bytes: a
//!    response already in flight keeps the old ones), and new-version processes join, given the new
//!    checksum through the target's declared env;
//! 4. once every live process is parked or blocked, the gate opens.
//!
//! Every process must load one whole version, never a mix ([`ONE_WHOLE_VERSION`]): a process given a
//! checksum exactly that version; a process without one (it cannot name a version) either. The cache must
//! end with complete entries only, and the old entry either kept or cleanly evicted — no prefix, no
//! mixed or corrupted copy under any name: `final_artifacts_match_checksum`, `no_partial_content` and
//! [`VERSIONS_KEPT_ONCE`], with both versions known to the snapshot as legitimate models. The
//! new version is another of the target's declared models served under the old one's path, so the
//! snapshot classifies both exactly without the suite inventing model bytes a target must load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stress_cache_metadata::{FileRoles, InvariantResult, ScenarioRecord};

use crate::invariants::{Expectations, Invariant, OutcomeClass, ProcessExpectation};
use crate::orchestrator::blocked_waiting_for_input;
use crate::run_metadata::RunMetadata;
use crate::scenario::{Scenario, ScenarioError, ScenarioRun};
use crate::scenarios::phases::{self, PhaseInput};
use crate::scenarios::{ScenarioFn, ScenarioOptions, overlap, setup};
use crate::server::{FaultPlan, Gate, ModelServer, RouteHandle};
use crate::snapshot::CacheSnapshot;
use crate::target::{ProcessPlan, Target};

/// Record name.
pub const NAME: &str = "model_updated_while_readers_run_loads_one_whole_version";

/// The nightly model-update scenarios.
pub const SCENARIOS: &[(&str, ScenarioFn)] = &[
    (NAME, model_updated_while_readers_run_loads_one_whole_version),
    (NAME_AFTER_KILL, model_updated_after_a_reader_died_mid_download_never_mixes_versions),
];

/// Record name of the kill variant.
pub const NAME_AFTER_KILL: &str = "model_updated_after_a_reader_died_mid_download_never_mixes_versions";

/// Scenario-specific verdict: every successful process loaded the old or the new version whole (and a
/// process given a checksum, that very version).
pub const ONE_WHOLE_VERSION: &str = "every_process_loaded_one_whole_version";

/// Scenario-specific verdict replacing `one_final_artifact_per_model` here: no version has two complete
/// copies in a cache (quarantined files aside), while the old one may be gone.
pub const VERSIONS_KEPT_ONCE: &str = "each_version_kept_at_most_once";

/// Processes of each version (before the `STRESS_PROCESSES` cap).
const PER_VERSION: usize = 4;

/// Bound of each wait for the fleet to park or block.
const OVERLAP_TIMEOUT: Duration = overlap::DEFAULT_TIMEOUT;

/// See the module doc.
pub fn model_updated_while_readers_run_loads_one_whole_version(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(NAME, opts)?;
    let Some((old, new)) = two_versions(&s) else {
        return Ok(
            s.not_applicable("the target declares one model only: there is no second version to serve")
        );
    };
    let with_checksum = s.uses_checksum();
    let OldVersion { target, server, gate, path, old_route, url, cache, n } =
        OldVersion::serve(&mut s, &old, "old-version-mid-body")?;
    let first = vec![s.writer(0, &old, &url, &cache).role("old version")];
    let old_joiners: Vec<_> = (1..n).map(|i| s.writer(i, &old, &url, &cache).role("old version")).collect();
    // A new-version process is given the new checksum; without checksums it asks for the same URL.
    let new_joiners: Vec<_> =
        (n..2 * n).map(|i| s.writer(i, &new, &url, &cache).role("new version")).collect();
    let recovery = s.writer(2 * n, &new, &url, &cache).role("recovery (new version)");

    let mut run = s.launch(first)?;
    run.start_reader();
    let caches = [cache.clone()];
    if !run.fleet().wait_until(|_| gate.parked() > 0 && overlap::data_on_disk(&run, &cache), OVERLAP_TIMEOUT)
    {
        gate.release();
        run.setup_error(format!(
            "the old version's download never parked with data on disk within {OVERLAP_TIMEOUT:?}"
        ));
        run.wait();
        return Ok(run.evaluate());
    }
    run.join(old_joiners)?;
    if !all_parked_or_blocked(&run, &gate, &caches) {
        gate.release();
        run.setup_error(format!(
            "the old-version processes were not all parked or blocked on the cache within {OVERLAP_TIMEOUT:?}"
        ));
        run.wait();
        return Ok(run.evaluate());
    }
    // The update: the path now serves the new version (the parked response keeps the old bytes).
    let new_route =
        server.add_route(setup::route(&target, &path, &new, &target.model(&new).bytes, FaultPlan::default()));
    run.join(new_joiners)?;
    if !with_checksum {
        // Without a checksum a process cannot name a version: either is legitimate, and the
        // version check below judges it; the per-model checks must not demand the new one.
        for e in run.expectations_mut().processes.iter_mut().skip(n) {
            e.model = None;
            e.model_sha256 = None;
        }
    }
    let forced = overlap::hold_until_overlap(&run, &gate, &caches, OVERLAP_TIMEOUT);
    forced.record_into(&mut run);
    run.wait();
    run.served_from_routes(&[&old_route, &new_route]);
    run.body_bound(&new, 1);
    run.skip(
        Invariant::OneFinalArtifactPerModel,
        "an update may evict the old version (moved aside or removed) while its readers are done with it: \
         each_version_kept_at_most_once checks the copies instead",
    );
    let copies = version_copies(&mut run, &old, &new);
    run.add_verdict(InvariantResult::checked(VERSIONS_KEPT_ONCE, copies));

    let loaded = loaded_versions(&run, &old, &new);
    if with_checksum {
        run.recover(recovery);
        run.add_verdict(version_verdict(loaded));
    } else {
        recover_with_either_version(&mut run, recovery, &cache, &old, &new, loaded)?;
    }
    Ok(run.evaluate())
}

/// The update right after a reader died mid-download (kill variant): an old-version download is parked
/// mid-body and SIGKILLed, leaving its prefix on disk; the route switches to the new version; new-version
/// processes start together. A target that resumes the dead download's prefix with a `Range` request
/// without validating it (`If-Range`) appends the new version's tail to the old version's head and caches
/// the mix; a correct one discards the prefix (or validates it) and loads one whole version.
///
/// Only without a checksum: with one, entries are keyed by checksum, so a new-version process never
/// touches the old version's entry (and a mix would fail verification); [`NAME`] covers that case.
pub fn model_updated_after_a_reader_died_mid_download_never_mixes_versions(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(NAME_AFTER_KILL, opts)?;
    if s.uses_checksum() {
        return Ok(s.not_applicable(
            "with a checksum every entry is keyed by its version: a new-version process never resumes the old \
             version's download (see the record without checksum)",
        ));
    }
    let Some((old, new)) = two_versions(&s) else {
        return Ok(
            s.not_applicable("the target declares one model only: there is no second version to serve")
        );
    };
    let OldVersion { target, server, gate, path, old_route, url, cache, n } =
        OldVersion::serve(&mut s, &old, "dying-old-version-mid-body")?;
    let victim = s.writer(0, &old, &url, &cache).role("victim (old version)");
    let new_wave: Vec<_> = (1..=n).map(|i| s.writer(i, &new, &url, &cache).role("new version")).collect();
    let recovery = s.writer(n + 1, &new, &url, &cache).role("recovery (new version)");

    let mut run = s.launch(vec![victim])?;
    run.expect(0, &[], true);
    let pid = run.fleet().pids()[0];
    let parked = run.fleet().wait_until(
        |_| gate.parked() > 0 && overlap::data_on_disk(&run, &cache) && blocked_waiting_for_input(pid),
        OVERLAP_TIMEOUT,
    );
    if !parked {
        run.setup_error(format!(
            "the old version's download never parked mid-body with data on disk within {OVERLAP_TIMEOUT:?}"
        ));
    }
    run.fleet().kill(pid);
    // The victim is dead: the parked response goes on into a closed socket.
    gate.release();
    run.wait();
    let new_route =
        server.add_route(setup::route(&target, &path, &new, &target.model(&new).bytes, FaultPlan::default()));
    run.join(new_wave)?;
    for e in run.expectations_mut().processes.iter_mut().skip(1) {
        e.model = None;
        e.model_sha256 = None;
    }
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&old_route, &new_route]);
    run.body_bound(&new, 1);
    let loaded = loaded_versions(&run, &old, &new);
    recover_with_either_version(&mut run, recovery, &cache, &old, &new, loaded)?;
    Ok(run.evaluate())
}

/// The [`ONE_WHOLE_VERSION`] verdict from its evidence (`None`: the target shows no loaded model).
fn version_verdict(loaded: Option<Vec<String>>) -> InvariantResult {
    match loaded {
        Some(evidence) => InvariantResult::checked(ONE_WHOLE_VERSION, evidence),
        None => InvariantResult::skipped(
            ONE_WHOLE_VERSION,
            "the target neither writes a metadata file naming the model it loaded nor prints the path it resolved",
        ),
    }
}

/// The recovery run of a target without checksum: it cannot name a version, so it is checked as a phase
/// where either version is fine (the per-model checks of [`ScenarioRun::recover`] would demand one), and
/// its loaded version joins the [`ONE_WHOLE_VERSION`] verdict.
fn recover_with_either_version(
    run: &mut ScenarioRun<'_>,
    recovery: ProcessPlan,
    cache: &Path,
    old: &str,
    new: &str,
    mut loaded: Option<Vec<String>>,
) -> Result<(), ScenarioError> {
    let mut fleet = run.side_fleet("recovery", std::slice::from_ref(&recovery))?;
    let outcomes = run.reap_side(&mut fleet);
    let mut expectations = Expectations::clean(run.target(), std::slice::from_ref(&recovery));
    expectations.processes[0].model = None;
    expectations.processes[0].model_sha256 = None;
    let phase = phases::check_phase(
        run.scenario(),
        PhaseInput {
            label: "recovery after the update",
            expectations,
            outcomes: &outcomes,
            caches: vec![cache.to_path_buf()],
            compiled: Vec::new(),
            compiled_reference: None,
            served: None,
        },
    );
    if let (Some(l), Some(more)) =
        (loaded.as_mut(), judge(run, &outcomes, std::slice::from_ref(&recovery), old, new, false))
    {
        l.extend(more.into_iter().map(|e| format!("recovery run: {e}")));
    }
    run.add_phase(phase);
    run.add_verdict(version_verdict(loaded));
    Ok(())
}

/// Evidence of a version with more than one complete copy in a cache as the fleet left it.
fn version_copies(run: &mut ScenarioRun<'_>, old: &str, new: &str) -> Vec<String> {
    let (caches, _) = run.snapshot_after_fleet();
    copies_of_versions(caches, &[old, new])
}

/// One evidence line per version with more than one complete copy (quarantined files aside) in a cache.
fn copies_of_versions(caches: &[CacheSnapshot], versions: &[&str]) -> Vec<String> {
    let mut evidence = Vec::new();
    for cache in caches {
        for version in versions {
            let copies = cache.complete_copies(version);
            if copies.len() > 1 {
                let files: Vec<String> = copies.iter().map(|f| f.evidence()).collect();
                evidence.push(format!(
                    "version {version}: {} complete copies: {}",
                    copies.len(),
                    files.join(", ")
                ));
            }
        }
    }
    evidence
}

/// Whether every live process of the run is parked at `gate` or blocked on a lock file of `caches`
/// (waits up to [`OVERLAP_TIMEOUT`]).
fn all_parked_or_blocked(run: &ScenarioRun<'_>, gate: &Gate, caches: &[PathBuf]) -> bool {
    let roles = FileRoles::from_validated(&run.target().spec.files);
    let fleets = run.fleets();
    run.fleet().wait_until(
        |_| {
            let waiters: usize = match &roles.lock {
                Some(p) => {
                    fleets.iter().flat_map(|f| caches.iter().map(|c| f.lock_waiters(c, p).len())).sum()
                }
                None => 0,
            };
            let alive: usize = fleets.iter().map(|f| f.alive().len()).sum();
            alive <= gate.parked() as usize + waiters
        },
        OVERLAP_TIMEOUT,
    )
}

/// The version check over the run's fleet (`None`: the target shows no loaded model).
fn loaded_versions(run: &ScenarioRun<'_>, old: &str, new: &str) -> Option<Vec<String>> {
    judge(run, run.outcomes(), run.plans(), old, new, run.scenario().uses_checksum())
}

/// One evidence line per successful process that loaded neither version whole, or (given a checksum) not
/// the version it asked for. `None` when the target shows no loaded model.
fn judge(
    run: &ScenarioRun<'_>,
    outcomes: &[crate::orchestrator::ProcessOutcome],
    plans: &[crate::target::ProcessPlan],
    old: &str,
    new: &str,
    with_checksum: bool,
) -> Option<Vec<String>> {
    let target = run.target();
    let (old_sha, new_sha) = (&target.model(old).sha256, &target.model(new).sha256);
    let codes = &target.spec.exit_codes;
    if target.spec.metadata_file.is_none() && !target.spec.prints_path {
        return None;
    }
    let mut evidence = Vec::new();
    for o in outcomes.iter().filter(|o| OutcomeClass::of(o, codes) == OutcomeClass::Ok) {
        let Some(plan) = plans.get(o.index) else { continue };
        let got = match (&target.spec.metadata_file, &o.printed_path) {
            (Some(decl), _) => match target.metadata_path(plan).map(|p| RunMetadata::read(decl, &p)) {
                Some(Ok(meta)) => meta.sha256,
                Some(Err(e)) => {
                    evidence.push(format!("pid {} succeeded but: {e}", o.pid));
                    continue;
                }
                None => None,
            },
            (None, Some(printed)) => printed.content.as_ref().ok().map(|(_, sha)| sha.clone()),
            (None, None) => None,
        };
        let Some(got) = got else {
            evidence
                .push(format!("pid {} ({}) succeeded without showing the model it loaded", o.pid, plan.role));
            continue;
        };
        let version = if &got == old_sha {
            Some(old)
        } else if &got == new_sha {
            Some(new)
        } else {
            None
        };
        let asked = ProcessExpectation::for_plan(target, plan).model;
        match version {
            None => evidence.push(format!(
                "pid {} ({}) loaded sha256 {}: neither the old version ({old}) nor the new one ({new}), a mix or \
                 a corruption",
                o.pid,
                plan.role,
                &got[..16.min(got.len())]
            )),
            Some(v) if with_checksum && asked.as_deref() != Some(v) => evidence.push(format!(
                "pid {} ({}) was given the checksum of {} but loaded {v}",
                o.pid,
                plan.role,
                asked.as_deref().unwrap_or("?")
            )),
            Some(_) => {}
        }
    }
    Some(evidence)
}

/// The smallest model as the old version and the next one with other bytes as the new, if any.
fn two_versions(s: &Scenario) -> Option<(String, String)> {
    let ids = setup::models_by_size(s.target());
    let old = ids.first()?.clone();
    let new = ids.iter().find(|m| s.target().model(m).bytes != s.target().model(&old).bytes)?.clone();
    Some((old, new))
}

/// The old version of a model served from one route, gated mid-body, and the shared cache both
/// versions' processes use.
struct OldVersion {
    target: Target,
    server: ModelServer,
    gate: Gate,
    path: String,
    old_route: RouteHandle,
    url: String,
    cache: PathBuf,
    /// Processes per version.
    n: usize,
}

impl OldVersion {
    fn serve(s: &mut Scenario, old: &str, gate_name: &str) -> Result<Self, ScenarioError> {
        let target = s.target().clone();
        let server = setup::server()?;
        let gate = Gate::named(gate_name);
        let path = target.server_path(old);
        let old_route = server.add_route(setup::route(
            &target,
            &path,
            old,
            &target.model(old).bytes,
            overlap::gated_plan(&gate, target.model(old).bytes.len()),
        ));
        let url = server.url(&old_route);
        let cache = s.cache_dir("shared");
        let n = s.tier().capped(PER_VERSION).max(2);
        Ok(OldVersion { target, server, gate, path, old_route, url, cache, n })
    }
}

#[cfg(test)]
mod tests {
    use stress_cache_metadata::{FilePatterns, LockKind, PatternList, SymlinkPolicy};

    use super::*;
    use crate::target::blob_models;

    /// [`VERSIONS_KEPT_ONCE`] fails on a planted second copy of a version, not on a moved-aside one.
    #[test]
    fn a_version_cached_twice_is_evidence_a_quarantined_copy_is_not() {
        let models = blob_models();
        let patterns = FilePatterns {
            final_: "*.bin".into(),
            partial: "*.partial".into(),
            lock: Some("*.lock".into()),
            lock_kind: LockKind::Flock,
            quarantine: Some("quarantine/*".into()),
            ignore: PatternList::Many(Vec::new()),
            symlinks: SymlinkPolicy::Follow,
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("quarantine")).unwrap();
        std::fs::write(dir.path().join("alpha-1.bin"), &models["alpha"].bytes).unwrap();
        std::fs::write(dir.path().join("quarantine/alpha-0.bin"), &models["alpha"].bytes).unwrap();
        std::fs::write(dir.path().join("beta-1.bin"), &models["beta"].bytes).unwrap();
        let once = CacheSnapshot::take(dir.path(), &patterns, &models);
        assert_eq!(copies_of_versions(&[once], &["alpha", "beta"]), Vec::<String>::new());
        std::fs::write(dir.path().join("alpha-2.bin"), &models["alpha"].bytes).unwrap();
        let twice = CacheSnapshot::take(dir.path(), &patterns, &models);
        let evidence = copies_of_versions(&[twice], &["alpha", "beta"]);
        assert_eq!(evidence.len(), 1, "{evidence:?}");
        assert!(evidence[0].starts_with("version alpha: 2 complete copies"), "{evidence:?}");
    }
}
