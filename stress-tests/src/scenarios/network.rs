//! Network-fault scenarios: recovery from every TCP-level fault, a network that fails on every try,
//! corrupted bodies, and an HTTP error storm with Retry-After. Each runs a few processes (the tier's count
//! capped to [`FAULT_PROCESSES`]) on one shared cache with a reader probe, then a clean recovery run.

use std::path::Path;
use std::time::Duration;

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::{Invariant, OutcomeClass};
use crate::scenario::ScenarioError;
use crate::server::{Fault, FaultPlan, RouteHandle};
use crate::snapshot::{CacheSnapshot, Content, classify};
use crate::target::Target;

use super::{ScenarioOptions, amend, setup};

/// Processes per fault scenario (before the `STRESS_PROCESSES` cap): enough for one downloader and
/// several waiters, few enough to stay fast.
pub const FAULT_PROCESSES: usize = 4;

/// Watchdog deadline of fault scenarios: far above a correct run (a stall costs one read timeout), short
/// enough that a process without a read timeout (`no-timeout`) is reported hung quickly.
pub const FAULT_DEADLINE: Duration = Duration::from_secs(20);

/// Verdict `fault_injected`: the route actually served each fault the scenario is about (otherwise the
/// scenario proved nothing).
fn fault_injected(route: &RouteHandle, wanted: &[Fault]) -> InvariantResult {
    let served = route.served_faults();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !served.contains(w))
        .map(|w| {
            let got: Vec<String> = served.iter().map(|f| f.to_string()).collect();
            format!("fault {w} was never served (route {} served [{}])", route.path(), got.join(", "))
        })
        .collect();
    setup::verdict("fault_injected", missing)
}

/// Runs the small model through `faults` then `Ok` for a few processes on one shared cache: all must
/// succeed, one complete body, nothing left behind, the cache unpoisoned.
fn recovers_from(
    name: &str,
    faults: Vec<Fault>,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(name, opts)?;
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let (small, _) = setup::small_and_large(s.target());
    let route = server.add_route(setup::model_route(s.target(), &small, FaultPlan::new(faults.clone())));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(FAULT_PROCESSES);
    let plans: Vec<_> = (0..n).map(|i| s.writer(i, &small, &url, &cache)).collect();
    let recovery = s.writer(n, &small, &url, &cache).role("recovery");
    let mut run = s.launch(plans)?;
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    run.recover(recovery);
    let (record, path) = run.evaluate();
    Ok(amend(record, path.as_deref(), s.dir(), vec![fault_injected(&route, &faults)]))
}

/// Half the small model's body, the byte count used by mid-body faults.
fn half_body() -> Result<u64, ScenarioError> {
    let target = crate::target::Target::shared()?;
    let (small, _) = setup::small_and_large(target);
    Ok((target.model(&small).bytes.len() / 2) as u64)
}

/// Two refused connections, then the model: every process succeeds after retrying, one body, no partial.
/// Catches a client that gives up on the first refusal (`failures_have_expected_class`).
pub fn recovers_from_refused(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    recovers_from("recovers_from_refused", vec![Fault::Refused, Fault::Refused], opts)
}

/// Two connections closed right after the request, then the model: all succeed, one body, no partial.
pub fn recovers_from_accept_then_close(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    recovers_from(
        "recovers_from_accept_then_close",
        vec![Fault::AcceptThenClose, Fault::AcceptThenClose],
        opts,
    )
}

/// Two responses closed after their headers, then the model: all succeed, no partial left. Catches
/// `leave-partial` (the failed attempts' empty partials stay: `no_temp_files_left`).
pub fn recovers_from_headers_then_close(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    recovers_from(
        "recovers_from_headers_then_close",
        vec![Fault::HeadersThenClose, Fault::HeadersThenClose],
        opts,
    )
}

/// Two responses closed after half the body, then the model: all succeed, one complete body, no prefix or
/// partial left. Catches `leave-partial` (`no_temp_files_left`, `no_partial_content`).
pub fn recovers_from_close_after_n_bytes(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    let half = half_body()?;
    recovers_from(
        "recovers_from_close_after_n_bytes",
        vec![Fault::CloseAfter(half), Fault::CloseAfter(half)],
        opts,
    )
}

/// Two connections reset (RST), then the model: all succeed, one body, no partial.
pub fn recovers_from_reset(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    recovers_from("recovers_from_reset", vec![Fault::Reset, Fault::Reset], opts)
}

/// One response stalls after half the body (the connection stays open, silent), then the model: the read
/// timeout fires, the retry succeeds, no partial left. Catches `no-timeout` (the downloader waits forever
/// and the watchdog kills the fleet: `finished_before_watchdog`) and `leave-partial`.
pub fn recovers_from_stall(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError> {
    let half = half_body()?;
    recovers_from("recovers_from_stall", vec![Fault::Stall { after: half }], opts)
}

/// Every request is closed after half the body: every process exhausts its retries and fails with the
/// network class; nothing is cached and no partial is left (checked before the recovery run, which would
/// clean stale partials); zero complete bodies. Then the network heals and the recovery run succeeds.
/// Catches `leave-partial` (`no_temp_files_left`) and a target that publishes a truncated body
/// (`nothing_cached_after_failures`).
pub fn network_failure_on_every_try_fails_cleanly(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let half = half_body()?;
    let mut s = setup::scenario("network_failure_on_every_try_fails_cleanly", opts)?;
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let (small, _) = setup::small_and_large(s.target());
    let fault = Fault::CloseAfter(half);
    let route = server.add_route(setup::model_route(s.target(), &small, FaultPlan::always(fault.clone())));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(FAULT_PROCESSES);
    let plans: Vec<_> = (0..n).map(|i| s.writer(i, &small, &url, &cache)).collect();
    let recovery = s.writer(n, &small, &url, &cache).role("recovery");
    let target = s.target().clone();
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Network], false);
    }
    run.body_bound(&small, 0);
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    // Before the recovery run: it would remove stale partials of this entry.
    let before = CacheSnapshot::take(&cache, &target.spec.files, &target.models);
    let mut extra = vec![fault_injected(&route, &[fault])];
    extra.push(setup::verdict(
        "no_temp_files_left",
        before.partials().iter().map(|f| format!("after the failed fleet: {}", f.evidence())).collect(),
    ));
    extra.push(setup::verdict(
        "no_partial_content",
        before
            .partial_or_corrupt()
            .iter()
            .map(|f| format!("after the failed fleet: {}", f.evidence()))
            .collect(),
    ));
    extra.push(setup::verdict(
        "nothing_cached_after_failures",
        before
            .finals()
            .iter()
            .map(|f| format!("cached although every download failed: {}", f.evidence()))
            .collect(),
    ));
    route.set_schedule(FaultPlan::default());
    run.recover(recovery);
    let (record, path) = run.evaluate();
    Ok(amend(record, path.as_deref(), s.dir(), extra))
}

