//! Wrong answers from a server that works: statuses that must not be retried, and an HTML page served
//! with `200 OK` in place of the model. What the body was is known to the harness, so a target that
//! caches an error body is caught by the content of its final artifact, whatever its layout.

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use crate::invariants::OutcomeClass;
use crate::scenario::ScenarioError;
use crate::server::{Fault, FaultPlan};

use super::network::{self, FAULT_DEADLINE, FAULT_PROCESSES, faults_not_injected};
use super::{ScenarioOptions, setup};

/// 403, then 404, then 410 for every later request, each with an HTML error page as its body: every
/// process fails with the network class (a retry cannot help, and the page is not a model), nothing is
/// cached (checked before the recovery run), no complete model body was served. Then the server heals
/// and a clean run downloads the real model. Catches a client that caches the body of an error
/// response (`final_artifacts_match_checksum`, `nothing_cached_after_failures`) or exits 0 on one
/// (`failures_have_expected_class`).
pub fn non_retryable_statuses_fail_cleanly_then_recover(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("non_retryable_statuses_fail_cleanly_then_recover", opts)?;
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let (small, _) = setup::small_and_large(s.target());
    let status = |code| Fault::Status { code, retry_after: None };
    let plan = FaultPlan::new([status(403), status(404)]).then(status(410));
    let route = server.add_route(setup::model_route(s.target(), &small, plan));
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(FAULT_PROCESSES).max(3);
    let plans: Vec<_> = (0..n).map(|i| s.writer(i, &small, &url, &cache)).collect();
    let recovery = s.writer(n, &small, &url, &cache).role("recovery");
    let mut run = s.launch(plans)?;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Network], false);
    }
    run.body_bound(&small, 0);
    run.start_reader();
    run.wait();
    run.served_from_routes(&[&route]);
    let cached: Vec<String> = run
        .snapshot_after_fleet()
        .0
        .iter()
        .flat_map(|c| c.finals())
        .map(|f| format!("cached although every response was an error status: {}", f.evidence()))
        .collect();
    run.add_verdict(InvariantResult::checked("nothing_cached_after_failures", cached));
    // The first error must reach a process; the later ones only reach processes that did not find
    // something cached (a target that caches the first error body serves it to the rest).
    for e in faults_not_injected(&route, &[status(403)]) {
        run.setup_error(e);
    }
    route.set_schedule(FaultPlan::default());
    run.recover(recovery);
    Ok(run.evaluate())
}

/// The first two downloads get `200 OK` with an HTML page (a captive portal, a misconfigured CDN), then
/// the model. A process may fail with the integrity class (its checksum, or its load of the model,
/// rejects the page) or succeed with the model; a page must never sit under a final name
/// (`final_artifacts_match_checksum`) — unless the target has neither a checksum nor a load to tell, in
/// which case the page is the finding `cached_undetectable_corruption`. Catches
/// `skip-unverified-validation`: without a checksum, beaker then publishes the page.
pub fn error_page_served_with_200_is_never_cached(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let faults = vec![Fault::ErrorPageWith200, Fault::ErrorPageWith200];
    network::wrong_bodies_then_the_model(
        "error_page_served_with_200_is_never_cached",
        faults,
        FAULT_PROCESSES,
        opts,
        |_, _| {},
    )
}
