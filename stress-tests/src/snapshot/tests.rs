use super::*;
use crate::target::blob_models;
use stress_cache_metadata::{CompiledCache, FilePattern};

fn patterns() -> FilePatterns {
    FilePatterns {
        final_: "*.bin".into(),
        partial: "*.partial".into(),
        lock: Some("*.lock".into()),
        lock_kind: LockKind::Flock,
        quarantine: Some("quarantine/*".into()),
        ignore: stress_cache_metadata::PatternList::Many(vec!["*.meta".into()]),
        symlinks: SymlinkPolicy::Follow,
    }
}

#[test]
fn classifies_complete_prefix_corrupted_unrelated() {
    let models = blob_models();
    let alpha = &models["alpha"].bytes;
    assert_eq!(classify(alpha, &models), Content::Complete("alpha".into()));
    assert_eq!(classify(&alpha[..1000], &models), Content::Prefix("alpha".into(), 1000));
    assert_eq!(classify(&[], &models), Content::Empty);
    let mut flipped = alpha.clone();
    flipped[500] ^= 0xff;
    assert_eq!(classify(&flipped, &models), Content::Corrupted("alpha".into()));
    assert_eq!(classify(&crate::server::corrupt(alpha), &models), Content::ServedCorrupt("alpha".into()));
    let mut longer = alpha.clone();
    longer.extend_from_slice(b"trailing");
    assert_eq!(classify(&longer, &models), Content::Corrupted("alpha".into()));
    let mut truncated_flipped = alpha[..alpha.len() / 2].to_vec();
    truncated_flipped[0] ^= 1;
    assert_eq!(classify(&truncated_flipped, &models), Content::Corrupted("alpha".into()));
    assert_eq!(classify(b"hello, not a model", &models), Content::Unrelated);
}

#[test]
fn snapshot_sorts_files_locks_and_quarantine() {
    let models = blob_models();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("alpha-1.bin"), &models["alpha"].bytes).unwrap();
    fs::write(d.join("beta-1.bin.77-1.partial"), &models["beta"].bytes[..10]).unwrap();
    fs::write(d.join("alpha-1.bin.lock"), b"").unwrap();
    fs::create_dir(d.join("quarantine")).unwrap();
    fs::write(d.join("quarantine/alpha-1.bin.1700"), b"junk").unwrap();
    let s = CacheSnapshot::take(d, &patterns(), &models);
    assert_eq!(s.files.len(), 2);
    assert_eq!(s.complete_copies("alpha").len(), 1);
    assert!(s.finals()[0].relative == Path::new("alpha-1.bin"));
    assert_eq!(s.partials()[0].content, Content::Prefix("beta".into(), 10));
    assert_eq!(s.locks.len(), 1);
    assert!(!s.locks[0].held);
    assert_eq!(s.quarantined.len(), 1);
}

#[test]
fn sidecars_are_listed_not_read_and_a_symlinked_final_is_judged_by_its_target() {
    let models = blob_models();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("alpha-1.bin.meta"), b"{}").unwrap();
    fs::create_dir(d.join("blobs")).unwrap();
    fs::write(d.join("blobs/aa"), &models["alpha"].bytes).unwrap();
    std::os::unix::fs::symlink("blobs/aa", d.join("alpha-2.bin")).unwrap();
    std::os::unix::fs::symlink("blobs/missing", d.join("beta-2.bin")).unwrap();
    let s = CacheSnapshot::take(d, &patterns(), &models);
    assert_eq!(s.ignored, vec![PathBuf::from("alpha-1.bin.meta")]);
    let finals = s.finals();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(finals[0].content, Content::Complete("alpha".into()));
    assert_eq!(finals[0].link_target.as_deref(), Some(Path::new("blobs/aa")));
    assert!(s.unreadable.iter().any(|u| u.contains("dangling symlink")), "{:?}", s.unreadable);
}

#[test]
fn lock_probe_sees_a_holder_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("m.lock");
    fs::write(&lock, b"").unwrap();
    assert!(!probe_lock(&lock, LockKind::Flock));
    // flock(1) holds the lock while its child (cat) waits on stdin; closing stdin ends it.
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1)");
    let me = std::process::id();
    let files = crate::proc_locks::lock_file_ids(dir.path(), &FilePattern::new("*.lock"));
    let mut held = false;
    for _ in 0..20_000 {
        let lines = crate::proc_locks::read_proc_locks().unwrap();
        if !crate::proc_locks::holding(&lines, &[holder.id()], &files).is_empty() {
            held = true;
            break;
        }
        std::thread::yield_now();
    }
    assert!(held, "holder never took the lock ({me})");
    assert!(probe_lock(&lock, LockKind::Flock));
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert!(!probe_lock(&lock, LockKind::Flock));
    assert!(probe_lock(&lock, LockKind::Exists));
}

#[test]
fn compiled_entries_against_a_reference() {
    let patterns =
        CompiledCache { entry: "*-*".into(), partial: ".*.tmp".into(), lock: Some("*.lock".into()) };
    let make = |root: &Path, stamp: &str, graph: &[u8]| {
        let e = root.join("abc-123");
        fs::create_dir_all(&e).unwrap();
        fs::write(e.join("graph.nnef"), graph).unwrap();
        fs::write(e.join("manifest.toml"), format!("created = {stamp}")).unwrap();
        fs::write(root.join("abc-123.lock"), b"").unwrap();
    };
    let (r1, r2, run) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make(r1.path(), "1700000000001", b"graph bytes");
    make(r2.path(), "1700000000002", b"graph bytes");
    let reference = CompiledReference::from_snapshots(&[
        CompiledSnapshot::take(r1.path(), &patterns, LockKind::Flock),
        CompiledSnapshot::take(r2.path(), &patterns, LockKind::Flock),
    ]);
    assert_eq!(
        reference.entries["abc-123"]["manifest.toml"].sha256, None,
        "volatile file compared by length"
    );
    make(run.path(), "1700000000003", b"graph bytes");
    fs::create_dir(run.path().join(".abc-123.9-1.tmp")).unwrap();
    let s = CompiledSnapshot::take(run.path(), &patterns, LockKind::Flock);
    assert_eq!(s.entries.len(), 1);
    assert_eq!(s.partials.len(), 1);
    assert_eq!(s.locks.len(), 1);
    assert!(reference.is_complete(&s.entries[0]));
    fs::write(run.path().join("abc-123/graph.nnef"), b"graph byt").unwrap();
    assert!(
        !reference.is_complete(&CompiledSnapshot::take(run.path(), &patterns, LockKind::Flock).entries[0])
    );
    fs::remove_file(run.path().join("abc-123/graph.nnef")).unwrap();
    assert!(
        !reference.is_complete(&CompiledSnapshot::take(run.path(), &patterns, LockKind::Flock).entries[0])
    );
}
