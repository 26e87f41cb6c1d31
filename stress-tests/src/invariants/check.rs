//! The checker: observations in, one verdict per invariant out — held, violated with evidence, or skipped
//! with the reason. Nothing is dropped: an invariant without an observation is `skipped`, never `held`.

use std::collections::BTreeMap;

use stress_cache_metadata::{ExitCodes, InvariantResult, LockKind};

use super::findings::{bad_final, undetectable, undetectable_sha};
use super::observations::{Observations, TraceObservation};
use super::{Invariant, OutcomeClass, ProcessExpectation};
use crate::orchestrator::ProcessOutcome;
use crate::run_metadata::RunMetadata;
use crate::snapshot::{CacheSnapshot, CompiledSnapshot, Content};

fn excerpt(outcome: &ProcessOutcome) -> String {
    let tail = outcome.stderr_tail(400);
    let tail = tail.trim();
    if tail.is_empty() {
        outcome.describe()
    } else {
        format!("{}; stderr: {}", outcome.describe(), tail.replace('\n', " | "))
    }
}

/// Checks every invariant of [`Invariant::ALL`], in that order: each one held, violated or skipped (with
/// the reason, e.g. "no reader probe ran in this scenario").
pub fn check(obs: &Observations<'_>) -> Vec<InvariantResult> {
    Invariant::ALL
        .iter()
        .map(|&invariant| match obs.expectations.skip.get(&invariant) {
            Some(reason) => InvariantResult::skipped(invariant.name(), reason.clone()),
            None => verdict(obs, invariant),
        })
        .collect()
}

/// Evidence against [`Invariant::PrintedPathIsACompleteFinal`]: for each success of a process that asked
/// for a model, the path it printed as it exited.
fn printed_paths(obs: &Observations<'_>) -> Vec<String> {
    let codes = &obs.target.spec.exit_codes;
    let roles = stress_cache_metadata::FileRoles::from_validated(&obs.target.spec.files);
    let mut evidence = Vec::new();
    for o in obs.outcomes.iter().filter(|o| OutcomeClass::of(o, codes) == OutcomeClass::Ok) {
        let Some(exp) = obs.expectations.processes.get(o.index) else { continue };
        let (Some(model), Some(sha)) = (&exp.model, &exp.model_sha256) else { continue };
        let Some(printed) = &o.printed_path else {
            evidence.push(format!("pid {} exited 0 but its printed path was not observed", o.pid));
            continue;
        };
        let shown = printed.path.display();
        match &printed.content {
            Err(e) => evidence
                .push(format!("pid {} printed {shown}, which could not be read as it exited: {e}", o.pid)),
            Ok((len, got)) if got != sha && undetectable_sha(obs, &exp.cache_dir, model, got, Some(*len)) => {
            }
            Ok((len, got)) if got != sha => evidence.push(format!(
                "pid {} printed {shown}, which held {len} B with sha256 {} as it exited, not model {model}",
                o.pid,
                &got[..16.min(got.len())]
            )),
            Ok(_) => {
                let resolved = printed.resolved();
                // The cache dir as given and as the kernel names it (a target may print a resolved path).
                let dirs = [Some(exp.cache_dir.clone()), std::fs::canonicalize(&exp.cache_dir).ok()];
                let is_final = [&printed.path, &resolved].into_iter().any(|p| {
                    dirs.iter().flatten().any(|d| {
                        p.strip_prefix(d)
                            .ok()
                            .is_some_and(|rel| roles.role_of(rel) == Some(stress_cache_metadata::Role::Final))
                    })
                });
                if !is_final {
                    evidence.push(format!(
                        "pid {} printed {shown}: complete, but not a final artifact of {} (nor a symlink to one)",
                        o.pid,
                        exp.cache_dir.display()
                    ));
                }
            }
        }
    }
    evidence
}

/// The snapshots to check: after the fleet, and after the recovery run when one ran.
pub(super) fn snapshot_sets<'a>(
    obs: &Observations<'a>,
) -> Vec<(&'static str, &'a [CacheSnapshot], &'a [CompiledSnapshot])> {
    let mut sets = vec![("after the fleet", obs.caches, obs.compiled)];
    if let Some((caches, compiled)) = obs.after_recovery {
        sets.push(("after recovery", caches, compiled));
    }
    sets
}

