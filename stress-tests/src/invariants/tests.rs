//! The checker's own cases: real `sh -c` processes and planted cache states, one per invariant.

use std::collections::{BTreeMap, BTreeSet};

use stress_cache_metadata::{InvariantResult, Status};

use super::*;
use crate::orchestrator::{Fleet, FleetProcess};
use crate::reader_probe::ReaderReport;
use crate::snapshot::{CacheSnapshot, CompiledReference, CompiledSnapshot};
use crate::target::{ModelFixture, blob_models};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use stress_cache_metadata::{CompiledCache, LockKind, TargetSpec};

/// A target whose "program" is `sh -c <script>`, with beaker-like exit codes and a TOML metadata file.
fn target(dir: &Path) -> Target {
    let spec: TargetSpec = toml::from_str(
        r#"
        command = "sh"
        args = ["-c", "true", "{url}", "{cache_dir}"]
        [files]
        final = "*.bin"
        partial = "*.partial"
        lock = "*.lock"
        quarantine = "quarantine/*"
        [compiled]
        entry = "*-*"
        partial = ".*.tmp"
        lock = "*.lock"
        [exit-codes]
        ok = 0
        network = 3
        integrity = 4
        [metadata-file]
        path = "{output_dir}/{input_stem}.meta.toml"
        sha256 = "model.sha256"
    "#,
    )
    .unwrap();
    Target::from_parts("sh".into(), spec, blob_models(), dir.join("in.png"), dir.join("target"))
}

/// Runs real processes with `sh -c` scripts; returns outcomes and expectations (all writers of `alpha`).
fn run(
    t: &Target,
    cache: &Path,
    out: &Path,
    scripts: &[&str],
    deadline: Duration,
) -> (Vec<ProcessOutcome>, Expectations) {
    let plans: Vec<ProcessPlan> =
        scripts.iter().map(|_| ProcessPlan::run("alpha", "http://127.0.0.1:9/a", cache, out)).collect();
    let processes = scripts
        .iter()
        .map(|s| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            FleetProcess::new("writer", c)
        })
        .collect();
    let mut fleet = Fleet::start(&out.join("fleet"), processes, deadline).unwrap();
    let outcomes = fleet.wait();
    (outcomes, Expectations::clean(t, &plans))
}

struct World {
    _tmp: tempfile::TempDir,
    t: Target,
    cache: PathBuf,
    out: PathBuf,
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let t = target(tmp.path());
    let cache = tmp.path().join("cache");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    World { _tmp: tmp, t, cache, out }
}

fn alpha(w: &World) -> &ModelFixture {
    &w.t.models["alpha"]
}

fn write_meta(w: &World, sha: &str) {
    std::fs::write(w.out.join("in.meta.toml"), format!("[model]\nsha256 = \"{sha}\"\n")).unwrap();
}

