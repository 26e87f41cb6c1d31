//! Cache-directory stress on real small file systems (tmpfs; needs root): the shared cache dir is created
//! by the processes themselves, emptied and made unwritable while a download is parked, and a disk too
//! small for the model fills up for real (ENOSPC).

use std::path::Path;

use stress_cache_metadata::ScenarioRecord;

use crate::invariants::{Expectations, OutcomeClass};
use crate::scenario::ScenarioError;
use crate::server::{FaultPlan, Gate};

use super::network::{FAULT_DEADLINE, FAULT_PROCESSES};
use super::phases::{self, PhaseInput};
use super::tmpfs::Tmpfs;
use super::{ScenarioOptions, overlap, setup};

/// Removes every entry under `dir` (files, and directories recursively); returns how many top-level
/// entries were removed.
fn empty_dir(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten().take(100_000) {
        let path = entry.path();
        let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed += usize::from(gone.is_ok());
    }
    removed
}

/// Processes start while the shared cache dir does not exist yet (they create it concurrently); once one
/// download is parked mid-body and every other process waits on the cache lock, the dir is emptied (its
/// partial and lock files deleted) and covered by a read-only mount — unwritable for every new path
/// operation. (A real `mount -o remount,ro` is refused with EBUSY while any process has a file open for
/// writing there, and every process here holds its lock file open read-write; covering the dir is how the
/// kernel lets us make it read-only under running processes.) Every process must fail with the io class
/// (clear error, no panic, no hang), nothing under a final name; once the dir is writable again a recovery
/// run succeeds. Then a tmpfs smaller than the large model is filled for real: every process fails with the
/// io class (ENOSPC) and leaves no partial.
///
/// Catches targets that panic or hang on vanished or read-only cache dirs
/// (`failures_have_expected_class`, `no_panic_or_unexpected_signal`), publish anything from a failed run
/// (`one_final_artifact_per_model`, `no_partial_content`), or leave partials on a full disk
/// (`leave-partial`: `no_temp_files_left`).
pub fn cache_dir_created_emptied_and_made_unwritable_while_running(
    opts: &ScenarioOptions,
) -> Result<ScenarioRecord, ScenarioError> {
    let mut s = setup::scenario("cache_dir_created_emptied_and_made_unwritable_while_running", opts)?;
    s.deadline(FAULT_DEADLINE);
    let server = setup::server()?;
    let (small, large) = setup::small_and_large(s.target());
    let target = s.target().clone();
    let mnt = s.mount_parent().to_path_buf();
    let large_len = target.model(&large).bytes.len() as u64;
    let small_len = target.model(&small).bytes.len();

    // Disk full: a tmpfs of half the large model.
    let mut full = Tmpfs::new_under(&mnt, "disk-full", (large_len / 2).max(64 * 1024))?;
    let full_cache = full.path().join("full-cache");
    let large_route = server.add_route(setup::model_route(&target, &large, FaultPlan::default()));
    let large_url = server.url(&large_route);
    let full_plans: Vec<_> = (0..s.tier().capped(3))
        .map(|i| s.writer(1000 + i, &large, &large_url, &full_cache).role("disk-full"))
        .collect();
    let full_outcomes = s.run_to_completion(&full_plans, "disk-full")?;
    let mut full_expectations = Expectations::clean(&target, &full_plans);
    for e in &mut full_expectations.processes {
        *e = e.clone().allow(&[OutcomeClass::Io]);
    }
    let disk_full = phases::check_phase(
        &s,
        PhaseInput {
            label: "disk-full phase",
            expectations: full_expectations,
            outcomes: &full_outcomes,
            caches: vec![full_cache.clone()],
            compiled: Vec::new(),
            compiled_reference: None,
            served: None,
        },
    );
    full.unmount()?;

    // Created, emptied and made read-only while running.
    let fs = Tmpfs::new_under(&mnt, "cache-dir", 4 * large_len + (1 << 20))?;
    let cache = fs.path().join("nested").join("cache");
    let gate = Gate::named("cache-dir-mid-body");
    let route = server.add_route(setup::model_route(&target, &small, overlap::gated_plan(&gate, small_len)));
    let url = server.url(&route);
    let n = s.tier().capped(FAULT_PROCESSES);
    let (plans, recovery) = s.writers_and_recovery(n, &small, &url, &cache);
    let mut cover: Option<Result<Tmpfs, ScenarioError>> = None;
    let mut emptied = 0;
    let mut run = s.launch(plans)?;
    run.add_phase(disk_full);
    run.also_check_cache(&full_cache);
    for i in 0..n {
        run.expect(i, &[OutcomeClass::Io], false);
    }
    // The holder that is mid-download when the directory turns read-only receives the whole body and
    // then cannot publish it; the next lock holder rightly downloads again, and the server can write a
    // whole (small) body into loopback socket buffers before that client fails to create its partial.
    // So the bound here is one body per writer, not one per model (that holds on a clean network).
    run.body_bound(&small, n as u64);
    run.start_reader();
    let forced = overlap::hold_cache_until_overlap_then(&run, &gate, &cache, || {
        emptied = empty_dir(&cache);
        cover = Some(Tmpfs::read_only_over(&cache));
    });
    run.wait();
    run.served_from_routes(&[&route]);
    let mut cover = cover.transpose()?;
    if let Some(c) = cover.as_mut() {
        c.unmount()?;
    }
    forced.record_into(&mut run);
    log::info!(
        "emptied {emptied} entr(ies) and covered {} read-only while the download was parked; disk-full tmpfs of {} B",
        cache.display(),
        (large_len / 2).max(64 * 1024)
    );
    run.recover(recovery);
    let record = run.evaluate();
    drop(fs);
    Ok(record)
}
