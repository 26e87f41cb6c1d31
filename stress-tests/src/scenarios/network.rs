//! Network-fault scenarios: recovery from every TCP-level fault, a network that fails on every try,
//! corrupted bodies, and an HTTP error storm with Retry-After. Each runs a few processes (the tier's count
//! capped to [`FAULT_PROCESSES`]) on one shared cache with a reader probe, then a clean recovery run.

use std::time::Duration;

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::OutcomeClass;
use crate::scenario::{Scenario, ScenarioError, ScenarioRun};
use crate::server::{Fault, FaultPlan, ModelServer, RouteHandle};
use crate::target::ProcessPlan;

use super::setup::SmallModel;
use super::{ScenarioOptions, setup};

/// Processes per fault scenario (before the `STRESS_PROCESSES` cap): enough for one downloader and
/// several waiters, few enough to stay fast.
pub const FAULT_PROCESSES: usize = 4;

/// Watchdog deadline of fault scenarios: far above a correct run (a stall costs one read timeout), short
/// enough that a process without a read timeout (`no-timeout`) is reported hung quickly.
pub const FAULT_DEADLINE: Duration = Duration::from_secs(20);

/// Setup errors for each fault the scenario is about that the route never served: such a run proved
/// nothing about the fault, so it is an `error`, not a pass.
pub fn faults_not_injected(route: &RouteHandle, wanted: &[Fault]) -> Vec<String> {
    let served = route.served_faults();
    wanted
        .iter()
        .filter(|w| !served.contains(w))
        .map(|w| {
            let got: Vec<String> = served.iter().map(|f| f.to_string()).collect();
            format!("fault {w} was never served (route {} served [{}])", route.path(), got.join(", "))
        })
        .collect()
}

/// The set-up of a fault scenario: the small model served with a fault plan on a fresh server, and the
/// writers (the tier's count capped) on one shared cache with the recovery run after them.
struct FaultSetup {
    s: Scenario,
    /// Keep it alive for the whole scenario.
    server: ModelServer,
    small: String,
    route: RouteHandle,
    plans: Vec<ProcessPlan>,
    recovery: ProcessPlan,
}

impl FaultSetup {
    /// Scenario `name` with the fault deadline; the small model served with `plan`; `processes` writers
    /// before the tier's cap.
    fn start(
        name: &str,
        plan: FaultPlan,
        processes: usize,
        opts: &ScenarioOptions,
    ) -> Result<FaultSetup, ScenarioError> {
        let mut s = setup::scenario(name, opts)?;
        s.deadline(FAULT_DEADLINE);
        let SmallModel { server, model: small, route, url } = SmallModel::serve(s.target(), plan)?;
        let cache = s.cache_dir("shared");
        let n = s.tier().capped(processes);
        let (plans, recovery) = s.writers_and_recovery(n, &small, &url, &cache);
        Ok(FaultSetup { s, server, small, route, plans, recovery })
    }
}

/// Runs the small model through `faults` then `Ok` for a few processes on one shared cache: all must
/// succeed, one complete body, nothing left behind, the cache unpoisoned.
fn recovers_from(
    name: &str,
    faults: Vec<Fault>,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let FaultSetup { mut s, server: _server, route, plans, recovery, .. } =
        FaultSetup::start(name, FaultPlan::new(faults.clone()), FAULT_PROCESSES, opts)?;
    let n = plans.len();
    let retries = s.target().spec.features.retries;
    let mut run = s.launch(plans)?;
    if !retries {
        // A target that does not retry fails cleanly instead; what it leaves is still checked.
        for i in 0..n {
            run.expect(i, &[OutcomeClass::Ok, OutcomeClass::Network], false);
        }
    }
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    run.recover(recovery);
    for e in faults_not_injected(&route, &faults) {
        run.setup_error(e);
    }
    Ok(run.evaluate())
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
    recovers_from("recovers_from_refused", vec![Fault::RedirectToDeadPort, Fault::RedirectToDeadPort], opts)
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
    let fault = Fault::CloseAfter(half);
    every_download_fails_then_recovers(
        "network_failure_on_every_try_fails_cleanly",
        FaultPlan::always(fault.clone()),
        fault,
        FAULT_PROCESSES,
        opts,
    )
}