/// The first two bodies are corrupted (same length, bytes flipped), then correct: the processes that got a
/// corrupted body fail with the integrity class, the others succeed with the right model, the final
/// artifact is complete and a recovery run loads the expected model. A scenario check
/// (`integrity_failure_observed`) fails when corrupted bodies were served but no process failed with the
/// integrity class — a corrupted download was accepted. Catches `skip-verify`: the corrupted body is
/// published under the final name (the reader may see it: `readers_saw_only_complete_content`); a target
/// that then notices at load time quarantines it, and the quarantined corrupted copy proves the publish
/// (`final_artifacts_match_checksum`); one that does not notice fails `integrity_failure_observed` and
/// `successes_loaded_expected_model`.
/// For a target without a checksum option the checksum-dependent checks are skipped (noted in the record).
pub fn corrupted_downloads_fail_some_processes_without_poisoning(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("corrupted_downloads_fail_some_processes_without_poisoning", opts)?;
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let (small, _) = setup::small_and_large(s.target());
    let faults = vec![Fault::Corrupt, Fault::Corrupt];
    let route = server.add_route(setup::model_route(s.target(), &small, FaultPlan::new(faults.clone())));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(FAULT_PROCESSES + 2);
    let checksum = s.target().spec.features.checksum;
    let plans: Vec<_> = (0..n).map(|i| s.writer(i, &small, &url, &cache)).collect();
    let recovery = s.writer(n, &small, &url, &cache).role("recovery");
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Ok, OutcomeClass::Integrity], false);
    }
    run.body_bound(&small, faults.len() as u64 + 1);
    if !checksum {
        for inv in [
            Invariant::FinalArtifactsMatchChecksum,
            Invariant::NoPartialContent,
            Invariant::SuccessesLoadedExpectedModel,
            Invariant::NoPoisoning,
        ] {
            run.skip(inv);
        }
    }
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    run.recover(recovery);
    let quarantined = published_then_quarantined(&cache, run.target());
    let (record, path) = run.evaluate();
    let mut extra = vec![fault_injected(&route, &[Fault::Corrupt])];
    if checksum {
        extra.push(setup::verdict("final_artifacts_match_checksum", quarantined));
        let corrupt_served = route.served_faults().iter().filter(|f| **f == Fault::Corrupt).count();
        let integrity = record.outcomes.get(OutcomeClass::Integrity.name()).copied().unwrap_or(0);
        let evidence = if corrupt_served > 0 && integrity == 0 {
            vec![format!(
                "{corrupt_served} corrupted bod(ies) served but no process failed with the integrity class \
                 (outcomes {:?}): a corrupted download was accepted",
                record.outcomes
            )]
        } else {
            Vec::new()
        };
        extra.push(setup::verdict("integrity_failure_observed", evidence));
    } else {
        extra.push(setup::note(
            "integrity_failure_observed",
            vec!["skipped: the target declares no checksum option".into()],
        ));
    }
    Ok(amend(record, path.as_deref(), s.dir(), extra))
}

/// Quarantined files (moved aside by the target after they failed to load or to match) that are not a
/// complete model: proof that a corrupted or truncated download was once published under a final name.
/// A target that verifies before publishing never has one in a run whose only faults are bad bodies.
fn published_then_quarantined(cache: &Path, target: &Target) -> Vec<String> {
    let snapshot = CacheSnapshot::take(cache, &target.spec.files, &target.models);
    snapshot
        .quarantined
        .iter()
        .filter_map(|p| {
            let bytes = std::fs::read(p).ok()?;
            let content = classify(&bytes, &target.models);
            (!matches!(content, Content::Complete(_))).then(|| {
                format!(
                    "{}: {} ({} B) was published under a final name, then quarantined",
                    p.display(),
                    content.label(),
                    bytes.len()
                )
            })
        })
        .collect()
}

/// 503 and 429 with `Retry-After: 0`, then a 503 without it, then the model: every process succeeds
/// (the downloader within its attempts, honouring Retry-After), one complete body, nothing left behind.
/// Catches a client that treats 429/503 as final (`failures_have_expected_class`).
pub fn http_error_storm_with_retry_after_recovers(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    recovers_from(
        "http_error_storm_with_retry_after_recovers",
        vec![
            Fault::Status { code: 503, retry_after: Some(0) },
            Fault::Status { code: 429, retry_after: Some(0) },
            Fault::Status { code: 503, retry_after: None },
        ],
        opts,
    )
}