/// Evidence from every snapshot set, each line labelled with the moment it was taken (the set right after
/// the fleet is passed over for invariants in `skip_after_fleet`).
fn per_snapshot(
    obs: &Observations<'_>,
    invariant: Invariant,
    f: impl Fn(&[CacheSnapshot], &[CompiledSnapshot]) -> Vec<String>,
) -> Vec<String> {
    let mut sets = snapshot_sets(obs);
    if sets.len() > 1 && obs.expectations.skip_after_fleet.contains_key(&invariant) {
        sets.remove(0);
    }
    let labelled = sets.len() > 1 || obs.after_recovery.is_some();
    sets.into_iter()
        .flat_map(|(label, caches, compiled)| {
            f(caches, compiled).into_iter().map(move |e| if labelled { format!("[{label}] {e}") } else { e })
        })
        .collect()
}

fn verdict(obs: &Observations<'_>, invariant: Invariant) -> InvariantResult {
    let codes = &obs.target.spec.exit_codes;
    let name = invariant.name();
    let checked = |evidence: Vec<String>| InvariantResult::checked(name, evidence);
    let skipped = |reason: &str| InvariantResult::skipped(name, reason);
    let exp = |i: usize| obs.expectations.processes.get(i);
    match invariant {
        Invariant::OneFinalArtifactPerModel => {
            checked(per_snapshot(obs, invariant, |c, _| one_final_per_model(obs, c, codes)))
        }
        Invariant::FinalArtifactsMatchChecksum => checked(per_snapshot(obs, invariant, |caches, _| {
            let mut evidence: Vec<String> = caches
                .iter()
                .flat_map(|c| c.finals().into_iter().map(move |f| (c, f)))
                .filter(|(c, f)| {
                    // What the server served, wrong, and a target without a checksum kept: not a
                    // publish of bytes it never received, but the finding `cached_undetectable_corruption`.
                    bad_final(obs, &c.dir, &f.content)
                })
                .map(|(_, f)| f)
                .map(|f| {
                    format!("final artifact is not a complete copy of what was served: {}", f.evidence())
                })
                .collect();
            if !obs.expectations.planted_at_rest {
                // Only a file that once sat under a final name is quarantined: a quarantined file that is
                // not complete proves bad bytes were published, even if nobody read them.
                evidence.extend(
                    caches
                        .iter()
                        .flat_map(|c| c.quarantined())
                        .filter(|f| !matches!(f.content, Content::Complete(_)))
                        .map(|f| format!("published under a final name, then quarantined: {}", f.evidence())),
                );
            }
            evidence
        })),
        Invariant::NoPartialContent => checked(per_snapshot(obs, invariant, |caches, _| {
            caches
                .iter()
                .flat_map(|c| c.partial_or_corrupt().into_iter().map(move |f| (c, f)))
                .filter(|(c, f)| !undetectable(obs, &c.dir, &f.content))
                .map(|(_, f)| format!("left behind: {}", f.evidence()))
                .collect()
        })),
        Invariant::NoTempFilesLeft => checked(per_snapshot(obs, invariant, |caches, compiled| {
            caches
                .iter()
                .flat_map(|c| c.partials())
                .map(|f| format!("temp file left: {}", f.evidence()))
                .chain(
                    compiled
                        .iter()
                        .flat_map(|c| &c.partials)
                        .map(|p| format!("compiled build dir left: {}", p.display())),
                )
                .collect()
        })),
        Invariant::NoLockHeld => match obs.target.spec.files.lock_kind {
            LockKind::Flock => skipped(
                "flock locks die with their holder, so a lock held after exit cannot happen; lock discipline is \
                 checked live and on the trace (writer_holds_exclusive_lock, lock_files_stable)",
            ),
            LockKind::Exists if obs.target.spec.files.lock.is_none() => {
                skipped("the target declares no lock files")
            }
            LockKind::Exists => checked(per_snapshot(obs, invariant, |caches, compiled| {
                caches
                    .iter()
                    .flat_map(|c| c.held_locks())
                    .chain(compiled.iter().flat_map(|c| c.locks.iter().filter(|l| l.held)))
                    .map(|l| format!("lock file left after every process exited: {}", l.path.display()))
                    .collect()
            })),
        },
        Invariant::ReadersSawOnlyCompleteContent => match obs.readers {
            Some(r) if r.reads > 0 => checked(
                r.bad_reads
                    .iter()
                    .cloned()
                    .chain(
                        r.served_wrong_reads
                            .iter()
                            .filter(|(dir, content, _)| !undetectable(obs, dir, content))
                            .map(|(_, _, line)| line.clone()),
                    )
                    .collect(),
            ),
            Some(_) => skipped("the reader probe never found a final artifact to read"),
            None => skipped("no reader probe ran in this scenario"),
        },
        Invariant::CompiledEntriesCompleteOrAbsent => match obs.compiled_reference {
            None => {
                skipped("no compiled-entry reference in this scenario (or the target has no compiled cache)")
            }
            Some(reference) => checked(per_snapshot(obs, invariant, |_, compiled| {
                compiled
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
            })),
        },
        Invariant::SuccessesLoadedExpectedModel => match &obs.target.spec.metadata_file {
            Some(decl) => checked(loaded_expected(obs, obs.outcomes, &exp, decl, codes)),
            None => skipped("the target writes no metadata file naming the model it loaded"),
        },
        Invariant::FailuresHaveExpectedClass => checked(
            obs.outcomes
                .iter()
                .filter_map(|o| {
                    let class = OutcomeClass::of(o, codes);
                    let e = exp(o.index)?;
                    if class == OutcomeClass::Usage && !e.allowed.contains(&class) {
                        // The target refused its configuration: a setup error of the scenario (reported
                        // as such by the run), not a verdict about how it handles the cache.
                        return None;
                    }
                    let allowed =
                        e.allowed.contains(&class) || (class == OutcomeClass::Crashed && e.crash_allowed);
                    (!allowed).then(|| {
                        let names: Vec<&str> = e.allowed.iter().map(|c| c.name()).collect();
                        format!("class {class}, allowed {{{}}}: {}", names.join(", "), excerpt(o))
                    })
                })
                .collect(),
        ),
        Invariant::NoPanicOrUnexpectedSignal => checked(
            obs.outcomes
                .iter()
                .filter(|o| match OutcomeClass::of(o, codes) {
                    OutcomeClass::Panicked | OutcomeClass::Signal => true,
                    OutcomeClass::Crashed => !exp(o.index).is_some_and(|e| e.crash_allowed),
                    _ => false,
                })
                .chain(obs.recovery.iter().flat_map(|r| &r.outcomes).filter(|o| {
                    matches!(
                        OutcomeClass::of(o, codes),
                        OutcomeClass::Panicked | OutcomeClass::Signal | OutcomeClass::Crashed
                    )
                }))
                .map(excerpt)
                .collect(),
        ),
        Invariant::DownloadAmplificationBounded => match obs.served {
            Some(_) if obs.expectations.body_bound.is_empty() => {
                skipped("no download bound applies to this scenario")
            }
            Some(served) => checked(
                obs.expectations
                    .body_bound
                    .iter()
                    .filter_map(|(model, bound)| {
                        let got = served.complete_bodies.get(model).copied().unwrap_or(0);
                        (got > *bound)
                            .then(|| format!("model {model}: {got} complete bodies served, bound {bound}"))
                    })
                    .collect(),
            ),
            None => skipped("the server's counters were not taken in this scenario"),
        },
        Invariant::NoPoisoning => match obs.recovery {
            Some(recovery) => {
                let rexp = |i: usize| recovery.expectations.get(i);
                let mut evidence: Vec<String> = recovery
                    .outcomes
                    .iter()
                    .filter(|o| !matches!(OutcomeClass::of(o, codes), OutcomeClass::Ok | OutcomeClass::Usage))
                    .map(|o| format!("recovery run failed: {}", excerpt(o)))
                    .collect();
                if let Some(decl) = &obs.target.spec.metadata_file {
                    evidence.extend(
                        loaded_expected(obs, &recovery.outcomes, &rexp, decl, codes)
                            .into_iter()
                            .map(|e| format!("recovery run: {e}")),
                    );
                }
                // A bad final the recovery run kept while it exited 0 is served to every later process.
                let recovered_ok =
                    recovery.outcomes.iter().any(|o| OutcomeClass::of(o, codes) == OutcomeClass::Ok);
                if let (true, Some((after, _))) = (recovered_ok, obs.after_recovery) {
                    evidence.extend(
                        after
                            .iter()
                            .flat_map(|c| c.finals().into_iter().map(move |f| (c, f)))
                            .filter(|(c, f)| bad_final(obs, &c.dir, &f.content))
                            .map(|(_, f)| {
                                format!(
                                    "recovery run exited 0 and kept a bad final artifact: {}",
                                    f.evidence()
                                )
                            }),
                    );
                }
                checked(evidence)
            }
            None => skipped("no recovery run in this scenario"),
        },
        Invariant::FinishedBeforeWatchdog => {
            checked(obs.outcomes.iter().filter(|o| o.hung).map(excerpt).collect())
        }
        Invariant::PrintedPathIsACompleteFinal => {
            if obs.target.spec.prints_path {
                checked(printed_paths(obs))
            } else {
                skipped("the target does not print the path it resolved (prints-path = false)")
            }
        }
        Invariant::FinalPublishedAtomically => {
            from_trace(obs, name, |t| Some(t.final_published_atomically.clone()))
        }
        Invariant::LiveTempFilesLeftAlone => {
            from_trace(obs, name, |t| Some(t.live_temp_files_left_alone.clone()))
        }
        Invariant::LockFilesStable => {
            if obs.target.spec.files.lock.is_none() {
                skipped("the target declares no lock files")
            } else {
                from_trace(obs, name, |t| Some(t.lock_files_stable.clone()))
            }
        }
        Invariant::PublishedDurably => {
            if obs.target.spec.features.durable {
                from_trace(obs, name, |t| Some(t.published_durably.clone()))
            } else {
                skipped("the target declares it does not promise durability (features.durable = false)")
            }
        }
        Invariant::WriterHoldsExclusiveLock => writer_holds_lock(obs),
    }
}

