//! The checker checks itself, end to end, before any tier run trusts it (`cargo stress-cache` runs this
//! binary and the library's unit tests first; a failure makes the run an error). Each case runs a few
//! real processes of the suite's small second target (`tiny-cache`) through the whole pipeline — fleet,
//! file-system trace, snapshots, checker, record — once correct, where every file-system invariant must
//! hold, and once per textbook mistake (`TINY_CACHE_BUG`), where the matching invariant must be violated.
//! The checker's per-invariant unit cases are in `src/invariants/tests.rs`.

use std::path::Path;
use std::time::Duration;

use stress_cache_metadata::{ScenarioRecord, Status, TargetSpec};
use stress_tests::scenario::Scenario;
use stress_tests::scenarios::overlap;
use stress_tests::server::{Gate, ModelServer, Route};
use stress_tests::target::Target;
use stress_tests::tier::TierConfig;

/// Processes per case: one downloader and waiters behind it.
const PROCESSES: usize = 4;

fn tiny() -> Target {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("targets/tiny-cache.toml");
    let spec = TargetSpec::from_spec_file(&spec_path).expect("spec");
    Target::prepare(
        spec,
        env!("CARGO_BIN_EXE_tiny-cache").into(),
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    )
    .expect("prepare tiny-cache")
}

/// Runs `PROCESSES` tiny-cache processes with `bug` on one cache; the download is parked mid-body until
/// every other process waits on the lock (the overlap is forced, as in the real scenarios).
fn run_toy(name: &str, bug: &str) -> ScenarioRecord {
    let target = tiny();
    let mut tier = TierConfig::from_env().expect("tier");
    tier.mutant = None;
    let mut s = Scenario::with_target(name, target, tier).expect("scenario");
    let server = ModelServer::start().expect("server");
    let model = s.target().model_ids()[0].clone();
    let bytes = s.target().model(&model).bytes.clone();
    let gate = Gate::named("self-check");
    let route = server.add_route(
        Route::new(s.target().server_path(&model), bytes.clone())
            .model_id(model.as_str())
            .schedule(overlap::gated_plan(&gate, bytes.len())),
    );
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let plans: Vec<_> =
        (0..PROCESSES).map(|i| s.writer(i, &model, &url, &cache).env("TINY_CACHE_BUG", bug)).collect();
    let mut run = s.launch(plans).expect("launch");
    let forced =
        overlap::hold_until_overlap(&run, &gate, std::slice::from_ref(&cache), Duration::from_secs(15));
    forced.record_into(&mut run);
    run.wait();
    run.served_from_routes(&[&route]);
    run.evaluate()
}

fn status(record: &ScenarioRecord, invariant: &str) -> Status {
    record.invariants.iter().find(|r| r.name == invariant).map(|r| r.status).unwrap_or(Status::Skipped)
}

const TRACE_INVARIANTS: [&str; 5] = [
    "final_published_atomically",
    "live_temp_files_left_alone",
    "lock_files_stable",
    "writer_holds_exclusive_lock",
    "published_durably",
];

#[test]
fn a_correct_cache_holds_every_file_system_invariant() {
    let record = run_toy("self_check_correct", "");
    assert!(record.setup_errors.is_empty(), "{:?}", record.setup_errors);
    for invariant in TRACE_INVARIANTS {
        assert_eq!(status(&record, invariant), Status::Held, "{invariant}: {:#?}", record.invariants);
    }
    assert!(record.violated().is_empty(), "{:#?}", record.invariants);
}

/// Asserts `bug` violates `invariant` in an otherwise ordinary run.
fn assert_caught(bug: &str, invariant: &str) {
    let record = run_toy(&format!("self_check_{}", bug.replace('-', "_")), bug);
    assert!(record.setup_errors.is_empty(), "{:?}", record.setup_errors);
    assert_eq!(
        status(&record, invariant),
        Status::Violated,
        "tiny-cache with {bug} must violate {invariant}: {:#?}",
        record.invariants
    );
}

#[test]
fn writing_under_the_final_name_violates_final_published_atomically() {
    assert_caught("copy-into-final", "final_published_atomically");
}

#[test]
fn renaming_without_fsync_violates_published_durably() {
    assert_caught("no-fsync", "published_durably");
}

#[test]
fn unlinking_a_lock_others_wait_on_violates_lock_files_stable() {
    assert_caught("unlink-lock", "lock_files_stable");
}

#[test]
fn publishing_without_the_lock_violates_writer_holds_exclusive_lock() {
    assert_caught("no-lock", "writer_holds_exclusive_lock");
}