fn check_with(
    w: &World,
    outcomes: &[ProcessOutcome],
    exp: &Expectations,
    extra: impl FnOnce(&mut Observations<'_>),
) -> Vec<InvariantResult> {
    let caches = [CacheSnapshot::take(&w.cache, &w.t.spec.files, &w.t.models)];
    let mut obs = Observations::new(&w.t, exp, outcomes, &caches, &[]);
    extra(&mut obs);
    check(&obs)
}

fn held(results: &[InvariantResult], invariant: Invariant) -> bool {
    results
        .iter()
        .find(|r| r.name == invariant.name())
        .unwrap_or_else(|| panic!("{invariant} not reported"))
        .status
        == stress_cache_metadata::Status::Held
}

fn status(results: &[InvariantResult], invariant: Invariant) -> Status {
    results
        .iter()
        .find(|r| r.name == invariant.name())
        .unwrap_or_else(|| panic!("{invariant} not reported"))
        .status
}

fn violated(results: &[InvariantResult]) -> Vec<&str> {
    results.iter().filter(|r| r.is_violated()).map(|r| r.name.as_str()).collect()
}

/// A clean cache (one complete final, a free lock, metadata naming the right model) passes everything.
fn clean_world() -> (World, Vec<ProcessOutcome>, Expectations) {
    let w = world();
    std::fs::write(w.cache.join("alpha-1.bin"), &alpha(&w).bytes).unwrap();
    std::fs::write(w.cache.join("alpha-1.bin.lock"), b"").unwrap();
    write_meta(&w, &alpha(&w).sha256.clone());
    let (outcomes, exp) = run(&w.t, &w.cache, &w.out, &["exit 0", "exit 0"], Duration::from_secs(20));
    (w, outcomes, exp)
}

#[test]
fn clean_run_holds_every_invariant() {
    let (w, outcomes, exp) = clean_world();
    let served =
        ServedCounts { complete_bodies: BTreeMap::from([("alpha".into(), 1)]), ..Default::default() };
    let readers =
        ReaderReport { scans: 3, reads: 1, complete_reads: 1, bad_reads: vec![], ..Default::default() };
    let recovery = RecoveryRun { outcomes: outcomes.clone(), expectations: exp.processes.clone() };
    let results = check_with(&w, &outcomes, &exp, |o| {
        o.served = Some(Box::leak(Box::new(served)));
        o.readers = Some(Box::leak(Box::new(readers)));
        o.recovery = Some(Box::leak(Box::new(recovery)));
    });
    assert_eq!(results.len(), Invariant::ALL.len(), "every invariant is reported: {results:?}");
    assert!(violated(&results).is_empty(), "{results:#?}");
    for r in results.iter().filter(|r| r.status == Status::Skipped) {
        assert!(r.reason.is_some(), "a skipped invariant says why: {r:?}");
    }
    // Nothing observed is never "held": no compiled reference, no trace, flock locks.
    for skipped in [
        Invariant::CompiledEntriesCompleteOrAbsent,
        Invariant::NoLockHeld,
        Invariant::FinalPublishedAtomically,
        Invariant::LiveTempFilesLeftAlone,
        Invariant::LockFilesStable,
        Invariant::PublishedDurably,
        Invariant::WriterHoldsExclusiveLock,
    ] {
        assert_eq!(status(&results, skipped), Status::Skipped, "{skipped}");
    }
}

#[test]
fn unobserved_invariants_are_skipped_with_a_reason_never_held() {
    let (w, outcomes, exp) = clean_world();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    for invariant in [
        Invariant::ReadersSawOnlyCompleteContent,
        Invariant::DownloadAmplificationBounded,
        Invariant::NoPoisoning,
    ] {
        assert_eq!(status(&r, invariant), Status::Skipped, "{invariant}");
    }
    let readers =
        ReaderReport { scans: 5, reads: 0, complete_reads: 0, bad_reads: vec![], ..Default::default() };
    let r = check_with(&w, &outcomes, &exp, |o| o.readers = Some(Box::leak(Box::new(readers))));
    assert_eq!(
        status(&r, Invariant::ReadersSawOnlyCompleteContent),
        Status::Skipped,
        "a reader that read nothing observed nothing"
    );
}

#[test]
fn an_empty_file_is_empty_not_a_prefix() {
    let (w, outcomes, exp) = clean_world();
    std::fs::write(w.cache.join("sidecar.meta"), b"").unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert!(violated(&r).is_empty(), "{r:#?}");
    assert_eq!(crate::snapshot::classify(b"", &w.t.models), crate::snapshot::Content::Empty);
}

#[test]
fn a_quarantined_corrupted_copy_proves_a_corrupted_publish_unless_planted() {
    let (w, outcomes, mut exp) = clean_world();
    std::fs::create_dir_all(w.cache.join("quarantine")).unwrap();
    let mut bytes = alpha(&w).bytes.clone();
    bytes[10] ^= 1;
    std::fs::write(w.cache.join("quarantine/alpha-1.bin.123"), bytes).unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert_eq!(violated(&r), ["final_artifacts_match_checksum"], "{r:#?}");
    exp.planted_at_rest = true;
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert!(violated(&r).is_empty(), "the harness planted it: {r:#?}");
}

#[test]
fn trace_evidence_violates_each_trace_invariant() {
    let (w, outcomes, exp) = clean_world();
    let trace = TraceObservation {
        final_published_atomically: vec!["pid 1 opened final with O_TRUNC".into()],
        live_temp_files_left_alone: vec!["pid 2 unlinked pid 1's live partial".into()],
        lock_files_stable: vec!["pid 1 unlinked a held lock".into()],
        published_durably: vec!["pid 1 renamed before fsync".into()],
        writer_holds_exclusive_lock: Some(vec!["pid 1 renamed without a lock".into()]),
        events: 10,
    };
    let r = check_with(&w, &outcomes, &exp, |o| o.trace = Some(Box::leak(Box::new(trace))));
    assert_eq!(
        violated(&r),
        [
            "final_published_atomically",
            "live_temp_files_left_alone",
            "lock_files_stable",
            "writer_holds_exclusive_lock",
            "published_durably"
        ]
    );
    let clean =
        TraceObservation { writer_holds_exclusive_lock: Some(vec![]), events: 10, ..Default::default() };
    let r = check_with(&w, &outcomes, &exp, |o| o.trace = Some(Box::leak(Box::new(clean))));
    assert!(violated(&r).is_empty());
    assert_eq!(status(&r, Invariant::PublishedDurably), Status::Held);
}

#[test]
fn a_live_writer_without_its_lock_violates_writer_holds_exclusive_lock() {
    let (w, outcomes, exp) = clean_world();
    let live = LiveLockObservation {
        checks: 1,
        witnesses: vec![],
        evidence: vec!["pid 7 is writing x.partial without holding an exclusive lock".into()],
    };
    let r = check_with(&w, &outcomes, &exp, |o| o.live_locks = Some(Box::leak(Box::new(live))));
    assert_eq!(violated(&r), ["writer_holds_exclusive_lock"]);
}

#[test]
fn after_fleet_and_after_recovery_snapshots_are_both_checked() {
    let (w, outcomes, mut exp) = clean_world();
    std::fs::write(w.cache.join("alpha-1.bin.9-9.partial"), &alpha(&w).bytes[..100]).unwrap();
    let after_fleet = [CacheSnapshot::take(&w.cache, &w.t.spec.files, &w.t.models)];
    std::fs::remove_file(w.cache.join("alpha-1.bin.9-9.partial")).unwrap();
    let after_recovery = [CacheSnapshot::take(&w.cache, &w.t.spec.files, &w.t.models)];
    let check_both = |exp: &Expectations| {
        let mut obs = Observations::new(&w.t, exp, &outcomes, &after_fleet, &[]);
        obs.after_recovery = Some((&after_recovery, &[]));
        check(&obs)
    };
    let r = check_both(&exp);
    let temp = r.iter().find(|x| x.name == "no_temp_files_left").unwrap();
    assert!(temp.is_violated() && temp.evidence[0].starts_with("[after the fleet]"), "{temp:?}");
    exp.skip_after_fleet.insert(Invariant::NoTempFilesLeft, "a crash left it".into());
    exp.skip_after_fleet.insert(Invariant::NoPartialContent, "a crash left it".into());
    assert!(violated(&check_both(&exp)).is_empty());
}

#[test]
fn two_complete_copies_violate_one_final_artifact() {
    let (w, outcomes, exp) = clean_world();
    std::fs::write(w.cache.join("alpha-url2.bin"), &alpha(&w).bytes).unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert_eq!(violated(&r), ["one_final_artifact_per_model"]);
}

#[test]
fn success_without_a_final_artifact_violates_one_final_artifact() {
    let (w, outcomes, exp) = clean_world();
    std::fs::remove_file(w.cache.join("alpha-1.bin")).unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert!(!held(&r, Invariant::OneFinalArtifactPerModel));
}

#[test]
fn corrupted_final_violates_checksum_and_partial_content() {
    let (w, outcomes, exp) = clean_world();
    let mut bytes = alpha(&w).bytes.clone();
    bytes[100] ^= 0x55;
    std::fs::write(w.cache.join("alpha-1.bin"), bytes).unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert!(!held(&r, Invariant::FinalArtifactsMatchChecksum));
    assert!(!held(&r, Invariant::NoPartialContent));
    let evidence = &r.iter().find(|x| x.name == "final_artifacts_match_checksum").unwrap().evidence[0];
    assert!(evidence.contains("corrupted(alpha)") && evidence.contains("alpha-1.bin"), "{evidence}");
}

#[test]
fn prefix_under_a_temp_name_violates_partial_content_and_temp_files() {
    let (w, outcomes, exp) = clean_world();
    std::fs::write(w.cache.join("alpha-1.bin.123-1.partial"), &alpha(&w).bytes[..5000]).unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert_eq!(violated(&r), ["no_partial_content", "no_temp_files_left"]);
}

#[test]
fn no_lock_held_applies_to_exists_locks_only() {
    let (w, outcomes, exp) = clean_world();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    let flock = r.iter().find(|x| x.name == "no_lock_held").unwrap();
    assert_eq!(flock.status, Status::Skipped, "a flock lock cannot outlive its holder: {flock:?}");
    let mut t = w.t.clone();
    t.spec.files.lock_kind = LockKind::Exists;
    let caches = [CacheSnapshot::take(&w.cache, &t.spec.files, &t.models)];
    let r = check(&Observations::new(&t, &exp, &outcomes, &caches, &[]));
    assert_eq!(violated(&r), ["no_lock_held"], "an exists-kind lock file left after exit is a stale lock");
    assert!(r.iter().find(|x| x.name == "no_lock_held").unwrap().evidence[0].contains("alpha-1.bin.lock"));
}

/// A process holding a partial open for writing, locked or not (python: one process both locks and
/// writes, as a downloader does).
fn writer(lock: Option<&Path>, partial: &Path) -> std::process::Child {
    let script = "import fcntl,sys\nif sys.argv[1]:\n    l=open(sys.argv[1],'w'); fcntl.flock(l, fcntl.LOCK_EX)\nf=open(sys.argv[2],'wb'); f.write(b'x'); f.flush()\nprint('ready', flush=True)\nsys.stdin.read()\n";
    let mut child = crate::fs_trace::e2e_tests::python3()
        .arg("-c")
        .arg(script)
        .arg(lock.map(|l| l.display().to_string()).unwrap_or_default())
        .arg(partial)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Event: the child says it is ready (locked and writing).
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

#[test]
fn live_lock_check_sees_a_writer_without_its_exclusive_lock() {
    let (w, _, _) = clean_world();
    let partial = w.cache.join("alpha-1.bin.1-1.partial");
    let mut unlocked = writer(None, &partial);
    let (checks, _, evidence) =
        crate::proc_locks::writers_hold_exclusive_locks(&[unlocked.id()], &w.cache, &w.t.spec.files);
    drop(unlocked.stdin.take());
    unlocked.wait().unwrap();
    assert_eq!(checks, 1);
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    let mut locked = writer(Some(&w.cache.join("alpha-1.bin.lock")), &partial);
    let (checks, witnesses, evidence) =
        crate::proc_locks::writers_hold_exclusive_locks(&[locked.id()], &w.cache, &w.t.spec.files);
    drop(locked.stdin.take());
    locked.wait().unwrap();
    assert_eq!((checks, evidence.len(), witnesses.len()), (1, 0, 1), "{evidence:?}");
}

#[test]
fn a_bad_read_violates_readers_saw_only_complete_content() {
    let (w, outcomes, exp) = clean_world();
    let readers = ReaderReport {
        scans: 2,
        reads: 1,
        complete_reads: 0,
        bad_reads: vec!["x.bin: read prefix(alpha, 10 B)".into()],
        ..Default::default()
    };
    let r = check_with(&w, &outcomes, &exp, |o| o.readers = Some(Box::leak(Box::new(readers))));
    assert_eq!(violated(&r), ["readers_saw_only_complete_content"]);
}

#[test]
fn an_incomplete_compiled_entry_violates_compiled_entries_complete() {
    let (w, outcomes, exp) = clean_world();
    let patterns =
        CompiledCache { entry: "*-*".into(), partial: ".*.tmp".into(), lock: Some("*.lock".into()) };
    let reference_dir = w.out.join("reference");
    let compiled_dir = w.out.join("compiled");
    for (dir, graph) in [(&reference_dir, &b"graph"[..]), (&compiled_dir, &b"gra"[..])] {
        std::fs::create_dir_all(dir.join("abc-1")).unwrap();
        std::fs::write(dir.join("abc-1/graph.nnef"), graph).unwrap();
    }
    let reference = CompiledReference::from_snapshots(&[CompiledSnapshot::take(
        &reference_dir,
        &patterns,
        LockKind::Flock,
    )]);
    let good = [CompiledSnapshot::take(&reference_dir, &patterns, LockKind::Flock)];
    let bad = [CompiledSnapshot::take(&compiled_dir, &patterns, LockKind::Flock)];
    let ok = check_with(&w, &outcomes, &exp, |o| {
        o.compiled = Box::leak(Box::new(good));
        o.compiled_reference = Some(Box::leak(Box::new(reference.clone())));
    });
    assert!(held(&ok, Invariant::CompiledEntriesCompleteOrAbsent));
    let r = check_with(&w, &outcomes, &exp, |o| {
        o.compiled = Box::leak(Box::new(bad));
        o.compiled_reference = Some(Box::leak(Box::new(reference)));
    });
    assert_eq!(violated(&r), ["compiled_entries_complete_or_absent"]);
}

#[test]
fn loading_the_other_model_violates_successes_loaded_expected_model() {
    let (w, outcomes, exp) = clean_world();
    write_meta(&w, &w.t.models["beta"].sha256.clone());
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert_eq!(violated(&r), ["successes_loaded_expected_model"]);
    std::fs::remove_file(w.out.join("in.meta.toml")).unwrap();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert_eq!(
        violated(&r),
        ["successes_loaded_expected_model"],
        "a success without metadata is a violation"
    );
}

#[test]
fn unexpected_exit_class_violates_expected_class() {
    let w = world();
    let (outcomes, mut exp) = run(
        &w.t,
        &w.cache,
        &w.out,
        &["echo 'beaker: error: checksum' >&2; exit 4", "exit 3"],
        Duration::from_secs(20),
    );
    exp.processes[1] = exp.processes[1].clone().allow(&[OutcomeClass::Ok, OutcomeClass::Network]);
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert_eq!(violated(&r), ["failures_have_expected_class"]);
    let evidence = &r.iter().find(|x| x.name == "failures_have_expected_class").unwrap().evidence;
    assert_eq!(evidence.len(), 1);
    assert!(evidence[0].contains("integrity") && evidence[0].contains("checksum"), "{evidence:?}");
}

#[test]
fn panic_and_signals_violate_no_panic_unless_a_crash_was_injected() {
    let w = world();
    let (outcomes, mut exp) = run(
        &w.t,
        &w.cache,
        &w.out,
        &[
            "echo \"thread 'main' panicked at src/main.rs:1:1\" >&2; exit 101",
            "kill -TERM $$",
            "kill -KILL $$",
        ],
        Duration::from_secs(20),
    );
    for e in &mut exp.processes {
        e.allowed = BTreeSet::from([
            OutcomeClass::Ok,
            OutcomeClass::Panicked,
            OutcomeClass::Signal,
            OutcomeClass::Crashed,
        ]);
    }
    exp.skip(Invariant::OneFinalArtifactPerModel, "no cache in this case");
    let r = check_with(&w, &outcomes, &exp, |_| {});
    let evidence = &r.iter().find(|x| x.name == "no_panic_or_unexpected_signal").unwrap().evidence;
    assert_eq!(evidence.len(), 3, "{evidence:?}");
    exp.processes[2] = exp.processes[2].clone().crash();
    let r = check_with(&w, &outcomes, &exp, |_| {});
    let evidence = &r.iter().find(|x| x.name == "no_panic_or_unexpected_signal").unwrap().evidence;
    assert_eq!(evidence.len(), 2, "an injected crash is allowed: {evidence:?}");
    assert_eq!(OutcomeClass::of(&outcomes[0], &w.t.spec.exit_codes), OutcomeClass::Panicked);
    assert_eq!(OutcomeClass::of(&outcomes[1], &w.t.spec.exit_codes), OutcomeClass::Signal);
    assert_eq!(OutcomeClass::of(&outcomes[2], &w.t.spec.exit_codes), OutcomeClass::Crashed);
}

#[test]
fn too_many_bodies_violate_amplification_bound() {
    let (w, outcomes, exp) = clean_world();
    let served =
        ServedCounts { complete_bodies: BTreeMap::from([("alpha".into(), 2)]), ..Default::default() };
    let r = check_with(&w, &outcomes, &exp, |o| o.served = Some(Box::leak(Box::new(served))));
    assert_eq!(violated(&r), ["download_amplification_bounded"]);
}

#[test]
fn a_failing_recovery_run_violates_no_poisoning() {
    let (w, outcomes, exp) = clean_world();
    let (bad, _) = run(
        &w.t,
        &w.cache,
        &w.out,
        &["echo 'beaker: error: bad model' >&2; exit 4"],
        Duration::from_secs(20),
    );
    let recovery = RecoveryRun { outcomes: bad, expectations: exp.processes[..1].to_vec() };
    let r = check_with(&w, &outcomes, &exp, |o| o.recovery = Some(Box::leak(Box::new(recovery))));
    assert_eq!(violated(&r), ["no_poisoning"]);
}

#[test]
fn a_hung_process_violates_finished_before_watchdog() {
    let w = world();
    std::fs::write(w.cache.join("alpha-1.bin"), &alpha(&w).bytes).unwrap();
    write_meta(&w, &alpha(&w).sha256.clone());
    let (outcomes, exp) =
        run(&w.t, &w.cache, &w.out, &["exit 0", "exec sleep 1000"], Duration::from_millis(500));
    let r = check_with(&w, &outcomes, &exp, |_| {});
    assert!(!held(&r, Invariant::FinishedBeforeWatchdog));
    assert!(!held(&r, Invariant::FailuresHaveExpectedClass));
    assert!(held(&r, Invariant::NoPanicOrUnexpectedSignal), "a watchdog kill is a hang, not a crash");
}

#[test]
fn names_are_stable_snake_case() {
    let names: BTreeSet<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
    assert_eq!(names.len(), Invariant::ALL.len());
    assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    assert_eq!(Invariant::NoLockHeld.to_string(), "no_lock_held");
}

#[test]
#[should_panic(expected = "no_lock_held")]
fn assert_all_held_lists_violations() {
    assert_all_held("s", &[InvariantResult::checked("no_lock_held", vec!["x.lock".into()])]);
}

/// The suite's invariants are exactly the contract's known names, in the same order: the CLI and the
/// suite share one list.
#[test]
fn every_invariant_is_a_known_name_of_the_contract_and_in_its_order() {
    let ours: Vec<stress_cache_metadata::InvariantName> = Invariant::ALL.iter().map(|i| i.id()).collect();
    assert_eq!(ours, stress_cache_metadata::InvariantName::KNOWN);
}
