//! The nightly tier's own scenarios (issue: soak, scale, leaks, resource exhaustion, model updates
//! during reads, lock and state corruption, crash-state exploration). They run only in the
//! `stress-nightly` profile (test binary `nightly`), never in the PR tier, and follow the same
//! contract as every scenario: run, check every invariant, write the record once, never assert.
//!
//! Each part is one module exporting `SCENARIOS`, a list of `(record name, scenario fn)`; [`scenarios`]
//! chains them so that [`super::by_name`] (and the mutant checks) find them by record name.

use super::ScenarioFn;

pub mod exhaustion;
pub mod lock_integrity;
pub mod model_update;
pub mod power_loss;
pub mod resources;
pub mod runs;
pub mod scale;
pub mod soak;
pub mod state_recovery;
pub mod stats;

/// Every nightly scenario, by record name.
pub fn scenarios() -> impl Iterator<Item = &'static (&'static str, ScenarioFn)> {
    let parts: [&'static [(&'static str, ScenarioFn)]; 7] = [
        power_loss::SCENARIOS,
        model_update::SCENARIOS,
        soak::SCENARIOS,
        scale::SCENARIOS,
        lock_integrity::SCENARIOS,
        state_recovery::SCENARIOS,
        exhaustion::SCENARIOS,
    ];
    parts.into_iter().flatten()
}