/// A trace invariant: skipped without a trace (or one with no event), else checked on `pick`'s evidence.
fn from_trace(
    obs: &Observations<'_>,
    name: &str,
    pick: impl Fn(&TraceObservation) -> Option<Vec<String>>,
) -> InvariantResult {
    match obs.trace {
        None => InvariantResult::skipped(name, "no file-system trace was recorded in this scenario"),
        Some(t) if t.events == 0 => {
            InvariantResult::skipped(name, "the file-system trace recorded no operation on the caches")
        }
        Some(t) => match pick(t) {
            Some(evidence) => InvariantResult::checked(name, evidence),
            None => InvariantResult::skipped(name, "the target declares no lock files"),
        },
    }
}

fn writer_holds_lock(obs: &Observations<'_>) -> InvariantResult {
    let name = Invariant::WriterHoldsExclusiveLock.name();
    if obs.target.spec.files.lock.is_none() {
        return InvariantResult::skipped(name, "the target declares no lock files");
    }
    let live = obs.live_locks.filter(|l| l.checks > 0);
    let traced = obs.trace.filter(|t| t.events > 0).and_then(|t| t.writer_holds_exclusive_lock.clone());
    match (traced, live) {
        (None, None) => InvariantResult::skipped(name, "neither a file-system trace nor a live lock check"),
        (traced, live) => {
            let mut evidence = traced.unwrap_or_default();
            evidence.extend(live.iter().flat_map(|l| l.evidence.iter().map(|e| format!("live: {e}"))));
            if evidence.is_empty() {
                let witnesses: Vec<String> = live.iter().flat_map(|l| l.witnesses.clone()).collect();
                InvariantResult::held_with(name, witnesses)
            } else {
                InvariantResult::checked(name, evidence)
            }
        }
    }
}

