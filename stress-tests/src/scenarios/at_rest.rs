//! Corrupted state at rest: a published final damaged between two runs (bit rot, a bad disk, a killed
//! editor) must be detected by the next processes, never used, and repaired with one download — not one
//! per process, and without poisoning the cache for the runs after.

use stress_cache_metadata::ScenarioRecord;

use crate::invariants::OutcomeClass;
use crate::scenario::ScenarioError;
use crate::server::FaultPlan;
use crate::snapshot::{CacheSnapshot, Content};

use super::network::FAULT_PROCESSES;
use super::setup::SmallModel;
use super::{ScenarioOptions, phases, setup};

/// Warm cache; one byte in the middle of the published final is flipped (same length, same inode — only
/// a content check notices); then N processes start together. Property: none loads the corrupted bytes
/// (`successes_loaded_expected_model`), each ends ok or with the integrity class, the cache ends with a
/// complete final, at most one download repairs it, and a recovery run succeeds.
///
/// Catches a quarantine that does not move the bad file aside (`quarantine-noop`: the refetch finds the
/// same bad file, every process fails and so does the recovery run: `no_poisoning`,
/// `final_artifacts_match_checksum`), and any target that trusts a final without checking it.
pub fn corrupted_final_at_rest_is_refetched_once(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    damaged_final_at_rest_is_refetched_once(Damage::BitFlip, opts)
}

/// The final cut to half its length between two fleets: every target can tell (its length or its load
/// fails), with or without a checksum.
pub fn truncated_final_at_rest_is_refetched_once(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    damaged_final_at_rest_is_refetched_once(Damage::Truncated, opts)
}

/// The final emptied (length 0, same inode) between two fleets, as a crash of an editor or a full disk
/// leaves it.
pub fn emptied_final_at_rest_is_refetched_once(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    damaged_final_at_rest_is_refetched_once(Damage::Emptied, opts)
}

/// How the published final is damaged at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One byte in the middle flipped (same length).
    BitFlip,
    /// Cut to half its length.
    Truncated,
    /// Cut to zero bytes.
    Emptied,
}

impl Damage {
    fn scenario_name(self) -> &'static str {
        match self {
            Damage::BitFlip => "corrupted_final_at_rest_is_refetched_once",
            Damage::Truncated => "truncated_final_at_rest_is_refetched_once",
            Damage::Emptied => "emptied_final_at_rest_is_refetched_once",
        }
    }

    fn apply(self, model: &[u8]) -> Vec<u8> {
        match self {
            Damage::BitFlip => {
                let mut bytes = model.to_vec();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x01;
                bytes
            }
            Damage::Truncated => model[..model.len() / 2].to_vec(),
            Damage::Emptied => Vec::new(),
        }
    }
}

fn damaged_final_at_rest_is_refetched_once(
    damage: Damage,
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario(damage.scenario_name(), opts)?;
    if damage == Damage::BitFlip && !s.uses_checksum() {
        // Said, not passed: without a checksum, a flipped byte that still loads is the model as far as
        // the target can know (the truncated and emptied cases run in this configuration instead).
        return Ok(s.not_applicable(
            "the processes get no checksum: a flipped byte that still loads cannot be told from the model",
        ));
    }
    let SmallModel { server: _server, model: small, route, url } =
        SmallModel::serve(s.target(), FaultPlan::default())?;
    let cache = s.cache_dir("shared");
    let warmup = s.writer(900, &small, &url, &cache).role("warmup");
    if let Err(e) = phases::setup_run(&mut s, &[warmup], "warmup") {
        return Ok(s.error_record(&e));
    }
    let target = s.target().clone();
    let snapshot = CacheSnapshot::take(&cache, &target.spec.files, &target.models);
    let Some(final_) =
        snapshot.finals().into_iter().find(|f| f.content == Content::Complete(small.clone())).cloned()
    else {
        return Ok(s.error_record("precondition not met: the warmup run published no complete final"));
    };
    let bytes = damage.apply(&target.model(&small).bytes);
    // In place (same inode): only a look at the content can notice.
    if let Err(e) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&final_.path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
    {
        return Ok(s.error_record(&format!("cannot corrupt {}: {e}", final_.path.display())));
    }
    let before = phases::counts(&route);
    let n = s.tier().capped(FAULT_PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &small, &url, &cache);
    let mut run = s.launch(plans)?;
    run.expectations_mut().planted_at_rest = true;
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Ok, OutcomeClass::Integrity], false);
    }
    run.body_bound(&small, 1);
    // No reader probe: it would read the harness's own planted bytes, which says nothing of the target.
    run.wait();
    run.recover(recovery);
    run.served(phases::served_since(&route, &before));
    Ok(run.evaluate())
}