/// Every download answered by `plan` fails: each of `processes` processes ends with the network class,
/// no complete model body is served, nothing is cached (`nothing_cached_after_failures`, checked on the
/// snapshot before the recovery run), and `first` must have been served (else a setup error). Then the
/// server heals and a clean recovery run downloads the real model.
pub fn every_download_fails_then_recovers(
    name: &str,
    plan: FaultPlan,
    first: Fault,
    processes: usize,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let FaultSetup { mut s, server: _server, small, route, plans, recovery } =
        FaultSetup::start(name, plan, processes, opts)?;
    let n = plans.len();
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Network], false);
    }
    run.body_bound(&small, 0);
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    // What the failed fleet left (the pipeline also checks this snapshot, before the recovery run).
    let cached: Vec<String> = run
        .snapshot_after_fleet()
        .0
        .iter()
        .flat_map(|c| c.finals())
        .map(|f| format!("cached although every download failed: {}", f.evidence()))
        .collect();
    run.add_verdict(InvariantResult::checked("nothing_cached_after_failures", cached));
    for e in faults_not_injected(&route, &[first]) {
        run.setup_error(e);
    }
    route.set_schedule(FaultPlan::default());
    run.recover(recovery);
    Ok(run.evaluate())
}

/// The first two bodies are corrupted (same length, bytes flipped), then correct: the processes that got a
/// corrupted body fail with the integrity class, the others succeed with the right model, the final
/// artifact is complete and a recovery run loads the expected model. The harness knows the bytes it
/// served, so this holds for every target, with or without a checksum option: a final that is not a
/// complete copy of what was served violates `final_artifacts_match_checksum` whatever the target can
/// check. A scenario check (`integrity_failure_observed`) fails when corrupted bodies were served but no
/// process failed with the integrity class — a corrupted download was accepted (for a target without a
/// checksum that cannot detect corruption, that is the finding). Catches `skip-verify`: the corrupted body
/// is published under the final name; a target that then notices at load time quarantines it, and the
/// quarantined corrupted copy proves the publish (`final_artifacts_match_checksum`).
pub fn corrupted_downloads_fail_some_processes_without_poisoning(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let name = "corrupted_downloads_fail_some_processes_without_poisoning";
    let faults = vec![Fault::Corrupt, Fault::Corrupt];
    wrong_bodies_then_the_model(name, faults, FAULT_PROCESSES + 2, opts, |run, route| {
        let codes = run.target().spec.exit_codes.clone();
        let integrity =
            run.outcomes().iter().filter(|o| OutcomeClass::of(o, &codes) == OutcomeClass::Integrity).count();
        let corrupt_served = route.served_faults().iter().filter(|f| **f == Fault::Corrupt).count();
        let verdict = if !run.scenario().uses_checksum() {
            // Without a checksum a corrupted body that still loads cannot be told from the model; what it
            // costs is reported as the finding `cached_undetectable_corruption`, and a final that is not
            // what was served is still `final_artifacts_match_checksum`.
            InvariantResult::skipped(
                "integrity_failure_observed",
                "the processes were given no checksum: a corrupted body kept is the finding \
                 cached_undetectable_corruption",
            )
        } else if corrupt_served > 0 && integrity == 0 {
            InvariantResult::checked(
                "integrity_failure_observed",
                vec![format!(
                    "{corrupt_served} corrupted bod(ies) served but no process failed with the integrity class: \
                     a corrupted download was accepted"
                )],
            )
        } else {
            InvariantResult::checked("integrity_failure_observed", Vec::new())
        };
        run.add_verdict(verdict);
    })
}

/// `faults` (complete 200 bodies that are not the model) for the first downloads, then the model, for
/// `processes` processes on one shared cache: each ends ok or with the integrity class, at most one body
/// per fault plus one, a reader probe, then `check` on the run and a clean recovery run.
pub fn wrong_bodies_then_the_model(
    name: &str,
    faults: Vec<Fault>,
    processes: usize,
    opts: &ScenarioOptions,
    check: impl FnOnce(&mut ScenarioRun<'_>, &RouteHandle),
) -> Result<ScenarioRecord, ScenarioError> {
    let FaultSetup { mut s, server: _server, small, route, plans, recovery } =
        FaultSetup::start(name, FaultPlan::new(faults.clone()), processes, opts)?;
    let n = plans.len();
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Ok, OutcomeClass::Integrity], false);
    }
    // Each wrong body is a complete 200 body; then one model body.
    run.body_bound(&small, faults.len() as u64 + 1);
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    for e in faults_not_injected(&route, &faults[..1]) {
        run.setup_error(e);
    }
    check(&mut run, &route);
    run.recover(recovery);
    Ok(run.evaluate())
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