fn one_final_per_model(obs: &Observations<'_>, caches: &[CacheSnapshot], codes: &ExitCodes) -> Vec<String> {
    let mut evidence = Vec::new();
    for cache in caches {
        for model in obs.target.models.keys() {
            let copies: Vec<_> = cache.complete_copies(model);
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
            // A final that is there but not complete is named by final_artifacts_match_checksum; here only
            // a missing one counts, so one finding is not reported under two names.
            // A final of no recognisable model (empty, unrelated) is named there too.
            let any_final = cache.finals().iter().any(|f| {
                f.content.model().is_none_or(|m| m == model.as_str())
                    || undetectable(obs, &cache.dir, &f.content)
            });
            if !succeeded.is_empty() && finals == 0 && !any_final {
                evidence.push(format!(
                    "model {model}: no final artifact in {} although pids {succeeded:?} succeeded with it",
                    cache.dir.display()
                ));
            }
        }
    }
    evidence
}

fn loaded_expected<'e>(
    obs: &Observations<'_>,
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
            // A wrong body the server served that the process had no way to tell: the finding.
            Ok(meta)
                if meta
                    .sha256
                    .as_deref()
                    .is_some_and(|s| undetectable_sha(obs, &e.cache_dir, model, s, None)) => {}
            Ok(meta) => evidence.push(format!(
                "pid {} asked for {model} (sha256 {}) but loaded sha256 {} ({})",
                o.pid,
                &expected[..16.min(expected.len())],
                meta.sha256.as_deref().unwrap_or("<missing>"),
                path.display()
            )),
            Err(err) => evidence.push(format!("pid {} succeeded but: {err}", o.pid)),
        }
    }
    evidence
}

/// Counts of each status, for logs (`held 12, violated 1, skipped 5`).
pub fn summary(results: &[InvariantResult]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in results {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}
