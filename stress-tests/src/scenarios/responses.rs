//! Wrong answers from a server that works: statuses that must not be retried, and an HTML page served
//! with `200 OK` in place of the model. What the body was is known to the harness, so a target that
//! caches an error body is caught by the content of its final artifact, whatever its layout.

use stress_cache_metadata::ScenarioRecord;

use crate::scenario::ScenarioError;
use crate::server::{Fault, FaultPlan};

use super::ScenarioOptions;
use super::network::{self, FAULT_PROCESSES};

/// 403, then 404, then 410 for every later request, each with an HTML error page as its body: every
/// process fails with the network class (a retry cannot help, and the page is not a model), nothing is
/// cached (checked before the recovery run), no complete model body was served. Then the server heals
/// and a clean run downloads the real model. Catches a client that caches the body of an error
/// response (`final_artifacts_match_checksum`, `nothing_cached_after_failures`) or exits 0 on one
/// (`failures_have_expected_class`).
pub fn non_retryable_statuses_fail_cleanly_then_recover(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let status = |code| Fault::Status { code, retry_after: None };
    // The first error must reach a process; the later ones only reach processes that did not find
    // something cached (a target that caches the first error body serves it to the rest).
    network::every_download_fails_then_recovers(
        "non_retryable_statuses_fail_cleanly_then_recover",
        FaultPlan::new([status(403), status(404)]).then(status(410)),
        status(403),
        FAULT_PROCESSES.max(3),
        opts,
    )
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
